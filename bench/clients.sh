#!/usr/bin/env bash
# Brook's Rust client against librdkafka, one command:
#
#   bash bench/clients.sh              # 3 repetitions of 500,000 x 1 KiB records; writes bench/clients.md
#   N=100000 REPS=1 bash bench/clients.sh
#
# Builds `brook` (release) and librdkafka's rdkafka_performance (bench/rdkafka_build.sh, cached in
# bench/.build), starts one Brook broker on a temporary directory and a free port, and per
# repetition measures on fresh one-partition topics:
#   producer  brook kafka-producer-perf-test  vs  rdkafka_performance -P
#             N records of 1 KiB, no key, acks=1, linger.ms=5, batch.size=1000000, no compression
#             (both report the rate at which records are acknowledged)
#   consumer  brook kafka-consumer-perf-test  vs  rdkafka_performance -C
#             the same N records of the same topic from offset 0 (the topic librdkafka produced);
#             the Rust figure is fetch.nMsg.sec, Kafka's rate without the group join (librdkafka's
#             -C -p 0 joins no group), after a sync so both read from the page cache
# plus each client's CPU time (user+sys, /usr/bin/time), which says more than the rate on a
# machine whose cores are shared with other work. Medians over the repetitions; MB = 10^6 bytes of
# record payload (as rdkafka_performance counts).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BENCH_BUILD:-$ROOT/bench/.build}
REPS=${REPS:-3}
N=${N:-500000}
SIZE=1024
STEP_TIMEOUT=${STEP_TIMEOUT:-180}
log() { echo "== $*" >&2; }

log "building brook (release)"
cargo build --release -q -p brook-cli
BROOK=$ROOT/target/release/brook
. "$ROOT/bench/rdkafka_build.sh"
ensure_rdkafka_performance "$BUILD"

TMP=$(mktemp -d /tmp/brook-clients.XXXXXX)
BROKER_PID=
cleanup() {
  if [ -n "$BROKER_PID" ]; then kill -TERM "$BROKER_PID" 2>/dev/null || true; wait "$BROKER_PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$BROOK" broker --override listeners=PLAINTEXT://127.0.0.1:0 --override "log.dirs=$TMP/data" \
  --override num.partitions=1 --override group.initial.rebalance.delay.ms=0 \
  > "$TMP/broker.out" 2> "$TMP/broker.err" &
BROKER_PID=$!
for _ in $(seq 1000); do grep -q "listening on" "$TMP/broker.out" 2>/dev/null && break; sleep 0.01; done
BS=$(grep -o 'PLAINTEXT://[0-9.]*:[0-9]*' "$TMP/broker.out" | head -1 | sed 's|PLAINTEXT://||')
[ -n "$BS" ] || { echo "brook did not start" >&2; cat "$TMP/broker.err" >&2; exit 1; }
python3 bench/kwire.py wait "$BS" 30
log "broker on $BS; $REPS repetitions of $N x $SIZE B"

ROWS=$TMP/rows.tsv
: > "$ROWS"
# run CLIENT WHAT CMD...: runs the step under /usr/bin/time; prints the name of its output file
run() {
  local client=$1 what=$2; shift 2
  local out=$TMP/$client-$what.out
  rm -f "$TMP/cpu"
  timeout "$STEP_TIMEOUT" /usr/bin/time -f "CPU %U %S" -o "$TMP/cpu" "$@" > "$out" 2>&1 || true
  cat "$TMP/cpu" >> "$out" 2>/dev/null || true
  echo "$out"
}
cpu_of() { awk '/^CPU / {printf "%.2f", $2 + $3; found = 1} END {if (!found) print "NA"}' "$1"; }
row() {  # client what rep msgs/s cpu_s
  local mb
  mb=$(awk -v r="$4" -v s="$SIZE" 'BEGIN {if (r == "NA") print "NA"; else printf "%.1f", r * s / 1e6}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$mb" "$5" >> "$ROWS"
  echo "   rep $3 $2 $1: $4 records/s, $mb MB/s, client CPU $5 s" >&2
}

produce_rust() {  # rep topic
  local out rate
  out=$(run rust produce "$BROOK" kafka-producer-perf-test --topic "$2" --num-records "$N" \
    --record-size "$SIZE" --throughput -1 --bootstrap-server "$BS" \
    --producer-props acks=1 linger.ms=5 batch.size=1000000 compression.type=none)
  rate=$(sed -nE "s/^$N records sent, ([0-9.]+) records\/sec.* 99\.9th\.$/\1/p" "$out")
  [ -n "$rate" ] || { echo "   rust produce FAILED:" >&2; tail -3 "$out" >&2; rate=NA; }
  row rust produce "$1" "$rate" "$(cpu_of "$out")"
}

produce_rdkafka() {  # rep topic
  local out rate
  out=$(run librdkafka produce "$PERF" -P -t "$2" -b "$BS" -s "$SIZE" -c "$N" -q \
    -X acks=1 -X linger.ms=5 -X batch.size=1000000 -X compression.codec=none \
    -X queue.buffering.max.kbytes=1048576)
  rate=$(sed -nE 's/.*delivered .* ([0-9]+) msgs\/s and [0-9.]+ MB\/s.*/\1/p' "$out" | tail -1)
  grep -qE "messages produced .*, $N delivered .* 0 failed" "$out" || rate=""
  [ -n "$rate" ] || { echo "   librdkafka produce FAILED:" >&2; tail -3 "$out" >&2; rate=NA; }
  row librdkafka produce "$1" "$rate" "$(cpu_of "$out")"
}

consume_rust() {  # rep topic
  local out line rate
  out=$(run rust consume "$BROOK" kafka-consumer-perf-test --topic "$2" --messages "$N" \
    --bootstrap-server "$BS" --group "bench-$2-$RANDOM" --timeout 30000)
  # start, end, MB, MB.sec, nMsg, nMsg.sec, rebalance.ms, fetch.ms, fetch.MB.sec, fetch.nMsg.sec
  line=$(grep -E '^[0-9]{4}-.*, [0-9]+\.[0-9]{4}$' "$out" | tail -1 || true)
  rate=$(awk -F', ' -v n="$N" '$5 >= n {printf "%.0f", $10}' <<< "$line")
  [ -n "$rate" ] || { echo "   rust consume FAILED:" >&2; tail -3 "$out" >&2; rate=NA; }
  row rust consume "$1" "$rate" "$(cpu_of "$out")"
}

consume_rdkafka() {  # rep topic
  local out rate
  out=$(run librdkafka consume "$PERF" -C -t "$2" -b "$BS" -p 0 -o beginning -c "$N" -q)
  rate=$(sed -nE 's/.*consumed in .* ([0-9]+) msgs\/s \([0-9.]+ MB\/s\).*/\1/p' "$out" | tail -1)
  [ "$(sed -nE 's/^% ([0-9]+) messages .*consumed.*/\1/p' "$out" | tail -1)" -ge "$N" ] 2>/dev/null \
    || rate=""
  [ -n "$rate" ] || { echo "   librdkafka consume FAILED:" >&2; tail -3 "$out" >&2; rate=NA; }
  row librdkafka consume "$1" "$rate" "$(cpu_of "$out")"
}

for rep in $(seq "$REPS"); do
  t_rust=clients-rust-$rep-$$; t_rdk=clients-rdk-$rep-$$
  # create both topics (auto-creation) outside the timed runs, with one 1-byte record each
  for t in "$t_rust" "$t_rdk"; do
    timeout 30 "$PERF" -P -t "$t" -b "$BS" -s 1 -c 1 -p 0 -q > /dev/null 2>&1 || true
  done
  # alternate which client goes first, so that neither always meets a fresher page cache
  if [ $((rep % 2)) = 1 ]; then
    produce_rust "$rep" "$t_rust"; produce_rdkafka "$rep" "$t_rdk"
  else
    produce_rdkafka "$rep" "$t_rdk"; produce_rust "$rep" "$t_rust"
  fi
  sync
  if [ $((rep % 2)) = 1 ]; then
    consume_rust "$rep" "$t_rdk"; consume_rdkafka "$rep" "$t_rdk"
  else
    consume_rdkafka "$rep" "$t_rdk"; consume_rust "$rep" "$t_rdk"
  fi
done

python3 - "$ROWS" "$N" "$SIZE" "$REPS" "$LIBRDKAFKA_VERSION" \
  "$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- crates 2>/dev/null || echo '+dirty')" \
  "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY' | tee bench/clients.md
import statistics, sys, time
rows, n, size, reps, rdk, commit, nproc, load = sys.argv[1:]
data = {}
for line in open(rows):
    client, what, rep, rate, mb, cpu = line.rstrip("\n").split("\t")
    data.setdefault((client, what), []).append((rate, mb, cpu))
def med(vals):
    vals = [float(v) for v in vals if v not in ("NA", "")]
    return statistics.median(vals) if vals else None
def fmt(v, d=1):
    return "n/a" if v is None else f"{v:,.{d}f}"
print("# Brook's Rust client vs librdkafka\n")
print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {nproc} cores (shared; load at the end {load}); "
      f"Brook {commit}; librdkafka {rdk}; one Brook broker (release), one-partition topics; "
      f"{int(n):,} records of {size} B per run; median of {reps} repetitions "
      f"(`bash bench/clients.sh`). MB = 10^6 bytes of payload.\n")
print("| step | Rust (brook kafka-*-perf-test) MB/s | librdkafka (rdkafka_performance) MB/s | Rust / librdkafka (medians) | median of per-run ratios | Rust CPU s | librdkafka CPU s | runs (Rust; librdkafka MB/s) |")
print("|---|---:|---:|---:|---:|---:|---:|---|")
for what, label in (("produce", "producer, acks=1, linger.ms=5"), ("consume", "consumer, from offset 0")):
    r = data.get(("rust", what), []); l = data.get(("librdkafka", what), [])
    rm, lm = med(x[1] for x in r), med(x[1] for x in l)
    ratio = f"{100 * rm / lm:.0f} %" if rm and lm else "n/a"
    runs = ", ".join(x[1] for x in r) + "; " + ", ".join(x[1] for x in l)
    # each repetition runs both clients back to back: their ratio cancels most of the load noise
    paired = med(float(a[1]) / float(b[1]) for a, b in zip(r, l)
                 if a[1] != "NA" and b[1] != "NA" and float(b[1]) > 0)
    paired = "n/a" if paired is None else f"{100 * paired:.0f} %"
    print(f"| {label} | {fmt(rm)} | {fmt(lm)} | {ratio} | {paired} | {fmt(med(x[2] for x in r), 2)} | "
          f"{fmt(med(x[2] for x in l), 2)} | {runs} |")
print("\nThe Rust consumer's figure is fetch.nMsg.sec (without the group join, which librdkafka's "
      "`-C -p 0` does not do); CPU is the client process's user+sys time for the whole run, "
      "start-up and connection included.")
PY
