#!/usr/bin/python3
"""quant_sim.py -- would int8 tables rank like float ones?  (They do not.)

Reads the peers' files bench_score wrote (same catalog, model and requests
as the suite), builds the float tables (q, g, k, v per item), rounds them
the way a bfloat16 table and an int8 table would store them, and compares
each one's top-10 with the float tables' on the first requests of the pool:
the share of float's top-10 kept (the suite's "overlap") and of identical
top-10 lists.  int8 is the usual symmetric per-row scheme (one float scale
per stored vector, max |x| -> 127), the one AVX512-VNNI's vpdpbusd would
consume; the softmax weights it would multiply the values with are rounded
to 8 bits as well (u8, 1/255 steps), since vpdpbusd multiplies two 8-bit
operands.

Usage: /usr/bin/python3 bench/quant_sim.py --dir DIR [--shapes P1,..] [--requests N]
(DIR as for peer_numpy.py; `bench/run` leaves it in $ATTN_BENCH_CACHE/peer.)
"""
import argparse

import numpy as np

import peer_common


def bf16(x):
    """Round to bfloat16 (nearest, ties to even), as attn/bf16.h does."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    b = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16
    return b.astype(np.uint32).view(np.float32)


def int8(x):
    """Symmetric per-row int8: x ~ s * round(x / s), s = max |x| / 127."""
    s = np.abs(x).max(axis=-1, keepdims=True) / 127.0
    s[s == 0] = 1.0
    return (np.round(x / s) * s).astype(np.float32)


def scorer(sh, Q, G, K, V, weights=None):
    H, L, N, m = sh.heads, sh.L, sh.N, sh.m
    dh = m // H

    def score(p):
        c, h = sh.cand[p], sh.hist[p]
        q = Q[c].reshape(N, H, dh).transpose(1, 0, 2)
        g = G[c].reshape(N, H, dh).transpose(1, 0, 2)
        kt = K[h].reshape(L, H, dh).transpose(1, 2, 0)
        v = V[h].reshape(L, H, dh).transpose(1, 0, 2)
        z = np.matmul(q, kt) * np.float32(sh.scale) + sh.pos_bias + np.log(sh.hist_w[p])
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        s = e.sum(axis=-1, keepdims=True)
        if weights:
            e = weights(e / s) * s
        return (np.matmul(e / s, v) * g).sum(axis=(0, 2)) + sh.item_bias[c]
    return score


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--shapes", default="P1,P2,P3,P4")
    ap.add_argument("--requests", type=int, default=1000)
    a = ap.parse_args()
    for name in a.shapes.split(","):
        sh = peer_common.Shape(f"{a.dir}/{name}.bin")
        E = sh.emb
        T = [E @ sh.wq, E @ sh.wo.T, E @ sh.wk, E @ sh.wv]
        ref = scorer(sh, *T)
        kinds = {"bf16": scorer(sh, *(bf16(x) for x in T)),
                 "int8": scorer(sh, *(int8(x) for x in T),
                                weights=lambda w: np.round(w * 255) / 255)}
        n = min(a.requests, sh.pool)
        kept = {k: 0 for k in kinds}
        same = {k: 0 for k in kinds}
        for p in range(n):
            top = np.argsort(-ref(p), kind="stable")[:10]
            for k, f in kinds.items():
                t = np.argsort(-f(p), kind="stable")[:10]
                kept[k] += len(set(top) & set(t))
                same[k] += np.array_equal(top, t)
        for k in kinds:
            print(f"{name} {k}: overlap {kept[k] / (10 * n):.2%}, same order {same[k] / n:.1%} "
                  f"({n} requests)", flush=True)


if __name__ == "__main__":
    main()
