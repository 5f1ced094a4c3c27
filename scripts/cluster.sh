#!/usr/bin/env bash
# The local control plane for tests and the demo: etcd + kube-apiserver (RBAC, TokenRequest) on 127.0.0.1.
#
#   cluster.sh up [--dir DIR] [--owner-pid PID]   start (or reuse a healthy one in DIR); prints its state as JSON
#   cluster.sh status [--dir DIR]                 prints the state as JSON; exit 1 when not running
#   cluster.sh down [--dir DIR]                   stop it and remove DIR
#
# DIR defaults to /tmp/dss-spark-k8s-cluster. With --owner-pid the servers stop by themselves when that
# process exits (vitest's global set-up passes its own pid, so a killed test run leaves nothing behind).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

command=${1:-}; shift || true
dir=/tmp/dss-spark-k8s-cluster
owner=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --owner-pid) owner=$2; shift 2 ;;
    *) echo "cluster: unknown argument $1; usage: cluster.sh up|status|down [--dir DIR] [--owner-pid PID]" >&2; exit 64 ;;
  esac
done

state_json() {
  # shellcheck disable=SC1091
  source "$dir/state.env"
  printf '{"server":"%s","caFile":"%s","adminKubeconfig":"%s","dssuserKubeconfig":"%s","kubectl":"%s","auditLog":"%s","dir":"%s","apiserverPid":%s,"etcdPid":%s}\n' \
    "$SERVER" "$dir/ca.crt" "$dir/admin.kubeconfig" "$dir/dssuser.kubeconfig" "$BIN_DIR/kubectl" "$dir/audit.log" "$dir" "$APISERVER_PID" "$ETCD_PID"
}

healthy() {
  [ -f "$dir/state.env" ] || return 1
  # shellcheck disable=SC1091
  source "$dir/state.env"
  curl -sf --max-time 2 --cacert "$dir/ca.crt" -H "Authorization: Bearer $(cat "$dir/admin.token")" "$SERVER/readyz" >/dev/null
}

stop_pid() { # a supervisor pid: it stops its server and exits
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

down() {
  if [ -f "$dir/state.env" ]; then
    # shellcheck disable=SC1091
    source "$dir/state.env"
    stop_pid "$APISERVER_SUPERVISOR"
    stop_pid "$ETCD_SUPERVISOR"
  fi
  rm -rf "$dir"
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

up() {
  if healthy; then state_json; return; fi
  [ -e "$dir" ] && down
  local bin_dir started
  bin_dir=$(bash "$here/build-controlplane.sh")
  started=$(date +%s%N)
  mkdir -p "$dir" && chmod 700 "$dir"
  trap 'echo "cluster: start-up failed; logs: $dir/*.log" >&2; tail -20 "$dir"/*.log >&2 2>/dev/null; down' ERR

  # A CA, a serving certificate for 127.0.0.1, a service-account signing key and an admin token: new every run.
  openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj /CN=dss-spark-k8s-test-ca \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver -keyout "$dir/apiserver.key" -out "$dir/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$dir/san.ext"
  openssl x509 -req -days 3 -in "$dir/apiserver.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -extfile "$dir/san.ext" -out "$dir/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
  chmod 644 "$dir/ca.crt"
  openssl rand -hex 32 >"$dir/admin.token"
  printf '%s,admin,admin,"system:masters"\n' "$(cat "$dir/admin.token")" >"$dir/tokens.csv"
  # The identity that runs dss-spark-k8s in tests: a user with no rights until a manifest of deploy/rbac is applied.
  openssl rand -hex 32 >"$dir/dssuser.token"
  printf '%s,dssuser,dssuser\n' "$(cat "$dir/dssuser.token")" >>"$dir/tokens.csv"
  cat >"$dir/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    verbs: [get, list, watch]
  - level: Metadata
POLICY

  local etcd_port peer_port api_port server
  etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port)
  server="https://127.0.0.1:$api_port"

  setsid bash "$here/supervise.sh" "$owner" --remove "$dir" -- "$bin_dir/etcd" --name default --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "default=http://127.0.0.1:$peer_port" --unsafe-no-fsync --log-level warn \
    >"$dir/etcd.log" 2>&1 </dev/null &
  local etcd_supervisor=$!
  wait_for "http://127.0.0.1:$etcd_port/health" 30

  # advertise-address must be a non-loopback IP or start-up fails without a default route; nothing is sent
  # to it (192.0.2.1 is a documentation address).
  setsid bash "$here/supervise.sh" "$owner" -- "$bin_dir/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" --bind-address 127.0.0.1 --secure-port "$api_port" \
    --advertise-address 192.0.2.1 --cert-dir "$dir/certs" \
    --tls-cert-file "$dir/apiserver.crt" --tls-private-key-file "$dir/apiserver.key" \
    --service-cluster-ip-range 10.0.0.0/24 --authorization-mode RBAC --token-auth-file "$dir/tokens.csv" \
    --service-account-issuer "https://dss-spark-k8s.test" \
    --service-account-key-file "$dir/sa.key" --service-account-signing-key-file "$dir/sa.key" \
    --audit-policy-file "$dir/audit-policy.yaml" --audit-log-path "$dir/audit.log" \
    --allow-privileged=true --profiling=false --v=0 \
    >"$dir/apiserver.log" 2>&1 </dev/null &
  local apiserver_supervisor=$!
  wait_for "$server/readyz" 90 --cacert "$dir/ca.crt" -H "Authorization: Bearer $(cat "$dir/admin.token")"

  cat >"$dir/admin.kubeconfig" <<KCFG
apiVersion: v1
kind: Config
clusters:
  - name: local
    cluster: { server: "$server", certificate-authority: "$dir/ca.crt" }
users:
  - name: admin
    user: { token: "$(cat "$dir/admin.token")" }
contexts:
  - name: admin@local
    context: { cluster: local, user: admin }
current-context: admin@local
KCFG
  sed -e "s/name: admin$/name: dssuser/" -e "s/user: admin }/user: dssuser }/" -e "s/admin@local/dssuser@local/g" \
    -e "s/token: \".*\"/token: \"$(cat "$dir/dssuser.token")\"/" "$dir/admin.kubeconfig" >"$dir/dssuser.kubeconfig"
  chmod 600 "$dir/admin.kubeconfig" "$dir/dssuser.kubeconfig"
  # dssuser gets exactly the documented rights for per-user namespaces.
  "$bin_dir/kubectl" --kubeconfig "$dir/admin.kubeconfig" apply -f "$here/../deploy/rbac/per-user-namespaces.yaml" >/dev/null
  cat >"$dir/state.env" <<STATE
SERVER=$server
BIN_DIR=$bin_dir
APISERVER_SUPERVISOR=$apiserver_supervisor
ETCD_SUPERVISOR=$etcd_supervisor
APISERVER_PID=$(pgrep -P "$apiserver_supervisor" -f kube-apiserver | head -1)
ETCD_PID=$(pgrep -P "$etcd_supervisor" -f "$bin_dir/etcd" | head -1)
STATE
  trap - ERR
  echo "cluster: up at $server in $(( ($(date +%s%N) - started) / 1000000 )) ms; admin kubeconfig $dir/admin.kubeconfig, dssuser kubeconfig $dir/dssuser.kubeconfig" >&2
  state_json
}

case "$command" in
  up) up ;;
  status) if healthy; then state_json; else echo "cluster: not running in $dir" >&2; exit 1; fi ;;
  down) down; echo "cluster: stopped" >&2 ;;
  *) echo "usage: cluster.sh up|status|down [--dir DIR] [--owner-pid PID]" >&2; exit 64 ;;
esac
