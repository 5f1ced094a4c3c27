#!/usr/bin/env bash
# Everything the project needs on a fresh machine of the polyglot kind: Node >= 22, npm packages,
# the build, sudo and acl (as root), the local control plane binaries and pyspark (both cached).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$project_root"

ensure_node
if [ "$(id -u)" = 0 ] && ! { command -v sudo && command -v setfacl; } >/dev/null 2>&1; then
  echo "setup: installing sudo and acl from Debian's packages" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sudo acl >&2
fi
npm ci --no-audit --no-fund --loglevel=error >&2
npm run --silent build >&2
bash scripts/build-controlplane.sh >/dev/null
bash scripts/install-pyspark.sh >/dev/null
echo "setup: ready (node $(node -v))" >&2
