#!/usr/bin/env bash
# Kafka's kafka-console-producer.sh, served by Brook's `brook kafka-console-producer`.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "${BROOK_BIN:-$here/../target/release/brook}" kafka-console-producer "$@"
