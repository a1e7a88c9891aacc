#!/usr/bin/python3
"""bench/record_tail.py -- what recording costs the rank tail, against what
the same share of a core costs when it is plain computation.

    bench/record_tail.py BUILD [--rounds 3] [--burn 0.4] [--dir /tmp] [--priority idle]

Each round starts attnd (record.synchronous = normal, record.priority as
given) on a fresh copy of the cached P1 database (bench/run's, under
$ATTN_BENCH_CACHE) in --dir, measures rank alone (attn-load, open loop,
1,000 req/s, user histories, 5 s), then rank again beside a neighbour:
  record        attn-load recording 20,000 events/s (200 requests of 100
                events)
  record, client idle
                the same with that attn-load at SCHED_IDLE: on a machine
                of its own the recording client would not compete with
                the rank path for these 2 cores
  burn          a process at SCHED_IDLE busy --burn of every 10 ms, doing
                nothing but spin (no system calls, no traffic, no database)
Rounds alternate the three neighbours.  Per run it prints rank p50/p99 alone
and beside, the change of p99, and for `record` the bytes attnd wrote per
event and the CPU seconds of every thread that ran during the window
(/proc, summed by thread name; the load generators have exited by then and
are not in it), so that the writer's and the checkpoint's share can be
read beside the kernel's.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from record import copy_db   # noqa: E402  (bench/record.py: the record section's helpers)

RANK = ["--rate", "1000", "--seed", "2"]
RECORD = ["--rate", "200", "--seed", "4", "--record-ratio", "1", "--record-events", "100"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_by_thread():
    """CPU seconds of every thread on the machine, summed by name (kworkers as one)."""
    out, tck = {}, os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    st = f.read()
                name = st[st.index("(") + 1:st.rindex(")")]
                fields = st[st.rindex(")") + 2:].split()
                key = "kworker" if name.startswith("kworker") else name
                out[key] = out.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / tck
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return out


def written(pid):
    with open(f"/proc/{pid}/io") as f:
        return int(dict(l.split(": ") for l in f.read().splitlines())["write_bytes"])


def one_round(a, build, src, neighbour):
    db = os.path.join(a.dir, "record-tail.db")
    copy_db(src, db)
    ep = f"tcp://127.0.0.1:{free_port()}"
    attnd = subprocess.Popen([os.path.join(build, "bin", "attnd"), "--db", db, "--bind", ep,
                              "--set", "metrics.bind=", "--set", "server.metrics_interval=0",
                              "--set", "server.reload_poll=0", "--set", "record.synchronous=normal",
                              "--set", f"record.priority={a.priority}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    other = None
    try:
        time.sleep(1.5)

        def load(args, secs, prefix=()):
            cmd = [os.path.join(build, "bin", "attn-load"), "--endpoint", ep, "--db", db,
                   "--candidates", "100", "--k", "10", "--duration", str(secs), "--warmup", "1",
                   "--json"] + args
            return subprocess.Popen(list(prefix) + cmd, stdout=subprocess.PIPE)

        def result(p):
            out = p.communicate()[0].decode().splitlines()
            return json.loads([l for l in out if l.startswith("{")][-1])

        alone = result(load(RANK, 5))["latency_us"]
        c0, w0 = cpu_by_thread(), written(attnd.pid)
        if neighbour == "burn":
            spin = (f"import time\nf = {a.burn}\nwhile True:\n    t = time.monotonic()\n"
                    "    while time.monotonic() - t < 0.01 * f:\n        pass\n"
                    "    time.sleep(0.01 * (1 - f))\n")
            other = subprocess.Popen(["chrt", "--idle", "0", sys.executable, "-c", spin])
        elif neighbour == "record, client idle":
            other = load(RECORD, 7, ("chrt", "--idle", "0"))
        else:
            other = load(RECORD, 7)
        time.sleep(0.5)
        beside = result(load(RANK, 5))["latency_us"]
        events = 0
        if neighbour == "burn":
            c1, w1 = cpu_by_thread(), written(attnd.pid)   # the burner still counted
            other.kill()
            other.wait()
        else:
            events = result(other)["record"]["stored"]
            c1, w1 = cpu_by_thread(), written(attnd.pid)
        other = None
    finally:
        if other:
            other.kill()
            other.wait()
        attnd.terminate()
        attnd.wait()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix):
                os.remove(db + suffix)
    cpu = sorted(((c1[k] - c0.get(k, 0.0), k) for k in c1), reverse=True)
    line = (f"{neighbour:19s} rank p50 {alone['p50'] / 1e3:.2f} -> {beside['p50'] / 1e3:.2f} ms, "
            f"p99 {alone['p99'] / 1e3:.2f} -> {beside['p99'] / 1e3:.2f} ms "
            f"({beside['p99'] / alone['p99'] - 1:+.0%})")
    if events:
        line += f"; {events} events stored, {(w1 - w0) / events:.0f} bytes written per event"
    print(line)
    print("    CPU s in the window: " +
          ", ".join(f"{k} {v:.2f}" for v, k in cpu if v >= 0.05), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--burn", type=float, default=0.4)
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--priority", default="idle", choices=("idle", "normal"))
    ap.add_argument("--cache", default=os.environ.get("ATTN_BENCH_CACHE", "/tmp/attn-bench-cache"))
    a = ap.parse_args()
    src = os.path.join(a.cache, "p1-100k-d64.db")
    if not os.path.exists(src):
        sys.exit(f"{src}: run bench/run once first (it makes the P1 database)")
    build = os.path.abspath(a.build)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
          f"{os.getloadavg()[0]:.1f}, record.priority = {a.priority}, burn {a.burn}", flush=True)
    for _ in range(a.rounds):
        for neighbour in ("record", "record, client idle", "burn"):
            one_round(a, build, src, neighbour)


if __name__ == "__main__":
    main()
