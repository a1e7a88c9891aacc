#!/usr/bin/python3
"""peer_torch.py -- attnd's scoring with torch.nn.MultiheadAttention, and
attnd's own algorithm in PyTorch (make_fast_scorer, eager and torch.jit).

Candidates are the queries and the history the keys and values, as in
DIN/BST target attention.  The module gets attnd's weights: in_proj_weight
stacks W_Qᵀ, W_Kᵀ, W_Vᵀ (torch computes x Wᵀ), out_proj.weight is W_Oᵀ, no
biases; MultiheadAttention scales by 1/sqrt(m/H), which is the model's
scale here.  The position bias plus log event weight of each history item
goes in as an additive float attn_mask, one (N x L) slice per head.  Then
score = u_c . e_c + item bias and torch.topk.  This requires d == m (the
module's out_proj maps embed_dim to embed_dim), true of every reference shape.

Usage: /usr/bin/python3 bench/peer_torch.py --dir DIR [--shapes P1,..] [--seconds S]
"""
import numpy as np
import torch

import peer_common

torch.set_num_threads(1)


def make_scorer(sh):
    if sh.d != sh.m:
        raise SystemExit(f"{sh.name}: torch's MultiheadAttention needs d == m")
    H, L, N, k = sh.heads, sh.L, sh.N, sh.k
    mha = torch.nn.MultiheadAttention(sh.m, H, bias=False, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.from_numpy(np.concatenate([sh.wq.T, sh.wk.T, sh.wv.T])))
        mha.out_proj.weight.copy_(torch.from_numpy(sh.wo.T.copy()))
    mha.eval()
    if abs(sh.scale - 1.0 / np.sqrt(sh.m // H)) > 1e-6:
        raise SystemExit(f"{sh.name}: model scale {sh.scale} is not 1/sqrt(m/H)")
    E = torch.from_numpy(sh.emb)
    item_bias = torch.from_numpy(sh.item_bias)
    pos_bias = torch.from_numpy(sh.pos_bias)
    hist = torch.from_numpy(sh.hist)
    cand = torch.from_numpy(sh.cand)
    hist_w = torch.from_numpy(sh.hist_w)

    def score(p):
        with torch.inference_mode():
            eh = E[hist[p]].unsqueeze(0)                    # 1 x L x d
            ec = E[cand[p]].unsqueeze(0)                    # 1 x N x d
            bias = pos_bias + torch.log(hist_w[p])          # L
            mask = bias.expand(H, N, L)                     # per head (batch 1 x H heads)
            u, _ = mha(ec, eh, eh, attn_mask=mask, need_weights=False)
            s = (u[0] * ec[0]).sum(dim=1) + item_bias[cand[p]]
            top = torch.topk(s, k).indices
            return top.numpy(), s.numpy()

    return score


def _fast(Q, G, K, V, c, h, bias, ib, H: int, dh: int, scale: float, k: int):
    """One request of attnd's algorithm: gather, baddbmm (logits plus the
    position bias and log weight), softmax, bmm, dot with g."""
    N, L = c.shape[0], h.shape[0]
    q = Q.index_select(0, c).view(N, H, dh).transpose(0, 1)     # H x N x dh
    g = G.index_select(0, c).view(N, H, dh).transpose(0, 1)
    kt = K.index_select(0, h).view(L, H, dh).permute(1, 2, 0)   # H x dh x L
    v = V.index_select(0, h).view(L, H, dh).transpose(0, 1)     # H x L x dh
    z = torch.baddbmm(bias.expand(H, N, L), q, kt, alpha=scale)
    a = torch.softmax(z, dim=-1)
    s = (torch.bmm(a, v) * g).sum(dim=(0, 2)) + ib.index_select(0, c)
    return torch.topk(s, k).indices, s


def make_fast_scorer(sh, jit=False):
    """attnd's algorithm in PyTorch (peer_numpy.make_fast_scorer explains
    it); jit: the same function through torch.jit.script.  torch.compile
    would be the next step, but Debian's torch (1.13) predates it."""
    E = sh.emb
    Q, G, K, V = (torch.from_numpy(np.ascontiguousarray(x))
                  for x in (E @ sh.wq, E @ sh.wo.T, E @ sh.wk, E @ sh.wv))
    H, m, k = sh.heads, sh.m, sh.k
    dh = m // H
    fn = torch.jit.script(_fast) if jit else _fast
    ib, pos_bias = torch.from_numpy(sh.item_bias), torch.from_numpy(sh.pos_bias)
    hist, cand, hist_w = (torch.from_numpy(x) for x in (sh.hist, sh.cand, sh.hist_w))
    scale = float(sh.scale)

    def score(p):
        with torch.inference_mode():
            bias = pos_bias + torch.log(hist_w[p])
            top, s = fn(Q, G, K, V, cand[p], hist[p], bias, ib, H, dh, scale, k)
            return top.numpy(), s.numpy()

    return score


if __name__ == "__main__":
    peer_common.main("torch", [("obvious", make_scorer), ("fast", make_fast_scorer),
                               ("fast-jit", lambda sh: make_fast_scorer(sh, jit=True))],
                     {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                      "torch_compile": hasattr(torch, "compile")})
