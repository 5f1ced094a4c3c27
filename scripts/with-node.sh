#!/bin/sh
# Runs a command with the project's Node.js first on PATH (.toolchain/node, which scripts/setup.sh links where
# the machine's Node is older than 22), so that every npm script, and the `#!/usr/bin/env node` shims of
# node_modules/.bin it calls, use it: `sh scripts/with-node.sh vitest run`.
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -x "$here/.toolchain/node" ]; then
  PATH="$here/.toolchain:$PATH"
  export PATH
elif [ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" -lt 22 ] 2>/dev/null; then
  echo "with-node: Node.js 22 or newer is needed and $(command -v node || echo 'no node') is older; run 'bash scripts/setup.sh' (it installs Node.js 24 into .toolchain)" >&2
  exit 1
fi
exec "$@"
