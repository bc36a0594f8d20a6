#!/usr/bin/env python3
"""Brook's cluster benchmark: one command, builds nothing (uses target/release/brook, or
$BROOK_BIN), about 4 minutes on 2 cores (and about 40 GB of free disk with REPS=5).

    python3 bench/cluster.py            # writes bench/cluster.md and prints it
    REPS=1 python3 bench/cluster.py     # one repetition of each measurement

Load generator and clients: confluent-kafka (librdkafka), as the integration tests use; for the
throughput figures librdkafka's rdkafka_performance instead when `bash bench/run.sh` has built it
in bench/.build (or $RDKAFKA_PERFORMANCE names one), as a Python produce loop can be slower than
one broker. Everything
runs on this machine on 127.0.0.1: three combined broker+controller nodes started from
properties files by the integration tests' harness (tests/integration/cluster.py, with
`brook dev-cluster`'s fast-failover settings: broker.session.timeout.ms=2000,
broker.heartbeat.interval.ms=250), and a single broker as the baseline, measured in the same run.

  (i)   produce throughput, 1 KiB records, one partition, linger.ms=5, no compression:
        single broker acks=1 (RF 1) vs three brokers acks=all (RF 3, min.insync.replicas=2),
        and three brokers acks=1 (RF 3) for reference. Median of REPS runs. The producer
        settings are the same for both sides (librdkafka's defaults but for linger.ms=5 and
        1 MB batches); only acks and the cluster differ. acks=all is also measured with
        librdkafka's idempotent producer, which keeps one request in flight per partition once
        a batch holds 5 or more records (rdkafka_broker.c subtracts the in-flight *message*
        count from RD_KAFKA_IDEMP_MAX_INFLIGHT), so that figure is one 1 MB batch per round
        trip; it also busy-polls a core meanwhile. Brook's own kafka-producer-perf-test, whose
        idempotent producer keeps up to 5 requests in flight per partition as the Java producer
        does, measures the idempotent case without that limit (and its acks=1 single-broker
        figure is its baseline).

        Memory is prepared first (BENCH_COLD=1 skips it): a file in /dev/shm takes all but
        12 GiB, and a file on disk written and synced fills all but 2 GiB of the rest with clean
        page cache; one warm-up round (WARMUP=1) then runs every series once, uncounted. After it
        the page cache is full and recycles its pages, as on a broker host in steady state. On
        this VM freed memory goes back to the host within seconds (virtio-balloon free page
        reporting), and the first write into such a page costs about 1.7 s of CPU per GB, several
        times a write into a page the guest recycles; without this every figure drifts with the
        VM's memory state (up to 3x between runs), and RF 3, which writes three times the bytes,
        pays three times the penalty. The 12 GiB matter: the kernel's dirty-page limits are a
        share of the memory that can hold page cache (20%, writeback from 10%), and with only
        4 GiB left a replicated run's 1.2 GB of writes was throttled to the disk's speed while the
        single broker's 0.4 GB was not. Both setups run side by side and their runs alternate, so
        that neither gets a quieter machine or a warmer page cache.
  (ii)  end-to-end latency at 10 MB/s (10,000 records/s of 1,000 B for 10 s, linger.ms=1): the
        producer writes CLOCK_MONOTONIC into each record, a consumer in another process subtracts
        it from its receive time; p50/p99/max after a 1 s warm-up. Single broker acks=1 and three
        brokers acks=all RF 3.
  (iii) failover: an idempotent acks=all producer sends a record every 2 ms; the partition
        leader is killed with SIGKILL; the figure is the time from the kill to the first
        acknowledgement of a record sent after it. Measured for a leader that is not the active
        controller and for one that is (then the quorum elects a controller first). The node is
        restarted and the ISR refilled between repetitions; a fresh topic each time.
"""

import multiprocessing as mp
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

import confluent_kafka  # noqa: E402
from conftest import BROOK_BIN, Broker, wait_for  # noqa: E402
from cluster import DEV_DEFAULTS, Cluster  # noqa: E402

REPS = int(os.environ.get("REPS", "3"))
THROUGHPUT_RECORDS = int(os.environ.get("RECORDS", "400000"))
RECORD = 1024
LAT_RATE = 10_000  # records/s
LAT_SIZE = 1_000  # bytes: 10 MB/s
LAT_SECONDS = 10


def log(msg):
    print(f"== {msg}", file=sys.stderr, flush=True)


def create_topic(bootstrap, topic, rf, partitions=1, config=None):
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=rf,
                              config=config or {})])[topic].result(30)
    wait_for(lambda: all(p.leader >= 0 for p in
                         a.list_topics(topic, timeout=5).topics[topic].partitions.values()),
             what=f"{topic} to have a leader")


# --- (i) throughput ------------------------------------------------------------------------------

PERF = Path(os.environ.get("RDKAFKA_PERFORMANCE", ROOT / "bench" / ".build" / "rdkafka_performance"))


def throughput(bootstrap, topic, acks, idempotent=False, n=THROUGHPUT_RECORDS, size=RECORD):
    """(records/s, MB/s) for n records of `size` bytes, first produce to last acknowledgement:
    with librdkafka's rdkafka_performance when bench/run.sh has built it (Python's produce loop
    can be the bottleneck against one fast broker), else with confluent-kafka."""
    if PERF.exists():
        return throughput_perf(bootstrap, topic, acks, idempotent, n, size)
    failed = [0]

    def dr(err, _msg):
        if err is not None:
            failed[0] += 1

    p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5,
                  "batch.size": 1_000_000, "queue.buffering.max.kbytes": 1_048_576,
                  "queue.buffering.max.messages": 1_000_000, "on_delivery": dr,
                  "enable.idempotence": idempotent})
    # Warm up: the topic's metadata and the connection.
    p.produce(topic, b"w", partition=0)
    p.flush(30)
    value = os.urandom(size)
    t0 = time.monotonic()
    for i in range(n):
        while True:
            try:
                p.produce(topic, value, partition=0)
                break
            except BufferError:
                p.poll(0.01)
        if i % 5000 == 0:
            p.poll(0)
    left = p.flush(180)
    dt = time.monotonic() - t0
    if left or failed[0]:
        raise RuntimeError(f"{left} records unacknowledged, {failed[0]} failed")
    return n / dt, n * size / dt / 1e6


def throughput_brook(bootstrap, topic, acks, idempotent, n=THROUGHPUT_RECORDS, size=RECORD):
    """(records/s, MB/s) with Brook's kafka-producer-perf-test (Brook's Rust producer)."""
    import re
    out = subprocess.run([BROOK_BIN, "kafka-producer-perf-test", "--topic", topic,
                          "--num-records", str(n), "--record-size", str(size), "--throughput", "-1",
                          "--producer-props", f"bootstrap.servers={bootstrap}", f"acks={acks}",
                          f"enable.idempotence={'true' if idempotent else 'false'}", "linger.ms=5",
                          "batch.size=1000000", "buffer.memory=1073741824"],
                         capture_output=True, text=True, timeout=300).stdout
    m = re.search(rf"^{n} records sent, ([0-9.]+) records/sec", out, re.M)
    if not m:
        raise RuntimeError(f"kafka-producer-perf-test did not finish: {out[-300:]}")
    rate = float(m.group(1))
    return rate, rate * size / 1e6


def throughput_perf(bootstrap, topic, acks, idempotent, n, size):
    import re
    idem = "true" if idempotent else "false"
    out = subprocess.run([str(PERF), "-P", "-t", topic, "-b", bootstrap, "-s", str(size),
                          "-c", str(n), "-p", "0", "-q", "-X", f"acks={acks}",
                          "-X", f"enable.idempotence={idem}", "-X", "linger.ms=5",
                          "-X", "batch.size=1000000", "-X", "queue.buffering.max.kbytes=1048576"],
                         capture_output=True, text=True, timeout=300).stdout
    if not re.search(rf"messages produced .*, {n} delivered .* 0 failed", out):
        raise RuntimeError(f"rdkafka_performance did not deliver every record: {out[-300:]}")
    m = re.findall(r"delivered .* ([0-9]+) msgs/s and ([0-9.]+) MB/s", out)[-1]
    return float(m[0]), float(m[1])


# --- (ii) end-to-end latency ---------------------------------------------------------------------

def _latency_consumer(bootstrap, topic, start_offset, expected, out, ready):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-latency",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 100})
    c.assign([TopicPartition(topic, 0, start_offset)])
    ready.set()
    lat = []
    deadline = time.monotonic() + LAT_SECONDS + 60
    while len(lat) < expected and time.monotonic() < deadline:
        # poll() hands over each record as soon as it is fetched (consume(n) would wait for n).
        m = c.poll(0.2)
        if m is not None:
            if m.error():
                continue
            now = time.monotonic_ns()
            sent = struct.unpack(">q", m.value()[:8])[0]
            lat.append((sent, (now - sent) / 1e6))
    c.close()
    out.put(lat)


def e2e_latency(bootstrap, topic, acks):
    """{p50, p99, max} in ms and the offered MB/s."""
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-probe"})
    start = probe.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    probe.close()
    total = LAT_RATE * LAT_SECONDS
    ctx = mp.get_context("spawn")
    out, ready = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_latency_consumer, args=(bootstrap, topic, start, total, out, ready))
    proc.start()
    ready.wait(30)
    time.sleep(1)  # let the consumer's first fetch reach the broker (it then long-polls)
    p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 1,
                  "enable.idempotence": acks == "all"})
    pad = os.urandom(LAT_SIZE - 8)
    tick = 0.005
    per_tick = int(LAT_RATE * tick)
    t0 = time.monotonic()
    sent = 0
    while sent < total:
        target = t0 + (sent // per_tick) * tick
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        for _ in range(per_tick):
            p.produce(topic, struct.pack(">q", time.monotonic_ns()) + pad, partition=0)
        sent += per_tick
        p.poll(0)
    p.flush(60)
    offered = total * LAT_SIZE / (time.monotonic() - t0) / 1e6
    lat = out.get(timeout=LAT_SECONDS + 90)
    proc.join(10)
    if len(lat) < total:
        raise RuntimeError(f"consumer received {len(lat)} of {total} records")
    first = min(s for s, _ in lat)
    steady = sorted(ms for s, ms in lat if s - first > 1e9)
    q = statistics.quantiles(steady, n=100)
    return {"p50": q[49], "p99": q[98], "max": steady[-1], "mbs": offered}


# --- (iii) failover ------------------------------------------------------------------------------

def failover_once(cluster, topic, kill_controller):
    """A fresh RF 3 topic led by the active controller (kill_controller) or by another node."""
    controller = wait_for(lambda: cluster.controller_id(), what="an active controller")
    others = [nd.id for nd in cluster.nodes if nd.id != controller]
    assignment = [controller] + others if kill_controller else [others[0], controller, others[1]]
    a = AdminClient({"bootstrap.servers": cluster.bootstrap})
    a.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[assignment])])[
        topic].result(30)
    cluster.wait_for_isr(topic, 0, set(assignment))
    leader = cluster.wait_for_leader(topic, 0)
    assert leader == assignment[0], (leader, assignment)
    acks = []  # (send time, ack time)
    stop = threading.Event()

    def run():
        p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all",
                      "enable.idempotence": True, "linger.ms": 0, "message.timeout.ms": 60000,
                      "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 200,
                      "topic.metadata.refresh.interval.ms": 1000, "retry.backoff.ms": 20,
                      "retry.backoff.max.ms": 200})
        while not stop.is_set():
            sent = time.monotonic()
            p.produce(topic, b"f", partition=0,
                      on_delivery=lambda err, _m, s=sent: (
                          err is None and acks.append((s, time.monotonic()))))
            p.poll(0.002)
        p.flush(60)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        wait_for(lambda: len(acks) > 200, timeout=30, what="steady acknowledgements")
        t_kill = time.monotonic()
        cluster.node(leader).kill9()
        cluster.wait_for_leader(topic, 0, exclude={leader}, timeout=60)
        elected = time.monotonic() - t_kill  # as seen by polling Metadata every 0.1 s
        first = wait_for(lambda: next((a for s, a in list(acks) if s > t_kill), None),
                         timeout=60, interval=0.005,
                         what=f"an acknowledgement after killing leader {leader}")
        return first - t_kill, leader, elected
    finally:
        stop.set()
        t.join(90)
        cluster.node(leader).start()
        cluster.wait_registered()
        cluster.wait_for_isr(topic, 0, {1, 2, 3}, timeout=60)


# --- the run -------------------------------------------------------------------------------------

def attempt(results, key, fn, *args):
    try:
        results[key] = fn(*args)
    except Exception as e:  # noqa: BLE001 - the table says what failed
        results[key] = None
        results.setdefault("errors", []).append(f"{key}: {e}".splitlines()[0][:300])
        traceback.print_exc(file=sys.stderr)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fill_file(path, meminfo_key, leave, keep_free_space):
    """Writes zeros to `path` until /proc/meminfo's `meminfo_key` shows only `leave` bytes, keeping
    `keep_free_space` bytes free on its filesystem (see the module doc); returns the size."""
    kb = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith(meminfo_key + ":"))
    fs = os.statvfs(path.parent)
    size = min(kb * 1024 - leave, fs.f_bavail * fs.f_frsize - keep_free_space)
    if size <= 0:
        return 0
    chunk = bytes(1 << 20)
    with open(path, "wb") as f:
        for _ in range(size >> 20):
            f.write(chunk)
    os.sync()
    return size


def main():
    if not Path(BROOK_BIN).exists():
        sys.exit(f"{BROOK_BIN} is missing: run `cargo build --release -p brook-cli` first")
    t_begin = time.monotonic()
    load_begin = open("/proc/loadavg").read().split()[:3]
    tmp = Path(tempfile.mkdtemp(prefix="brook-bench-cluster-"))
    res = {}

    single = cluster = None
    filler = Path("/dev/shm") / f"brook-bench-filler-{os.getpid()}"
    cache_filler = tmp / "page-cache-filler"
    try:
        if os.environ.get("BENCH_COLD") != "1" and filler.parent.is_dir():
            t = time.monotonic()
            # tmpfs takes all but 12 GiB; a synced disk file makes most of the rest clean cache.
            res["filler_gb"] = fill_file(filler, "MemAvailable", 12 << 30, 256 << 20) / (1 << 30)
            res["cache_gb"] = fill_file(cache_filler, "MemFree", 2 << 30, 40 << 30) / (1 << 30)
            log(f"{res['filler_gb']:.1f} GiB of memory occupied, {res['cache_gb']:.1f} GiB of "
                f"clean page cache, in {time.monotonic() - t:.0f} s")
        single = Broker(tmp / "single", {"group.initial.rebalance.delay.ms": "0"}).start()
        cluster = Cluster(3, tmp / "cluster", min_insync_replicas=2)
        log("throughput: single broker acks=1 and three brokers acks=all (RF 3, "
            "min.insync.replicas=2), alternating")
        series = {"single_tp": (single, 1, "1", False, throughput),
                  "cluster_tp_all": (cluster, 3, "all", False, throughput),
                  "cluster_tp_idem": (cluster, 3, "all", True, throughput),
                  "single_tp_brook": (single, 1, "1", False, throughput_brook),
                  "cluster_tp_brook": (cluster, 3, "all", True, throughput_brook)}
        for key in series:
            res[key] = []
        warmup = int(os.environ.get("WARMUP", "1"))
        for r in range(-warmup, REPS):
            for key, (target, rf, acks, idem, measure) in series.items():
                # A fresh topic per run, and the previous run's dirty pages written back first,
                # so that no run pays for another's writeback (as bench/run.sh does).
                topic = f"{key}{r + warmup}"
                create_topic(target.bootstrap, topic, rf)
                os.sync()
                if r < 0:
                    log(f"  {key} warm-up: {measure(target.bootstrap, topic, acks, idem)}")
                    continue
                attempt(res, f"{key}-{r}", measure, target.bootstrap, topic, acks, idem)
                res[key].append(res[f"{key}-{r}"])
                log(f"  {key} run {r}: {res[key][-1]}")
        create_topic(single.bootstrap, "lat", 1)
        attempt(res, "single_lat", e2e_latency, single.bootstrap, "lat", "1")
        log(f"  single latency: {res['single_lat']}")
        single.kill()
        single = None
        create_topic(cluster.bootstrap, "lat", 3)
        attempt(res, "cluster_lat", e2e_latency, cluster.bootstrap, "lat", "all")
        log(f"  cluster latency: {res['cluster_lat']}")
        for kind, kill_controller in (("failover", False), ("failover_ctl", True)):
            fo = []
            for r in range(REPS):
                attempt(res, f"{kind}-{r}", failover_once, cluster, f"{kind}{r}", kill_controller)
                fo.append(res[f"{kind}-{r}"])
                log(f"  {kind} run {r}: {fo[-1]}")
            res[kind] = fo
        # acks=1 last: its followers are still catching up when the producer is done, which
        # would slow whatever ran next.
        runs_one = []
        for r in range(REPS):
            create_topic(cluster.bootstrap, f"tp1{r}", 3)
            os.sync()
            attempt(res, f"c-one-{r}", throughput, cluster.bootstrap, f"tp1{r}", "1")
            runs_one.append(res[f"c-one-{r}"])
            log(f"  cluster acks=1 run {r}: {runs_one[-1]}")
        res["cluster_tp_one"] = runs_one
    except Exception as e:  # noqa: BLE001
        res.setdefault("errors", []).append(f"run: {e}".splitlines()[0][:300])
        traceback.print_exc(file=sys.stderr)
    finally:
        if single is not None:
            single.kill()
        if cluster is not None:
            cluster.close()
        filler.unlink(missing_ok=True)
        cache_filler.unlink(missing_ok=True)

    report = render(res, load_begin, time.monotonic() - t_begin)
    (ROOT / "bench" / "cluster.md").write_text(report)
    print(report)
    subprocess.run(["rm", "-rf", str(tmp)])


def fmt(x, spec):
    return "n/a" if x is None else format(x, spec)


def render(res, load_begin, seconds):
    def tp(key):
        runs = [r for r in res.get(key, []) if r is not None]
        return (median([r[0] for r in runs]) if runs else None,
                median([r[1] for r in runs]) if runs else None, len(runs))

    def spread(key):
        runs = [r[1] for r in res.get(key, []) if r is not None]
        return f" ({min(runs):.0f}–{max(runs):.0f})" if len(runs) > 1 else ""

    s_rec, s_mb, s_n = tp("single_tp")
    a_rec, a_mb, a_n = tp("cluster_tp_all")
    i_rec, i_mb, i_n = tp("cluster_tp_idem")
    bs_rec, bs_mb, bs_n = tp("single_tp_brook")
    bc_rec, bc_mb, bc_n = tp("cluster_tp_brook")
    o_rec, o_mb, o_n = tp("cluster_tp_one")
    ratio = lambda x: None if x is None or not s_rec else x / s_rec  # noqa: E731

    def paired(key, base="single_tp"):
        """Median of the per-round ratios: each cluster run against the single-broker run just
        before it, which saw the same machine state."""
        pairs = [c[0] / b[0] for c, b in zip(res.get(key, []), res.get(base, []))
                 if c is not None and b is not None and b[0]]
        return median(pairs), pairs
    sl, cl = res.get("single_lat"), res.get("cluster_lat")
    def fo_row(key, label):
        fo = [r[0] for r in res.get(key, []) if r is not None]
        elected = [r[2] for r in res.get(key, []) if r is not None]
        return (f"| failover, {label}: kill -9 → first acks=all write (s) | — | "
                f"{fmt(median(fo), '.2f')} (min {fmt(min(fo) if fo else None, '.2f')}, max "
                f"{fmt(max(fo) if fo else None, '.2f')}; new leader in Metadata after "
                f"{fmt(median(elected), '.2f')}; {len(fo)} runs) | | < 5 s |")

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", "HEAD", "--", "crates"]
                           ).returncode != 0
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "?")
    lines = [
        "# Brook cluster benchmark",
        "",
        f"`python3 bench/cluster.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"brook {commit}{'+dirty' if dirty else ''}, {os.cpu_count()} cores ({cpu}), "
        f"confluent-kafka {confluent_kafka.version()} / librdkafka "
        f"{confluent_kafka.libversion()[0]}; throughput load generator: "
        f"{'rdkafka_performance' if PERF.exists() else 'confluent-kafka'}; load average at start {' '.join(load_begin)}, "
        f"{seconds:.0f} s (load average at the end {' '.join(open('/proc/loadavg').read().split()[:3])}). "
        "All processes on this machine over loopback; three combined "
        "broker+controller nodes with broker.session.timeout.ms="
        f"{DEV_DEFAULTS['broker.session.timeout.ms']} and broker.heartbeat.interval.ms="
        f"{DEV_DEFAULTS['broker.heartbeat.interval.ms']} (`brook dev-cluster`'s settings); medians of "
        f"{REPS} runs. "
        + (f"Memory prepared first ({res['filler_gb']:.1f} GiB in /dev/shm, "
           f"{res.get('cache_gb', 0):.1f} GiB of clean page cache; see the script's doc)."
           if res.get("filler_gb") else "Memory not prepared first (BENCH_COLD=1, or no /dev/shm)."),
        "",
        "| measurement | single broker, acks=1, RF 1 | 3 brokers, acks=all, RF 3 | ratio | target |",
        "|---|---|---|---|---|",
        f"| produce, 1 KiB records, 1 partition (records/s) | "
        f"{fmt(s_rec, ',.0f')} | {fmt(a_rec, ',.0f')} | {fmt(ratio(a_rec), '.2f')} | ≥ 0.5 |",
        f"| same (MB/s, median (min–max)) | {fmt(s_mb, '.1f')}{spread('single_tp')} | "
        f"{fmt(a_mb, '.1f')}{spread('cluster_tp_all')} | "
        f"{fmt(ratio(a_rec), '.2f')} | |",
        f"| same, median of the per-round ratios ({', '.join(f'{x:.2f}' for x in paired('cluster_tp_all')[1])}) | | | "
        f"{fmt(paired('cluster_tp_all')[0], '.2f')} | ≥ 0.5 |",
        f"| produce, acks=all with librdkafka's idempotent producer (one request in flight; "
        f"MB/s) | {fmt(s_mb, '.1f')} (acks=1, as above) | {fmt(i_mb, '.1f')}"
        f"{spread('cluster_tp_idem')} | {fmt(ratio(i_rec), '.2f')} | |",
        f"| produce with Brook's kafka-producer-perf-test, acks=all idempotent (5 in flight) vs "
        f"acks=1 (MB/s) | {fmt(bs_mb, '.1f')}{spread('single_tp_brook')} | {fmt(bc_mb, '.1f')}"
        f"{spread('cluster_tp_brook')} | "
        f"{fmt(bc_rec / bs_rec if bc_rec and bs_rec else None, '.2f')} | |",
        f"| end-to-end latency p50 at 10 MB/s (ms) | {fmt(sl and sl['p50'], '.1f')} | "
        f"{fmt(cl and cl['p50'], '.1f')} | | |",
        f"| end-to-end latency p99 at 10 MB/s (ms) | {fmt(sl and sl['p99'], '.1f')} | "
        f"{fmt(cl and cl['p99'], '.1f')} | {fmt(cl and sl and cl['p99'] / sl['p99'], '.2f')} | "
        "< 20 ms |",
        f"| end-to-end latency max (ms) | {fmt(sl and sl['max'], '.1f')} | "
        f"{fmt(cl and cl['max'], '.1f')} | | |",
        fo_row("failover", "leader that is not the controller"),
        fo_row("failover_ctl", "leader that is also the active controller"),
        "",
        f"For reference, three brokers with acks=1 (RF 3): {fmt(o_rec, ',.0f')} records/s "
        f"({fmt(o_mb, '.1f')} MB/s), ratio {fmt(ratio(o_rec), '.2f')}. Successful runs: single "
        f"{s_n}/{REPS}, cluster acks=all {a_n}/{REPS}, acks=all idempotent {i_n}/{REPS}, "
        f"Brook producer single {bs_n}/{REPS} and cluster {bc_n}/{REPS}, "
        f"acks=1 {o_n}/{REPS}.",
    ]
    if res.get("errors"):
        lines += ["", "Failures:", ""] + [f"- {e}" for e in res["errors"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
