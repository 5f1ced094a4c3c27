#!/usr/bin/env bash
# The baseline of benchmark B1: what an administrator's shell script of kubectl calls does for one Spark job,
# with the same objects as dss-spark-k8s run (labels included): a job ServiceAccount, an executor
# ServiceAccount, a RoleBinding to the driver's ClusterRole (dss-spark-k8s-driver, of deploy/rbac), a Lease;
# a token (kubectl create token); a kubeconfig
# file in a 0700 directory shared with the end user through POSIX ACLs; `sudo -n -u <user> /bin/true` with
# KUBECONFIG (the spark-submit that does nothing); and the deletes, also on failure (trap).
#
#   kubectl-job.sh simple|batched NAMESPACE END_USER JOB_ID TMPDIR
#   env: KUBECTL (the v1.34.4 kubectl), KUBECONFIG (dssuser's), SERVER, CA_DATA (base64 PEM of the cluster CA)
#
# simple:  one kubectl call per object created (4), the token (1), one delete call for all (1): 6 kubectl runs.
# batched: one `kubectl create -f -` with all four objects, the token, one delete: 3 kubectl runs — the
#          fastest a kubectl script gets.
# Generous to the baseline: the namespace is assumed to exist (no check), and the server and CA are given
# (no `kubectl config view` call); the script has no anchor Secret, no Lease renewal, no rollback beyond the trap.
set -euo pipefail
mode=$1 ns=$2 user=$3 job=$4 tmp=$5
name="kctl-$job"
k() { "$KUBECTL" --request-timeout=30s -n "$ns" "$@"; }

meta() { # name
  printf 'metadata:\n  name: %s\n  namespace: %s\n  labels:\n    app.kubernetes.io/managed-by: dss-spark-k8s\n    dss-spark-k8s.dataiku.io/job-id: %s\n' "$1" "$ns" "$job"
}
job_sa() { printf 'apiVersion: v1\nkind: ServiceAccount\n'; meta "$name"; }
exec_sa() { printf 'apiVersion: v1\nkind: ServiceAccount\n'; meta "$name-exec"; printf 'automountServiceAccountToken: false\n'; }
binding() {
  printf 'apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n'; meta "$name"
  printf 'roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: dss-spark-k8s-driver }\n'
  printf 'subjects: [{ kind: ServiceAccount, name: %s, namespace: %s }]\n' "$name" "$ns"
}
lease() {
  printf 'apiVersion: coordination.k8s.io/v1\nkind: Lease\n'; meta "$name"
  printf 'spec: { holderIdentity: %s, leaseDurationSeconds: 120, renewTime: "%s" }\n' "$(hostname)-$$" "$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)"
}

dir=
finish() {
  [ -n "$dir" ] && rm -rf "$dir"
  k delete --ignore-not-found rolebinding/"$name" serviceaccount/"$name" serviceaccount/"$name-exec" lease/"$name" >/dev/null
}
trap finish EXIT

if [ "$mode" = batched ]; then
  { job_sa; echo ---; exec_sa; echo ---; binding; echo ---; lease; } | k create -f - >/dev/null
else
  job_sa | k create -f - >/dev/null
  exec_sa | k create -f - >/dev/null
  binding | k create -f - >/dev/null
  lease | k create -f - >/dev/null
fi
token=$(k create token "$name" --duration=1h)

umask 077
dir=$(mktemp -d "$tmp/kctl-$job-XXXXXX")
cat >"$dir/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters: [{ name: cluster, cluster: { server: "$SERVER", certificate-authority-data: "$CA_DATA" } }]
users: [{ name: job, user: { token: "$token" } }]
contexts: [{ name: job, context: { cluster: cluster, user: job, namespace: "$ns" } }]
current-context: job
KUBECONFIG
setfacl -m "u:$user:x" "$dir"
setfacl -m "u:$user:r" "$dir/kubeconfig"

KUBECONFIG="$dir/kubeconfig" sudo -n -u "$user" /bin/true
