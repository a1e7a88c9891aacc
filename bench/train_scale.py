#!/usr/bin/python3
"""train_scale.py -- how training time grows with the catalog.

On synthetic data from `attnctl gen` with about 1M events (25,000 users x 40
events by default), for catalogs of 10k, 100k and 1M items:

  default    `attnctl train` with its defaults (sampled softmax with shared
             negatives), a few epochs without early stopping: time per epoch,
             examples/s, peak RSS;
  full       `--full-softmax` for comparison: run for --probe seconds in a
             pseudo-terminal, so that attnctl prints its live progress line,
             and read the examples/s it reached; the epoch time is estimated
             from it (a full epoch at 1M items would take days).

Databases are generated once under --cache (the generator is deterministic).
The load average is printed beside every run: on a shared machine wall time
means little without it.

Usage:
  /usr/bin/python3 bench/train_scale.py [BUILD] [--items 10000,100000,1000000]
      [--epochs 2] [--probe 120] [--threads 2] [--cache /tmp/attn-train-scale]
"""
import argparse
import os
import pty
import re
import select
import subprocess
import sys
import time


def load():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def gen(attnctl, path, items, users, epu):
    if os.path.exists(path):
        return
    subprocess.run([attnctl, "gen", path, "--items", str(items), "--users", str(users),
                    "--events-per-user", str(epu), "--force"], check=True,
                   stdout=subprocess.DEVNULL)


def train_default(attnctl, db, epochs, threads):
    """Per-epoch seconds (from the progress lines), examples, items, RSS."""
    work = db + ".train.db"
    subprocess.run(["cp", db, work], check=True)
    cmd = ["/usr/bin/time", "-f", "RSS %M", attnctl, "train", work, "--epochs", str(epochs),
           "--patience", "0", "--threads", str(threads)]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    os.unlink(work)
    if p.returncode != 0:
        raise SystemExit(f"train failed: {p.stderr}")
    elapsed = [float(x) for x in re.findall(r"elapsed (\d+)s", p.stderr)]
    epoch_s = [b - a for a, b in zip([0.0] + elapsed, elapsed)]
    exs = [float(x) for x in re.findall(r"(\d+) ex/s", p.stderr)]
    m = re.search(r"; (\d+) examples, (\d+) items", p.stdout)
    rss = re.search(r"RSS (\d+)", p.stderr)
    return {"epoch_s": epoch_s, "ex_s": exs, "examples": int(m.group(1)),
            "items": int(m.group(2)), "rss_mb": int(rss.group(1)) // 1024, "wall": wall}


def probe_full(attnctl, db, seconds, threads):
    """examples/s of full softmax after `seconds`, from the live line."""
    work = db + ".probe.db"
    subprocess.run(["cp", db, work], check=True)
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(attnctl, [attnctl, "train", work, "--full-softmax", "--epochs", "1",
                           "--threads", str(threads)])
    out, t0 = b"", time.monotonic()
    while time.monotonic() - t0 < seconds:
        r, _, _ = select.select([fd], [], [], 1.0)
        if r:
            try:
                out += os.read(fd, 65536)
            except OSError:
                break
    os.kill(pid, 15)
    os.waitpid(pid, 0)
    os.close(fd)
    os.unlink(work)
    rates = re.findall(rb"(\d+) ex/s", out)
    return float(rates[-1]) if rates else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", nargs="?", default="build/release")
    ap.add_argument("--items", default="10000,100000,1000000")
    ap.add_argument("--users", type=int, default=25000)
    ap.add_argument("--events-per-user", type=float, default=40)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--probe", type=float, default=120)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default="/tmp/attn-train-scale")
    a = ap.parse_args()
    attnctl = os.path.join(a.build, "bin", "attnctl")
    os.makedirs(a.cache, exist_ok=True)
    rows = []
    for n in [int(x) for x in a.items.split(",")]:
        db = os.path.join(a.cache, f"gen{n}.db")
        gen(attnctl, db, n, a.users, a.events_per_user)
        l0 = load()
        d = train_default(attnctl, db, a.epochs, a.threads)
        l1 = load()
        full = probe_full(attnctl, db, a.probe, a.threads) if a.probe > 0 else None
        med = sorted(d["epoch_s"])[len(d["epoch_s"]) // 2]
        row = (f"| {n:,} | {d['items']:,} | {d['examples']:,} | {med:.0f} s | "
               f"{max(d['ex_s']):.0f} | {d['rss_mb']} MB | "
               + (f"{full:.0f} | {d['examples'] / full / 60:.0f} min |" if full else "- | - |")
               + f" {l0}-{l1} |")
        print(row, file=sys.stderr, flush=True)
        rows.append(row)
    print("| catalog items | model items | examples/epoch | default: epoch | default: ex/s "
          "| peak RSS | full softmax: ex/s | full: est. epoch | load average |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
