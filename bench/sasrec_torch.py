#!/usr/bin/python3
"""sasrec_torch.py -- the quality and training-time peer: SASRec with full
softmax cross-entropy ("SASRec+", Klenitskiy & Vasilev 2023) in PyTorch.

It reads an attnd database (the same events, in the same order -- ts, then
item id -- as attnctl train and attnctl eval), uses the same leave-one-out
split (last event = test target, the one before = validation target, the
rest training data), trains SASRec (Kang & McAuley 2018: item + position
embeddings, causal self-attention blocks, pre-layer-norm, shared input and
output item embeddings) with cross-entropy over every catalog item at every
position, stops early on validation NDCG@10 (full catalog, history masked),
and reports the best epoch's test HR@10 / NDCG@10 under both protocols of
attnctl eval:

  full     the target among every catalog item but the user's history;
  sampled  the target among 100 items drawn uniformly from those the user
           never interacted with (mean and sd over 3 seeds; numpy draws,
           not attnctl's, so the same distribution but other samples).

Rank is pessimistic, as in attnctl eval: a score equal to the target's
counts as ahead of it.  Every epoch prints one line with its time; the end
prints the time of the best epoch (time to best) and a JSON summary.

The defaults are SASRec+'s for ML-1M (Klenitskiy & Vasilev's published
configuration: d 64, 2 blocks, 1 head, dropout 0.1, the newest 200 events,
batch 128, Adam at 1e-3, at most 100 epochs, patience 10).

Usage:
  /usr/bin/python3 bench/sasrec_torch.py DB [--threads 2] [--l-max 200]
      [--dim 64] [--blocks 2] [--heads 1] [--dropout 0.1] [--batch 128]
      [--lr 1e-3] [--epochs 100] [--patience 10] [--seed 1]
      [--time-budget S] [--json FILE]
"""
import argparse
import json
import math
import sqlite3
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def load(db_path):
    """Catalog rows (embedded items, item_id order, as attnd's catalog) and
    every user's events as arrays of 1-based item indexes (0 = padding)."""
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    ids = [r[0] for r in con.execute(
        "SELECT item_id FROM items WHERE embedding IS NOT NULL ORDER BY item_id")]
    index = {iid: k + 1 for k, iid in enumerate(ids)}
    seqs, cur, user = [], [], None
    q = "SELECT user_id, item_id FROM interactions ORDER BY user_id, ts, item_id, kind"
    for uid, iid in con.execute(q):
        if uid != user:
            if cur:
                seqs.append(np.array(cur, dtype=np.int64))
            cur, user = [], uid
        k = index.get(iid)
        if k is not None:
            cur.append(k)
    if cur:
        seqs.append(np.array(cur, dtype=np.int64))
    con.close()
    return len(ids), seqs


class SASRec(torch.nn.Module):
    def __init__(self, n_items, d, l_max, blocks, heads, dropout):
        super().__init__()
        self.item = torch.nn.Embedding(n_items + 1, d, padding_idx=0)
        self.pos = torch.nn.Embedding(l_max, d)
        self.drop = torch.nn.Dropout(dropout)
        self.ln_a = torch.nn.ModuleList([torch.nn.LayerNorm(d) for _ in range(blocks)])
        self.att = torch.nn.ModuleList([
            torch.nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
            for _ in range(blocks)])
        self.ln_f = torch.nn.ModuleList([torch.nn.LayerNorm(d) for _ in range(blocks)])
        self.ff = torch.nn.ModuleList([
            torch.nn.Sequential(torch.nn.Linear(d, d), torch.nn.ReLU(), torch.nn.Dropout(dropout),
                                torch.nn.Linear(d, d), torch.nn.Dropout(dropout))
            for _ in range(blocks)])
        self.ln_out = torch.nn.LayerNorm(d)
        self.d = d
        causal = torch.triu(torch.ones(l_max, l_max, dtype=torch.bool), diagonal=1)
        self.register_buffer("causal", causal)
        # As the reference implementations do: Xavier-normal for every
        # matrix (torch's default N(0, 1) embeddings, scaled by sqrt(d),
        # start the logits far too large).
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                torch.nn.init.xavier_normal_(p)
        with torch.no_grad():
            self.item.weight[0].zero_()

    def forward(self, x):
        """x: B x L item indexes (left padded with 0) -> B x L x d states."""
        L = x.shape[1]
        h = self.item(x) * math.sqrt(self.d) + self.pos.weight[:L]
        h = self.drop(h)
        pad = (x == 0)
        h = h * (~pad).unsqueeze(-1)
        for ln_a, att, ln_f, ff in zip(self.ln_a, self.att, self.ln_f, self.ff):
            q = ln_a(h)
            a, _ = att(q, h, h, attn_mask=self.causal[:L, :L], need_weights=False)
            h = q + a
            f = ln_f(h)
            h = f + ff(f)
            h = h * (~pad).unsqueeze(-1)
        return self.ln_out(h)

    def logits(self, states):
        return states @ self.item.weight.T          # column 0 is padding


def last_window(seq, l_max):
    """The newest l_max events, left padded."""
    out = np.zeros(l_max, dtype=np.int64)
    tail = seq[-l_max:]
    out[l_max - len(tail):] = tail
    return out


def train_batches(seqs, l_max, batch, rng):
    """Per user: input = training events but the last, target = the next one."""
    users = [u for u, s in enumerate(seqs) if len(s) - 2 >= 2]
    rng.shuffle(users)
    for i in range(0, len(users), batch):
        xs, ys = [], []
        for u in users[i:i + batch]:
            tr = seqs[u][:-2]
            xs.append(last_window(tr[:-1], l_max))
            ys.append(last_window(tr[1:], l_max))
        yield torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


@torch.no_grad()
def user_states(model, seqs, split, l_max, batch=256):
    """The state after each user's history for the split's target:
    (users, states, targets)."""
    model.eval()
    users, outs, tgts = [], [], []
    cut = 2 if split == "valid" else 1
    eligible = [u for u, s in enumerate(seqs) if len(s) - cut >= 1]
    for i in range(0, len(eligible), batch):
        us = eligible[i:i + batch]
        x = torch.from_numpy(np.stack([last_window(seqs[u][:-cut], l_max) for u in us]))
        outs.append(model(x)[:, -1, :])
        users += us
        tgts += [int(seqs[u][-cut]) for u in us]
    model.train()
    return users, torch.cat(outs), np.array(tgts)


@torch.no_grad()
def evaluate(model, seqs, n_items, split, l_max, protocol, seed=1, n_neg=100):
    users, states, tgts = user_states(model, seqs, split, l_max)
    cut = 2 if split == "valid" else 1
    hr = ndcg = 0.0
    rng = np.random.default_rng(seed)
    for b in range(0, len(users), 512):
        sc = model.logits(states[b:b + 512]).numpy().astype(np.float64)
        for k in range(sc.shape[0]):
            u, t = users[b + k], tgts[b + k]
            s = sc[k]
            if protocol == "full":
                hist = seqs[u][:-cut]
                row = s.copy()
                row[0] = -np.inf
                row[hist] = -np.inf
                row[t] = s[t]
                rank = int(np.sum(row >= s[t])) - 1
            else:
                seen = np.zeros(n_items + 1, dtype=bool)
                seen[seqs[u]] = True
                seen[0] = True
                free = np.flatnonzero(~seen)
                neg = rng.choice(free, size=min(n_neg, len(free)), replace=False)
                rank = int(np.sum(s[neg] >= s[t]))
            if rank < 10:
                hr += 1.0
                ndcg += 1.0 / math.log2(rank + 2)
    return hr / len(users), ndcg / len(users)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("db")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--l-max", type=int, default=200)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--heads", type=int, default=1)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--time-budget", type=float, default=0,
                    help="seconds: start no epoch that would end past this at the pace of the "
                         "slowest so far (attnctl train --time-budget's rule); 0 = none")
    ap.add_argument("--json", default=None, help="write the summary here too")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    t0 = time.monotonic()
    n_items, seqs = load(a.db)
    print(f"sasrec_torch: {a.db}: {n_items} items, {len(seqs)} users, "
          f"{sum(len(s) for s in seqs)} events; d {a.dim}, {a.blocks} blocks, {a.heads} heads, "
          f"l_max {a.l_max}, dropout {a.dropout}, batch {a.batch}, lr {a.lr}, "
          f"{a.threads} threads, torch {torch.__version__}", file=sys.stderr)
    model = SASRec(n_items, a.dim, a.l_max, a.blocks, a.heads, a.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.98))
    best, best_ep, best_t, bad, best_state = -1.0, 0, 0.0, 0, None
    t_train = time.monotonic()
    epoch_times = []
    slowest, out_of_time = 0.0, False
    for ep in range(1, a.epochs + 1):
        te = time.monotonic()
        tot, nb = 0.0, 0
        for x, y in train_batches(seqs, a.l_max, a.batch, rng):
            mask = y > 0
            logits = model.logits(model(x)[mask])        # only positions with a target
            logits[:, 0] = -1e9                          # never predict padding
            loss = F.cross_entropy(logits, y[mask])
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += float(loss)
            nb += 1
        ep_s = time.monotonic() - te
        epoch_times.append(ep_s)
        vhr, vnd = evaluate(model, seqs, n_items, "valid", a.l_max, "full")
        star = vnd > best
        if star:
            best, best_ep, bad = vnd, ep, 0
            best_t = time.monotonic() - t_train
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
        print(f"epoch {ep}  loss {tot / max(nb, 1):.4f}  valid HR@10 {vhr:.4f} NDCG@10 {vnd:.4f}"
              f"{' *' if star else '  '}  train {ep_s:.1f}s  elapsed "
              f"{time.monotonic() - t_train:.0f}s", file=sys.stderr, flush=True)
        if a.patience and bad >= a.patience:
            break
        slowest = max(slowest, time.monotonic() - te)
        if a.time_budget and time.monotonic() - t_train + slowest > a.time_budget:
            out_of_time = True
            break
    total = time.monotonic() - t_train
    model.load_state_dict(best_state)
    full = evaluate(model, seqs, n_items, "test", a.l_max, "full")
    samp = [evaluate(model, seqs, n_items, "test", a.l_max, "sampled", seed=s)
            for s in (1, 2, 3)]
    sh, sn = np.array([x[0] for x in samp]), np.array([x[1] for x in samp])
    out = {
        "method": "SASRec+ (PyTorch, full cross-entropy)", "db": a.db, "items": n_items,
        "users": len(seqs), "torch": torch.__version__, "threads": a.threads,
        "options": {k: v for k, v in vars(a).items() if k not in ("db", "json")},
        "best_epoch": best_ep, "epochs_run": len(epoch_times), "out_of_time": out_of_time,
        "epoch_seconds_median": float(np.median(epoch_times)),
        "time_to_best_s": round(best_t, 1), "train_seconds": round(total, 1),
        "valid_full_ndcg@10": round(best, 4),
        "test_full": {"hr@10": round(full[0], 4), "ndcg@10": round(full[1], 4)},
        "test_sampled": {"hr@10": round(float(sh.mean()), 4),
                         "hr@10_sd": round(float(sh.std(ddof=1)), 4),
                         "ndcg@10": round(float(sn.mean()), 4),
                         "ndcg@10_sd": round(float(sn.std(ddof=1)), 4)},
        "wall_seconds": round(time.monotonic() - t0, 1),
    }
    print(f"best epoch {best_ep} of {len(epoch_times)}: time to best {best_t:.0f}s, "
          f"training {total:.0f}s, median epoch {out['epoch_seconds_median']:.1f}s; test full "
          f"HR@10 {full[0]:.4f} NDCG@10 {full[1]:.4f}, sampled HR@10 {sh.mean():.4f} NDCG@10 "
          f"{sn.mean():.4f}", file=sys.stderr)
    print(json.dumps(out))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
