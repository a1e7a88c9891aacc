"""peer_common.py -- what the numpy and PyTorch peers share.

bench_score (C) writes DIR/<shape>.bin: the model's weights, the catalog,
a pool of requests and attnd's top-k for the first requests (the layout is
documented at the top of bench/bench_score.c).  A peer loads it, scores the
same requests with the same weights its own obvious way, checks that it
ranks the same top-k as attnd, and times requests drawn at random from the
pool exactly as bench_score does.  One JSON object per line on stdout, the
same keys as bench_score's.

Run with /usr/bin/python3 (Debian's numpy and torch), one thread:
OPENBLAS_NUM_THREADS=1 is set here before numpy loads OpenBLAS, in case the
caller did not.
"""
import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import ctypes
import json
import sys
import time

import numpy as np

MAGIC = 0x4E425441
STEADY_CUT = 10.0   # bench.h's BENCH_STEADY_CUT


class Shape:
    """One shape's file, loaded into memory (a copy, not a memory map: the
    catalog must be resident as it is in attnd, or the first requests would
    be timing page faults)."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            hdr = np.frombuffer(f.read(64), dtype="<i4")
            hdr_f = np.frombuffer(f.read(16), dtype="<f4")
            if hdr[0] != MAGIC or hdr[1] != 1:
                sys.exit(f"{path}: not a bench_score file (magic {hdr[0]:#x}, version {hdr[1]})")
            (self.d, self.m, self.heads, self.L, self.N, self.items, self.pool, self.k,
             self.n_check) = (int(x) for x in hdr[2:11])
            self.scale = float(hdr_f[0])
            d, m = self.d, self.m

            def take(dtype, *shape):
                n = int(np.prod(shape))
                a = np.frombuffer(f.read(4 * n), dtype=dtype)
                if a.size != n:
                    sys.exit(f"{path}: truncated")
                return a.reshape(shape).copy()

            self.wq = take("<f4", d, m)
            self.wk = take("<f4", d, m)
            self.wv = take("<f4", d, m)
            self.wo = take("<f4", m, d)
            self.pos_bias = take("<f4", self.L)
            self.item_bias = take("<f4", self.items)
            self.emb = take("<f4", self.items, d)
            self.hist = take("<u4", self.pool, self.L).astype(np.int64)
            self.hist_w = take("<f4", self.pool, self.L)
            self.cand = take("<u4", self.pool, self.N).astype(np.int64)
            self.top = take("<u4", self.n_check, self.k).astype(np.int64)
            self.top_score = take("<f4", self.n_check, self.k)
        self.name = os.path.basename(path).split(".")[0]
        self.flops = 4.0 * self.N * self.L * self.m


def check(sh, impl, topk_and_scores):
    """Score the first n_check requests with the peer and compare its top-k
    with attnd's.  A different order is accepted only where it is a near tie:
    the two candidates' scores (by the peer's own arithmetic) closer than
    1e-4 of the request's largest |score|, the agreement docs/MODEL.md asks
    of the fast path.  Anything else stops the suite: timing two programs
    that compute different things would be meaningless."""
    ties = 0
    worst = 0.0
    for p in range(sh.n_check):
        top, scores = topk_and_scores(p)
        want = sh.top[p]
        scale = float(np.max(np.abs(scores))) or 1.0
        # attnd's scores against the peer's, for the same candidates.
        worst = max(worst, float(np.max(np.abs(scores[want] - sh.top_score[p]))) / scale)
        if np.array_equal(top, want):
            continue
        for i in range(sh.k):
            if top[i] != want[i]:
                gap = abs(float(scores[top[i]]) - float(scores[want[i]]))
                if gap > 1e-4 * scale:
                    sys.exit(
                        f"FAIL {impl} {sh.name}: request {p} ranks a different top-{sh.k} than "
                        f"attnd\n  attnd: {want.tolist()}\n  {impl}: {top.tolist()}\n"
                        f"  position {i}: score gap {gap:.3g} (largest |score| {scale:.3g})")
                ties += 1
    if worst > 1e-3:
        sys.exit(f"FAIL {impl} {sh.name}: scores differ from attnd's by {worst:.3g} "
                 f"(relative to the largest |score|)")
    return ties, worst


def time_requests(sh, score_one, seconds, rounds=3):
    """The best of `rounds` rounds of seconds / rounds each, as bench_score
    keeps each of its modes' best round (the machine is shared; a neighbour
    only ever slows a round down)."""
    best = None
    for r in range(rounds):
        t = time_round(sh, score_one, seconds / rounds, 12345 + r)
        if best is None or t["rps"] > best["rps"]:
            best = t
    best["rounds"] = rounds
    return best


def time_round(sh, score_one, seconds, seed):
    """Warm up for a quarter of the period (or one pass over the pool), then
    time requests drawn at random from the pool for `seconds` (and at least
    30 requests), one perf_counter_ns pair per request -- the same method as
    bench_score."""
    t0 = time.perf_counter_ns()
    for p in range(sh.pool):
        if time.perf_counter_ns() - t0 > seconds * 0.25e9:
            break
        score_one(p)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, sh.pool, size=1 << 16)
    us = []
    start = time.perf_counter_ns()
    limit = seconds * 1e9
    i = 0
    while (time.perf_counter_ns() - start < limit or i < 30) and i < draws.size:
        p = int(draws[i])
        a = time.perf_counter_ns()
        score_one(p)
        b = time.perf_counter_ns()
        us.append((b - a) / 1e3)
        i += 1
    wall = (time.perf_counter_ns() - start) / 1e9
    us = np.sort(np.array(us))
    n = us.size

    def q(x):   # nearest rank, as bench.h
        return float(us[max(int(np.ceil(x * n)) - 1, 0)])

    # The steady rate, as bench.h: requests over the time spent in them,
    # leaving out those that took over STEADY_CUT medians (descheduled).
    kept = us[us <= STEADY_CUT * q(0.5)]
    return {"n": n, "rps": kept.size / (kept.sum() / 1e6), "rps_wall": n / wall,
            "cut": int(n - kept.size), "p50_us": q(0.5), "p99_us": q(0.99),
            "mean_us": float(us.mean())}


def openblas_core():
    """The core OpenBLAS picked in this process (numpy and torch both reach
    libopenblas.so.0 through Debian's libblas.so.3), or None."""
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode()
    except (OSError, AttributeError):
        return None


def main(impl, scorers, extra_env=None):
    """scorers: (mode, make_scorer) pairs, timed in that order on every
    shape; make_scorer(sh) returns score(p) -> (top indexes into the
    request's candidates, scores of every candidate as a numpy array).
    Modes: "obvious" (the textbook computation) and "fast", "fast-jit"
    (attnd's algorithm: precomputed tables, see peer_numpy.py)."""
    import argparse
    ap = argparse.ArgumentParser(description=f"the {impl} peer of bench_score")
    ap.add_argument("--dir", required=True, help="where bench_score wrote <shape>.bin")
    ap.add_argument("--shapes", default="P1,P2,P3,P4")
    ap.add_argument("--seconds", type=float, default=0.6)
    a = ap.parse_args()
    env = {"kind": "env", "impl": impl, "openblas_core": openblas_core(),
           "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "unset"),
           "numpy": np.__version__}
    env.update(extra_env or {})
    print(json.dumps(env), flush=True)
    for name in a.shapes.split(","):
        path = os.path.join(a.dir, name + ".bin")
        if not os.path.exists(path):
            sys.exit(f"{path}: missing (run bench_score --out {a.dir} first)")
        sh = Shape(path)
        for mode, make_scorer in scorers:
            t0 = time.perf_counter()
            score = make_scorer(sh)
            setup_s = time.perf_counter() - t0
            ties, err = check(sh, f"{impl} {mode}", score)
            t = time_requests(sh, score, a.seconds)
            rec = {"kind": "score", "shape": sh.name, "impl": impl, "mode": mode,
                   "d": sh.d, "m": sh.m, "H": sh.heads, "L": sh.L, "N": sh.N,
                   "items": sh.items, "flops": sh.flops, "checked": sh.n_check,
                   "near_ties": ties, "max_rel_diff": err, "setup_s": setup_s}
            rec.update(t)
            print(json.dumps(rec), flush=True)
            del score
        del sh
