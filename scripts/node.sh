#!/usr/bin/env bash
# The local cluster's node: containerd (CRI, runc, CNI bridge) and a kubelet registered with the cluster in DIR.
# scripts/cluster.sh runs it; one node per machine (ports, the bridge, the cgroup root, node name = host name).
#
#   node.sh start DIR BIN_DIR OWNER_PID EXECUTOR_IMAGE EXECUTOR_LAYOUT   start; returns once the node is Ready
#   node.sh stop DIR                                                    stop it (the supervisor cleans up)
#   node.sh clean                                                       undo what a node left on the host
#
# The supervisor (a child of this script, in its own session) stops everything and restores the host when
# OWNER_PID exits, when it is signalled, or when containerd or the kubelet dies: the pods first (through the
# apiserver, which waits for it), then the kubelet, whatever containers are left (through the CRI), containerd,
# the mounts, cgroups, bridge, sysctls and fixed paths. What it must undo is recorded in $NODE_RECORD first, so
# that `clean` (run by every start) undoes a node whose supervisor was killed outright.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=oci-layout.sh
source "$here/oci-layout.sh"

NODE_RECORD=/run/dss-spark-k8s-node
CGROUP_ROOT=dss-spark-k8s
BRIDGE=dssk8s0
POD_SUBNET=198.51.100.0/24 # a documentation range: only on this host's bridge, never routed anywhere
# Set by the kubelet (vm.*, kernel.*) and the bridge plugin (ip_forward); restored on stop.
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys
  kernel.keys.root_maxbytes net.ipv4.ip_forward)
# Paths that the kubelet, containerd or the CNI plugins use whatever they are told; removed on stop if new.
FIXED_PATHS=(/var/lib/cni /var/log/containers /var/log/pods /var/lib/kubelet /run/containerd /opt/containerd /run/nri)
CACHE_ROOT=${DSS_SPARK_K8S_CACHE:-/var/cache/dss-spark-k8s}

node_name() { hostname | tr '[:upper:]' '[:lower:]'; }

# The host's first global IPv4 address (eth0 here): what the executors dial to reach a client-mode driver.
node_ip() { ip -4 -o addr show scope global | awk '{ split($4, a, "/"); print a[1]; exit }'; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

stop_process() { # pid, seconds before SIGKILL
  local pid=$1 seconds=${2:-10}
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq $((seconds * 10))); do alive "$pid" || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

record() { cat "$NODE_RECORD/$1" 2>/dev/null || true; }

# --- undoing a node ---------------------------------------------------------------------------------------

# Everything mounted below one of the given directories, deepest first.
mounts_below() {
  local prefix
  for prefix in "$@"; do
    awk -v p="$prefix" '{ gsub(/\\040/, " ", $5); if ($5 == p || index($5, p "/") == 1) print $5 }' /proc/self/mountinfo
  done | sort -r | uniq
}

unmount_below() {
  local target
  while IFS= read -r target; do
    [ -n "$target" ] && { umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || true; }
  done < <(mounts_below "$@")
}

cgroup_dirs() { for hierarchy in /sys/fs/cgroup/*/; do [ -d "$hierarchy$CGROUP_ROOT" ] && echo "$hierarchy$CGROUP_ROOT"; done; }

# Every process left in the node's cgroups (containers whose shim is gone).
kill_cgroup_processes() {
  local dir pid
  for dir in $(cgroup_dirs); do
    while IFS= read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done < <(find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null)
  done
}

remove_cgroups() {
  local dir
  for _ in 1 2 3 4 5; do
    for dir in $(cgroup_dirs); do find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true; done
    [ -z "$(cgroup_dirs)" ] && return 0
    sleep 0.2
  done
  echo "node: cgroups left behind: $(cgroup_dirs | tr '\n' ' ')" >&2
}

# Deletes every pod through the apiserver and waits (≤ 20 s) until the kubelet has stopped their containers.
delete_pods_through_apiserver() {
  local kubectl kubeconfig crictl socket
  kubectl=$(record kubectl); kubeconfig=$(record admin-kubeconfig); crictl=$(record crictl); socket=$(record containerd-socket)
  [ -x "$kubectl" ] && [ -f "$kubeconfig" ] && alive "$(record kubelet.pid)" || return 0
  "$kubectl" --kubeconfig "$kubeconfig" --request-timeout 5s delete pods --all --all-namespaces --grace-period 1 --wait=false >/dev/null 2>&1 || return 0
  for _ in $(seq 100); do
    [ -z "$("$crictl" --runtime-endpoint "unix://$socket" --timeout 2s ps -q 2>/dev/null)" ] && return 0
    sleep 0.2
  done
}

clean() {
  [ -d "$NODE_RECORD" ] || return 0
  local dir socket crictl state name value path
  dir=$(record cluster-dir); socket=$(record containerd-socket); crictl=$(record crictl); state=$(record containerd-state)
  delete_pods_through_apiserver
  stop_process "$(record kubelet.pid)" 10
  if alive "$(record containerd.pid)" && [ -x "$crictl" ]; then
    local pods
    pods=$("$crictl" --runtime-endpoint "unix://$socket" --timeout 5s pods -q 2>/dev/null || true)
    # shellcheck disable=SC2086
    [ -n "$pods" ] && "$crictl" --runtime-endpoint "unix://$socket" --timeout 20s stopp $pods >/dev/null 2>&1 || true
    "$crictl" --runtime-endpoint "unix://$socket" --timeout 20s rmp -af >/dev/null 2>&1 || true
  fi
  stop_process "$(record containerd.pid)" 10
  # Shims of this node's containerd (found by its socket, which no other containerd uses).
  [ -n "$socket" ] && for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $socket" || true); do kill -KILL "$pid" 2>/dev/null || true; done
  kill_cgroup_processes
  unmount_below ${dir:+"$dir"} ${state:+"$state"} /run/containerd /var/lib/kubelet "$CACHE_ROOT/containerd-root"
  for path in /run/netns/cni-*; do [ -e "$path" ] && { umount "$path" 2>/dev/null || true; rm -f "$path"; }; done
  remove_cgroups
  ip link delete "$BRIDGE" 2>/dev/null || true
  while read -r name value; do
    if [ -n "$name" ]; then sysctl -q -w "$name=$value" >/dev/null 2>&1 || true; fi
  done < <(record sysctls)
  while IFS= read -r path; do if [ -n "$path" ]; then rm -rf "$path"; fi; done < <(record new-paths)
  rm -rf "$NODE_RECORD"
}

# --- the supervisor ---------------------------------------------------------------------------------------

write_containerd_config() {
  local node_dir=$1 socket=$2 state=$3 pause_image=$4 node_ip=$5
  mkdir -p "$node_dir/cni" "$node_dir/registry/_default"
  # Every registry host is this address where nothing listens: a pod whose image is not imported fails at
  # once instead of reaching out.
  cat >"$node_dir/registry/_default/hosts.toml" <<'HOSTS'
server = "http://127.0.0.1:9"
[host."http://127.0.0.1:9"]
  capabilities = ["pull", "resolve"]
HOSTS
  # Pods reach each other and the node's address (a client-mode driver), and nothing beyond.
  cat >"$node_dir/cni/10-dss-spark-k8s.conflist" <<CNI
{
  "cniVersion": "1.0.0",
  "name": "dss-spark-k8s",
  "plugins": [
    { "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": { "type": "host-local", "dataDir": "$node_dir/cni-ipam", "ranges": [[{ "subnet": "$POD_SUBNET" }]],
                "routes": [{ "dst": "$node_ip/32" }] } },
    { "type": "loopback" }
  ]
}
CNI
  cat >"$node_dir/containerd.toml" <<TOML
version = 4
root = "$CACHE_ROOT/containerd-root"
state = "$state"
disabled_plugins = ["io.containerd.nri.v1.nri"]
imports = []

[plugins.'io.containerd.server.v1.grpc']
  address = "$socket"
[plugins.'io.containerd.server.v1.ttrpc']
  address = "$socket.ttrpc"
[plugins.'io.containerd.shim.v1.manager']
  socket_dir = "$state/s"

[plugins.'io.containerd.internal.v1.opt']
  path = "$state/opt"
[plugins.'io.containerd.image-verifier.v1.bindir']
  bin_dir = "$state/image-verifier"
[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[plugins.'io.containerd.cri.v1.runtime']
  disable_apparmor = true
  # This VM's root lacks CAP_SYS_RESOURCE: runc cannot lower a process's oom_score_adj below its own.
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$node_dir/cni"
    max_conf_num = 1
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$pause_image"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "$node_dir/registry"
TOML
}

write_kubelet_config() {
  local dir=$1 node_dir=$2 socket=$3 port=$4 healthz_port=$5 ip=$6
  cat >"$node_dir/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$socket
# The host is cgroup v1 (hybrid); later kubelets refuse v1 unless told.
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_ROOT
failCgroupV1: false
failSwapOn: false
address: $ip
port: $port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $healthz_port
tlsCertFile: $node_dir/kubelet.crt
tlsPrivateKeyFile: $node_dir/kubelet.key
# Only the apiserver (its client certificate, signed by the cluster CA) talks to the kubelet.
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: false }
  x509: { clientCAFile: $dir/ca.crt }
authorization: { mode: AlwaysAllow }
rotateCertificates: false
serverTLSBootstrap: false
# No iptables chains on the host; no DNS for pods (client mode only: executors dial the driver's IP).
makeIPTablesUtilChains: false
resolvConf: ""
podLogsDir: $node_dir/pod-logs
# Images are imported, never pulled: never collect them; no eviction on a busy developer machine.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: { memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%" }
YAML
}

# The node's serving certificate, signed by the cluster CA.
write_kubelet_certificate() {
  local dir=$1 node_dir=$2 ip=$3
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$(node_name)" -keyout "$node_dir/kubelet.key" -out "$node_dir/kubelet.csr" 2>/dev/null
  printf 'subjectAltName=IP:%s,DNS:%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$ip" "$(node_name)" >"$node_dir/kubelet.ext"
  openssl x509 -req -days 3 -in "$node_dir/kubelet.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -extfile "$node_dir/kubelet.ext" -out "$node_dir/kubelet.crt" 2>/dev/null
}

# The sandbox image: the static program of controlplane/pause alone.
pause_layout() {
  local bin_dir=$1 digest layout
  digest=$(sha256sum "$bin_dir/pause" | cut -c1-12)
  layout="$CACHE_ROOT/pause-image-$digest"
  if [ ! -f "$layout/index.json" ]; then
    local staging
    staging=$(mktemp -d "$CACHE_ROOT/.pause-image.XXXXXX")
    install -m 755 "$bin_dir/pause" "$staging/rootfs/pause" -D
    write_oci_layout "$staging/rootfs" "$staging/layout" "docker.io/dss-spark-k8s/pause:$digest" '{"User":"65535","Entrypoint":["/pause"]}'
    rm -rf "$layout" && mv "$staging/layout" "$layout" && rm -rf "$staging"
  fi
  echo "docker.io/dss-spark-k8s/pause:$digest $layout"
}

# Imports an image layout into the CRI's namespace once (containerd's root is kept in the cache), streamed
# (no tar on disk), keeping only the unpacked layers; older images of the same repository are removed.
ensure_image() { # ctr socket name layout
  local ctr=$1 socket=$2 name=$3 layout=$4 t0 other
  ctr_k8s() { "$ctr" --address "$socket" -n k8s.io "$@" 2> >(grep -v 'cgroup v1 is deprecated' >&2); }
  ctr_k8s images ls -q | grep -qxF "$name" && return 0
  t0=$(date +%s)
  tar -C "$layout" -cf - oci-layout index.json blobs | ctr_k8s images import --local --discard-unpacked-layers - >/dev/null
  echo "node: imported $name in $(( $(date +%s) - t0 )) s" >&2
}

# The CRI's name for an image of a layout: its config's digest.
config_ref() {
  python3 -c 'import json, sys
layout = sys.argv[1]
manifest = json.load(open(layout + "/index.json"))["manifests"][0]["digest"].split(":")[1]
print(json.load(open(layout + "/blobs/sha256/" + manifest))["config"]["digest"])' "$1"
}

# Removes every image but the given ones (names and the CRI's config-digest names): earlier executor images
# would keep their unpacked layers (~800 MB each) in the cache.
prune_images() { # ctr socket name layout name layout
  local ctr=$1 socket=$2 keep other
  keep=$(printf '%s\n' "$3" "$(config_ref "$4")" "$5" "$(config_ref "$6")")
  for other in $("$ctr" --address "$socket" -n k8s.io images ls -q 2>/dev/null | grep -vxF "$keep"); do
    "$ctr" --address "$socket" -n k8s.io images rm "$other" >/dev/null 2>&1 || true
  done
}

supervise() {
  local dir=$1 bin_dir=$2 owner=$3 executor_image=$4 executor_layout=$5
  local containerd_dir="$bin_dir/containerd-v2.4.2" name path
  node_dir="$dir/node" # global: finish() runs from a trap
  local socket="$NODE_RECORD/containerd.sock" state="$NODE_RECORD/state"
  local ip port healthz_port pause_image pause_dir containerd_pid kubelet_pid
  ip=$(node_ip); port=$(free_port); healthz_port=$(free_port)
  mkdir -p "$node_dir"

  # What this node will change, recorded before it changes it.
  clean
  mkdir -p "$NODE_RECORD"
  echo "$dir" >"$NODE_RECORD/cluster-dir"
  echo $$ >"$NODE_RECORD/supervisor.pid"
  echo "$socket" >"$NODE_RECORD/containerd-socket"
  echo "$state" >"$NODE_RECORD/containerd-state"
  echo "$bin_dir/crictl" >"$NODE_RECORD/crictl"
  echo "$bin_dir/kubectl" >"$NODE_RECORD/kubectl"
  echo "$dir/admin.kubeconfig" >"$NODE_RECORD/admin-kubeconfig"
  for name in "${SYSCTLS[@]}"; do echo "$name $(sysctl -n "$name")"; done >"$NODE_RECORD/sysctls"
  for path in "${FIXED_PATHS[@]}"; do [ -e "$path" ] || echo "$path"; done >"$NODE_RECORD/new-paths"
  echo $$ >"$node_dir/supervisor.pid"

  finish() {
    trap '' TERM INT HUP
    trap - EXIT
    clean
    rm -f "$node_dir/supervisor.pid"
    exit 0
  }
  # Also when a step fails (set -e).
  trap finish TERM INT HUP EXIT

  # The kubelet's cgroup root, in every hierarchy (cpuset needs its cpus and mems before it takes a task).
  for hierarchy in /sys/fs/cgroup/*/; do
    mkdir -p "$hierarchy$CGROUP_ROOT"
    if [ -f "${hierarchy}cpuset.cpus" ]; then
      cat "${hierarchy}cpuset.cpus" >"$hierarchy$CGROUP_ROOT/cpuset.cpus"
      cat "${hierarchy}cpuset.mems" >"$hierarchy$CGROUP_ROOT/cpuset.mems"
    fi
  done

  read -r pause_image pause_dir < <(pause_layout "$bin_dir")
  write_containerd_config "$node_dir" "$socket" "$state" "$pause_image" "$ip"
  PATH="$containerd_dir:$PATH" "$containerd_dir/containerd" --config "$node_dir/containerd.toml" --log-level warn \
    >"$node_dir/containerd.log" 2>&1 </dev/null &
  containerd_pid=$!
  echo "$containerd_pid" >"$NODE_RECORD/containerd.pid"
  for _ in $(seq 300); do
    "$containerd_dir/ctr" --address "$socket" --connect-timeout 1s version >/dev/null 2>&1 && break
    alive "$containerd_pid" || { echo "node: containerd exited; its log: $node_dir/containerd.log" >&2; finish; }
    sleep 0.1
  done
  ensure_image "$containerd_dir/ctr" "$socket" "$pause_image" "$pause_dir"
  ensure_image "$containerd_dir/ctr" "$socket" "$executor_image" "$executor_layout"
  prune_images "$containerd_dir/ctr" "$socket" "$pause_image" "$pause_dir" "$executor_image" "$executor_layout"

  write_kubelet_certificate "$dir" "$node_dir" "$ip"
  write_kubelet_config "$dir" "$node_dir" "$socket" "$port" "$healthz_port" "$ip"
  echo "$healthz_port" >"$node_dir/kubelet-healthz-port"
  "$bin_dir/kubelet" --config "$node_dir/kubelet.yaml" --kubeconfig "$dir/kubelet.kubeconfig" \
    --root-dir "$node_dir/kubelet" --cert-dir "$node_dir/kubelet-certs" --node-ip "$ip" --hostname-override "$(node_name)" --v=1 \
    >"$node_dir/kubelet.log" 2>&1 </dev/null &
  kubelet_pid=$!
  echo "$kubelet_pid" >"$NODE_RECORD/kubelet.pid"
  printf 'CONTAINERD_PID=%s\nKUBELET_PID=%s\nKUBELET_HEALTHZ_PORT=%s\nNODE_NAME=%s\nNODE_IP=%s\nEXECUTOR_IMAGE=%s\n' \
    "$containerd_pid" "$kubelet_pid" "$healthz_port" "$(node_name)" "$ip" "$executor_image" >"$node_dir/state.env"

  while alive "$containerd_pid" && alive "$kubelet_pid"; do
    if [ "$owner" != 0 ] && ! alive "$owner"; then break; fi
    sleep 0.5 & wait $!
  done
  alive "$containerd_pid" || echo "node: containerd exited; its log: $node_dir/containerd.log" >&2
  alive "$kubelet_pid" || echo "node: the kubelet exited; its log: $node_dir/kubelet.log" >&2
  finish
}

# --- commands ---------------------------------------------------------------------------------------------

start() {
  local dir=$1 bin_dir=$2 owner=$3 executor_image=$4 executor_layout=$5 supervisor other kubectl
  if [ -d "$NODE_RECORD" ] && alive "$(record supervisor.pid)"; then
    other=$(record cluster-dir)
    echo "node: a node already runs on this machine, for the cluster in $other (one per machine); stop it with 'bash scripts/cluster.sh down --dir $other'" >&2
    return 1
  fi
  mkdir -p "$dir/node"
  setsid bash "$0" supervise "$dir" "$bin_dir" "$owner" "$executor_image" "$executor_layout" >"$dir/node/supervisor.log" 2>&1 </dev/null &
  supervisor=$!
  kubectl=("$bin_dir/kubectl" --kubeconfig "$dir/admin.kubeconfig")
  # Ready, and the controller-manager has lifted the not-ready taint: pods can be scheduled.
  for _ in $(seq 1200); do
    if ! alive "$supervisor"; then
      echo "node: start-up failed; $dir/node/supervisor.log:" >&2
      tail -20 "$dir/node/supervisor.log" >&2
      return 1
    fi
    if [ "$("${kubectl[@]}" get node "$(node_name)" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}/{.spec.taints}' 2>/dev/null)" = True/ ]; then
      return 0
    fi
    sleep 0.1
  done
  echo "node: not Ready within 120 s; logs in $dir/node" >&2
  tail -20 "$dir/node/kubelet.log" >&2
  return 1
}

stop() {
  local dir=$1 pid
  pid=$(cat "$dir/node/supervisor.pid" 2>/dev/null || true)
  alive "$pid" || return 0
  kill -TERM "$pid"
  for _ in $(seq 600); do alive "$pid" || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  clean
}

command=${1:-}; shift || true
case "$command" in
  start) start "$@" ;;
  supervise) supervise "$@" ;;
  stop) stop "$@" ;;
  clean) clean ;;
  *) echo "usage: node.sh start DIR BIN_DIR OWNER_PID EXECUTOR_IMAGE EXECUTOR_LAYOUT | stop DIR | clean" >&2; exit 64 ;;
esac
