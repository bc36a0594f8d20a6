#!/usr/bin/env bash
# Kafka's kafka-leader-election.sh, served by Brook's `brook kafka-leader-election`.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "${BROOK_BIN:-$here/../target/release/brook}" kafka-leader-election "$@"
