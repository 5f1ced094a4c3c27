#!/usr/bin/env bash
# The local cluster for tests and the demo: etcd, kube-apiserver (RBAC + Node authorization, TokenRequest),
# kube-controller-manager and kube-scheduler on 127.0.0.1, and one node (scripts/node.sh: containerd, runc,
# the CNI bridge, a kubelet) with the Spark executor image of scripts/build-executor-image.sh imported, and
# NetworkPolicy enforcement on that node (scripts/network-policy.sh: kube-router's firewall).
#
#   cluster.sh up [--dir DIR] [--owner-pid PID] [--no-node]   start (or reuse a healthy one in DIR); prints its state as JSON
#   cluster.sh status [--dir DIR]                             prints the state as JSON; exit 1 when not running
#   cluster.sh down [--dir DIR]                               stop it and remove DIR
#
# DIR defaults to /tmp/dss-spark-k8s-cluster. With --owner-pid everything stops by itself when that process
# exits (vitest's global set-up passes its own pid, so a killed test run leaves nothing behind). There is one
# node per machine: --no-node starts the control plane alone (a second cluster beside one with a node).
# K8S_VERSION=v1.X.Y runs that Kubernetes version's control plane (built once by build-controlplane.sh);
# the node runs the default version only, so another version needs --no-node.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

command=${1:-}; shift || true
dir=/tmp/dss-spark-k8s-cluster
owner=0
with_node=1
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --owner-pid) owner=$2; shift 2 ;;
    --no-node) with_node=0; shift ;;
    *) echo "cluster: unknown argument $1; usage: cluster.sh up|status|down [--dir DIR] [--owner-pid PID] [--no-node]" >&2; exit 64 ;;
  esac
done

state_json() {
  # shellcheck disable=SC1091
  source "$dir/state.env"
  local node=null
  if [ -f "$dir/node/state.env" ]; then
    # shellcheck disable=SC1091
    source "$dir/node/state.env"
    local enforced=false
    bash "$here/network-policy.sh" status --dir "$dir" >/dev/null 2>&1 && enforced=true
    node=$(printf '{"name":"%s","ip":"%s","kubeletPid":%s,"containerdPid":%s,"executorImage":"%s","networkPolicy":%s}' \
      "$NODE_NAME" "$NODE_IP" "$KUBELET_PID" "$CONTAINERD_PID" "$EXECUTOR_IMAGE" "$enforced")
  fi
  printf '{"version":"%s","server":"%s","caFile":"%s","adminKubeconfig":"%s","dssuserKubeconfig":"%s","kubectl":"%s","auditLog":"%s","dir":"%s","apiserverPid":%s,"etcdPid":%s,"controllerManagerPid":%s,"schedulerPid":%s,"node":%s}\n' \
    "${K8S_VERSION:-}" "$SERVER" "$dir/ca.crt" "$dir/admin.kubeconfig" "$dir/dssuser.kubeconfig" "$BIN_DIR/kubectl" "$dir/audit.log" "$dir" \
    "$APISERVER_PID" "$ETCD_PID" "${CONTROLLER_MANAGER_PID:-null}" "${SCHEDULER_PID:-null}" "$node"
}

healthy() {
  [ -f "$dir/state.env" ] || return 1
  # shellcheck disable=SC1091
  source "$dir/state.env"
  curl -sf --max-time 2 --cacert "$dir/ca.crt" -H "Authorization: Bearer $(cat "$dir/admin.token")" "$SERVER/readyz" >/dev/null || return 1
  # (A cluster started before the controller-manager existed has none to check.)
  if [ -n "${CONTROLLER_MANAGER_PID:-}" ]; then kill -0 "$CONTROLLER_MANAGER_PID" 2>/dev/null && kill -0 "$SCHEDULER_PID" 2>/dev/null || return 1; fi
  [ -f "$dir/node/state.env" ] || return 0
  # shellcheck disable=SC1091
  source "$dir/node/state.env"
  curl -sf --max-time 2 "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz" >/dev/null
}

stop_pid() { # a supervisor pid: it stops its server and exits
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

down() {
  bash "$here/network-policy.sh" stop --dir "$dir"
  [ -d "$dir/node" ] && bash "$here/node.sh" stop "$dir"
  if [ -f "$dir/state.env" ]; then
    # shellcheck disable=SC1091
    source "$dir/state.env"
    stop_pid "${SCHEDULER_SUPERVISOR:-}"
    stop_pid "${CONTROLLER_MANAGER_SUPERVISOR:-}"
    stop_pid "$APISERVER_SUPERVISOR"
    stop_pid "$ETCD_SUPERVISOR"
  fi
  rm -rf "$dir"
}

child_pid() { # the server a supervisor started (its only child but for its sleep)
  local pid
  for _ in $(seq 50); do
    pid=$(ps -o pid=,comm= --ppid "$1" | awk '$2 != "sleep" { print $1; exit }')
    [ -n "$pid" ] && { echo "$pid"; return; }
    sleep 0.1
  done
  echo "cluster: no server under supervisor $1" >&2
  return 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_for() { # url, seconds, curl args...
  local url=$1 seconds=$2; shift 2
  for _ in $(seq $((seconds * 10))); do
    curl -sf --max-time 2 "$@" "$url" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

kubeconfig() { # file, user name, token
  cat >"$1" <<KCFG
apiVersion: v1
kind: Config
clusters:
  - name: local
    cluster: { server: "$server", certificate-authority: "$dir/ca.crt" }
users:
  - name: $2
    user: { token: "$3" }
contexts:
  - name: $2@local
    context: { cluster: local, user: $2 }
current-context: $2@local
KCFG
  chmod 600 "$1"
}

up() {
  local wanted_version=${K8S_VERSION:-}
  if healthy; then
    if [ -n "$wanted_version" ] && [ "$wanted_version" != "${K8S_VERSION:-}" ]; then
      echo "cluster: Kubernetes ${K8S_VERSION:-of an earlier set-up} already runs in $dir, not $wanted_version; stop it first (cluster.sh down --dir $dir) or use another --dir" >&2
      return 1
    fi
    # A cluster started before NetworkPolicies were enforced gets its enforcer (a no-op when it runs).
    [ -f "$dir/node/state.env" ] && bash "$here/network-policy.sh" start --dir "$dir"
    state_json; return
  fi
  [ -e "$dir" ] && down
  local bin_dir started executor_image="" executor_layout="" node_name version
  export K8S_VERSION=$wanted_version
  bin_dir=$(bash "$here/build-controlplane.sh")
  version=$("$bin_dir/kube-apiserver" --version | awk '{ print $2 }')
  if [ "$with_node" = 1 ] && [ ! -x "$bin_dir/kubelet" ]; then
    echo "cluster: the node runs only the default Kubernetes version; start $version with --no-node" >&2
    return 1
  fi
  if [ "$with_node" = 1 ]; then
    { read -r executor_image; read -r executor_layout; } < <(bash "$here/build-executor-image.sh")
    [ -n "$executor_layout" ] || { echo "cluster: the executor image could not be built" >&2; return 1; }
  fi
  node_name=$(hostname | tr '[:upper:]' '[:lower:]')
  started=$(date +%s%N)
  mkdir -p "$dir" && chmod 700 "$dir"
  trap 'echo "cluster: start-up failed; logs: $dir/*.log $dir/node/*.log" >&2; tail -20 "$dir"/*.log >&2 2>/dev/null; down' ERR

  # A CA, a serving certificate for 127.0.0.1, the apiserver's client certificate for the kubelet, a
  # service-account signing key and one token per identity: new every run.
  openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj /CN=dss-spark-k8s-test-ca \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver -keyout "$dir/apiserver.key" -out "$dir/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$dir/san.ext"
  openssl x509 -req -days 3 -in "$dir/apiserver.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -extfile "$dir/san.ext" -out "$dir/apiserver.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver-kubelet-client -keyout "$dir/apiserver-kubelet-client.key" \
    -out "$dir/apiserver-kubelet-client.csr" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' >"$dir/client.ext"
  openssl x509 -req -days 3 -in "$dir/apiserver-kubelet-client.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -extfile "$dir/client.ext" -out "$dir/apiserver-kubelet-client.crt" 2>/dev/null
  openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
  chmod 644 "$dir/ca.crt"
  local name
  for name in admin dssuser kubelet kube-scheduler kube-controller-manager; do openssl rand -hex 32 >"$dir/$name.token"; done
  {
    printf '%s,admin,admin,"system:masters"\n' "$(cat "$dir/admin.token")"
    # The identity that runs dss-spark-k8s in tests: a user with no rights until a manifest of deploy/rbac is applied.
    printf '%s,dssuser,dssuser\n' "$(cat "$dir/dssuser.token")"
    # The node's identity under the Node authorizer and NodeRestriction; the scheduler's under its bootstrap role.
    printf '%s,system:node:%s,kubelet,"system:nodes"\n' "$(cat "$dir/kubelet.token")" "$node_name"
    printf '%s,system:kube-scheduler,kube-scheduler\n' "$(cat "$dir/kube-scheduler.token")"
    # With --use-service-account-credentials=false the controllers all act as the controller-manager.
    printf '%s,system:kube-controller-manager,kube-controller-manager,"system:masters"\n' "$(cat "$dir/kube-controller-manager.token")"
  } >"$dir/tokens.csv"
  cat >"$dir/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    verbs: [get, list, watch]
  - level: Metadata
POLICY

  local etcd_port peer_port api_port
  etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port)
  server="https://127.0.0.1:$api_port"

  # etcd and the apiserver outlive the node's supervisor (--after-pidfile): it deletes the pods through them.
  setsid bash "$here/supervise.sh" "$owner" --remove "$dir" --after-pidfile "$dir/node/supervisor.pid" -- "$bin_dir/etcd" --name default --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "default=http://127.0.0.1:$peer_port" --unsafe-no-fsync --log-level warn \
    >"$dir/etcd.log" 2>&1 </dev/null &
  local etcd_supervisor=$!
  wait_for "http://127.0.0.1:$etcd_port/health" 30

  # advertise-address must be a non-loopback IP or start-up fails without a default route; nothing is sent
  # to it (192.0.2.1 is a documentation address).
  setsid bash "$here/supervise.sh" "$owner" --after-pidfile "$dir/node/supervisor.pid" -- "$bin_dir/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" --bind-address 127.0.0.1 --secure-port "$api_port" \
    --advertise-address 192.0.2.1 --cert-dir "$dir/certs" \
    --tls-cert-file "$dir/apiserver.crt" --tls-private-key-file "$dir/apiserver.key" \
    --service-cluster-ip-range 10.0.0.0/24 --authorization-mode Node,RBAC --token-auth-file "$dir/tokens.csv" \
    --enable-admission-plugins NodeRestriction \
    --kubelet-client-certificate "$dir/apiserver-kubelet-client.crt" --kubelet-client-key "$dir/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP \
    --service-account-issuer "https://dss-spark-k8s.test" \
    --service-account-key-file "$dir/sa.key" --service-account-signing-key-file "$dir/sa.key" \
    --audit-policy-file "$dir/audit-policy.yaml" --audit-log-path "$dir/audit.log" \
    --allow-privileged=true --profiling=false --v=0 \
    >"$dir/apiserver.log" 2>&1 </dev/null &
  local apiserver_supervisor=$!
  wait_for "$server/readyz" 90 --cacert "$dir/ca.crt" -H "Authorization: Bearer $(cat "$dir/admin.token")"

  kubeconfig "$dir/admin.kubeconfig" admin "$(cat "$dir/admin.token")"
  kubeconfig "$dir/dssuser.kubeconfig" dssuser "$(cat "$dir/dssuser.token")"
  kubeconfig "$dir/kubelet.kubeconfig" "system:node:$node_name" "$(cat "$dir/kubelet.token")"
  kubeconfig "$dir/kube-scheduler.kubeconfig" system:kube-scheduler "$(cat "$dir/kube-scheduler.token")"
  kubeconfig "$dir/kube-controller-manager.kubeconfig" system:kube-controller-manager "$(cat "$dir/kube-controller-manager.token")"
  # dssuser gets exactly the documented rights for per-user namespaces. A version without
  # ValidatingAdmissionPolicy v1 (before 1.30) gets the rest of the manifest: the tool refuses to run there,
  # and the tests of that refusal need such a cluster.
  if ! "$bin_dir/kubectl" --kubeconfig "$dir/admin.kubeconfig" apply -f "$here/../deploy/rbac/per-user-namespaces.yaml" >"$dir/rbac-apply.log" 2>&1; then
    if "$bin_dir/kubectl" --kubeconfig "$dir/admin.kubeconfig" api-resources --api-group=admissionregistration.k8s.io -o name | grep -q '^validatingadmissionpolicies\.'; then
      cat "$dir/rbac-apply.log" >&2
      return 1
    fi
    echo "cluster: Kubernetes $version serves no ValidatingAdmissionPolicy v1: deploy/rbac applied without its admission policies" >&2
  fi

  # No node IPAM (the bridge plugin allocates pod addresses); the tokens controller signs legacy token
  # Secrets with the cluster's key; no leader election, no serving port.
  setsid bash "$here/supervise.sh" "$owner" -- "$bin_dir/kube-controller-manager" \
    --kubeconfig "$dir/kube-controller-manager.kubeconfig" --root-ca-file "$dir/ca.crt" \
    --service-account-private-key-file "$dir/sa.key" --use-service-account-credentials=false \
    --controllers '*,-nodeipam' --leader-elect=false --secure-port 0 --v=0 \
    >"$dir/controller-manager.log" 2>&1 </dev/null &
  local controller_manager_supervisor=$!
  setsid bash "$here/supervise.sh" "$owner" -- "$bin_dir/kube-scheduler" \
    --kubeconfig "$dir/kube-scheduler.kubeconfig" --leader-elect=false --secure-port 0 --v=0 \
    >"$dir/scheduler.log" 2>&1 </dev/null &
  local scheduler_supervisor=$!

  cat >"$dir/state.env" <<STATE
K8S_VERSION=$version
SERVER=$server
BIN_DIR=$bin_dir
APISERVER_SUPERVISOR=$apiserver_supervisor
ETCD_SUPERVISOR=$etcd_supervisor
CONTROLLER_MANAGER_SUPERVISOR=$controller_manager_supervisor
SCHEDULER_SUPERVISOR=$scheduler_supervisor
APISERVER_PID=$(child_pid "$apiserver_supervisor")
ETCD_PID=$(child_pid "$etcd_supervisor")
CONTROLLER_MANAGER_PID=$(child_pid "$controller_manager_supervisor")
SCHEDULER_PID=$(child_pid "$scheduler_supervisor")
STATE
  if [ "$with_node" = 1 ]; then
    bash "$here/node.sh" start "$dir" "$bin_dir" "$owner" "$executor_image" "$executor_layout"
    bash "$here/network-policy.sh" start --dir "$dir"
  fi
  trap - ERR
  echo "cluster: up at $server in $(( ($(date +%s%N) - started) / 1000000 )) ms$([ "$with_node" = 1 ] && echo ", node $node_name Ready"); admin kubeconfig $dir/admin.kubeconfig, dssuser kubeconfig $dir/dssuser.kubeconfig" >&2
  state_json
}

case "$command" in
  up) up ;;
  status) if healthy; then state_json; else echo "cluster: not running in $dir" >&2; exit 1; fi ;;
  down) down; echo "cluster: stopped" >&2 ;;
  *) echo "usage: cluster.sh up|status|down [--dir DIR] [--owner-pid PID]" >&2; exit 64 ;;
esac
