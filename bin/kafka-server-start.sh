#!/usr/bin/env bash
# Kafka's kafka-server-start.sh, served by Brook: kafka-server-start.sh [server.properties] [--override k=v ...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "${BROOK_BIN:-$here/../target/release/brook}" broker "$@"
