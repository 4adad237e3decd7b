#!/usr/bin/env python3
"""Raw output of bench/profile.sh -> bench/results/profile-*.md.

Reads the work directory's profile/ folder: meta.txt (key=value lines),
strace -c summaries, wrk runs (WRKJSON lines from wrk_report.lua), cpu.txt
(clock ticks before/after each run), perf report text and callgrind_annotate
text. Every number in the "Reading" section is computed here from those files.
"""
import argparse
import glob
import json
import os
import re
import statistics

TARGETS = ["legate", "nginx", "haproxy"]
NAMES = {"legate": "Legate", "nginx": "nginx", "haproxy": "HAProxy"}
MODES = [("ka", "keep-alive, wrk -t1 -c32"), ("close", "`Connection: close`, wrk -t1 -c32")]
SOCKET_READS = {"read", "readv", "recvfrom", "recvmsg", "recvmmsg"}
SOCKET_WRITES = {"write", "writev", "sendto", "sendmsg", "sendmmsg"}
TOP = 15


def read_meta(path):
    meta = {"version": [], "note": []}
    with open(path, encoding="utf-8") as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("=")
            if key in meta and isinstance(meta[key], list):
                meta[key].append(value)
            else:
                meta[key] = value
    return meta


def wrk_result(path):
    """The WRKJSON line of one wrk run as a dict, or None."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("WRKJSON "):
                    return json.loads(line[len("WRKJSON "):])
    except OSError:
        pass
    return None


def strace_counts(path):
    """{syscall: calls} from an `strace -c` summary; the total under 'total'."""
    counts = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                # % time, seconds, usecs/call, calls, [errors], syscall
                if len(fields) < 5 or not fields[3].isdigit():
                    continue
                counts[fields[-1]] = int(fields[3])
    except OSError:
        pass
    return counts


def perf_report(path):
    """(rows, samples, event) from perf report --sort dso,sym text; rows are
    [(percent, dso, 'k' or '.', symbol)]."""
    rows, samples, event = [], "–", ""
    pat = re.compile(r"^\s*([\d.]+)%\s+(\S+)\s+\[([k.])\]\s+(.*?)\s*$")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = pat.match(line)
                h = re.match(r"^# Samples: (\S+)\s+of event '([^']*)'", line)
                if m:
                    rows.append((float(m.group(1)), m.group(2), m.group(3), m.group(4)))
                elif h:
                    samples, event = h.group(1), h.group(2)
    except OSError:
        pass
    return rows, samples, event


def callgrind_functions(path):
    """(total Ir, [(Ir, function, file, object)]) from callgrind_annotate output."""
    total, funcs = None, []
    pat = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*?)\s*$")
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("-- Auto-annotated source"):
                break
            m = pat.match(line)
            if not m:
                continue
            ir, rest = int(m.group(1).replace(",", "")), m.group(2)
            if rest == "PROGRAM TOTALS":
                total = ir
                continue
            obj = ""
            om = re.match(r"^(.*?)\s+\[(.*)\]$", rest)
            if om:
                rest, obj = om.group(1), os.path.basename(om.group(2))
            file, _, fn = rest.partition(":")
            funcs.append((ir, fn, os.path.basename(file), obj))
    return total, funcs


def group_calls(per_req):
    """Calls per request with the read and write variants summed ('socket reads/writes')."""
    groups = {}
    for name, v in per_req.items():
        if name == "total":
            continue
        if name in SOCKET_READS:
            name = "socket reads"
        elif name in SOCKET_WRITES:
            name = "socket writes"
        groups[name] = groups.get(name, 0) + v
    return groups


def fmt_per_req(x):
    if x is None:
        return "–"
    if x < 0.0005:
        return "<0.001"
    return f"{x:.2f}" if x >= 0.1 else f"{x:.3f}"


def pct(part, whole):
    return 100.0 * part / whole if whole else 0.0


def wrk_errors(raw):
    """'none', or the runs whose wrk reported errors, with their counts."""
    bad = []
    for path in sorted(glob.glob(os.path.join(raw, "*.wrk"))):
        w = wrk_result(path)
        n = sum(v for k, v in w.items() if k.startswith("err_")) if w else None
        if n is None or n:
            bad.append(f"{os.path.basename(path)}: {'no result' if n is None else n}")
    return ", ".join(bad) if bad else "none"


def section_header(meta, raw, out):
    out.append("# Legate profile: where the proxy's time goes\n")
    out.append("## 1. Setup\n")
    out.append(f"- command: `{meta['cmdline']}`")
    out.append(f"- date: {meta['date']}")
    out.append(f"- machine: {meta['nproc']} CPUs (nproc), {meta['cpu']}, kernel {meta['kernel']}")
    out.append(f"- tools: {'; '.join(meta['version'])}")
    out.append(f"- Legate: {meta['legate']}")
    out.append(f"- pinning: {meta['pinning']}")
    out.append(
        f"- runs: {meta['duration']} s per strace / CPU / perf run, {meta['rounds']} CPU round(s), "
        f"{meta['cg_duration']} s under callgrind; same upstream, configurations and route "
        "`/httpbin/` → upstream `/` with `Host: httpbin.org` as `make bench` (bench/lib.sh)"
    )
    out.append(
        f"- other processes on the machine used {meta['other_pct']} % of one CPU during sections 2–5 "
        "(busy time of all CPUs minus this script's processes, as in `make bench`)"
    )
    for n in meta["note"]:
        out.append(f"- note: {n}")
    out.append(f"- wrk errors (socket errors and non-2xx/3xx answers): {wrk_errors(raw)}")
    out.append(
        "- The machine is a shared 2-core VM: rates (req/s, and to a lesser degree µs per request) "
        "are noisy. System call counts and instruction counts per request are not.\n"
    )


def section_syscalls(raw, duration, out):
    """Section 2; returns {mode: {target: {syscall: calls per request}}}."""
    per_req = {}
    out.append("## 2. System calls per request\n")
    out.append(
        f"`strace -c -f` attached to each proxy's serving process(es) (nginx: the worker; HAProxy: "
        f"its one process; Legate: legate-proxy, all threads, the idle main thread included) during "
        f"a {duration} s wrk run; calls divided by the requests wrk completed. strace stops the "
        "process at every system call, so these runs are many times slower than normal: read the "
        "counts, not the rates. Calls that depend on how busy the proxy is (epoll_wait: how many "
        "events one wake-up collects) come out lower here than at full speed.\n"
    )
    for mode, title in MODES:
        per_req[mode] = {}
        reqs = {}
        for t in TARGETS:
            w = wrk_result(os.path.join(raw, f"strace-{mode}-{t}.wrk"))
            counts = strace_counts(os.path.join(raw, f"strace-{mode}-{t}.txt"))
            reqs[t] = w["requests"] if w else 0
            per_req[mode][t] = {k: v / reqs[t] for k, v in counts.items()} if reqs[t] else {}
        out.append(f"### {title}\n")
        out.append("| system call | " + " | ".join(NAMES[t] for t in TARGETS) + " |")
        out.append("|---|" + "---:|" * len(TARGETS))
        names = set()
        for t in TARGETS:
            names |= set(per_req[mode][t]) - {"total"}
        order = sorted(names, key=lambda n: (-max(per_req[mode][t].get(n, 0) for t in TARGETS), n))
        for n in order:
            out.append(f"| {n} | " + " | ".join(fmt_per_req(per_req[mode][t].get(n)) for t in TARGETS) + " |")
        out.append("| **total** | " + " | ".join(
            f"**{fmt_per_req(per_req[mode][t].get('total'))}**" for t in TARGETS) + " |")
        out.append("| requests (under strace) | " + " | ".join(f"{reqs[t]:,}" for t in TARGETS) + " |")
        out.append("")
    return per_req


def section_syscall_cost(raw, out):
    with open(os.path.join(raw, "syscall_ns.txt"), encoding="utf-8") as f:
        runs = [float(x) for x in f.read().split()]
    # Other load on the machine can only add time to a run: the fastest run is the cost.
    ns = min(runs)
    out.append("## 3. The cost of one system call\n")
    out.append(
        "A C program compiled at run time (`cc -O2`) times 1 000 000 `syscall(SYS_getppid)` on "
        "the proxies' CPU: a system call that does no work, so this is the bare price of entering "
        "and leaving the kernel. Other processes on the machine can only make a run slower, so "
        "the fastest run is taken as the cost.\n"
    )
    out.append(
        f"- **{ns:.0f} ns per system call** (fastest of {len(runs)} runs: "
        f"{', '.join(f'{r:.0f}' for r in runs)} ns)"
    )
    out.append(
        "- On bare metal this is typically 50–100 ns. Several hundred ns or more means a "
        "virtualised guest whose system call path is slow, and then the number of system calls "
        "per request weighs more than anything done in user space.\n"
    )
    return ns


def section_cpu(raw, meta, out):
    """Section 4; returns {target: (user µs/req, sys µs/req, req/s)} medians."""
    hz = float(meta["clk_tck"])
    runs = {t: [] for t in TARGETS}
    with open(os.path.join(raw, "cpu.txt"), encoding="utf-8") as f:
        for line in f:
            t, rnd, u0, s0, u1, s1, wrkfile = line.split()
            w = wrk_result(wrkfile)
            if not w or not w["requests"]:
                continue
            n = w["requests"]
            user = (int(u1) - int(u0)) / hz * 1e6 / n
            sys_ = (int(s1) - int(s0)) / hz * 1e6 / n
            runs[t].append((int(rnd), user, sys_, n / (w["duration_us"] / 1e6)))
    out.append("## 4. CPU per request, user and system\n")
    out.append(
        f"utime and stime of the proxy's processes (all threads, `/proc/PID/stat`, {meta['clk_tck']} "
        "ticks/s) before and after a keep-alive wrk -t1 -c32 run, divided by the requests served. "
        f"{meta['rounds']} round(s), targets alternated (order rotated every round); the table "
        "shows the median of each column, the runs are listed below it.\n"
    )
    out.append("| proxy | user µs/req | system µs/req | total µs/req | system share | req/s |")
    out.append("|---|---:|---:|---:|---:|---:|")
    med = {}
    for t in TARGETS:
        if not runs[t]:
            out.append(f"| {NAMES[t]} | – | – | – | – | – |")
            continue
        u = statistics.median(r[1] for r in runs[t])
        s = statistics.median(r[2] for r in runs[t])
        tot = statistics.median(r[1] + r[2] for r in runs[t])
        rps = statistics.median(r[3] for r in runs[t])
        med[t] = (u, s, tot, rps)
        out.append(f"| {NAMES[t]} | {u:.1f} | {s:.1f} | {tot:.1f} | {pct(s, u + s):.0f} % | {rps:,.0f} |")
    out.append("")
    out.append("Runs: " + "; ".join(
        f"{NAMES[t]} r{r[0]} {r[1]:.1f}+{r[2]:.1f} µs ({r[3]:,.0f} req/s)"
        for t in TARGETS for r in sorted(runs[t])) + ".\n")
    return med


def section_perf(raw, meta, out):
    """Section 5; returns {target: kernel share %}."""
    out.append("## 5. perf: kernel and user samples\n")
    if meta.get("have_perf") != "1":
        out.append("Skipped: perf is not available here (see the notes above).\n")
        return {}
    reports = {t: perf_report(os.path.join(raw, f"perf-{t}.txt")) for t in TARGETS}
    events = sorted({r[2] for r in reports.values() if r[2]})
    text = (
        f"`perf record -g -p PID` of each proxy's serving process(es) for {meta['duration']} s of "
        f"keep-alive wrk -t1 -c32 load, sampling `{', '.join(events) or '?'}`. Kernel share = "
        "samples in the kernel (`[k]`) / all samples of the process. A sample that falls due near "
        "the end of a system call can land on the first user instruction after it, in the libc "
        "wrapper (`read`, `__GI___writev`): the kernel share is a lower bound."
    )
    if any("cpu-clock" in e for e in events):
        text += " `cpu-clock` is a software timer: this machine offers perf no hardware counters."
    if any("irq_enable" in r[3] for r in reports["legate"][0][:TOP]):
        text += (
            " In this paravirtualised guest the timer interrupt is taken only when the kernel "
            "enables interrupts again, so samples of kernel code that runs with interrupts off pile "
            "up on the re-enabling function (`pvm_irq_enable` and the like): read that row as "
            "kernel work in general, not as one hot function."
        )
    out.append(text + "\n")
    share = {}
    out.append("| proxy | samples | kernel | user |")
    out.append("|---|---:|---:|---:|")
    for t in TARGETS:
        rows, samples, _ = reports[t]
        total = sum(r[0] for r in rows)
        if not total:
            out.append(f"| {NAMES[t]} | {samples} | – | – |")
            continue
        share[t] = pct(sum(r[0] for r in rows if r[2] == "k"), total)
        out.append(f"| {NAMES[t]} | {samples} | {share[t]:.0f} % | {100 - share[t]:.0f} % |")
    out.append("")
    out.append(
        f"Top {TOP} symbols of legate-proxy (`perf report --no-children --sort dso,sym --stdio "
        "-g none`; `[k]` kernel, `[.]` user space):\n"
    )
    out.append("| self | object | | symbol |")
    out.append("|---:|---|---|---|")
    for p, dso, mode, sym in reports["legate"][0][:TOP]:
        out.append(f"| {p:.2f} % | {dso} | [{mode}] | `{sym}` |")
    out.append("")
    return share


def section_callgrind(raw, meta, out):
    """Section 6; returns (instructions per request, [(Ir/req, function, share %)]) or None."""
    out.append("## 6. callgrind: instructions per request in legate-proxy\n")
    path = os.path.join(raw, "callgrind.txt")
    w = wrk_result(os.path.join(raw, "callgrind.wrk"))
    if meta.get("have_valgrind") != "1" or not os.path.exists(path) or not w:
        out.append("Skipped or failed: see the notes above.\n")
        return None
    total, funcs = callgrind_functions(path)
    n = w["requests"]
    if not total or not n:
        out.append(f"No usable callgrind data ({n} requests, total Ir {total}); see the raw output.\n")
        return None
    ir = total / n
    out.append(
        f"legate-proxy (the same frozen binary, same flags) under `valgrind --tool=callgrind`; after "
        f"a 1 s warm-up the counters are zeroed (`callgrind_control -z`), wrk -t1 -c32 runs for "
        f"{meta['cg_duration']} s, and the counters are dumped (`callgrind_control -d`). Both "
        "threads are counted; the main thread is idle during the run.\n"
    )
    out.append(
        f"- requests: {n:,} in {w['duration_us'] / 1e6:.1f} s ({n / (w['duration_us'] / 1e6):,.0f} req/s: "
        "valgrind slows the proxy down; the count per request is what matters)"
    )
    out.append(f"- instructions (Ir): {total:,}")
    out.append(f"- **{ir:,.0f} instructions per request** in user space (kernel work is not counted)\n")
    out.append(f"Top {TOP} functions by self Ir (`callgrind_annotate`):\n")
    out.append("| self Ir | share | Ir/req | function | file | object |")
    out.append("|---:|---:|---:|---|---|---|")
    for cost, fn, file, obj in funcs[:TOP]:
        out.append(f"| {cost:,} | {pct(cost, total):.1f} % | {cost / n:,.0f} | `{fn}` | {file} | {obj} |")
    out.append("")
    return ir, [(cost / n, fn, pct(cost, total)) for cost, fn, _, _ in funcs[:TOP]]


def totals(sc, mode):
    """'Legate 4.10, nginx 5.10, ...': total calls per request in MODE."""
    return ", ".join(
        f"{NAMES[t]} {sc[mode][t]['total']:.2f}" for t in TARGETS if sc[mode].get(t, {}).get("total")
    )


def legate_extra_calls(sc, mode):
    """Calls Legate makes at least 0.25 per request more often than the more frugal other proxy."""
    grouped = {t: group_calls(sc[mode].get(t, {})) for t in TARGETS}
    others = [t for t in TARGETS if t != "legate" and grouped[t]]
    more = []
    for name, v in sorted(grouped["legate"].items(), key=lambda kv: -kv[1]):
        best = min(others, key=lambda t: grouped[t].get(name, 0)) if others else None
        if best and v - grouped[best].get(name, 0) >= 0.25:
            more.append(f"{name} {v:.2f} (vs {NAMES[best]} {fmt_per_req(grouped[best].get(name))})")
    return ", ".join(more) if more else "nowhere"


def section_reading(sc, ns, cpu, kshare, cg, out):
    out.append("## 7. Reading\n")
    out.append(
        f"- System calls per request, keep-alive: {totals(sc, 'ka')}; "
        f"with `Connection: close`: {totals(sc, 'close')}."
    )
    lg = sc["ka"].get("legate", {})
    if lg.get("total"):
        g = group_calls(lg)
        reads, writes = g.get("socket reads", 0), g.get("socket writes", 0)
        polls = sum(v for k, v in g.items() if k.startswith("epoll"))
        rest = fmt_per_req(lg["total"] - reads - writes - polls)
        out.append(
            f"- Of Legate's {lg['total']:.2f} calls per keep-alive request, {reads:.2f} are socket "
            f"reads and {writes:.2f} socket writes (client and upstream side together), "
            f"{polls:.2f} are epoll calls; the rest ({rest}) is connection setup and teardown "
            "spread over the run."
        )
    for mode, title in MODES:
        out.append(
            f"- {title}: where Legate makes at least 0.25 calls per request more than the more "
            "frugal of nginx and HAProxy (socket reads and writes grouped over their variants): "
            f"{legate_extra_calls(sc, mode)}."
        )
    both = [t for t in TARGETS if t in cpu and sc["ka"].get(t, {}).get("total")]
    if both:
        entry = {t: sc["ka"][t]["total"] * ns / 1000 for t in both}
        out.append(
            f"- One system call costs {ns:.0f} ns here. System calls × that price, against the CPU "
            "time per request measured in section 4: "
            + ", ".join(
                f"{NAMES[t]} {sc['ka'][t]['total']:.2f} × {ns:.0f} ns = {entry[t]:.1f} µs of "
                f"{cpu[t][2]:.1f} µs ({pct(entry[t], cpu[t][2]):.0f} %)"
                for t in both
            )
            + ". That is only the price of entering and leaving the kernel; the work done inside "
            "(TCP, epoll) comes on top."
        )
        kernel = ", ".join(f"{kshare[t]:.0f} % of {NAMES[t]}'s samples" for t in TARGETS if t in kshare)
        out.append(
            "- System time is "
            + ", ".join(f"{pct(cpu[t][1], cpu[t][0] + cpu[t][1]):.0f} % of {NAMES[t]}'s CPU per request"
                        for t in both)
            + (f"; perf puts {kernel} in the kernel." if kernel else ".")
        )
    if cg and "legate" in cpu:
        user, system = cpu["legate"][0], cpu["legate"][1]
        out.append(
            f"- In user space Legate executes {cg[0]:,.0f} instructions per request (section 6) and "
            f"spends {user:.1f} µs per request there"
            + (
                ": user space is the smaller part, and a cut in instructions moves the total less "
                "than a cut in system calls."
                if user < system
                else "."
            )
        )
    if cg and cg[1]:
        out.append(
            "- The user-space functions with the most instructions per request: "
            + ", ".join(f"`{fn}` {cost:,.0f} ({share:.0f} %)" for cost, fn, share in cg[1][:5])
            + "."
        )
    out.append("")
    out.append("### What would remove the rest\n")
    out.append(
        "Each proxied keep-alive request costs at least four socket system calls: read the request "
        "from the client, write it to the upstream, read the response, write it to the client. "
        "All three proxies make them (section 2), they carry almost all of the system time of "
        "section 4, and no change in user space removes them. The next step is to batch the "
        "socket reads and writes of one event-loop iteration through io_uring: queue them as "
        "submission entries and submit them and reap their completions with one `io_uring_enter` "
        "per loop iteration, instead of about four system calls per request. Under load, where "
        "one iteration serves many requests, that divides the kernel entries per request by the "
        "number of requests per iteration. It removes the price of entering and leaving the "
        "kernel (the \"system calls × price\" share above), not the TCP work done inside. This is "
        "stated as the next step only; it is not implemented."
    )
    out.append("")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--raw", required=True, help="the work dir's profile/ folder")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    meta = read_meta(os.path.join(a.raw, "meta.txt"))
    out = []
    section_header(meta, a.raw, out)
    sc = section_syscalls(a.raw, meta["duration"], out)
    ns = section_syscall_cost(a.raw, out)
    cpu = section_cpu(a.raw, meta, out)
    kshare = section_perf(a.raw, meta, out)
    cg = section_callgrind(a.raw, meta, out)
    section_reading(sc, ns, cpu, kshare, cg, out)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write("\n".join(out))


if __name__ == "__main__":
    main()
