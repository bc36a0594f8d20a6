#!/usr/bin/env bash
# Runs every test: formatting and lints, the Rust unit/property/wire tests, and the integration
# tests that drive the real broker with third-party Kafka clients (kcat, confluent-kafka,
# kafka-python, kafkajs; `.ci/run` installs them). One release build serves all of them.
# Exits non-zero on the first failing stage.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -d "${HOME:-/root}/.cargo/bin" ]]; then export PATH="${HOME:-/root}/.cargo/bin:$PATH"; fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --release --workspace --all-targets -- -D warnings
echo "== build"
cargo build --release --workspace --bins --examples
echo "== Rust tests"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --release --workspace --no-fail-fast
  # nextest does not run doc tests
  cargo test --release --workspace --doc
else
  cargo test --release --workspace
fi
echo "== integration tests"
# A hung test must not eat CI's whole budget: the suite takes a few minutes, 25 is the ceiling.
BROOK_BIN="$PWD/target/release/brook" timeout --kill-after=30 1500 \
  python3 -m pytest tests/integration -q -ra --durations=10 -p no:cacheprovider
