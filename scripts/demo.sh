#!/usr/bin/env bash
# npm run demo: one real Spark job through dss-spark-k8s on a fresh machine, as DSS would run it.
#
# Does all its set-up (scripts/setup.sh: Node, packages, build, the local cluster's binaries, pyspark, the
# executor image; cached), starts a local one-node cluster (scripts/cluster.sh: etcd, kube-apiserver,
# controller-manager, scheduler, containerd and a kubelet) in a temporary directory, gives the demo dssuser
# the rights of deploy/rbac/per-user-namespaces.yaml, creates demo Unix users and the README's sudoers rule,
# then runs one PySpark job in client mode for the demo end user through `dss-spark-k8s run` as the demo
# dssuser: two executor pods run on the node and compute a sum. Afterwards it shows that the job's token is
# rejected and that nothing labelled with the job is left. Everything it made is removed on exit, also on
# Ctrl-C. There is one node per machine: stop another local cluster that has one first.
#
# Must run as root (it creates Unix users and a sudoers rule, as an administrator would).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$project_root"

DSSUSER=dss-demo-dssuser
END_USER=dss-demo-alice
GROUP=dss-demo-spark
SUDOERS=/etc/sudoers.d/dss-spark-k8s-demo
JOB_LABEL=dss-spark-k8s.dataiku.io/job-id

if [ -t 1 ]; then bold=$'\033[1m'; dim=$'\033[2m'; reset=$'\033[0m'; else bold=; dim=; reset=; fi
section() { printf '\n%s== %s ==%s\n' "$bold" "$*" "$reset"; }
say() { printf '%s\n' "$*"; }
show() { printf '%s$ %s%s\n' "$dim" "$*" "$reset"; }

if [ "$(id -u)" != 0 ]; then
  cat >&2 <<'EOF'
demo: must run as root. The demo does what an administrator does when installing dss-spark-k8s for DSS:
  - creates two Unix users (dss-demo-dssuser runs the tool, dss-demo-alice is the end user) and a group,
  - installs the README's sudoers rule for them in /etc/sudoers.d/dss-spark-k8s-demo,
  - starts a local one-node cluster (kube-apiserver, etcd, containerd, a kubelet; a bridge for the pods),
and removes all of it at the end. Run it as root:  sudo npm run demo   (or: sudo bash scripts/demo.sh)
EOF
  exit 1
fi

# ---------------------------------------------------------------------------------------------------------
# Clean-up: everything this script made, in reverse order, on any exit (also Ctrl-C and errors).
work=
cluster_up=
made_users=()
made_group=
made_sudoers=
watcher=
cleanup() {
  local status=$?
  trap - EXIT INT TERM HUP
  section "Clean-up"
  if [ -n "$watcher" ]; then kill "$watcher" 2>/dev/null || true; wait "$watcher" 2>/dev/null || true; fi
  if [ -n "$cluster_up" ]; then bash scripts/cluster.sh down --dir "$work/cluster" 2>/dev/null || true; say "stopped the local cluster (pods, kubelet, containerd, control plane)"; fi
  if [ -n "$made_sudoers" ]; then rm -f "$SUDOERS"; say "removed $SUDOERS"; fi
  for user in "${made_users[@]}"; do
    # What the user's processes left in /tmp (the JVM's perf data, Spark's scratch dirs after a hard kill).
    find /tmp -maxdepth 1 -user "$user" -exec rm -rf {} + 2>/dev/null || true
    userdel --remove "$user" 2>/dev/null || true
    say "removed Unix user $user"
  done
  if [ -n "$made_group" ]; then groupdel "$GROUP" 2>/dev/null || true; say "removed group $GROUP"; fi
  if [ -n "$work" ]; then rm -rf "$work"; say "removed $work"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

section "1. Set-up: Node, npm packages, build, cluster binaries, pyspark, executor image (cached after the first run)"
bash scripts/setup.sh
ensure_node
spark_submit=$(bash scripts/install-pyspark.sh)
say "spark-submit: $spark_submit"

work=$(mktemp -d /tmp/dss-spark-k8s-demo-XXXXXX)
chmod 755 "$work"

section "2. A local one-node cluster (Kubernetes v1.34: RBAC, TokenRequest, audit log; containerd, a kubelet)"
state=$(bash scripts/cluster.sh up --dir "$work/cluster" --owner-pid $$)
cluster_up=1
field() { python3 -c 'import json,sys; v=json.load(sys.stdin); [v := v[k] for k in sys.argv[1].split(".")]; print(v)' "$1" <<<"$state"; }
executor_image=$(field node.executorImage)
server=$(field server)
kubectl=$(field kubectl)
admin=$(field adminKubeconfig)
ca=$(field caFile)
audit=$(field auditLog)
say "apiserver: $server; node $(field node.name) ($(field node.ip)); executor image $executor_image (imported, never pulled)"
show "kubectl apply -f deploy/rbac/per-user-namespaces.yaml   # as the cluster admin: dssuser's rights"
"$kubectl" --kubeconfig "$admin" apply -f deploy/rbac/per-user-namespaces.yaml

section "3. Demo Unix users and the README's sudoers rule"
if ! getent group "$GROUP" >/dev/null; then groupadd "$GROUP"; made_group=1; fi
for user in "$DSSUSER" "$END_USER"; do
  if ! getent passwd "$user" >/dev/null; then
    useradd --create-home --user-group --shell /bin/bash "$user"
    made_users+=("$user")
  fi
done
usermod -a -G "$GROUP" "$END_USER"
say "users: $DSSUSER (runs dss-spark-k8s, like DSS's dssuser), $END_USER (the end user, in group $GROUP)"
cat >"$work/sudoers" <<EOF
Defaults:$DSSUSER env_keep += "KUBECONFIG"
$DSSUSER ALL = (%$GROUP) NOPASSWD: $spark_submit
EOF
visudo -c -q -f "$work/sudoers"
install -m 0440 "$work/sudoers" "$SUDOERS"
made_sudoers=1
say "$SUDOERS:"
sed 's/^/    /' "$SUDOERS"

# The CLI, staged where the demo dssuser can run it (the repository may sit in root's home).
mkdir -p "$work/cli/.toolchain"
cp -r bin dist "$work/cli/"
ln -s "$(readlink -f "$(command -v node)")" "$work/cli/.toolchain/node"
chmod -R a+rX "$work/cli"
cli="$work/cli/bin/dss-spark-k8s"
if ! runuser -u "$DSSUSER" -- "$cli" --version >/dev/null 2>&1; then
  echo "demo: $DSSUSER cannot run $(readlink -f "$(command -v node)"); install Node.js >= 22 where every user can run it" >&2
  exit 1
fi

# dssuser's own Kubernetes credentials (a token with exactly the rights applied above), readable by it only.
mkdir -m 0700 "$work/dssuser"
"$kubectl" --kubeconfig "$work/cluster/dssuser.kubeconfig" config view --flatten --minify >"$work/dssuser/kubeconfig"
mkdir -m 0755 "$work/jobs"
chown -R "$DSSUSER:" "$work/dssuser" "$work/jobs"
chmod 0600 "$work/dssuser/kubeconfig"

# The profile, as an administrator would write it (see the README: "The configuration file").
cat >"$work/config.yaml" <<EOF
profiles:
  default:
    targetNamespace: "dss-ns-\${dssUserLogin}"
    autoCreateNamespace: true
    sparkSubmit: $spark_submit
    kubeconfig: $work/dssuser/kubeconfig
    tempDir: $work/jobs
    sparkConf:
      spark.kubernetes.container.image: $executor_image
      spark.kubernetes.container.image.pullPolicy: Never     # built and imported locally (no registry)
      spark.executor.instances: "2"
      spark.executor.memory: 512m
      spark.kubernetes.executor.request.cores: 100m
      spark.scheduler.minRegisteredResourcesRatio: "1.0"     # compute once both executors have registered
      spark.ui.enabled: "false"
      spark.log.level: WARN
EOF
chmod 0644 "$work/config.yaml"

# The end user's application and a directory of its own (the app copies its token there for step 5).
mkdir -m 0755 "$work/app" "$work/alice"
cat >"$work/app/job.py" <<'APP'
import json, os, pwd, re, socket, sys, time
from pyspark.sql import SparkSession

def say(text):
    print(f"demo-app: {text}", flush=True)

# The job token, copied out of $KUBECONFIG so that the demo can show it is dead after the job.
text = open(os.environ["KUBECONFIG"], encoding="utf-8").read()
try:
    config = json.loads(text)
    context = next(c["context"] for c in config["contexts"] if c["name"] == config["current-context"])
    token = next(u["user"]["token"] for u in config["users"] if u["name"] == context["user"])
except ValueError:
    token = re.search(r"^\s*token:\s*\"?([^\"\s]+)", text, re.MULTILINE).group(1)
with open(os.open(os.path.join(sys.argv[1], "token"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
    f.write(token)

say(f"the driver runs as {pwd.getpwuid(os.getuid()).pw_name}; waiting for 2 executors")
spark = SparkSession.builder.appName("dss-spark-k8s-demo").getOrCreate()
sc = spark.sparkContext
total = sc.parallelize(range(1, 1000001), 8).sum()
hosts = sorted(set(sc.parallelize(range(200), 20).map(lambda _: socket.gethostname()).collect()))
say(f"sum of 1..1000000, computed by the executors: {total}")
say(f"executor pods that ran the Python tasks: {' '.join(hosts)}")
time.sleep(3)  # long enough for the demo to show the executor pods Running
spark.stop()
say("SparkSession stopped")
APP
chmod 0644 "$work/app/job.py"
chown -R "$END_USER:" "$work/alice"

job_id=demo-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')

section "4. One real Spark job (PySpark, client mode) for $END_USER, run by $DSSUSER"
run_args=(run --config "$work/config.yaml" --user "$END_USER" --job-id "$job_id" --events "$work/dssuser/events.jsonl"
  -- "$work/app/job.py" "$work/alice")
show "dss-spark-k8s ${run_args[*]}   # as $DSSUSER"
# While the job runs: show its executor pods, created by the driver with the job's token, once both run.
(
  for _ in $(seq 600); do
    pods=$("$kubectl" --kubeconfig "$admin" get pods -A -l "$JOB_LABEL=$job_id" --no-headers \
      -o custom-columns='NAMESPACE:.metadata.namespace,POD:.metadata.name,PHASE:.status.phase,IP:.status.podIP,NODE:.spec.nodeName,SERVICE-ACCOUNT:.spec.serviceAccountName' 2>/dev/null || true)
    if [ "$(grep -c ' Running ' <<<"$pods")" -ge 2 ]; then
      printf '%s[demo, as admin, while the job runs] executor pods labelled %s=%s:%s\n' "$bold" "$JOB_LABEL" "$job_id" "$reset"
      sed 's/^/    /' <<<"$pods"
      exit 0
    fi
    sleep 0.5
  done
) &
watcher=$!
set +e
runuser -u "$DSSUSER" -- env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$(getent passwd "$DSSUSER" | cut -d: -f6)" USER="$DSSUSER" \
  "$cli" "${run_args[@]}"
code=$?
set -e
kill "$watcher" 2>/dev/null || true
wait "$watcher" 2>/dev/null || true
watcher=
say "dss-spark-k8s exited with code $code"
[ "$code" = 0 ] || exit "$code"

section "5. Who created what in the job's namespace (the apiserver's audit log)"
python3 - "$audit" "$work/dssuser/events.jsonl" <<'EOF'
import json, sys
audit, events = sys.argv[1], sys.argv[2]
job = next(e for e in map(json.loads, open(events)) if e["event"] == "provisioned")
namespace, sa = job["namespace"], job["serviceAccount"]
for line in open(audit):
    e = json.loads(line)
    ref = e.get("objectRef", {})
    # Events (the scheduler's and the kubelet's) left out.
    if ref.get("namespace") != namespace or ref.get("resource") in ("namespaces", "events") or e["verb"] != "create":
        continue
    what = ref["resource"] + ("/" + ref["subresource"] if ref.get("subresource") else "")
    who = "job serviceaccount (Spark driver)" if e["user"]["username"].endswith(":" + sa) else e["user"]["username"]
    print(f"    {what:<22} {ref.get('name', ''):<54} HTTP {e['responseStatus']['code']}  by {who}")
EOF

section "6. After the job: its token is rejected, and nothing labelled with the job is left"
token_file="$work/alice/token"
printf 'Authorization: Bearer %s\n' "$(cat "$token_file")" >"$work/auth-header"
chmod 0600 "$work/auth-header"
say "the job's token (the app copied it from its KUBECONFIG): $(head -c 16 "$token_file")…"
show "curl -H 'Authorization: Bearer <job token>' $server/api"
# The apiserver caches a token's authentication for up to 10 s.
for _ in $(seq 60); do
  status=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$ca" -H "@$work/auth-header" "$server/api")
  [ "$status" = 401 ] && break
  sleep 0.5
done
say "HTTP $status$([ "$status" = 401 ] && echo ' Unauthorized: the token died with its service account')"
show "kubectl get pods,services,configmaps,pvc,serviceaccounts,rolebindings,leases,secrets -A -l $JOB_LABEL=$job_id"
"$kubectl" --kubeconfig "$admin" get pods,services,configmaps,persistentvolumeclaims,serviceaccounts,rolebindings,leases,secrets -A -l "$JOB_LABEL=$job_id" 2>&1
[ "$status" = 401 ] || { echo "demo: the job's token still works (HTTP $status)" >&2; exit 1; }
