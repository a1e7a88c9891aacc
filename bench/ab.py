#!/usr/bin/python3
"""bench/ab.py -- two attnd builds side by side on the P1 load, for a
before/after figure measured in one run on a shared machine.

    bench/ab.py BUILD_A BUILD_B [--rounds 4] [--seconds 3] [--clients 32] [--workers 2] [--users]

Both daemons serve the cached P1 database (bench/run's, under
$ATTN_BENCH_CACHE); one attn-load (BUILD_B's) drives each in turn, the
order alternating every round so that the neighbours' noise falls on both
alike, with bench/echo_server's echo+score (BUILD_B's) as the third server.  Per
server: the best round's ok req/s, and the median over rounds of its CPU per
ok request by thread group (main, helper workers, libzmq's I/O thread, from
/proc); then each attnd's stage timings from its `stats` op, and the server
CPU per request outside attn_score (server CPU less libzmq's I/O thread less
the score stage's p50).  --users sends user requests (the daemon reads each
history from the database) instead of the suite's anonymous histories.
Prints a Markdown table and writes JSON to --out.
"""
import argparse
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import runlib   # noqa: E402
h = runlib.load()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--users", action="store_true")
    ap.add_argument("--out", default="/tmp/attn-ab.json")
    ap.add_argument("--cache", default=os.environ.get("ATTN_BENCH_CACHE", "/tmp/attn-bench-cache"))
    a = ap.parse_args()
    json_path = os.path.abspath(a.out)
    a.out_dir = os.path.dirname(json_path)
    os.makedirs(a.out_dir, exist_ok=True)
    builds = {"A": os.path.abspath(a.a), "B": os.path.abspath(a.b)}
    bin_b, bench_b = os.path.join(builds["B"], "bin"), os.path.join(builds["B"], "bench")
    a.out = a.out_dir   # ensure_db and p1_reply write beside the JSON
    a.quick = False
    db = h.ensure_db(a, bin_b, bench_b, "p1-100k-d64.db", 100000, 64, 4)
    eps, procs = {}, {}
    try:
        for k, b in builds.items():
            eps[k] = f"tcp://127.0.0.1:{h.free_port()}"
            procs[k] = h.start([os.path.join(b, "bin", "attnd"), "--db", db, "--bind", eps[k],
                                "--metrics", "", "--workers", str(a.workers),
                                "--set", "server.metrics_interval=0",
                                "--set", "server.reload_poll=0"],
                               os.path.join(a.out_dir, f"ab-attnd-{k}.log"))
            h.wait_ready(procs[k], eps[k])
        canned, _, _ = h.p1_reply(a, db, eps["B"], "ab-reply.json")
        eps["echo+score"] = f"tcp://127.0.0.1:{h.free_port()}"
        procs["echo+score"] = h.start([os.path.join(bench_b, "echo_server"), "--bind",
                                       eps["echo+score"], "--reply", canned, "--score", "P1"],
                                      os.path.join(a.out_dir, "ab-echo.log"))
        for _ in range(60):
            if h.zmq_call(eps["echo+score"], {"op": "health"}, timeout_s=1.0):
                break
        else:
            h.die("echo_server did not start")
        runs = []
        names = ["A", "B", "echo+score"]
        for rnd in range(a.rounds):
            for k in (names if rnd % 2 == 0 else names[::-1]):
                r = h.attn_load(bin_b, eps[k], db, ["--clients", str(a.clients)] +
                                (["--history", "0"] if a.users else []), a.seconds, 1,
                                procs[k].pid)
                runs.append({"server": k, "round": rnd, "rps": r["ok_rps"],
                             "p50_us": r["latency_us"]["p50"], "p99_us": r["latency_us"]["p99"],
                             "cpu": r.get("cpu_us")})
        stages = {k: h.zmq_call(eps[k], {"op": "stats"})["latency_us"] for k in ("A", "B")}
    finally:
        for p in procs.values():
            h.stop(p)
    res = {"builds": builds, "runs": runs, "stages": stages, "load": os.getloadavg()}
    with open(json_path, "w") as f:
        json.dump(res, f, indent=1)
    rows = []
    for k in names:
        rs = [r for r in runs if r["server"] == k]
        med = lambda key: statistics.median(r["cpu"][key] for r in rs)
        st = stages.get(k)
        sc = st["score"]["p50"] if st else None
        outside = med("server") - med("server_zmq") - sc if st else None
        rows.append([k, h.fnum(max(r["rps"] for r in rs)),
                     h.fnum(med("server"), 1), h.fnum(med("server_main"), 1),
                     h.fnum(med("server_workers"), 1) if k != "echo+score" else "",
                     h.fnum(med("server_zmq"), 1), h.fnum(med("client"), 1),
                     " / ".join(h.fnum(st[s]["p50"], 1) for s in ("parse", "history", "score",
                                                                  "encode")) if st else "",
                     h.fnum(outside, 1) if st else ""])
    print(h.table(["server", "best ok req/s", "server CPU µs/req", "main", "helpers", "zmq I/O",
                   "client CPU µs/req", "stage p50 µs: parse / history / score / encode",
                   "outside attn_score, w/o zmq I/O"], rows))
    print(f"\nA = {builds['A']}, B = {builds['B']}; {a.rounds} rounds of {a.seconds} s, "
          f"{a.clients} in flight; CPU: median over rounds; load average {res['load'][0]:.1f}")


if __name__ == "__main__":
    main()
