#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up (Node, packages, build, control plane, pyspark), then
# `npm run check` (typecheck, lint and format, unit tests), then the integration tests against a real
# kube-apiserver. Must run as root (test Unix users, sudo).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$project_root"
bash scripts/setup.sh
ensure_node
npm run --silent check
exec npx vitest run --project integration "$@"
