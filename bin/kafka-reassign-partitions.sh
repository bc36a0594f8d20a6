#!/usr/bin/env bash
# Kafka's kafka-reassign-partitions.sh, served by Brook's `brook kafka-reassign-partitions`.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "${BROOK_BIN:-$here/../target/release/brook}" kafka-reassign-partitions "$@"
