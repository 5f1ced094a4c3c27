#!/usr/bin/env bash
# Everything the project needs on a fresh machine of the polyglot kind: Node >= 22, npm packages,
# the build, sudo and acl (as root), the local cluster's binaries, pyspark, and (as root) the node's Debian
# packages (runc, the CNI plugins, debootstrap) and the Spark executor image (all cached).
# One line per step with its time; what the tools print goes to a log file that the first line names, and a
# failing step prints the end of it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$project_root"

# The Debian packages the tests and the node need (installed as root when one is missing).
DEBIAN_PACKAGES="sudo acl runc containernetworking-plugins debootstrap ipset"

mkdir -p "$cache_root/logs"
log="$cache_root/logs/setup-$(date +%Y%m%d-%H%M%S).log"
: >"$log"
started=$(date +%s)
echo "setup: the tools' output goes to $log" >&2

# step TITLE COMMAND...: runs COMMAND in this shell (ensure_node exports PATH) with its output in the log;
# prints "setup: TITLE ... N s", or the end of the log and exits when it fails.
step() {
  local title=$1 t0 code=0; shift
  t0=$(date +%s)
  printf 'setup: %s ... ' "$title" >&2
  echo "=== $title: $*" >>"$log"
  "$@" >>"$log" 2>&1 || code=$?
  if [ "$code" != 0 ]; then
    printf 'failed after %s s (exit code %s); the end of %s:\n' "$(( $(date +%s) - t0 ))" "$code" "$log" >&2
    tail -25 "$log" | sed 's/^/    /' >&2
    exit 1
  fi
  printf '%s s\n' "$(( $(date +%s) - t0 ))" >&2
}

missing_debian_packages() {
  local package
  for package in $DEBIAN_PACKAGES; do
    dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q '^install ok installed$' || echo "$package"
  done
}

install_debian_packages() {
  # shellcheck disable=SC2046
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(missing_debian_packages)
}

step "Node.js (project Node where the machine's is older than $NODE_MAJOR_MIN)" ensure_node
if [ "$(id -u)" = 0 ] && [ -n "$(missing_debian_packages)" ]; then
  step "Debian packages: $(missing_debian_packages | tr '\n' ' ' | sed 's/ $//')" install_debian_packages
fi
step "npm packages (npm ci)" npm ci --no-audit --no-fund
step "build (typecheck, bundle)" npm run --silent build
step "local cluster binaries (scripts/build-controlplane.sh; a cold build takes ~14 min once)" bash scripts/build-controlplane.sh
step "pyspark (scripts/install-pyspark.sh)" bash scripts/install-pyspark.sh
if [ "$(id -u)" = 0 ]; then step "Spark executor image (scripts/build-executor-image.sh)" bash scripts/build-executor-image.sh; fi
step "NetworkPolicy enforcer (scripts/network-policy.sh build: kube-router; ~3 min once)" bash scripts/network-policy.sh build
echo "setup: ready (node $(node -v)) in $(( $(date +%s) - started )) s; log: $log" >&2
