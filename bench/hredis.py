"""bench/hredis.py -- the `redis` section of bench/run: histories in Redis
(issue 16's measurements).

On one P1 database (100k items, d=64, a random 4-head model, 5,000 users of
60 events, so that every request reads L=50): `attnctl history push` into a
redis-server started here (events/s, best of three), Redis's memory per
user at trim 50, `attnctl snapshot`, then the same rank load on attnd
serving the database (sqlite backend) and on attnd serving the snapshot
with histories from Redis, in alternating rounds: closed loop (throughput,
p99) and open loop at half the sqlite peak (p99).  Redis's own cost per
request comes from its INFO commandstats (reset before each run), and a
closed-loop record load measures the append script's cost per event.

bench/run passes itself as `h` for its helpers (start, stop, free_port, ...).
"""
import os
import re
import subprocess
import time

import record   # load_run / load_result: attn-load with user histories

TRIM = 50
EVENTS = 60


def redis_cli(port, *args):
    p = subprocess.run(["redis-cli", "-p", str(port), *args], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, check=True)
    return p.stdout.decode()


def info(port, section):
    """INFO section as a dict of strings."""
    out = {}
    for line in redis_cli(port, "INFO", section).splitlines():
        k, _, v = line.partition(":")
        if v:
            out[k] = v.strip()
    return out


def commandstats(port):
    """{command: (calls, usec)} from INFO commandstats."""
    out = {}
    for k, v in info(port, "commandstats").items():
        m = re.match(r"calls=(\d+),usec=(\d+)", v)
        if m and k.startswith("cmdstat_"):
            out[k[8:]] = (int(m.group(1)), int(m.group(2)))
    return out


def ensure_db(a, h, bin_dir, bench_dir):
    """P1's catalog and model, users with EVENTS events (cached)."""
    os.makedirs(a.cache, exist_ok=True)
    path = os.path.join(a.cache, f"p1-100k-d64-u5000x{EVENTS}.db")
    if os.path.exists(path):
        subprocess.run([os.path.join(bin_dir, "attnctl"), "init", "--migrate", path], check=True,
                       stdout=subprocess.DEVNULL)
        return path
    tmp = path + ".tmp"
    for p in (tmp, tmp + "-wal", tmp + "-shm"):
        if os.path.exists(p):
            os.remove(p)
    subprocess.run([os.path.join(bin_dir, "attnctl"), "gen", tmp, "--items", "100000", "--dim",
                    "64", "--users", "5000", "--events-per-user", str(EVENTS), "--seed", "1"],
                   check=True)
    h.run_jsonl([os.path.join(bench_dir, "bench_model"), tmp, "--heads", "4", "--seed", "1"],
                what="bench_model")
    os.rename(tmp, path)
    return path


def start_redis(a, h):
    port = h.free_port()
    p = h.start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", a.out], os.path.join(a.out, "redis.log"))
    t0 = time.monotonic()
    while True:
        try:
            if redis_cli(port, "PING").strip() == "PONG":
                return p, port
        except subprocess.CalledProcessError:
            pass
        if p.poll() is not None or time.monotonic() - t0 > 30:
            h.die("redis-server did not start")
        time.sleep(0.05)


def push(h, bin_dir, db, url, rounds):
    """attnctl history push, best of `rounds` (each with --restart)."""
    best = None
    for _ in range(rounds):
        cmd = [os.path.join(bin_dir, "attnctl"), "history", "push", db, url, "--trim", str(TRIM),
               "--restart", "--quiet"]
        h.log("$ " + " ".join(cmd))
        out = subprocess.run(cmd, stdout=subprocess.PIPE, check=True).stdout.decode()
        m = re.search(r"(\d+) users, (\d+) events pushed in ([\d.]+) s \((\d+) events/s\)", out)
        if not m:
            h.die(f"attnctl history push: unexpected output {out!r}")
        r = {"users": int(m.group(1)), "events": int(m.group(2)), "seconds": float(m.group(3)),
             "events_per_s": int(m.group(4))}
        if not best or r["events_per_s"] > best["events_per_s"]:
            best = r
    return best


def memory_per_user(port, users):
    """used_memory over the pushed users, and MEMORY USAGE of sampled keys."""
    used = int(info(port, "memory")["used_memory"])
    keys = redis_cli(port, "--scan", "--pattern", "attn:h:*").split()[:200]
    sample = [int(redis_cli(port, "MEMORY", "USAGE", k, "SAMPLES", "0").strip() or 0)
              for k in keys]
    return {"used_memory": used, "per_user": used / users,
            "list_key_bytes": sum(sample) / len(sample) if sample else None,
            "sampled": len(sample)}


def attnd(a, h, bin_dir, db, name, extra):
    ep = f"tcp://127.0.0.1:{h.free_port()}"
    p = h.start([os.path.join(bin_dir, "attnd"), "--db", db, "--bind", ep, "--workers", "2",
                 "--set", "metrics.bind=", "--set", "server.metrics_interval=0",
                 "--set", "server.reload_poll=0"] + extra,
                os.path.join(a.out, f"attnd-{name}.log"))
    h.wait_ready(p, ep)
    return p, ep


def rank_round(h, bin_dir, ep, db, port, secs, warm, rate):
    """Closed loop (16 in flight), then open loop at rate; Redis's
    commandstats over the closed loop when port is given."""
    if port:
        s0 = h.zmq_call(ep, {"op": "stats"})
        redis_cli(port, "CONFIG", "RESETSTAT")
    closed = record.load_result(h, record.load_run(h, bin_dir, ep, db, ["--clients", "16",
                                                                        "--seed", "2"],
                                                   secs, warm), "rank closed")
    cs = None
    if port:   # over the same span as attnd's own count (warm-up included in both)
        cs = commandstats(port)
        s1 = h.zmq_call(ep, {"op": "stats"})
        cs["_requests"] = (s1["ops"]["rank"] - s0["ops"]["rank"], 0)
    opened = None
    if rate:
        opened = record.load_result(h, record.load_run(h, bin_dir, ep, db,
                                                       ["--rate", str(rate), "--seed", "3"],
                                                       secs, warm), "rank open")
    return {"closed": closed, "open": opened, "commandstats": cs}


def record_round(h, bin_dir, ep, db, port, secs, warm):
    s0 = h.zmq_call(ep, {"op": "stats"})
    redis_cli(port, "CONFIG", "RESETSTAT")
    r = record.load_result(h, record.load_run(h, bin_dir, ep, db,
                                              ["--clients", "16", "--seed", "4",
                                               "--record-ratio", "1", "--record-events", "10"],
                                              secs, warm), "record")
    cs = commandstats(port)
    s1 = h.zmq_call(ep, {"op": "stats"})
    cs["_requests"] = (s1["ops"]["record"] - s0["ops"]["record"], 0)
    cs["_events"] = (s1["record"]["stored"] - s0["record"]["stored"], 0)
    return {"load": r, "commandstats": cs}


def section_redis(a, bin_dir, bench_dir, R, h):
    db = ensure_db(a, h, bin_dir, bench_dir)
    secs, warm = (2, 0.5) if a.quick else (5, 1)
    d = {"trim": TRIM, "events_per_user": EVENTS}
    rp, port = start_redis(a, h)
    url = f"redis://127.0.0.1:{port}"
    d["redis_version"] = info(port, "server").get("redis_version")
    base = int(info(port, "memory")["used_memory"])
    d["push"] = push(h, bin_dir, db, url, 1 if a.quick else 3)
    d["memory"] = memory_per_user(port, d["push"]["users"])
    d["memory"]["empty"] = base
    d["memory"]["per_user"] = (d["memory"]["used_memory"] - base) / d["push"]["users"]
    snap = os.path.join(a.out, "p1-snapshot.db")
    t0 = time.monotonic()
    out = subprocess.run([os.path.join(bin_dir, "attnctl"), "snapshot", db, snap],
                         stdout=subprocess.PIPE, check=True).stdout.decode()
    d["snapshot"] = {"seconds": time.monotonic() - t0, "bytes": os.path.getsize(snap),
                     "db_bytes": os.path.getsize(db), "out": out.strip()}
    sq, sq_ep = attnd(a, h, bin_dir, db, "sqlite", [])
    rd, rd_ep = attnd(a, h, bin_dir, snap, "redis",
                      ["--set", "history.backend=redis", "--set", f"history.redis={url}",
                       "--set", f"history.trim={TRIM}", "--set", f"limits.max_history={TRIM}",
                       "--set", f"limits.max_seen={TRIM}"])
    rounds, rate = [], None
    for rnd in range(1 if a.quick else 2):
        s = rank_round(h, bin_dir, sq_ep, db, None, secs, warm, rate)
        if rate is None:
            rate = max(int(s["closed"]["ok_rps"] * 0.5), 100)
            s["open"] = record.load_result(h, record.load_run(h, bin_dir, sq_ep, db,
                                                              ["--rate", str(rate), "--seed",
                                                               "3"], secs, warm), "rank open")
        r = rank_round(h, bin_dir, rd_ep, db, port, secs, warm, rate)
        rounds += [{"backend": "sqlite", "round": rnd, **s}, {"backend": "redis", "round": rnd, **r}]
    d["rate"] = rate
    d["rounds"] = rounds
    d["record"] = record_round(h, bin_dir, rd_ep, db, port, secs, warm)
    d["redis_cpu"] = info(port, "cpu")
    for p in (sq, rd, rp):
        h.stop(p)
    d["load"] = os.getloadavg()
    R["redis"] = d


def _best(rounds, backend):
    mine = [r for r in rounds if r["backend"] == backend]
    closed = max((r["closed"] for r in mine), key=lambda c: c["ok_rps"])
    opened = min((r["open"] for r in mine if r["open"]), key=lambda o: o["latency_us"]["p99"])
    return closed, opened


def _per_request(cs, requests, names):
    calls = sum(cs.get(n, (0, 0))[0] for n in names)
    usec = sum(cs.get(n, (0, 0))[1] for n in names)
    return calls / max(requests, 1), usec / max(requests, 1), usec / max(calls, 1)


def report_redis(R, h, targets):
    d = R["redis"]
    out = ["## Histories in Redis", "",
           f"redis-server {d['redis_version']} on loopback (no persistence), one P1 database "
           f"(100k items, d=64, a random 4-head model, 5,000 users of {d['events_per_user']} "
           f"events: every request reads L = {d['trim']}); attnd with 2 workers serving the "
           f"database (sqlite backend) and serving its snapshot with histories in Redis "
           f"(trim {d['trim']}); the same attn-load (user requests, 100 candidates, k=10), in "
           f"alternating rounds, best per figure.  Load average at the end "
           f"{d['load'][0]:.1f} on 2 cores (other jobs shared the machine).", ""]
    p = d["push"]
    m = d["memory"]
    s = d["snapshot"]
    out += [h.table(["bulk copy and snapshot", "measured"], [
        ["`attnctl history push` (best of rounds)",
         f"{h.fnum(p['events'])} events of {h.fnum(p['users'])} users in {p['seconds']:.2f} s: "
         f"**{h.fnum(p['events_per_s'])} events/s**"],
        ["Redis memory per user at trim " + str(d["trim"]),
         f"{h.fnum(m['per_user'])} B (used_memory); list key alone {h.fnum(m['list_key_bytes'])}"
         f" B (MEMORY USAGE, {m['sampled']} keys)"],
        ["`attnctl snapshot`", f"{s['seconds']:.2f} s, {h.fbytes(s['bytes'])} "
         f"(database {h.fbytes(s['db_bytes'])})"],
    ], ["l", "l"]), ""]
    rows = {}
    for backend in ("sqlite", "redis"):
        c, o = _best(d["rounds"], backend)
        rows[backend] = (c, o)
    sq_c, sq_o = rows["sqlite"]
    rows_t = []
    for backend in ("sqlite", "redis"):
        c, o = rows[backend]
        rows_t.append([backend, h.fnum(c["ok_rps"]), h.fnum(c["latency_us"]["p50"] / 1e3, 2),
                       h.fnum(c["latency_us"]["p99"] / 1e3, 2),
                       f"{c['ok_rps'] / sq_c['ok_rps']:.2f}×",
                       h.fnum(o["latency_us"]["p50"] / 1e3, 2),
                       h.fnum(o["latency_us"]["p99"] / 1e3, 2)])
    out += [h.table(["history backend", "closed loop req/s (16 in flight)", "p50 ms", "p99 ms",
                     "÷ sqlite", f"open loop {h.fnum(d['rate'])} req/s: p50 ms", "p99 ms"],
                    rows_t), ""]
    rd_rounds = [r for r in d["rounds"] if r["backend"] == "redis"]
    best = max(rd_rounds, key=lambda r: r["closed"]["ok_rps"])
    cs = best["commandstats"]
    n, us, per = _per_request(cs, cs["_requests"][0], ["lrange"])
    rc = d["record"]
    rcs = rc["commandstats"]
    rec_reqs, ev = rcs["_requests"][0], rcs["_events"][0]
    en, eus, eper = _per_request(rcs, rec_reqs, ["evalsha"])
    lp = rcs.get("lpush", (0, 0))
    out += ["Redis's own cost, from its INFO commandstats (reset before the run) divided by "
            "attnd's own count of the requests over the same span (`usec` is Redis's time "
            "inside the command; a script's inner commands are counted inside EVALSHA's):", "",
            h.table(["op", "Redis calls per request", "Redis µs per request", "µs per call"], [
                ["rank (LRANGE of the user's newest 50)", f"{n:.2f}", f"{us:.2f}", f"{per:.2f}"],
                [f"record, {ev / max(rec_reqs, 1):.1f} events per request (the append script, "
                 f"EVALSHA; {h.fnum(rc['load']['record']['events_per_s'])} events/s)",
                 f"{en:.2f}", f"{eus:.2f}", f"{eper:.2f}"],
                ["… of which LPUSH (inside the script)", f"{lp[0] / max(rec_reqs, 1):.2f}",
                 f"{lp[1] / max(rec_reqs, 1):.2f}", f"{lp[1] / max(lp[0], 1):.2f}"],
            ]), ""]
    d["per_request"] = {"lrange_us": us, "evalsha_us": eus,
                        "events_per_request": ev / max(rec_reqs, 1)}
    targets.append(["history push ≥ 500,000 events/s to a local Redis",
                    h.fnum(p["events_per_s"]), "met" if p["events_per_s"] >= 500000
                    else "**missed**"])
    rd_c, _ = rows["redis"]
    targets.append(["rank with histories in Redis: throughput vs sqlite (P1, reported)",
                    f"{rd_c['ok_rps'] / sq_c['ok_rps']:.2f}×", "reported"])
    return out
