#!/usr/bin/env bash
# Kafka's kafka-configs.sh, served by Brook's `brook kafka-configs`.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "${BROOK_BIN:-$here/../target/release/brook}" kafka-configs "$@"
