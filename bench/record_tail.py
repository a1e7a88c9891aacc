#!/usr/bin/python3
"""bench/record_tail.py -- what recording costs the rank tail, against what
the same share of a core costs when it is plain computation.

    bench/record_tail.py BUILD [--rounds 3] [--burn 0.4] [--dir /tmp] [--priority idle]
                         [--linger 20] [--tuned-set KEY=VALUE ...]
                         [--neighbours record,linger,burn] [--pairs N [--window 2]
                         [--rates 2500,5000,10000,20000] [--history 50]]

Each round starts attnd (record.synchronous = normal, record.priority as
given) on a fresh copy of the cached P1 database (bench/run's, under
$ATTN_BENCH_CACHE) in --dir, its log beside it; measures rank alone
(attn-load, open loop, 1,000 req/s, user histories, 5 s), then rank again
beside a neighbour:
  record        attn-load recording 20,000 events/s (200 requests of 100
                events)
  linger        the same recording, attnd with record.linger_ms = --linger:
                fewer, larger commits, and one ack burst per batch
  tuned         the same recording, attnd started with every --tuned-set
                KEY=VALUE as well (record.checkpoint_pages, record.synchronous
                and the like: one setting's cost to the tail)
  big           the same 20,000 events/s in a tenth of the requests (20 a
                second of 1,000 events): what the rank tail pays per record
                request rather than per event
  shared        the same recording into a second attnd on the same
                database file, that whole attnd at SCHED_IDLE: the same
                SQLite and kernel work, none of it in the ranking process
  elsewhere     the same, the second attnd on its own copy of the database
  client-idle   the same recording with that attn-load at SCHED_IDLE: on
                a machine of its own the recording client would not
                compete with the rank path for these 2 cores
  ping          (--pairs only) the recording client's process and request
                rate, sending `health` requests: nothing recorded, so what
                another client alone costs the rank tail
  burn          a process at SCHED_IDLE busy --burn of every 10 ms, doing
                nothing but spin (no system calls, no traffic, no database)
  burn-mem      the same, copying 32 MiB buffers (memory traffic)
  burn-io       the same, writing 4 KiB pages into a file
  burn-fsync    the same, with an fsync every 256 pages
Rounds alternate the neighbours (--neighbours, default record, linger and
burn).  Per run it prints rank p50/p99 alone and beside, the change of
p99, and for recording neighbours the bytes the recording attnd wrote per
event and the CPU seconds of every thread that ran during the window
(/proc, summed by thread name; the load generators have exited by then and
are not in it), so that the writer's and the checkpoint's share can be
read beside the kernel's.

--pairs N measures each recording neighbour in one attnd instead, in N
pairs of short rank windows (--window s each, 1,000 req/s), one alone and
one beside a recording client started for it, the order swapped every
pair.  On a host whose rank-alone p99 drifts by several times from minute
to minute, a pair's two windows are seconds apart and share the drift;
it prints each pair's p99 change, their median, and the pairs over +20%.
--history L (with --pairs) ranks anonymous histories of L items instead
of users: the same scoring without a read of the database.
--rates measures `record` (and the other recording neighbours given) at
each of these recording rates in turn, events per second in requests of
100, instead of the fixed 20,000: how much recording a host can take
before the rank tail moves by more than +20%.
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import record   # noqa: E402  (bench/record.py: copy_db, remove_db, load_run, load_result, paired_tail)
import runlib   # noqa: E402
h = runlib.load()   # bench/run: start, stop, wait_ready, free_port

RANK = record.RANK_AT_RATE
RECORD = record.REC_AT_FIXED
RECORD_BIG = ["--rate", "20", "--seed", "4", "--record-ratio", "1", "--record-events", "1000"]


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


# What a burner does in its busy share of every 10 ms: spin (no system
# calls, no memory traffic), copy 32 MiB buffers (memory traffic the size
# of SQLite's page cache and WAL, without a system call), or write 4 KiB
# pages into a file (system calls and page-cache work, like WAL frames).
BURN_WORK = {
    "burn": "pass",
    "burn-mem": "dst[:] = src",
    "burn-io": "os.pwrite(fd, page, (n % 8192) * 4096); n += 1",
    "burn-fsync": "os.pwrite(fd, page, (n % 8192) * 4096); n += 1; n % 256 or os.fsync(fd)",
}


def burner(kind, share, scratch_dir):
    return (f"import os, time\nf = {share}\nsrc = bytes(32 << 20)\ndst = bytearray(32 << 20)\n"
            f"fd = os.open({os.path.join(scratch_dir, 'record-tail-burn')!r}, "
            "os.O_RDWR | os.O_CREAT)\npage = bytes(4096)\nn = 0\n"
            "while True:\n    t = time.monotonic()\n"
            "    while time.monotonic() - t < 0.01 * f:\n"
            f"        {BURN_WORK[kind]}\n"
            "    time.sleep(0.01 * (1 - f))\n")


RECORDING = ("record", "linger", "tuned", "big", "client-idle", "shared", "elsewhere")
# --pairs only: the recording client's process and request rate, sending
# `health` requests instead, so that nothing is recorded.
CONTROLS = ("ping",)
NEIGHBOURS = RECORDING + CONTROLS + tuple(BURN_WORK)

QUIET = ["--set", "metrics.bind=", "--set", "server.metrics_interval=0",
         "--set", "server.reload_poll=0", "--set", "record.synchronous=normal"]


def one_round(a, build, src, neighbour):
    db = os.path.join(a.dir, "record-tail.db")
    db2 = os.path.join(a.dir, "record-tail-elsewhere.db")
    record.copy_db(src, db)
    ep = f"tcp://127.0.0.1:{h.free_port()}"
    bin_dir = os.path.join(build, "bin")
    linger = settings(a, neighbour)
    attnd = h.start([os.path.join(bin_dir, "attnd"), "--db", db, "--bind", ep] + QUIET +
                    ["--set", f"record.priority={a.priority}"] + linger,
                    os.path.join(a.dir, "record-tail-attnd.log"))
    other = attnd2 = None
    try:
        h.wait_ready(attnd, ep)

        def load(args, secs):
            return record.load_run(h, bin_dir, ep, db, args, secs, 1)

        alone = record.load_result(h, load(RANK, 5), "rank alone")["latency_us"]
        c0, w0 = cpu_by_thread(), written(attnd.pid)
        if neighbour.startswith("burn"):
            other = subprocess.Popen(["chrt", "--idle", "0", sys.executable, "-c",
                                      burner(neighbour, a.burn, a.dir)])
        elif neighbour in ("elsewhere", "shared"):
            if neighbour == "shared":
                db2 = db
            else:
                record.copy_db(src, db2)
            ep2 = f"tcp://127.0.0.1:{h.free_port()}"
            attnd2 = h.start(["chrt", "--idle", "0", os.path.join(bin_dir, "attnd"), "--db", db2,
                              "--bind", ep2] + QUIET + ["--set", "record.priority=idle"],
                             os.path.join(a.dir, "record-tail-attnd2.log"))
            h.wait_ready(attnd2, ep2)
            w0 = written(attnd2.pid)   # the recording attnd's bytes from here on
            other = record.load_run(h, bin_dir, ep2, db2, RECORD, 7, 1)
        else:
            other = load(RECORD_BIG if neighbour == "big" else RECORD, 7)
            if neighbour == "client-idle":
                os.sched_setscheduler(other.pid, os.SCHED_IDLE, os.sched_param(0))
        time.sleep(0.5)
        beside = record.load_result(h, load(RANK, 5), "rank beside")["latency_us"]
        events = 0
        if neighbour.startswith("burn"):
            c1, w1 = cpu_by_thread(), written(attnd.pid)   # the burner still counted
            other.kill()
            other.wait()
        else:
            events = record.load_result(h, other, "record")["record"]["stored"]
            c1, w1 = cpu_by_thread(), written((attnd2 or attnd).pid)
        other = None
    finally:
        if other:
            other.kill()
            other.wait()
        h.stop(attnd)
        if attnd2:
            h.stop(attnd2)
        for d in (db, db2):
            record.remove_db(d)
        burn = os.path.join(a.dir, "record-tail-burn")
        if os.path.exists(burn):
            os.remove(burn)
    cpu = sorted(((c1[k] - c0.get(k, 0.0), k) for k in c1), reverse=True)
    line = (f"{neighbour:19s} rank p50 {alone['p50'] / 1e3:.2f} -> {beside['p50'] / 1e3:.2f} ms, "
            f"p99 {alone['p99'] / 1e3:.2f} -> {beside['p99'] / 1e3:.2f} ms "
            f"({beside['p99'] / alone['p99'] - 1:+.0%})")
    if events:
        line += f"; {events} events stored, {(w1 - w0) / events:.0f} bytes written per event"
    print(line)
    print("    CPU s in the window: " +
          ", ".join(f"{k} {v:.2f}" for v, k in cpu if v >= 0.05), flush=True)


IN_PROCESS = tuple(n for n in RECORDING if n not in ("shared", "elsewhere")) + CONTROLS


def pings(a, events_per_s):
    """attn-load's arguments for `health` requests at the rate the
    recording client sends record requests of REC_PER events."""
    path = os.path.join(a.dir, "record-tail-ping.jsonl")
    with open(path, "w") as f:
        f.writelines('{"op":"health","id":%d}\n' % i for i in range(1000))
    return ["--in", path, "--seed", "4"] + record.rec_rate(events_per_s)


def settings(a, neighbour):
    if neighbour == "linger":
        return ["--set", f"record.linger_ms={a.linger}"]
    if neighbour == "tuned":
        return [x for kv in a.tuned_set for x in ("--set", kv)]
    return []


def paired(a, build, src, neighbour, rate=None):
    """--pairs: alone and beside windows, seconds apart, in one attnd
    (bench/record.py's paired_tail, which the suite's record section uses);
    rate: recording at this many events/s instead of the neighbour's own."""
    if neighbour == "ping":
        rec = pings(a, rate or record.REC_FIXED)
    else:
        rec = record.rec_at(rate) if rate else RECORD_BIG if neighbour == "big" else RECORD
    r = record.paired_tail(h, os.path.join(build, "bin"), src, a.dir,
                           ["--set", "record.synchronous=normal",
                            "--set", f"record.priority={a.priority}"] + settings(a, neighbour),
                           rec, a.pairs, a.window,
                           rank_args=RANK + (["--history", str(a.history)] if a.history else []),
                           client_idle=neighbour == "client-idle",
                           log_name="record-tail-attnd.log")
    label = f"{neighbour} at {rate:,} events/s" if rate else neighbour
    print(f"{label:19s} rank p99 in {a.pairs} pairs of {a.window} s windows: median change "
          f"{r['median_change']:+.0%}, {r['over_20']} of {a.pairs} pairs over +20%")
    print("    p99 ms, alone -> beside: " +
          ", ".join(f"{p['alone_us'] / 1e3:.2f} -> {p['beside_us'] / 1e3:.2f} ({p['change']:+.0%})"
                    for p in r["pairs"]), flush=True)
    print(f"    attnd's own p99 (took_us): median change {record.server_change_text(r)}",
          flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--burn", type=float, default=0.4)
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--priority", default="idle", choices=("idle", "normal"))
    ap.add_argument("--linger", type=int, default=20, help="record.linger_ms of `linger`")
    ap.add_argument("--tuned-set", action="append", default=[], metavar="KEY=VALUE",
                    help="a setting of the `tuned` neighbour's attnd (repeatable)")
    ap.add_argument("--neighbours", default="record,linger,burn")
    ap.add_argument("--pairs", type=int, default=0,
                    help="alone/beside window pairs in one attnd per neighbour (recording only)")
    ap.add_argument("--window", type=float, default=2.0, help="seconds of each --pairs window")
    ap.add_argument("--history", type=int, default=0,
                    help="--pairs: rank anonymous histories of this many items (no database "
                         "read) instead of users")
    ap.add_argument("--rates", default="",
                    help="--pairs at each of these recording rates (events/s, comma-separated)")
    ap.add_argument("--cache", default=os.environ.get("ATTN_BENCH_CACHE", "/tmp/attn-bench-cache"))
    a = ap.parse_args()
    src = os.path.join(a.cache, "p1-100k-d64.db")
    if not os.path.exists(src):
        sys.exit(f"{src}: run bench/run once first (it makes the P1 database)")
    build = os.path.abspath(a.build)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
          f"{os.getloadavg()[0]:.1f}, record.priority = {a.priority}, burn {a.burn}, "
          f"linger {a.linger} ms" + (f", tuned {' '.join(a.tuned_set)}" if a.tuned_set else ""),
          flush=True)
    neighbours = a.neighbours.split(",")
    if a.rates and not a.pairs:
        sys.exit("--rates: only with --pairs")
    if not a.pairs and any(n in CONTROLS for n in neighbours):
        sys.exit(f"--neighbours: {', '.join(CONTROLS)} only with --pairs")
    if a.rates and "big" in neighbours:
        sys.exit("--rates: `big` has its own request size; leave it out")
    for n in neighbours:
        if n not in NEIGHBOURS:
            sys.exit(f"--neighbours: unknown {n!r} ({', '.join(NEIGHBOURS)})")
    if a.pairs:
        for n in neighbours:
            if n not in IN_PROCESS:
                sys.exit(f"--pairs: {n!r} is not recorded by the ranking attnd "
                         f"({', '.join(IN_PROCESS)} are)")
        rates = [int(x) for x in a.rates.split(",") if x] or [None]
        for rate in rates:
            for neighbour in neighbours:
                paired(a, build, src, neighbour, rate)
        return
    for _ in range(a.rounds):
        for neighbour in neighbours:
            one_round(a, build, src, neighbour)


if __name__ == "__main__":
    main()
