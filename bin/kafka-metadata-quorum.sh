#!/usr/bin/env bash
# Kafka's kafka-metadata-quorum.sh, served by Brook's `brook kafka-metadata-quorum`.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "${BROOK_BIN:-$here/../target/release/brook}" kafka-metadata-quorum "$@"
