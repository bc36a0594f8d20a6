#!/usr/bin/env bash
# Kafka's kafka-server-stop.sh: asks every running Brook broker to shut down cleanly (SIGTERM).
set -uo pipefail
pids=$(pgrep -f 'brook broker' || true)
if [ -z "$pids" ]; then
  echo "No kafka server to stop"
  exit 1
fi
kill -TERM $pids
