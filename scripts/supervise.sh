#!/usr/bin/env bash
# supervise.sh OWNER_PID [--remove DIR] -- COMMAND...
# Runs COMMAND and stops it (SIGTERM, then SIGKILL after 10 s) when OWNER_PID exits (0: no owner) or when
# this script is signalled, so that no etcd or kube-apiserver outlives the test run that started it,
# even when that run is killed. With --remove, DIR is deleted once COMMAND has exited.
set -u
owner=$1; shift
remove=
if [ "${1:-}" = --remove ]; then remove=$2; shift 2; fi
[ "${1:-}" = -- ] && shift

"$@" &
child=$!

finish() {
  kill -TERM "$child" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$child" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$child" 2>/dev/null
  wait "$child" 2>/dev/null
  [ -n "$remove" ] && rm -rf "$remove"
  exit 0
}
trap finish TERM INT HUP

while kill -0 "$child" 2>/dev/null; do
  if [ "$owner" != 0 ] && ! kill -0 "$owner" 2>/dev/null; then finish; fi
  sleep 0.5 & wait $!
done
finish
