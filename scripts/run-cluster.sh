#!/usr/bin/env bash
# Run the flow as a cluster of N Bytewax processes on this machine (loopback addresses),
# each with W worker threads, all reading the Kafka input topics and sharing a store.
#
#   scripts/run-cluster.sh N W [extra 'python -m flows run' arguments...]
#   e.g. KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 REDIS_URL=redis://127.0.0.1:6379/0 \
#        scripts/run-cluster.sh 2 1 --input kafka --output kafka --recovery-dir out/recovery
#
# Waits for all processes; if one fails, stops the others (by PID) and exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:?processes}"; w="${2:?workers per process}"; shift 2
PY="${PY:-.venv/bin/python}"
addrs=""
for i in $(seq 0 $((n - 1))); do
  port=$("$PY" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  addrs="${addrs:+$addrs;}127.0.0.1:$port"
done
pids=()
for i in $(seq 0 $((n - 1))); do
  "$PY" -m flows run -w "$w" -i "$i" -a "$addrs" "$@" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  if ! wait "$pid"; then
    status=1
    for other in "${pids[@]}"; do kill "$other" 2>/dev/null || true; done
  fi
done
exit $status
