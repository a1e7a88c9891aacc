#!/usr/bin/python3
"""peer_numpy.py -- attnd's scoring in numpy: the obvious way, and attnd's way.

This is the code a data scientist would write from the formula in
docs/MODEL.md: gather the rows, project them, per-head attention with a
max-subtracted softmax, concatenate the heads, W_O, dot with the candidate
embedding, add the item bias, argsort.  No precomputed tables, no fusion:
it is the baseline attnd's fast path has to beat, not a straw man (every
product goes to OpenBLAS sgemm; the same library attnd's peers all use).

make_fast_scorer is the second peer: attnd's own algorithm (precomputed
tables, a gather, batched matmuls, softmax), so that the comparison is of
implementations, not of algorithms.

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


def tables(sh):
    """attnd's precomputed tables, once per model and catalog (not timed, as
    attnd builds its own at load): for every item q = e W_Q, g = W_O e,
    k = e W_K, v = e W_V."""
    E = sh.emb
    return E @ sh.wq, E @ sh.wo.T, E @ sh.wk, E @ sh.wv


def make_fast_scorer(sh):
    """attnd's algorithm (docs/MODEL.md, fast path) written in numpy: gather
    the request's rows from the tables, two batched matmuls per request
    (all heads at once) with a max-subtracted softmax between them, then
    score = sum over heads of (a v) . g + item bias.  The same FLOPs as
    attnd, 4 N L m, with numpy's BLAS and vectorised ufuncs doing them."""
    Q, G, K, V = tables(sh)
    H, m, L, N, k = sh.heads, sh.m, sh.L, sh.N, sh.k
    dh = m // H
    scale = np.float32(sh.scale)
    ib = sh.item_bias

    def score(p):
        c, h = sh.cand[p], sh.hist[p]
        q = Q[c].reshape(N, H, dh).transpose(1, 0, 2)      # gathered, H x N x dh
        g = G[c].reshape(N, H, dh).transpose(1, 0, 2)
        kt = K[h].reshape(L, H, dh).transpose(1, 2, 0)     # H x dh x L
        v = V[h].reshape(L, H, dh).transpose(1, 0, 2)      # H x L x dh
        z = np.matmul(q, kt)                               # H x N x L
        z *= scale
        z += sh.pos_bias + np.log(sh.hist_w[p])
        z -= z.max(axis=-1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=-1, keepdims=True)
        s = (np.matmul(z, v) * g).sum(axis=(0, 2)) + ib[c]
        part = np.argpartition(-s, k - 1)[:k]
        top = part[np.lexsort((part, -s[part]))]            # ties: lower index first
        return top, s

    return score


if __name__ == "__main__":
    peer_common.main("numpy", [("obvious", make_scorer), ("fast", make_fast_scorer)])
