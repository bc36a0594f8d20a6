#!/usr/bin/env bash
# Kafka's kafka-consumer-groups.sh, served by Brook's `brook kafka-consumer-groups`.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "${BROOK_BIN:-$here/../target/release/brook}" kafka-consumer-groups "$@"
