"""bench/workers.py -- the `workers` section of bench/run: how attnd's
throughput moves with its worker count, and its tail at half load with
the client pinned to a core.

Scaling: attnd with `--workers 1` and `--workers 2` side by side on the P1
(100k x 64, 4 heads) and P3 (100k x 384, 8 heads) databases, the same
attn-load closed loop (32 in flight) against each in alternating rounds;
ok req/s and the CPU per request of the server's threads and of the
client, from /proc.  The client shares the 2 cores: the report says so.

Open loop: attnd with its default workers on P1 at half the 2-worker P1
peak, alternately with attn-load free to run anywhere and pinned to the
last core (taskset), so the report can tell a tail that comes from the
client's own scheduling from one that comes from attnd.

bench/run passes itself as `h` for its helpers (start, stop, attn_load, ...).
"""
import os
import shutil
import statistics

SHAPES = (("P1", "p1-100k-d64.db", 100000, 64, 4), ("P3", "p3-100k-d384.db", 100000, 384, 8))


def _attnd(h, a, bin_dir, db, workers, name):
    ep = f"tcp://127.0.0.1:{h.free_port()}"
    p = h.start([os.path.join(bin_dir, "attnd"), "--db", db, "--bind", ep, "--metrics", "",
                 "--workers", str(workers), "--set", "server.metrics_interval=0",
                 "--set", "server.reload_poll=0"], os.path.join(a.out, f"attnd-{name}.log"))
    h.wait_ready(p, ep)
    return p, ep


def _row(r, **kw):
    c = r.get("cpu_us") or {}
    return dict(kw, rps=r["ok_rps"], p50_us=r["latency_us"]["p50"],
                p99_us=r["latency_us"]["p99"], failed=r["sent"] - r["ok"],
                errors=r.get("errors"), late=r.get("late_sends"),
                server_cpu=c.get("server"), client_cpu=c.get("client"),
                main_cpu=c.get("server_main"), helper_cpu=c.get("server_workers"),
                zmq_cpu=c.get("server_zmq"),
                busy=c.get("busy_cores"))


def section_workers(a, bin_dir, bench_dir, R, h):
    secs, warm = (1.5, 0.5) if a.quick else (3, 1)
    rounds = 1 if a.quick else 3
    runs = []
    peak_p1 = None
    for shape, name, items, dim, heads in SHAPES:
        db = h.ensure_db(a, bin_dir, bench_dir, name, items, dim, heads)
        procs = {w: _attnd(h, a, bin_dir, db, w, f"{shape}-w{w}") for w in (1, 2)}
        for rnd in range(rounds):
            for w in ((1, 2) if rnd % 2 == 0 else (2, 1)):
                p, ep = procs[w]
                r = h.attn_load(bin_dir, ep, db, ["--clients", "32"], secs, warm, p.pid)
                runs.append(_row(r, shape=shape, workers=w, round=rnd))
        for p, _ in procs.values():
            h.stop(p)
        if shape == "P1":
            peak_p1 = max(r["rps"] for r in runs if r["shape"] == "P1" and r["workers"] == 2)
    db = h.ensure_db(a, bin_dir, bench_dir, SHAPES[0][1], *SHAPES[0][2:])
    p, ep = _attnd(h, a, bin_dir, db, 2, "open")
    rate = round(peak_p1 * 0.5)
    last = str((os.cpu_count() or 2) - 1)
    pin = ["taskset", "-c", last] if shutil.which("taskset") else None
    opens = []
    for rnd in range(1 if a.quick else 2):
        for mode in ("free", "pinned") if pin else ("free",):
            r = h.attn_load(bin_dir, ep, db, ["--rate", str(rate)], secs + 2, warm, p.pid,
                            prefix=pin if mode == "pinned" else None)
            opens.append(_row(r, mode=mode, round=rnd, rate=rate))
    h.stop(p)
    R["workers"] = {"runs": runs, "open": opens, "rate": rate, "pin_cpu": last if pin else None}


def report_workers(R, h, note, targets):
    W = R["workers"]
    out = ["## Workers: 1 and 2 on the 2 cores", "",
           "attnd with `--workers 1` and `--workers 2` side by side, the same attn-load closed "
           "loop (32 in flight, 50-item histories, 100 candidates, k=10) against each in "
           "alternating rounds; best round per row. **The client runs on the same 2 cores** "
           "(its CPU per request is in the table): with W = 2 the server's threads and the "
           f"client compete for them. {note}", ""]
    rows, best = [], {}
    for r in W["runs"]:
        k = (r["shape"], r["workers"])
        if k not in best or r["rps"] > best[k]["rps"]:
            best[k] = r
    for (shape, w), r in sorted(best.items()):
        rows.append([shape, w, h.fnum(r["rps"]), h.fnum(r["p50_us"] / 1e3, 3),
                     h.fnum(r["p99_us"] / 1e3, 3), r["failed"],
                     h.fnum(r["server_cpu"], 1) if r["server_cpu"] else "—",
                     h.fnum(r["main_cpu"], 1) if r["main_cpu"] else "—",
                     h.fnum(r["helper_cpu"], 1) if r["workers"] > 1 and r["helper_cpu"] else "",
                     h.fnum(r["zmq_cpu"], 1) if r["zmq_cpu"] else "—",
                     h.fnum(r["client_cpu"], 1) if r["client_cpu"] else "—",
                     f"{r['busy']:.2f}" if r["busy"] else "—"])
    out += [h.table(["shape", "workers", "ok req/s", "p50 ms", "p99 ms", "failed",
                     "server CPU µs/req", "main (+ worker 0)", "helper", "zmq I/O",
                     "client CPU µs/req", "cores busy"], rows), ""]
    for shape in ("P1", "P3"):
        if (shape, 1) in best and (shape, 2) in best:
            ratio = best[(shape, 2)]["rps"] / best[(shape, 1)]["rps"]
            out += [f"{shape}: 2 workers give {ratio:.2f}× the throughput of 1."]
    out += [""]
    rows = []
    for r in W["open"]:
        rows.append([r["round"] + 1, r["mode"] + (f" (CPU {W['pin_cpu']})"
                                                  if r["mode"] == "pinned" else ""),
                     h.fnum(r["rate"]), h.fnum(r["rps"]), h.fnum(r["p50_us"] / 1e3, 3),
                     h.fnum(r["p99_us"] / 1e3, 3), f"{r['p99_us'] / r['p50_us']:.1f}",
                     r["failed"], r["errors"] or "", r["late"]])
    out += ["Open loop at half the 2-worker P1 peak, attnd with its default workers; the "
            "client free to run on either core, or pinned to one with taskset (attnd is not "
            "pinned). Latency from the intended send time, ok replies; `late` counts sends "
            "more than 1 ms behind their schedule (the client itself was not running).", "",
            h.table(["round", "client", "intended req/s", "ok req/s", "p50 ms", "p99 ms",
                     "p99 / p50", "not ok", "errors", "late sends"], rows), ""]
    for mode in ("free", "pinned"):
        rs = [r for r in W["open"] if r["mode"] == mode]
        if not rs:
            continue
        best_r = min(rs, key=lambda r: r["p99_us"] / r["p50_us"])
        ratio = best_r["p99_us"] / best_r["p50_us"]
        busy = sum((r["errors"] or {}).get("busy", 0) for r in rs)
        targets.append([f"open loop P1 at 50% of peak, client {mode}: p99 ≤ 3× p50 "
                        "(best round)", f"{ratio:.1f}×", "met" if ratio <= 3 else "**missed**"])
        targets.append([f"open loop P1 at 50% of peak, client {mode}: zero `busy` "
                        "(all rounds)", str(busy), "met" if busy == 0 else "**missed**"])
    return out
