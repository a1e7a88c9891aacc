"""bench/scrape.py -- the `scrape` section of bench/run: does serving
/metrics slow ranking down?

attnd on the P1 database (100k items, d=64, 4 heads) under an open-loop
attn-load at a fixed rate, alternately with no scraper and with one GET
/metrics every 100 ms (10 scrapes/s, 150x Prometheus' default rate),
interleaved rounds so the shared machine's noise falls on both; then
bench_metrics for the in-process costs (lock hold, collect, render, a
worker's record latency under a collector running flat out).

bench/run passes itself as `h` for its helpers (start, stop, attn_load, ...).
"""
import json
import os
import statistics
import threading
import time
import urllib.request


def _scraper(port, stop, out):
    """GET /metrics every 100 ms until stop is set; latencies and sizes."""
    url = f"http://127.0.0.1:{port}/metrics"
    nxt = time.monotonic()
    while not stop.is_set():
        t0 = time.perf_counter()
        with urllib.request.urlopen(url, timeout=5) as r:
            body = r.read()
            ok = r.status == 200 and body.startswith(b"# HELP attnd_")
        out.append({"ms": (time.perf_counter() - t0) * 1e3, "bytes": len(body), "ok": ok})
        nxt += 0.1
        stop.wait(max(0.0, nxt - time.monotonic()))


def section_scrape(a, bin_dir, bench_dir, R, h):
    db = h.ensure_db(a, bin_dir, bench_dir, "p1-100k-d64.db", 100000, 64, 4)
    secs, warm = (2, 0.5) if a.quick else (3, 0.5)
    rounds = 1 if a.quick else 6
    port, ep = h.free_port(), f"tcp://127.0.0.1:{h.free_port()}"
    attnd = h.start([os.path.join(bin_dir, "attnd"), "--db", db, "--bind", ep,
                     "--metrics", f"127.0.0.1:{port}", "--set", "server.metrics_interval=0",
                     "--set", "server.reload_poll=0"], os.path.join(a.out, "attnd-scrape.log"))
    h.wait_ready(attnd, ep)
    # Half the e2e peak when that section ran in this suite, else a rate
    # this machine sustains with room to spare.
    rate = R.get("e2e", {}).get("open", {}).get("rate") or 1500
    runs = []
    for rnd in range(rounds):
        for mode in ("none", "scrape"):
            stop, scrapes = threading.Event(), []
            t = threading.Thread(target=_scraper, args=(port, stop, scrapes))
            if mode == "scrape":
                t.start()
            r = h.attn_load(bin_dir, ep, db, ["--rate", str(rate)], secs, warm)
            stop.set()
            if mode == "scrape":
                t.join()
                if not scrapes or not all(s["ok"] for s in scrapes):
                    h.die("a scrape of /metrics failed during the scrape benchmark")
            runs.append({"mode": mode, "round": rnd, "ok_rps": r["ok_rps"],
                         "p50_us": r["latency_us"]["p50"], "p99_us": r["latency_us"]["p99"],
                         "p999_us": r["latency_us"]["p999"], "failed": r["sent"] - r["ok"],
                         "scrapes": scrapes})
    h.stop(attnd)
    lines = h.run_jsonl([os.path.join(bench_dir, "bench_metrics"),
                         "--seconds", "0.5" if a.quick else "1"], what="bench_metrics")
    R["scrape"] = {"rate": rate, "runs": runs, "inproc": lines}
    with open(os.path.join(a.out, "scrape.json"), "w") as f:
        json.dump(R["scrape"], f, indent=1)


def report_scrape(R, h, note):
    S = R["scrape"]
    out = ["## Scraping /metrics under load", "",
           f"attnd (default workers) on the P1 database, open-loop attn-load at "
           f"{h.fnum(S['rate'])} req/s, rounds alternating no scraper and GET /metrics every "
           f"100 ms (10/s). Latency from the intended send time, ok replies. {note}", ""]
    rows = []
    for r in S["runs"]:
        sc = r["scrapes"]
        ms = sorted(s["ms"] for s in sc)
        rows.append([r["round"] + 1, r["mode"], h.fnum(r["ok_rps"]), h.fnum(r["p50_us"] / 1e3, 3),
                     h.fnum(r["p99_us"] / 1e3, 3), h.fnum(r["p999_us"] / 1e3, 3), r["failed"],
                     len(sc) if sc else "—",
                     h.fnum(statistics.median(ms), 2) if ms else "—",
                     h.fnum(ms[-1], 2) if ms else "—"])
    out += [h.table(["round", "scraper", "ok req/s", "p50 ms", "p99 ms", "p99.9 ms", "not ok",
                     "scrapes", "scrape median ms", "scrape max ms"], rows), ""]
    p99 = {m: statistics.median(r["p99_us"] for r in S["runs"] if r["mode"] == m)
           for m in ("none", "scrape")}
    ratio = p99["scrape"] / p99["none"]
    size = next((s["bytes"] for r in S["runs"] for s in r["scrapes"]), 0)
    out += [f"Median p99 over the rounds: {p99['none'] / 1e3:.3f} ms without scraping, "
            f"{p99['scrape'] / 1e3:.3f} ms with 10 scrapes/s: **{ratio:.2f}×** "
            f"(a scrape is {size:,} bytes).", ""]
    lk = next(l for l in S["inproc"] if l["what"] == "lock_hold")
    sc = {l["workers"]: l for l in S["inproc"] if l["what"] == "scrape"}
    nt = {l["collector"]: l for l in S["inproc"] if l["what"] == "note"}
    out += ["In process (bench/bench_metrics, medians): a scrape takes no lock a worker "
            f"takes; its collect reads the workers' counts with relaxed atomic loads in "
            f"{sc[2]['collect_us']:.2f} µs (2 workers; {sc[8]['collect_us']:.2f} µs for 8) and "
            f"renders {sc[2]['bytes']:,} bytes in {sc[2]['render_us']:.0f} µs. `stats` and "
            f"the log line hold each worker's lock {lk['p50_us']:.1f} µs to merge its fine "
            f"histograms. A worker's per-request record: p50 {nt['none']['p50_ns']} ns, p99 "
            f"{nt['none']['p99_ns']} ns alone; p99 {nt['scrape']['p99_ns']} ns while another "
            f"thread scrapes {nt['scrape']['collects_per_s']:,.0f} times a second; p99 "
            f"{nt['stats']['p99_ns']} ns while it runs `stats`' collect "
            f"{nt['stats']['collects_per_s']:,.0f} times a second.", ""]
    return out, ["rank p99 with 10 scrapes/s ≤ 1.2× without", f"{ratio:.2f}×",
                 "met" if ratio <= 1.2 else "**missed**"]
