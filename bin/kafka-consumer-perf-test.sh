#!/usr/bin/env bash
# Kafka's kafka-consumer-perf-test.sh, served by Brook's `brook kafka-consumer-perf-test`.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "${BROOK_BIN:-$here/../target/release/brook}" kafka-consumer-perf-test "$@"
