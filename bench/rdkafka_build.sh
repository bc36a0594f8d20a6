# Sourced by bench scripts: builds librdkafka's examples/rdkafka_performance from the librdkafka
# source shipped inside the rdkafka-sys crate (crates.io), cached in $1 (bench/.build).
#
#   . bench/rdkafka_build.sh; ensure_rdkafka_performance "$BUILD"   # sets PERF, LIBRDKAFKA_VERSION
# (used by bench/run.sh and bench/clients.sh)
RDK_CRATE=rdkafka-sys
RDK_VERSION=4.10.0

ensure_rdkafka_performance() {
  local build=$1 src
  PERF=$build/rdkafka_performance
  mkdir -p "$build"
  if [ ! -x "$PERF" ]; then
    echo "== building rdkafka_performance from the $RDK_CRATE $RDK_VERSION crate's librdkafka" >&2
    for pkg in gcc make zlib1g-dev; do
      dpkg -s "$pkg" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$pkg"; }
    done
    mkdir -p "$build/fetch/src"
    cat > "$build/fetch/Cargo.toml" <<TOML
[package]
name = "fetch-rdkafka-sys"
version = "0.0.0"
edition = "2021"
publish = false
[dependencies]
$RDK_CRATE = "=$RDK_VERSION"
[workspace]
TOML
    echo 'fn main() {}' > "$build/fetch/src/main.rs"
    (cd "$build/fetch" && cargo fetch -q)
    src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$RDK_CRATE-$RDK_VERSION"*/librdkafka | head -1)
    rm -rf "$build/librdkafka" && cp -r "$src" "$build/librdkafka"
    (cd "$build/librdkafka" \
       && ./configure --disable-ssl --disable-gssapi --disable-curl --disable-zstd \
            --disable-lz4-ext > "$build/librdkafka-configure.log" 2>&1 \
       && make -j"$(nproc)" libs > "$build/librdkafka-make.log" 2>&1 \
       && make -C examples rdkafka_performance >> "$build/librdkafka-make.log" 2>&1) \
      || { echo "building librdkafka failed; see $build/librdkafka-*.log" >&2; return 1; }
    cp "$build/librdkafka/examples/rdkafka_performance" "$PERF"
  fi
  LIBRDKAFKA_VERSION=$(sed -n 's/^#define RD_KAFKA_VERSION *0x\(..\)\(..\)\(..\).*/\1 \2 \3/p' \
    "$build/librdkafka/src/rdkafka.h" | { read -r a b c; echo "$((16#$a)).$((16#$b)).$((16#$c))"; })
}
