#!/bin/sh
# Runs a command with the project's Node.js first on PATH (.toolchain/node, linked where the machine's Node is
# older than 22), so that every npm script, and the `#!/usr/bin/env node` shims of node_modules/.bin it calls,
# use it: `sh scripts/with-node.sh vitest run`. Where the machine's Node is too old and there is no project Node
# yet, it installs Node.js 24 first (scripts/lib.sh's ensure_node: from the npm registry into the cache, once,
# ~10 s), so that `npm ci && npm run test:unit` needs nothing else.
here=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -x "$here/.toolchain/node" ] && [ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" -lt 22 ] 2>/dev/null; then
  if ! bash -c '. "$1/scripts/lib.sh" && ensure_node' with-node "$here" >&2 || [ ! -x "$here/.toolchain/node" ]; then
    echo "with-node: Node.js 22 or newer is needed, $(command -v node || echo 'no node') is older, and installing Node.js 24 failed; run 'bash scripts/setup.sh'" >&2
    exit 1
  fi
fi
if [ -x "$here/.toolchain/node" ]; then
  PATH="$here/.toolchain:$PATH"
  export PATH
fi
exec "$@"
