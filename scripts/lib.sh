# Sourced by the project's scripts: the cache location and a Node.js >= 22 on PATH.

NODE_MAJOR_WANTED=24
NODE_MAJOR_MIN=22
project_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Under root the cache lives in /var/cache so that the test Unix users can run what is in it.
if [ "$(id -u)" = 0 ]; then default_cache=/var/cache/dss-spark-k8s; else default_cache=${XDG_CACHE_HOME:-$HOME/.cache}/dss-spark-k8s; fi
cache_root=${DSS_SPARK_K8S_CACHE:-$default_cache}
export DSS_SPARK_K8S_CACHE=$cache_root

node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

machine_node() {
  local dir project_node="$cache_root/node-$NODE_MAJOR_WANTED/node_modules/node/bin/node" IFS=:
  for dir in $PATH; do
    [ -x "$dir/node" ] || continue
    [ "$dir/node" -ef "$project_root/.toolchain/node" ] || [ "$dir/node" -ef "$project_node" ] && continue
    echo "$dir/node"
    return
  done
}

# Uses the machine's node when it is new enough; otherwise installs Node 24 from the npm registry
# (the `node` package) into the cache, once, and links it at .toolchain/node for bin/ and the scripts.
ensure_node() {
  local system_node node_dir
  # The machine's own node: the first on PATH that is not the project's Node 24 (a caller may have put
  # .toolchain first, under any spelling, or the cache's directory itself).
  system_node=$(machine_node)
  if [ -n "$system_node" ] && [ "$(node_major "$system_node")" -ge "$NODE_MAJOR_MIN" ]; then
    rm -f "$project_root/.toolchain/node"
    return
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "setup: npm is required to install Node.js $NODE_MAJOR_WANTED; install npm and retry" >&2
    return 1
  fi
  node_dir="$cache_root/node-$NODE_MAJOR_WANTED"
  if [ "$(node_major "$node_dir/node_modules/node/bin/node")" != "$NODE_MAJOR_WANTED" ]; then
    echo "setup: Node.js $(node -v 2>/dev/null || echo none) is older than $NODE_MAJOR_MIN; installing Node.js $NODE_MAJOR_WANTED from the npm registry into $node_dir" >&2
    rm -rf "$node_dir" && mkdir -p "$node_dir"
    npm install --prefix "$node_dir" --no-save --no-audit --no-fund --loglevel=error "node@$NODE_MAJOR_WANTED" >&2
    chmod -R a+rX "$node_dir"
  fi
  mkdir -p "$project_root/.toolchain"
  ln -sfn "$node_dir/node_modules/node/bin/node" "$project_root/.toolchain/node"
  export PATH="$project_root/.toolchain:$PATH"
}
