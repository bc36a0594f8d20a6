#!/usr/bin/env bash
# Kafka's kafka-delete-records.sh, served by Brook's `brook kafka-delete-records`.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "${BROOK_BIN:-$here/../target/release/brook}" kafka-delete-records "$@"
