#!/usr/bin/python3
"""peer_numpy.py -- attnd's scoring written the obvious way in numpy.

This is the code a data scientist would write from the formula in
docs/MODEL.md: gather the rows, project them, per-head attention with a
max-subtracted softmax, concatenate the heads, W_O, dot with the candidate
embedding, add the item bias, argsort.  No precomputed tables, no fusion:
it is the baseline attnd's fast path has to beat, not a straw man (every
product goes to OpenBLAS sgemm; the same library attnd's peers all use).

Usage: /usr/bin/python3 bench/peer_numpy.py --dir DIR [--shapes P1,..] [--seconds S]
"""
import numpy as np

import peer_common


def make_scorer(sh):
    E, Wq, Wk, Wv, Wo = sh.emb, sh.wq, sh.wk, sh.wv, sh.wo
    H, m, L, N, k = sh.heads, sh.m, sh.L, sh.N, sh.k
    dh = m // H
    scale = np.float32(sh.scale)

    def score(p):
        hist, cand = sh.hist[p], sh.cand[p]
        eh = E[hist]                                   # L x d, newest first
        ec = E[cand]                                   # N x d
        q = (ec @ Wq).reshape(N, H, dh).transpose(1, 0, 2)   # H x N x dh
        kk = (eh @ Wk).reshape(L, H, dh).transpose(1, 2, 0)  # H x dh x L
        v = (eh @ Wv).reshape(L, H, dh).transpose(1, 0, 2)   # H x L x dh
        bias = sh.pos_bias + np.log(sh.hist_w[p])            # L: position + log weight
        z = (q @ kk) * scale + bias                          # H x N x L
        z -= z.max(axis=-1, keepdims=True)
        a = np.exp(z)
        a /= a.sum(axis=-1, keepdims=True)
        o = (a @ v).transpose(1, 0, 2).reshape(N, m)         # heads concatenated
        u = o @ Wo                                           # N x d: interest in each candidate
        s = (u * ec).sum(axis=1) + sh.item_bias[cand]
        top = np.argsort(-s, kind="stable")[:k]              # ties: lower index first, as attnd
        return top, s

    return score


if __name__ == "__main__":
    peer_common.main("numpy", make_scorer)
