#!/usr/bin/env bash
# The compatibility matrix, run by hand (`npm run matrix`, as root): the integration tests that depend on the
# apiserver's version against each Kubernetes version's control plane (`cluster.sh up --no-node` in a directory
# of its own, built once per version by build-controlplane.sh), then the real Spark tests with each pyspark on
# the default version's cluster with its node. One test file per vitest run, under the integration-test lock.
# Prints one line per file as it ends and, at the end, the table of COMPATIBILITY.md; the results (and each
# file's vitest output) are kept in the directory named by the last line.
#
#   MATRIX_K8S_VERSIONS="v1.30.14 v1.37.2" MATRIX_PYSPARK_VERSIONS="3.5.9" MATRIX_FILES="run isolation" scripts/matrix.sh
#   (an empty list skips that part: MATRIX_K8S_VERSIONS= runs the Spark part alone)
#   MATRIX_SKIP_OLD=1 leaves out Kubernetes 1.29 (test/matrix/old-kubernetes.test.ts, the version the tool refuses)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$project_root"

K8S_VERSIONS=${MATRIX_K8S_VERSIONS-v1.30.14 v1.32.13 v1.34.4 v1.36.3 v1.37.2}
PYSPARK_VERSIONS=${MATRIX_PYSPARK_VERSIONS-4.3.0 3.5.9}
# What depends on the apiserver: its capabilities, provisioning and run, the isolation policy in team mode,
# rotation, Lease loss, cleanup, doctor, the red-team replays, a real Spark driver (client mode, rotation) with
# pods that stay Pending. (control-plane.test.ts expects v1.34.4 by name.)
K8S_FILES=${MATRIX_FILES:-server-capabilities run isolation rotation-recovery lease-loss cleanup cleanup-forgery doctor redteam-dssuser redteam-job spark}
# What depends on Spark: the real driver without a node, real executors on the node (rotation under running
# executors), doctor on the real pyspark (Spark and fabric8 versions).
SPARK_FILES=${MATRIX_SPARK_FILES:-spark node-spark doctor}

if [ "$(id -u)" != 0 ]; then
  echo "matrix: must run as root, like the integration tests (test Unix users, sudo, the node)" >&2
  exit 1
fi
ensure_node
results=$(mktemp -d /tmp/dss-spark-k8s-matrix-results-XXXXXX)
chmod 755 "$results"
: >"$results/results.tsv"
clusters=()
stop_clusters() { for dir in "${clusters[@]}"; do bash scripts/cluster.sh down --dir "$dir" >/dev/null 2>&1 || true; done; }
trap stop_clusters EXIT

# run_file LABEL FILE [ENV=VALUE...]: one vitest run of test/integration/FILE.test.ts; appends label, file,
# outcome, counts and seconds to results.tsv.
run_file() {
  local label=$1 file=$2 t0 outcome log counts project=integration; shift 2
  # The matrix project's own files (test/matrix/): versions the tool refuses, each with its own control plane.
  [ -f "test/matrix/$file.test.ts" ] && project=matrix
  log="$results/$label-$file.log"
  t0=$(date +%s)
  if env "$@" flock -o /tmp/dss-it.lock npx vitest run --project "$project" "test/$project/$file.test.ts" >"$log" 2>&1; then outcome=pass; else outcome=FAIL; fi
  # vitest's summary: "Tests  3 failed | 18 passed (21)"
  counts=$(sed -E 's/\x1b\[[0-9;]*m//g' "$log" | sed -nE 's/^ *Tests +(.*)$/\1/p' | tail -1)
  printf '%s\t%s\t%s\t%s\t%s\n' "$label" "$file" "$outcome" "${counts:-no summary}" "$(( $(date +%s) - t0 ))" >>"$results/results.tsv"
  echo "matrix: $label $file: $outcome (${counts:-no summary}) in $(( $(date +%s) - t0 )) s; output: $log" >&2
}

for version in $K8S_VERSIONS; do
  # A directory of this run only: another run of the matrix stops its own clusters, not these.
  dir="/tmp/dss-spark-k8s-matrix-$$-${version//./-}"
  clusters+=("$dir")
  t0=$(date +%s)
  if ! K8S_VERSION=$version bash scripts/cluster.sh up --no-node --dir "$dir" --owner-pid $$ >"$results/cluster-$version.json" 2>"$results/cluster-$version.log"; then
    echo "matrix: Kubernetes $version: the control plane did not start; the end of $results/cluster-$version.log:" >&2
    tail -5 "$results/cluster-$version.log" >&2
    printf '%s\t%s\t%s\t%s\t%s\n' "k8s-$version" "cluster" FAIL "did not start" "$(( $(date +%s) - t0 ))" >>"$results/results.tsv"
    continue
  fi
  echo "matrix: Kubernetes $version up in $(( $(date +%s) - t0 )) s ($(grep -o 'built in [0-9]* s\|cold build took [0-9]* s' "$results/cluster-$version.log" | tail -1 || echo cached))" >&2
  for file in $K8S_FILES; do run_file "k8s-$version" "$file" TEST_CLUSTER_DIR="$dir" TEST_K8S_VERSION="$version"; done
  bash scripts/cluster.sh down --dir "$dir" >/dev/null 2>&1 || true
done

# Kubernetes 1.29 (no ValidatingAdmissionPolicy v1): refused by run and doctor, on its own control plane.
[ -n "${MATRIX_SKIP_OLD:-}" ] || run_file "k8s-v1.29.6" old-kubernetes

for spark in $PYSPARK_VERSIONS; do
  PYSPARK_VERSION=$spark bash scripts/install-pyspark.sh >/dev/null
  for file in $SPARK_FILES; do run_file "pyspark-$spark" "$file" PYSPARK_VERSION="$spark"; done
done

# The table: one row per test file, one column per version.
python3 - "$results/results.tsv" >"$results/table.md" <<'PY'
import collections, sys
rows = collections.OrderedDict()
columns = []
for line in open(sys.argv[1]):
    label, file, outcome, counts, seconds = line.rstrip("\n").split("\t")
    if label not in columns:
        columns.append(label)
    cell = "pass" if outcome == "pass" else "**FAIL**"
    rows.setdefault(file, {})[label] = f"{cell} ({counts.replace('|', '/')}, {seconds} s)"
print("| test file | " + " | ".join(columns) + " |")
print("| --- | " + " | ".join("---" for _ in columns) + " |")
for file, cells in rows.items():
    print(f"| {file} | " + " | ".join(cells.get(c, "–") for c in columns) + " |")
PY
cat "$results/table.md"
echo "matrix: $(grep -c $'\tpass\t' "$results/results.tsv" || true) passed, $(grep -c $'\tFAIL\t' "$results/results.tsv" || true) failed; results in $results" >&2
! grep -q $'\tFAIL\t' "$results/results.tsv"
