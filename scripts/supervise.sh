#!/usr/bin/env bash
# supervise.sh OWNER_PID [--remove DIR] [--after-pidfile FILE] -- COMMAND...
# Runs COMMAND and stops it (SIGTERM, then SIGKILL after 10 s) when OWNER_PID exits (0: no owner) or when
# this script is signalled, so that no server outlives the test run that started it, even when that run is
# killed. With --remove, DIR is deleted once COMMAND has exited. With --after-pidfile, the stop waits (up to
# 60 s) until the process whose pid FILE holds has exited: the apiserver outlives the node's supervisor,
# which deletes the pods through it.
set -u
owner=$1; shift
remove=
after=
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  case "$1" in
    --remove) remove=$2; shift 2 ;;
    --after-pidfile) after=$2; shift 2 ;;
    *) echo "supervise: unknown argument $1" >&2; exit 64 ;;
  esac
done
[ "${1:-}" = -- ] && shift

"$@" &
child=$!

finish() {
  trap '' TERM INT HUP
  if [ -n "$after" ]; then
    for _ in $(seq 600); do
      pid=$(cat "$after" 2>/dev/null) || break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
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
