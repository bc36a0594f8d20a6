#!/usr/bin/env bash
# Kafka's kafka-verifiable-consumer.sh, served by Brook's `brook kafka-verifiable-consumer`.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "${BROOK_BIN:-$here/../target/release/brook}" kafka-verifiable-consumer "$@"
