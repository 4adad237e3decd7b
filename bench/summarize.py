#!/usr/bin/env python3
"""Turn the raw runs of bench/proxy.sh into one Markdown report.

Reads <runs>/*.json (one per load run, written by proxy.sh) together with the
wrk output (a "WRKJSON {...}" line from wrk_report.lua) or the h2load per-request
log, and prints the summary table to stdout and the full report to --out.
"""
import argparse
import glob
import json
import os
import re
import statistics
import sys

TARGET_ORDER = ["direct", "nginx", "haproxy", "legate"]
TARGET_NAME = {"direct": "direct", "nginx": "nginx", "haproxy": "HAProxy", "legate": "Legate"}
SCENARIO_DESC = {
    "ka-1": "keep-alive, 1 connection (wrk -t1 -c1)",
    "ka-32": "keep-alive, 32 connections (wrk -t1 -c32)",
    "ka-256": "keep-alive, 256 connections (wrk -t1 -c256)",
    "close-32": "Connection: close, 32 connections (wrk -t1 -c32 -H 'Connection: close')",
}


def scenario_key(s):
    fixed = ["ka-1", "ka-32", "ka-256", "close-32"]
    if s in fixed:
        return (0, fixed.index(s), 0)
    m = re.match(r"rate-(\d+)$", s)
    return (1, 0, int(m.group(1)) if m else 0)


def percentile(sorted_vals, p):
    if not sorted_vals:
        return None
    k = (len(sorted_vals) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)


def parse_cores(s):
    """'cpu0 busy steal total cpu1 ...' -> {cpu0: (busy, steal, total)}"""
    f = s.split()
    out = {}
    for i in range(0, len(f) - 3, 4):
        out[f[i]] = (int(f[i + 1]), int(f[i + 2]), int(f[i + 3]))
    return out


def load_run(path):
    r = json.load(open(path))
    txt = open(r["output"], errors="replace").read() if os.path.exists(r["output"]) else ""
    r["ok"] = False
    if r["kind"] == "wrk":
        m = re.search(r"^WRKJSON (\{.*\})$", txt, re.M)
        if m:
            w = json.loads(m.group(1))
            dur = w["duration_us"] / 1e6
            r.update(
                ok=True,
                requests=w["requests"],
                rps=w["requests"] / dur if dur > 0 else 0.0,
                p50=w["p50_us"],
                p99=w["p99_us"],
                errors=w["err_connect"] + w["err_read"] + w["err_write"] + w["err_status"] + w["err_timeout"],
                err_detail="connect %d, read %d, write %d, non-2xx/3xx %d, timeout %d"
                % (w["err_connect"], w["err_read"], w["err_write"], w["err_status"], w["err_timeout"]),
            )
    else:  # h2load fixed rate
        lat, bad = [], 0
        if os.path.exists(r["logfile"]):
            for line in open(r["logfile"]):
                f = line.split("\t")
                if len(f) < 3:
                    continue
                if not f[1].startswith("2"):
                    bad += 1
                lat.append(int(f[2]))
        lat.sort()
        m = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", txt)
        mreq = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", txt)
        if m and lat:
            failed = int(mreq.group(5)) + int(mreq.group(6)) + int(mreq.group(7)) if mreq else 0
            r.update(
                ok=True,
                requests=len(lat),
                rps=float(m.group(2)),
                p50=percentile(lat, 50),
                p99=percentile(lat, 99),
                errors=bad + failed,
                err_detail="non-2xx %d, failed/errored/timeout %d" % (bad, failed),
            )
    cb, ca = parse_cores(r["cores_before"]), parse_cores(r["cores_after"])
    r["cores"] = {}
    for c in ca:
        if c in cb:
            busy, steal, total = (ca[c][i] - cb[c][i] for i in range(3))
            if total > 0:
                r["cores"][c] = (100.0 * busy / total, 100.0 * steal / total)
    r["cpu_pct"] = 100.0 * r["cpu_s"] / r["wall_s"] if r["wall_s"] > 0 else 0.0
    r.setdefault("other_pct", 0.0)
    return r


def fmt_us(us):
    if us is None:
        return "-"
    if us >= 1000:
        return "%.2f ms" % (us / 1000.0)
    return "%.0f µs" % us


def fmt_rps(x):
    return "-" if x is None else "{:,.0f}".format(x)


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    x = a / b
    return "%.2f" % x if x >= 0.1 else "%.3f" % x


def aggregate(runs, load_core):
    """Median over rounds per (scenario, target)."""
    groups = {}
    for r in runs:
        groups.setdefault((r["scenario"], r["target"]), []).append(r)
    agg = {}
    for key, rs in groups.items():
        ok = [r for r in rs if r["ok"]]
        if not ok:
            agg[key] = dict(n=len(rs), ok=0, rps=None, p50=None, p99=None, errors=None, cpu=None, cpu_req=None, lo=None, hi=None, other=None)
            continue
        rps = [r["rps"] for r in ok]
        tot_req = sum(r["requests"] for r in ok)
        agg[key] = dict(
            n=len(rs),
            ok=len(ok),
            rps=statistics.median(rps),
            lo=min(rps),
            hi=max(rps),
            p50=statistics.median(r["p50"] for r in ok),
            p99=statistics.median(r["p99"] for r in ok),
            errors=sum(r["errors"] for r in ok),
            cpu=statistics.median(r["cpu_pct"] for r in ok),
            cpu_req=(1e6 * sum(r["cpu_s"] for r in ok) / tot_req) if tot_req else None,
            other=statistics.median(r["other_pct"] for r in ok),
            load_busy=statistics.median(r["cores"].get(load_core, (0.0, 0.0))[0] for r in ok),
            offered=float(ok[0]["extra"]) if ok[0]["kind"] == "h2load" else None,
        )
    return agg


def marks(a, t, meta):
    """Footnote marks for a row: ‡ load generator core saturated, † offered rate not reached."""
    m = ""
    if a["rps"] is None:
        return m
    if meta["pin"] and t != "direct" and a["offered"] is None and a["load_busy"] >= 95 and (a["cpu"] or 0) < 90:
        m += " ‡"
    if a["offered"] is not None and a["rps"] < 0.95 * a["offered"]:
        m += " †"
    return m


def main_table(agg, scenarios, targets, meta):
    have_legate = "legate" in targets
    hdr = ["scenario", "target", "req/s", "min–max req/s", "p50", "p99", "errors", "CPU %", "CPU µs/req",
           "other CPU %", "Legate÷this req/s", "Legate÷this p99"]
    lines = ["| " + " | ".join(hdr) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(hdr) - 2)) + "|"]
    for s in scenarios:
        lg = agg.get((s, "legate")) if have_legate else None
        for t in targets:
            a = agg.get((s, t))
            if a is None:
                continue
            if t == "legate" or not lg:
                r_rps = r_p99 = "-"
            else:
                r_rps = fmt_ratio(lg["rps"], a["rps"])
                r_p99 = fmt_ratio(lg["p99"], a["p99"])
            spread = "-" if a["lo"] is None else "%s–%s" % (fmt_rps(a["lo"]), fmt_rps(a["hi"]))
            failed = "" if a["ok"] == a["n"] else " (%d/%d runs failed)" % (a["n"] - a["ok"], a["n"])
            lines.append("| " + " | ".join([
                s, TARGET_NAME[t] + failed, fmt_rps(a["rps"]) + marks(a, t, meta), spread, fmt_us(a["p50"]), fmt_us(a["p99"]),
                "-" if a["errors"] is None else str(a["errors"]),
                "-" if a["cpu"] is None else "%.0f" % a["cpu"],
                "-" if a["cpu_req"] is None else "%.1f" % a["cpu_req"],
                "-" if a["other"] is None else "%.0f" % a["other"],
                r_rps, r_p99]) + " |")
    return "\n".join(lines)


def ratio_summary(agg, scenarios, targets):
    if "legate" not in targets:
        return "Legate not measured: no ratios."
    out = []
    for s in scenarios:
        lg = agg.get((s, "legate"))
        if not lg or lg["rps"] is None:
            continue
        parts = []
        for t in ["nginx", "haproxy", "direct"]:
            a = agg.get((s, t))
            if a and a["rps"]:
                parts.append("Legate/%s req/s %s, p99 %s" % (TARGET_NAME[t], fmt_ratio(lg["rps"], a["rps"]), fmt_ratio(lg["p99"], a["p99"])))
        out.append("- %s: %s" % (s, "; ".join(parts)))
    return "\n".join(out)


def runs_table(runs, targets):
    hdr = ["scenario", "round", "target", "req/s", "p50", "p99", "errors", "target CPU %", "other CPU %", "CPU0 busy %", "CPU1 busy %", "steal %", "wall s"]
    lines = ["| " + " | ".join(hdr) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(hdr) - 3)) + "|"]
    for r in sorted(runs, key=lambda r: (scenario_key(r["scenario"]), r["round"], targets.index(r["target"]) if r["target"] in targets else 9)):
        c = r["cores"]
        steal = max((v[1] for v in c.values()), default=0.0)
        lines.append("| " + " | ".join([
            r["scenario"], str(r["round"]), TARGET_NAME.get(r["target"], r["target"]),
            fmt_rps(r.get("rps")), fmt_us(r.get("p50")), fmt_us(r.get("p99")),
            r.get("err_detail", "run failed (exit %s)" % r["rc"]) if r["ok"] else "run failed (exit %s)" % r["rc"],
            "%.0f" % r["cpu_pct"], "%.0f" % r["other_pct"],
            "%.0f" % c["cpu0"][0] if "cpu0" in c else "-",
            "%.0f" % c["cpu1"][0] if "cpu1" in c else "-",
            "%.1f" % steal, "%.1f" % r["wall_s"]]) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--meta", required=True)
    ap.add_argument("--runs", required=True)
    ap.add_argument("--memory")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    meta = json.load(open(a.meta))
    runs = [load_run(p) for p in sorted(glob.glob(os.path.join(a.runs, "*.json")))]
    targets = [t for t in TARGET_ORDER if t in meta["targets"]]
    scenarios = sorted({r["scenario"] for r in runs}, key=scenario_key)
    load_core = "cpu%d" % meta["cpu_load"]
    agg = aggregate(runs, load_core)
    table = main_table(agg, scenarios, targets, meta)
    rate_scen = [s for s in scenarios if s.startswith("rate-")]

    legend = [
        "req/s: median over %d round(s) (with an even number of rounds, the mean of the middle two); min–max: slowest and fastest round." % meta["rounds"],
        "p50/p99: latency percentiles reported by the load generator, median over rounds.",
        "errors: socket errors + non-2xx/3xx responses, summed over rounds.",
        "CPU %: CPU time of the target's processes (proxy; upstream for 'direct') per wall-clock second; 100 = one full core. CPU µs/req: that CPU time divided by requests served — less sensitive to a noisy machine than req/s.",
        "other CPU %: CPU the machine spent during the run on anything but the benchmark's own processes (other users' processes, and kernel work not charged to any process), median over rounds; 100 = one core. The machine has 2 cores; what shows here was mostly taken from the benchmark, so rows with a high value are unreliable.",
        "Legate÷this: Legate's value divided by this row's value in the same scenario. req/s above 1 = Legate faster; p99 below 1 = Legate's tail lower.",
    ]
    if meta["pin"]:
        legend.append("‡: the load-generator core (CPU %d: wrk + upstream) was ≥ 95%% busy while the proxy used < 90%% of its core, so this row is limited by the test bed, not the proxy."
                      % meta["cpu_load"])
    if rate_scen:
        legend.append("†: the achieved rate is more than 5% below the offered rate: the target did not keep up, and its latency figures understate the queueing.")
        legend.append(
            "rate-N: fixed offered load of N req/s over %d keep-alive connections (h2load --h1 --rps N/%d); req/s is the achieved rate; "
            "latency is measured from each request's actual send (no coordinated-omission correction), so also check that the achieved rate equals N."
            % (meta["rate_conns"], meta["rate_conns"]))
    for s in scenarios:
        if s in SCENARIO_DESC:
            legend.append("%s: %s." % (s, SCENARIO_DESC[s]))

    rss = ["| target | RSS after start | RSS after the load runs |", "|---|---:|---:|"]
    for t in targets:
        if t in meta["rss_start_kb"]:
            rss.append("| %s | %.1f MiB | %.1f MiB |" % (TARGET_NAME[t], meta["rss_start_kb"][t] / 1024.0, meta["rss_end_kb"].get(t, 0) / 1024.0))

    memory = ""
    if a.memory and os.path.exists(a.memory):
        memory = open(a.memory).read().strip()

    head = "\n".join([
        "# Legate proxy benchmark",
        "",
        "- command: `%s`" % meta["cmdline"],
        "- date: %s" % meta["date"],
        "- machine: %s CPUs (nproc), %s, kernel %s" % (meta["nproc"], meta["cpu"], meta["kernel"]),
        "- versions: %s" % "; ".join(meta["versions"]),
        "- pinning: %s" % meta["pinning"],
        "- other processes' CPU use just before the runs: %s%% of one CPU" % meta.get("idle_other_pct", "?"),
        "- each run: %d s, %d round(s), targets alternated within each round (order rotated every round), %d s warm-up per target before the first run" % (meta["duration"], meta["rounds"], meta["warmup"]),
    ] + ["- note: %s" % n for n in meta["notes"]])

    report = "\n\n".join(filter(None, [
        head,
        "## Throughput and latency\n\n" + table,
        "\n".join("- " + l for l in legend),
        "### Legate ratios\n\n" + ratio_summary(agg, scenarios, targets),
        "## Memory\n\n### RSS of the benchmark processes (sum over the process tree)\n\n" + "\n".join(rss) + ("\n\n" + memory if memory else ""),
        "## All runs\n\n" + runs_table(runs, targets),
    ])) + "\n"

    with open(a.out, "w") as f:
        f.write(report)
    print()
    print(table)
    print()
    print("\n".join("- " + l for l in legend))
    print()
    print(ratio_summary(agg, scenarios, targets))
    print()
    for n in meta["notes"]:
        print("note: " + n)
    if memory:
        print()
        print(memory)
    print()


if __name__ == "__main__":
    sys.exit(main())
