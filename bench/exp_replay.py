#!/usr/bin/python3
"""A replayed A/B experiment against a running attnd, for docs/OPERATIONS.md.

    bench/exp_replay.py holdout DB          # before starting attnd: hold out each user's newest event
    bench/exp_replay.py run DB ENDPOINT     # with attnd serving DB with experiment arms

holdout deletes each user's newest event from DB and keeps it in DB.heldout.json.
run asks attnd to rank, for every user, 50 random items plus that held-out item
(k 10); when the item was shown, the user "clicks" it: a record request a few
seconds later.  attnctl experiment report then joins the impressions attnd
logged with those clicks.  Works on any database, e.g. one from attnctl gen.
"""
import json
import random
import sqlite3
import sys
import time


def holdout(db):
    con = sqlite3.connect(db)
    held = {}
    for uid, ext in con.execute("SELECT user_id, ext_id FROM users").fetchall():
        r = con.execute("SELECT i.ext_id, ts, i.item_id FROM interactions JOIN items i "
                        "USING(item_id) WHERE user_id = ? ORDER BY ts DESC, item_id DESC LIMIT 1",
                        (uid,)).fetchone()
        if r:
            held[ext] = r[0]
            con.execute("DELETE FROM interactions WHERE user_id = ? AND ts = ? AND item_id = ?",
                        (uid, r[1], r[2]))
    con.commit()
    items = [r[0] for r in con.execute("SELECT ext_id FROM items WHERE embedding IS NOT NULL")]
    con.close()
    with open(db + ".heldout.json", "w") as f:
        json.dump({"held": held, "items": items}, f)
    print(f"held out the newest event of {len(held)} users")


def run(db, endpoint):
    import zmq
    with open(db + ".heldout.json") as f:
        d = json.load(f)
    s = zmq.Context().socket(zmq.REQ)
    s.connect(endpoint)
    random.seed(1)
    clicks = 0
    for user, target in d["held"].items():
        s.send_json({"op": "rank", "user": user, "k": 10,
                     "candidates": random.sample(d["items"], 50) + [target]})
        shown = [x["item"] for x in s.recv_json()["items"]]
        if target in shown:
            s.send_json({"op": "record", "events": [{"user": user, "item": target,
                                                     "ts": int(time.time()) + 5, "kind": "click"}]})
            if not s.recv_json().get("ok"):
                sys.exit("record failed")
            clicks += 1
    print(f"{len(d['held'])} users ranked, {clicks} clicked what they were shown")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "holdout":
        holdout(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
