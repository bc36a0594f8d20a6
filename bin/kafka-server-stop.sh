#!/usr/bin/env bash
# Kafka's kafka-server-stop.sh: asks running Brook brokers to shut down cleanly (SIGTERM).
#   kafka-server-stop.sh                  every broker on this machine
#   kafka-server-stop.sh --node.id=N      only the broker(s) with node.id N (as Kafka 3.7+), read
#                                         from `--override node.id=N` or the properties file given
set -uo pipefail
node_filter=""
for arg in "$@"; do
  case "$arg" in
    --node.id=*|--node-id=*) node_filter="${arg#*=}" ;;
    --process.roles=*|--process-role=*) ;;  # every Brook process is a broker (and controller)
    *) echo "Usage: kafka-server-stop.sh [--node.id=N]" >&2; exit 1 ;;
  esac
done

node_of() {  # the node.id a running `brook broker` was started with (1 when not set)
  local args file node
  args=$(tr '\0' '\n' < "/proc/$1/cmdline" 2>/dev/null) || return 1
  node=$(printf '%s\n' "$args" | sed -n 's/^\(node\|broker\)\.id=//p' | tail -1)
  if [ -z "$node" ]; then
    file=$(printf '%s\n' "$args" | sed -n '/^broker$/,$p' | sed -n '2p')
    if [ -n "$file" ] && [ -f "$file" ]; then
      node=$(sed -n 's/^[[:space:]]*\(node\|broker\)\.id[[:space:]]*[=:][[:space:]]*//p' "$file" | tail -1)
    fi
  fi
  echo "${node:-1}"
}

pids=()
for pid in $(pgrep -f 'brook broker' || true); do
  [ "$pid" = "$$" ] && continue
  if [ -n "$node_filter" ] && [ "$(node_of "$pid")" != "$node_filter" ]; then
    continue
  fi
  pids+=("$pid")
done
if [ "${#pids[@]}" -eq 0 ]; then
  echo "No kafka server to stop"
  exit 1
fi
kill -TERM "${pids[@]}"
