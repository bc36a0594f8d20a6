#!/usr/bin/env bash
# Kafka's kafka-topics.sh, served by Brook's `brook kafka-topics`.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "${BROOK_BIN:-$here/../target/release/brook}" kafka-topics "$@"
