#!/usr/bin/env bash
# Everything the project needs on a fresh machine of the polyglot kind: Node >= 22, npm packages,
# the build, sudo and acl (as root), the local cluster's binaries, pyspark, and (as root) the node's Debian
# packages (runc, the CNI plugins, debootstrap) and the Spark executor image (all cached).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$project_root"

ensure_node
if [ "$(id -u)" = 0 ] && ! { command -v sudo && command -v setfacl && command -v runc && command -v debootstrap &&
  [ -x /usr/lib/cni/bridge ]; } >/dev/null 2>&1; then
  echo "setup: installing sudo, acl, runc, containernetworking-plugins and debootstrap from Debian's packages" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sudo acl runc containernetworking-plugins debootstrap >&2
fi
npm ci --no-audit --no-fund --loglevel=error >&2
npm run --silent build >&2
bash scripts/build-controlplane.sh >/dev/null
bash scripts/install-pyspark.sh >/dev/null
if [ "$(id -u)" = 0 ]; then bash scripts/build-executor-image.sh >/dev/null; fi
echo "setup: ready (node $(node -v))" >&2
