#!/usr/bin/env bash
# NetworkPolicy enforcement for the local cluster's node: kube-router's network policy controller alone
# (--run-firewall; no routing, no service proxy), built once from the Go module proxy and run on the host as
# root. It programs iptables (the nf_tables backend, filter table) and ipsets for the pods of this node.
#
#   network-policy.sh build                                  build once; prints the binary's path
#   network-policy.sh start [--dir DIR] [--owner-pid PID]    start (or keep a running one); returns once the rules are in
#   network-policy.sh status [--dir DIR]                     exit 0 when it runs
#   network-policy.sh stop [--dir DIR]                       stop it and remove its iptables chains and ipsets
#   network-policy.sh clean                                  remove what a killed controller left on the host
#
# DIR (default /tmp/dss-spark-k8s-cluster) is a running cluster's: its admin kubeconfig and node are used,
# the pid file and log are written there. The supervisor stops the controller and cleans up by itself when
# PID exits (0: no owner), when the cluster's DIR disappears, or when the controller dies.
# Traffic from the node itself (the client-mode Spark driver on the host) to its pods is always accepted by
# kube-router whatever the policies say (its "source is the pod's local node" rule); pod egress is enforced.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

KUBE_ROUTER_VERSION=v2.1.0 # the newest the Go module proxy serves here (v2.2+ answer 403)
KUBE_ROUTER_MODULE=github.com/cloudnativelabs/kube-router/v2
SERVICE_CLUSTER_IP_RANGE=10.0.0.0/24 # the apiserver's (scripts/cluster.sh)
# What stop and clean undo is recorded here (not in DIR: the cluster may have removed it already).
RECORD=/run/dss-spark-k8s-network-policy

bin_dir="$cache_root/kube-router-$KUBE_ROUTER_VERSION"
binary="$bin_dir/kube-router"

build() {
  if [ -x "$binary" ]; then echo "$binary"; return; fi
  command -v go >/dev/null 2>&1 || { echo "network-policy: the Go toolchain is required to build kube-router; install it and retry" >&2; return 1; }
  mkdir -p "$bin_dir" "$cache_root/logs"
  chmod 755 "$cache_root" "$bin_dir"
  # The lock and Go caches of build-controlplane.sh: it removes the caches after its builds, never during ours.
  exec 9>"$cache_root/.build.lock"
  flock 9
  if [ -x "$binary" ]; then echo "$binary"; return; fi
  local log staging t0
  log="$cache_root/logs/build-kube-router-$(date +%Y%m%d-%H%M%S).log"
  staging=$(mktemp -d "$cache_root/.staging.XXXXXX")
  t0=$(date +%s)
  echo "network-policy: building kube-router $KUBE_ROUTER_VERSION (a few minutes once; the Go tool's output: $log)" >&2
  if ! env GOCACHE="$cache_root/.go-caches/build" GOMODCACHE="$cache_root/.go-caches/mod" GOFLAGS=-modcacherw \
    CGO_ENABLED=0 GOBIN="$staging" nice -n 10 go install -trimpath \
    -ldflags "-s -w -X $KUBE_ROUTER_MODULE/pkg/version.Version=$KUBE_ROUTER_VERSION" \
    "$KUBE_ROUTER_MODULE/cmd/kube-router@$KUBE_ROUTER_VERSION" >"$log" 2>&1; then
    echo "network-policy: building kube-router failed; the end of $log:" >&2
    tail -15 "$log" >&2
    rm -rf "$staging"
    return 1
  fi
  mv "$staging/kube-router" "$binary"
  rm -rf "$staging"
  [ "${KEEP_GO_CACHES:-0}" = 1 ] || rm -rf "$cache_root/.go-caches"
  echo "network-policy: kube-router built in $(( $(date +%s) - t0 )) s -> $binary" >&2
  echo "$binary"
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# The filter-table chains kube-router's firewall creates and the ipsets it names.
our_chain='KUBE-ROUTER-(INPUT|FORWARD|OUTPUT)|KUBE-POD-FW-[A-Z0-9]+|KUBE-NWPLCY-[A-Z0-9]+'
our_set='^(KUBE-SRC-|KUBE-DST-|kube-router-)'

# Removes every kube-router chain, the jumps to them and its ipsets; then the nf_tables filter table if
# iptables created it for kube-router alone (recorded at start) and it is empty again.
remove_rules() {
  local rules set
  if rules=$(iptables-save -t filter 2>/dev/null | grep -v '^# Warning: iptables-legacy') && grep -qE "$our_chain" <<<"$rules"; then
    { grep -vE -- "^(:($our_chain) |-A ($our_chain) |-A .* -j ($our_chain)( |$))" <<<"$rules"; } | iptables-restore -T filter
  fi
  for set in $(ipset list -n 2>/dev/null | grep -E "$our_set" || true); do ipset destroy "$set" 2>/dev/null || true; done
  if [ -f "$RECORD/filter-table-was-absent" ] && ! iptables-save -t filter 2>/dev/null | grep -q '^-A '; then
    nft delete table ip filter 2>/dev/null || true
  fi
}

clean() {
  local pid
  pid=$(cat "$RECORD/kube-router.pid" 2>/dev/null || true)
  if alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = kube-router ]; then
    kill -TERM "$pid"; for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done; kill -KILL "$pid" 2>/dev/null || true
  fi
  remove_rules
  rm -rf "$RECORD"
}

# The supervisor (own session): runs kube-router and stops it, then cleans, when the owner exits, the
# cluster's state file disappears, kube-router dies or the supervisor is signalled.
supervise() {
  set +e # a failed kill or clean-up step must not leave the rest undone
  local dir=$1 owner=$2 node_name=$3 child
  setsid "$binary" --run-firewall=true --run-router=false --run-service-proxy=false \
    --kubeconfig "$dir/admin.kubeconfig" --hostname-override "$node_name" \
    --service-cluster-ip-range "$SERVICE_CLUSTER_IP_RANGE" --health-port 0 --metrics-port 0 \
    --iptables-sync-period 1m --v 1 </dev/null >>"$dir/kube-router.log" 2>&1 &
  child=$!
  echo "$child" >"$RECORD/kube-router.pid"
  finish() {
    trap '' TERM INT HUP
    kill -TERM "$child" 2>/dev/null
    for _ in $(seq 100); do alive "$child" || break; sleep 0.1; done
    kill -KILL "$child" 2>/dev/null
    wait "$child" 2>/dev/null
    remove_rules
    rm -rf "$RECORD"
    rm -f "$dir/network-policy.pid"
    exit 0
  }
  trap finish TERM INT HUP
  while alive "$child" && [ -f "$dir/state.env" ]; do
    if [ "$owner" != 0 ] && ! alive "$owner"; then break; fi
    sleep 0.5 & wait $!
  done
  finish
}

running() { alive "$(cat "$dir/network-policy.pid" 2>/dev/null || true)" && alive "$(cat "$RECORD/kube-router.pid" 2>/dev/null || true)"; }

start() {
  if running; then return 0; fi
  [ -f "$dir/node/state.env" ] || { echo "network-policy: no cluster with a node in $dir; start one with scripts/cluster.sh up" >&2; return 1; }
  command -v ipset >/dev/null 2>&1 || { echo "network-policy: kube-router needs the ipset command; install it (apt-get install ipset) and retry" >&2; return 1; }
  command -v iptables-restore >/dev/null 2>&1 || { echo "network-policy: kube-router needs iptables; install it (apt-get install iptables) and retry" >&2; return 1; }
  (build) >/dev/null # in a subshell: the build lock's descriptor must not pass to the controller
  clean
  mkdir -p "$RECORD"
  if command -v nft >/dev/null 2>&1 && ! nft list table ip filter >/dev/null 2>&1; then touch "$RECORD/filter-table-was-absent"; fi
  # shellcheck disable=SC1091
  NODE_NAME=$(source "$dir/node/state.env" && echo "$NODE_NAME")
  : >"$dir/kube-router.log"
  setsid bash "$here/network-policy.sh" supervise "$dir" "$owner" "$NODE_NAME" </dev/null >>"$dir/kube-router.log" 2>&1 &
  echo $! >"$dir/network-policy.pid"
  # Ready once the first full sync is done: the chains of the pods and policies that exist now are in
  # (the top-level chains come before it). Later changes take ~0.2 s.
  for _ in $(seq 300); do
    if grep -q 'sync iptables took' "$dir/kube-router.log" && iptables -S FORWARD 2>/dev/null | grep -q -- '-j KUBE-ROUTER-FORWARD'; then
      return 0
    fi
    alive "$(cat "$dir/network-policy.pid")" || break
    sleep 0.1
  done
  echo "network-policy: kube-router did not install its rules within 30 s; the end of $dir/kube-router.log:" >&2
  tail -15 "$dir/kube-router.log" >&2
  stop
  return 1
}

stop() {
  local pid
  pid=$(cat "$dir/network-policy.pid" 2>/dev/null || true)
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do alive "$pid" || break; sleep 0.1; done
  fi
  rm -f "$dir/network-policy.pid"
  clean
}

command=${1:-}; shift || true
if [ "$command" = supervise ]; then supervise "$@"; exit; fi
dir=/tmp/dss-spark-k8s-cluster
owner=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --owner-pid) owner=$2; shift 2 ;;
    *) echo "network-policy: unknown argument $1; usage: network-policy.sh build|start|status|stop|clean [--dir DIR] [--owner-pid PID]" >&2; exit 64 ;;
  esac
done
case "$command" in
  build) build ;;
  start) start ;;
  status) running ;;
  stop) stop ;;
  clean) clean ;;
  *) echo "network-policy: usage: network-policy.sh build|start|status|stop|clean [--dir DIR] [--owner-pid PID]" >&2; exit 64 ;;
esac
