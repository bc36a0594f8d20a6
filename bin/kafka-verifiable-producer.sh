#!/usr/bin/env bash
# Kafka's kafka-verifiable-producer.sh, served by Brook's `brook kafka-verifiable-producer`.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "${BROOK_BIN:-$here/../target/release/brook}" kafka-verifiable-producer "$@"
