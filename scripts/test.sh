#!/usr/bin/env bash
# Runs every test: formatting and lints, the Rust unit/property/wire tests, and the integration
# tests that drive the real broker with third-party Kafka clients (kcat, confluent-kafka,
# kafka-python, kafkajs; `.ci/run` installs them). One release build serves all of them.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --release --workspace --all-targets -- -D warnings
echo "== build"
cargo build --release --workspace --bins
echo "== Rust tests"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --release --workspace --no-fail-fast
  # nextest does not run doc tests
  cargo test --release --workspace --doc
else
  cargo test --release --workspace
fi
echo "== integration tests"
BROOK_BIN="$PWD/target/release/brook" python3 -m pytest tests/integration -q -ra --durations=10
