#!/usr/bin/python3
"""peer_torch.py -- attnd's scoring with torch.nn.MultiheadAttention.

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


if __name__ == "__main__":
    peer_common.main("torch", make_scorer, {"torch": torch.__version__,
                                            "torch_threads": torch.get_num_threads()})
