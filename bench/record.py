"""bench/record.py -- the `record` section of bench/run: recording through
attnd beside a rank load (issue 13's measurements).

Per record.synchronous level (and at normal, once more with record.priority
= idle), on a fresh copy of the P1 database: rank
alone (open loop, RANK_RATE req/s, user histories), rank beside recording
at full speed (closed loop, 16 requests of REC_PER events in flight), rank
beside recording at REC_FIXED events/s (open loop); during the full-speed
run, the writer thread's CPU per event and its wait for a core from
/proc/.../schedstat.  Rounds alternate the levels, and each figure is the
best round: the machine is shared, and its noise only slows a run down.
The rank-tail target is measured apart, in alone/beside pairs seconds
apart (paired_tail), at normal with both writer priorities.

bench/run passes itself as `h` for its helpers (start, stop, ensure_db, ...).
"""
import json
import os
import statistics
import subprocess
import time


def load_run(h, bin_dir, endpoint, db, args, secs, warmup):
    """Start one attn-load (user requests sampled from db, or the requests
    of an --in file among args); returns the process, whose --json summary
    s_load_result reads."""
    # An --in file's requests go as they are: no db to sample, no shape.
    source = [] if "--in" in args else ["--db", db, "--candidates", "100", "--k", "10"]
    cmd = [os.path.join(bin_dir, "attn-load"), "--endpoint", endpoint] + source + [
           "--duration", str(secs), "--warmup", str(warmup), "--json"] + args
    h.log("$ " + " ".join(cmd))
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, cwd=h.ROOT)


def load_result(h, p, what):
    out = p.communicate()[0]
    lines = [l for l in out.decode().splitlines() if l.startswith("{")]
    if not lines:
        h.die(f"attn-load ({what}) printed no summary (status {p.returncode})")
    r = json.loads(lines[-1])
    if r.get("ok", 0) == 0 or r.get("stalled"):
        h.die(f"attn-load ({what}): no ok replies ({r.get('errors')})")
    return r


def sched_by_thread(pid):
    """Seconds each named thread of pid has run and has waited runnable
    for a core (/proc/.../schedstat), summed by thread name."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                run, wait, _ = (int(x) for x in f.read().split())
        except (FileNotFoundError, ValueError):
            continue
        o = out.setdefault(name, [0.0, 0.0])
        o[0] += run / 1e9
        o[1] += wait / 1e9
    return out


def remove_db(db):
    """db and its WAL and shared-memory files, where they exist."""
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)


def copy_db(src, db):
    """A fresh copy of src at db, through the backup API: a consistent
    snapshot, WAL included (a plain copy of the file would miss commits
    still in the WAL, and the cache may be in use by another run)."""
    import sqlite3
    remove_db(db)
    s_con, d_con = sqlite3.connect(f"file:{src}?mode=ro", uri=True), sqlite3.connect(db)
    s_con.backup(d_con)
    d_con.close()
    s_con.close()


def writer_cost(h, attnd, ep, secs, warm):
    """Sampled inside a recording window: the writer thread's CPU per event
    (what it could do with a core to itself) and the share of the time it
    waited runnable (how much of one this machine gave it)."""
    time.sleep(warm + 0.3)
    s0, st0 = sched_by_thread(attnd.pid), h.zmq_call(ep, {"op": "stats"})
    t0 = time.monotonic()
    time.sleep(max(secs - 0.6, 0.3))
    s1, st1 = sched_by_thread(attnd.pid), h.zmq_call(ep, {"op": "stats"})
    wall = time.monotonic() - t0
    ev = max(st1["record"]["stored"] - st0["record"]["stored"], 1)
    cost = {k: [s1[k][i] - s0.get(k, [0, 0])[i] for i in (0, 1)] for k in s1}
    wr, ck = cost.get("attnd-writer", [0, 0]), cost.get("checkpoint", [0, 0])
    return {"events": ev, "wall_s": wall, "writer_us_per_event": wr[0] / ev * 1e6,
            "checkpoint_us_per_event": ck[0] / ev * 1e6, "writer_waiting_share": wr[1] / wall,
            "writer_running_share": wr[0] / wall, "threads": cost}


REC_PER, REC_FIXED, RANK_RATE = 100, 20000, 1000


def rec_rate(events_per_s):
    """attn-load's --rate for events_per_s in requests of REC_PER events."""
    return ["--rate", f"{events_per_s / REC_PER:.1f}"]


def rec_at(events_per_s):
    """attn-load's arguments for recording events_per_s, open loop, in
    requests of REC_PER events."""
    return rec_rate(events_per_s) + ["--seed", "4", "--record-ratio", "1",
                                     "--record-events", str(REC_PER)]


# attn-load's arguments for rank at RANK_RATE req/s and for recording at
# REC_FIXED events/s, both open loop.
RANK_AT_RATE = ["--rate", str(RANK_RATE), "--seed", "2"]
REC_AT_FIXED = rec_at(REC_FIXED)


LEVELS = (("normal", "normal"), ("full", "normal"), ("normal", "idle"))   # sync, priority


def level_name(sync, priority):
    return sync if priority == "normal" else f"{sync}, priority {priority}"


def record_round(h, a, bin_dir, src, sync, priority, secs, warm):
    """One round at one synchronous level, on a fresh copy of src: rank alone
    (open loop), rank beside recording at full speed (closed loop, 16
    requests of REC_PER events in flight), rank beside recording at
    REC_FIXED events/s (open loop)."""
    db = os.path.join(a.out, "record.db")
    copy_db(src, db)
    ep = f"tcp://127.0.0.1:{h.free_port()}"
    attnd = h.start([os.path.join(bin_dir, "attnd"), "--db", db, "--bind", ep,
                     "--set", "server.metrics_interval=0", "--set", "server.reload_poll=0",
                     "--set", f"record.synchronous={sync}", "--set", f"record.priority={priority}"],
                    os.path.join(a.out, f"attnd-record-{sync}-{priority}.log"))
    h.wait_ready(attnd, ep)
    rank_args = RANK_AT_RATE
    rec_args = ["--record-ratio", "1", "--record-events", str(REC_PER)]
    alone = load_result(h, load_run(h, bin_dir, ep, db, rank_args, secs, warm), "rank alone")
    rec = load_run(h, bin_dir, ep, db, ["--clients", "16", "--seed", "3"] + rec_args, secs, warm)
    rank = load_run(h, bin_dir, ep, db, rank_args, secs, warm)
    writer = writer_cost(h, attnd, ep, secs, warm)
    busy, full = load_result(h, rank, "rank + record"), load_result(h, rec, "record")
    rec = load_run(h, bin_dir, ep, db, REC_AT_FIXED, secs, warm)
    mid = load_result(h, load_run(h, bin_dir, ep, db, rank_args, secs, warm), "rank + some record")
    fixed = load_result(h, rec, "record at a rate")
    stats = h.zmq_call(ep, {"op": "stats"})
    h.stop(attnd)
    remove_db(db)
    return {"sync": sync, "priority": priority, "level": level_name(sync, priority),
            "rank_alone": alone["latency_us"], "rank_busy": busy["latency_us"],
            "record_max": {"events_per_s": full["record"]["events_per_s"],
                           "latency_us": full["record"]["latency_us"],
                           "errors": full.get("errors")},
            "writer": writer, "rank_fixed": mid["latency_us"],
            "record_fixed": {"events_per_s": fixed["record"]["events_per_s"],
                             "latency_us": fixed["record"]["latency_us"]},
            "server": (stats or {}).get("record")}


def server_change_text(pr):
    """attnd's own p99 change, median of the pairs, with its alone -> beside
    medians; '-' for results.json of runs before attn-load reported it."""
    m = pr.get("server_median_change")
    if m is None:
        return "-"
    both = [p for p in pr["pairs"] if p["server_change"] is not None]
    alone = statistics.median(p["alone_server_us"] for p in both)
    beside = statistics.median(p["beside_server_us"] for p in both)
    return f"{m * 100:+.0f}% ({alone / 1e3:.2f} → {beside / 1e3:.2f} ms)"


def paired_tail(h, bin_dir, src, work_dir, attnd_args, rec_args, pairs, window,
                rank_args=None, client_idle=False, log_name="record-paired-attnd.log"):
    """The rank tail beside recording, measured in pairs: one attnd on a
    fresh copy of src, then `pairs` pairs of rank windows (window s each,
    open loop), one alone and one beside a recording client started for
    it (rec_args), seconds apart, the order swapped every pair.  On a host
    whose p99 drifts from minute to minute, the two halves of a pair share
    the drift.  Returns each pair's p99s and change, their median, and how
    many pairs changed by more than +20%; the same for attnd's own p99 (the
    replies' took_us, attn-load's server_us), the part of the tail that does
    not come from the clients sharing the machine."""
    rank_args = rank_args or RANK_AT_RATE
    db = os.path.join(work_dir, "record-paired.db")
    copy_db(src, db)
    ep = f"tcp://127.0.0.1:{h.free_port()}"
    attnd = h.start([os.path.join(bin_dir, "attnd"), "--db", db, "--bind", ep,
                     "--set", "metrics.bind=", "--set", "server.metrics_interval=0",
                     "--set", "server.reload_poll=0"] + attnd_args,
                    os.path.join(work_dir, log_name))
    recorder, out = None, []
    try:
        h.wait_ready(attnd, ep)
        load_result(h, load_run(h, bin_dir, ep, db, rank_args, 1, 0.5), "warm-up")

        def window_p99(beside):
            nonlocal recorder
            if beside:
                recorder = load_run(h, bin_dir, ep, db, rec_args, window + 1.5, 0.5)
                if client_idle:
                    os.sched_setscheduler(recorder.pid, os.SCHED_IDLE, os.sched_param(0))
                time.sleep(0.8)   # its start-up and warm-up: recording at full rate
            r = load_result(h, load_run(h, bin_dir, ep, db, rank_args, window, 0.3), "rank")
            if beside:
                load_result(h, recorder, "record")
                recorder = None
            return r["latency_us"]["p99"], r.get("server_us", {}).get("p99")

        for i in range(pairs):
            if i % 2 == 0:
                alone, beside = window_p99(False), window_p99(True)
            else:
                beside, alone = window_p99(True), window_p99(False)
            out.append({"alone_us": alone[0], "beside_us": beside[0],
                        "change": beside[0] / alone[0] - 1,
                        "alone_server_us": alone[1], "beside_server_us": beside[1],
                        "server_change": beside[1] / alone[1] - 1 if alone[1] and beside[1]
                        else None})
    finally:
        if recorder:
            recorder.kill()
            recorder.wait()
        h.stop(attnd)
        remove_db(db)
    changes = [p["change"] for p in out]
    server = [p["server_change"] for p in out if p["server_change"] is not None]
    return {"pairs": out, "window_s": window, "median_change": statistics.median(changes),
            "over_20": sum(c > 0.2 for c in changes),
            "server_median_change": statistics.median(server) if server else None}


def section_record(a, bin_dir, bench_dir, R, h):
    """Recording beside ranking, at both synchronous levels, in rounds that
    alternate the levels.  The machine is shared and its noise only ever
    slows a run down or stretches its tail, so each figure is the best of
    the rounds (all rounds are kept in results.json)."""
    src = h.ensure_db(a, bin_dir, bench_dir, "p1-100k-d64.db", 100000, 64, 4)
    secs, warm = (2, 0.5) if a.quick else (5, 1)
    rounds = [record_round(h, a, bin_dir, src, sync, priority, secs, warm)
              for _ in range(1 if a.quick else 2) for sync, priority in LEVELS]
    runs = []
    for sync, priority in LEVELS:
        mine = [r for r in rounds if r["level"] == level_name(sync, priority)]
        best = dict(mine[0])
        for key in ("rank_alone", "rank_busy", "rank_fixed"):
            best[key] = min((r[key] for r in mine), key=lambda l: l["p99"])
        for key in ("record_max", "record_fixed"):
            best[key] = max((r[key] for r in mine), key=lambda x: x["events_per_s"])
        best["writer"] = min((r["writer"] for r in mine), key=lambda w: w["writer_us_per_event"])
        runs.append(best)
    # The tail target, measured in pairs at the normal level (and with the
    # writer at idle priority): best-of-rounds figures above put the alone
    # and beside runs minutes apart, which this host's drift swamps.
    for r in runs:
        if r["sync"] == "normal":
            r["paired"] = paired_tail(h, bin_dir, src, a.out,
                                      ["--set", "record.synchronous=normal",
                                       "--set", f"record.priority={r['priority']}"],
                                      REC_AT_FIXED, 3 if a.quick else 8, 1 if a.quick else 2)
    R["record"] = {"runs": runs, "rounds": rounds, "load": os.getloadavg(),
                   "rank_rate": RANK_RATE, "per_request": REC_PER, "fixed": REC_FIXED}


def report_record(rr, h, targets):
    """The record section's tables; its targets are appended to targets."""
    out = []
    out += ["## Recording beside ranking", "",
            f"attnd on a fresh copy of the e2e database per round, 2 workers and the writer; "
            f"rank: open loop at {rr['rank_rate']} req/s, user histories, 100 candidates; "
            f"record: requests of {rr['per_request']} events with fresh event_ids, closed "
            f"loop with 16 in flight (max), then open loop at {h.fnum(rr['fixed'])} events/s "
            f"(fixed).  Best of {len(rr['rounds']) // len(rr['runs'])} round(s) per figure; load average at "
            f"the end: {rr['load'][0]:.1f} (on 2 cores: other jobs shared the machine).", ""]
    rows = []
    for r in rr["runs"]:
        m, f = r["record_max"], r["record_fixed"]
        rows.append([r.get("level", r["sync"]), h.fnum(m["events_per_s"]), h.fnum(m["latency_us"]["p50"] / 1e3, 1),
                     h.fnum(m["latency_us"]["p99"] / 1e3, 1), h.fnum(r["rank_alone"]["p99"] / 1e3, 2),
                     h.fnum(r["rank_busy"]["p99"] / 1e3, 2), h.fnum(f["events_per_s"]),
                     h.fnum(f["latency_us"]["p99"] / 1e3, 1), h.fnum(r["rank_fixed"]["p99"] / 1e3, 2)])
    out += [h.table(["synchronous", "events/s (max)", "ack p50 ms", "ack p99 ms",
                   "rank p99 ms alone", "rank p99 ms at max", "events/s (fixed)",
                   "ack p99 ms", "rank p99 ms at fixed"], rows), ""]
    rows = []
    for r in rr["runs"]:
        w = r["writer"]
        per = w["writer_us_per_event"] + w["checkpoint_us_per_event"]
        rows.append([r.get("level", r["sync"]), h.fnum(w["writer_us_per_event"], 1),
                     h.fnum(w["checkpoint_us_per_event"], 1), h.fnum(1e6 / per if per else None),
                     f"{w['writer_running_share'] * 100:.0f}%",
                     f"{w['writer_waiting_share'] * 100:.0f}%"])
    out += ["During the max run, from /proc schedstat: the writer thread's CPU per event "
            "(and the checkpoint thread's), the rate that cost allows on a core of its own, "
            "and the share of the time the writer ran and the share it waited, runnable, "
            "for a core (the rest it waited for requests or for a checkpoint).", "",
            h.table(["synchronous", "writer µs/event", "checkpoint µs/event",
                   "events/s on one free core", "writer running", "writer waiting for a core"],
                  rows), ""]
    for n in (r for r in rr["runs"] if r["sync"] == "normal"):
        name = n.get("level", "normal")
        eps = n["record_max"]["events_per_s"]
        targets.append([f"record ≥ 50,000 events/s at {name}, rank load beside it",
                        h.fnum(eps), "met" if eps >= 50000 else "**missed**"])
        pr = n.get("paired")
        if pr:
            deg = pr["median_change"]
            targets.append([f"rank p99 degrades ≤ 20% under recording at {name} "
                            f"({h.fnum(rr['fixed'])} events/s; median of {len(pr['pairs'])} "
                            f"alone/beside pairs, {pr['over_20']} over +20%)",
                            f"{deg * 100:+.0f}%", "met" if deg <= 0.2 else "**missed**"])
        else:   # results.json of runs before the pairs
            deg = n["rank_fixed"]["p99"] / n["rank_alone"]["p99"] - 1
            targets.append([f"rank p99 degrades ≤ 20% under recording at {name} "
                            f"({h.fnum(n['record_fixed']['events_per_s'])} events/s)",
                            f"{deg * 100:+.0f}%", "met" if deg <= 0.2 else "**missed**"])
    paired = [r for r in rr["runs"] if r.get("paired")]
    if paired:
        out += [f"The rank tail beside recording, in pairs: one attnd per level, pairs of "
                f"{paired[0]['paired']['window_s']:g} s rank windows ({rr['rank_rate']} req/s), "
                f"one alone and one beside recording at {h.fnum(rr['fixed'])} events/s, seconds "
                f"apart, the order swapped every pair (the target reads the median change).", "",
                h.table(["level", "median change", "pairs over +20%", "p99 ms, alone → beside",
                         "attnd's own p99: median change"],
                        [[r.get("level", r["sync"]), f"{r['paired']['median_change'] * 100:+.0f}%",
                          f"{r['paired']['over_20']} of {len(r['paired']['pairs'])}",
                          ", ".join(f"{p['alone_us'] / 1e3:.2f} → {p['beside_us'] / 1e3:.2f}"
                                    for p in r["paired"]["pairs"]),
                          server_change_text(r["paired"])] for r in paired]), ""]
    return out
