#!/usr/bin/python3
"""bench/ab_score.py -- bench_score binaries side by side, for a
before/after figure of the scoring measured in one run on a shared machine.

    bench/ab_score.py ROUNDS SHAPES MODES BENCH_SCORE...
    e.g. bench/ab_score.py 8 P1,P2,P3,P4 all,bf16 /tmp/A/bench_score build/release/bench/bench_score

Runs each binary in turn (`--seconds 1`), the order reversed every round so
that the neighbours' noise falls on all alike.  Per shape and table mode:
each binary's median req/s over the rounds and the median of its per-round
ratio to the first binary (paired rounds: a slow minute divides out).
"""
import json
import statistics
import subprocess
import sys
import tempfile


def main():
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    rounds, shapes, modes, bins = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
    rps = {}   # (shape, mode) -> binary -> [req/s by round]
    with tempfile.TemporaryDirectory() as out:
        for r in range(rounds):
            for b in bins if r % 2 == 0 else bins[::-1]:
                run = subprocess.run([b, "--shapes", shapes, "--modes", modes, "--seconds", "1",
                                      "--out", out], capture_output=True, text=True, check=True)
                for line in run.stdout.splitlines():
                    j = json.loads(line)
                    if j.get("kind") == "score":
                        by_bin = rps.setdefault((j["shape"], j["mode"]), {})
                        by_bin.setdefault(b, []).append(j["rps"])
    for key, by_bin in sorted(rps.items()):
        base = by_bin[bins[0]]
        cells = [f"{key[0]} {key[1]:5s}"]
        for i, b in enumerate(bins):
            ratio = statistics.median(x / y for x, y in zip(by_bin[b], base))
            cells.append(f"[{i}] {statistics.median(by_bin[b]):9.0f} req/s  ×{ratio:.3f}")
        print(" | ".join(cells))


if __name__ == "__main__":
    main()
