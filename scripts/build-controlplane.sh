#!/usr/bin/env bash
# Builds the local cluster's binaries from the Go module proxy into version-keyed cache directories outside
# the repository, each once: etcd v3.6.16; kube-apiserver, kubectl, kube-controller-manager, kube-scheduler,
# kubelet v1.34.4 (controlplane/kube); crictl v1.34.0; the sandbox program (controlplane/pause); containerd
# v2.4.2 with its runc shim and ctr. Prints the Kubernetes binaries' directory on stdout; containerd's is its subdirectory
# containerd-v2.4.2. A cold build prints one line per component on stderr; the Go tool's own output goes to
# a log file that the line names.
#
# K8S_VERSION=v1.X.Y builds another Kubernetes version's control plane alone (etcd, kube-apiserver, kubectl,
# kube-controller-manager, kube-scheduler: what `cluster.sh up --no-node` runs; the node runs the default
# version only). Its wrapper module is generated from that version's own go.mod into the version's directory
# (module/): the staging modules it replaces differ from version to version.
set -euo pipefail

K8S_DEFAULT_VERSION=v1.34.4
K8S_VERSION=${K8S_VERSION:-$K8S_DEFAULT_VERSION}
if ! [[ $K8S_VERSION =~ ^v1\.([0-9]+)\.[0-9]+$ ]]; then
  echo "build-controlplane: K8S_VERSION must be a Kubernetes release such as v1.32.13, not '$K8S_VERSION'" >&2
  exit 64
fi
k8s_minor=${BASH_REMATCH[1]}
ETCD_VERSION=v3.6.16
CONTAINERD_VERSION=v2.4.2
CRICTL_VERSION=v1.34.0
here=$(cd "$(dirname "$0")/.." && pwd)

if ! command -v go >/dev/null 2>&1; then
  echo "build-controlplane: the Go toolchain (go >= 1.24) is required to build the local cluster; install it and retry" >&2
  exit 1
fi
go_version=$(go env GOVERSION)
# Under root the cache lives in /var/cache so that the test Unix users can run what is in it.
if [ "$(id -u)" = 0 ]; then default_cache=/var/cache/dss-spark-k8s; else default_cache=${XDG_CACHE_HOME:-$HOME/.cache}/dss-spark-k8s; fi
cache_root=${DSS_SPARK_K8S_CACHE:-$default_cache}
bin_dir="$cache_root/controlplane-k8s-$K8S_VERSION-etcd-$ETCD_VERSION-$go_version"
containerd_dir="$bin_dir/containerd-$CONTAINERD_VERSION"

if [ "$K8S_VERSION" = "$K8S_DEFAULT_VERSION" ]; then
  K8S_COMMANDS=(kube-apiserver kubectl kube-controller-manager kube-scheduler kubelet)
  NODE_COMMANDS=(pause crictl)
  CONTAINERD_COMMANDS=(containerd containerd-shim-runc-v2 ctr)
  kube_module="$here/controlplane/kube"
else
  K8S_COMMANDS=(kube-apiserver kubectl kube-controller-manager kube-scheduler)
  NODE_COMMANDS=()
  CONTAINERD_COMMANDS=()
  kube_module="$bin_dir/module"
fi

missing() {
  local name
  for name in etcd "${NODE_COMMANDS[@]}" "${K8S_COMMANDS[@]}"; do [ -x "$bin_dir/$name" ] || echo "$name"; done
  for name in "${CONTAINERD_COMMANDS[@]}"; do [ -x "$containerd_dir/$name" ] || echo "containerd/$name"; done
}

if [ -z "$(missing)" ]; then
  echo "$bin_dir"
  exit 0
fi

mkdir -p "$bin_dir" "$cache_root/logs"
chmod 755 "$cache_root" "$bin_dir"
if [ ${#CONTAINERD_COMMANDS[@]} -gt 0 ]; then mkdir -p "$containerd_dir" && chmod 755 "$containerd_dir"; fi
# Two set-ups starting at once (setup.sh and a test run) build once.
exec 9>"$cache_root/.build.lock"
flock 9
todo=$(missing | tr '\n' ' ')
if [ -z "$todo" ]; then
  echo "$bin_dir"
  exit 0
fi

log="$cache_root/logs/build-$(date +%Y%m%d-%H%M%S).log"
started=$(date +%s)
echo "build-controlplane: cold build with $go_version of: $todo(many minutes once; the Go tool's output: $log)" >&2
staging=$(mktemp -d "$cache_root/.staging.XXXXXX")
# The Go build and module caches of this build only (~4 GB), removed once every binary is built.
go_caches="$cache_root/.go-caches"
export GOCACHE="$go_caches/build" GOMODCACHE="$go_caches/mod"
trap 'rm -rf "$staging"' EXIT

k8s_version_flags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=$k8s_minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION \
 -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=$k8s_minor"
containerd_version_flags="-s -w \
 -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION \
 -X github.com/containerd/containerd/v2/version.Revision=go-module-proxy"

# build NAME DEST -- COMMAND...: runs the Go command (nice'd: the machine is shared), moves $staging/NAME to
# DEST and prints one line.
build() {
  local name=$1 dest=$2 t0; shift 3
  t0=$(date +%s)
  echo "=== $name: $*" >>"$log"
  if ! nice -n 10 "$@" >>"$log" 2>&1; then
    echo "build-controlplane: building $name failed; the end of $log:" >&2
    tail -15 "$log" >&2
    exit 1
  fi
  mv "$staging/$name" "$dest/$name"
  echo "build-controlplane: $name built in $(( $(date +%s) - t0 )) s" >&2
}

# The wrapper module of a version other than the default: require k8s.io/kubernetes at that version and
# replace each staging module its go.mod replaces (./staging/src/k8s.io/X) by the published k8s.io/X
# v0.<minor>.<patch>; its go and godebug lines are kept (they set the binaries' GODEBUG defaults). The Go
# command fills in the other requirements and go.sum (-mod=mod) on the first build.
generate_kube_module() {
  local upstream staging_version=v0${K8S_VERSION#v1}
  upstream=$(cd "$staging" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -nE 's/^\t"GoMod": "(.*)",?$/\1/p')
  [ -f "$upstream" ] || { echo "build-controlplane: the Go module proxy has no k8s.io/kubernetes $K8S_VERSION; the end of $log:" >&2; tail -5 "$log" >&2; exit 1; }
  mkdir -p "$kube_module"
  {
    echo "module dss-spark-k8s/controlplane/kube"
    echo
    grep -E '^(go|godebug) ' "$upstream"
    echo
    echo "// Generated by scripts/build-controlplane.sh from the go.mod of k8s.io/kubernetes $K8S_VERSION."
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    sed -nE "s#^[[:space:]]*(k8s\.io/[a-z0-9-]+) => \./staging/src/k8s\.io/[a-z0-9-]+[[:space:]]*\$#\t\1 => \1 $staging_version#p" "$upstream"
    echo ")"
  } >"$kube_module/go.mod"
  # K8S_STAGING_OVERRIDES="k8s.io/endpointslice=v0.32.12": a staging module at another version, for a proxy that
  # does not serve one of them (this machine's refuses k8s.io/endpointslice v0.32.13); recorded in the go.mod.
  local override
  for override in ${K8S_STAGING_OVERRIDES:-}; do
    sed -i -E "s#^(\t${override%%=*} => ${override%%=*}) v[^ ]+\$#\1 ${override#*=} // K8S_STAGING_OVERRIDES#" "$kube_module/go.mod"
    grep -q "${override%%=*} ${override#*=} // K8S_STAGING_OVERRIDES" "$kube_module/go.mod" || { echo "build-controlplane: K8S_STAGING_OVERRIDES names ${override%%=*}, which $K8S_VERSION does not replace" >&2; return 1; }
  done
  : >"$kube_module/go.sum"
  echo "build-controlplane: generated $kube_module/go.mod ($(grep -c ' => ' "$kube_module/go.mod") staging modules at $staging_version)" >&2
}

export CGO_ENABLED=0
if [ "$kube_module" != "$here/controlplane/kube" ] && [ -n "$(missing | grep '^kube' || true)" ]; then
  generate_kube_module >>"$log" 2>&1 || { echo "build-controlplane: generating the module of $K8S_VERSION failed; the end of $log:" >&2; tail -15 "$log" >&2; exit 1; }
  tail -1 "$log" >&2
fi
for name in $todo; do
  case "$name" in
    etcd)
      # The same etcd, built by the same Go, may already be in another version's directory.
      sibling=$(ls -d "$cache_root"/controlplane-k8s-*-etcd-"$ETCD_VERSION-$go_version"/etcd 2>/dev/null | head -1 || true)
      if [ -n "$sibling" ] && [ -x "$sibling" ]; then
        cp "$sibling" "$bin_dir/etcd" && echo "build-controlplane: etcd copied from $(dirname "$sibling")" >&2
        continue
      fi
      build etcd "$bin_dir" -- env -C "$here/controlplane/etcd" GOFLAGS="-mod=mod -modcacherw" go build -trimpath -ldflags "-s -w" -o "$staging/etcd" go.etcd.io/etcd/server/v3 ;;
    pause) build pause "$bin_dir" -- env -C "$here/controlplane/pause" go build -trimpath -ldflags "-s -w" -o "$staging/pause" . ;;
    crictl) build crictl "$bin_dir" -- env GOFLAGS=-modcacherw GOBIN="$staging" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION" ;;
    containerd/*)
      # `go install pkg@version` builds containerd's own module as released (its go.mod, its replaces).
      name=${name#containerd/}
      build "$name" "$containerd_dir" -- env GOFLAGS=-modcacherw GOBIN="$staging" go install -trimpath -tags no_btrfs \
        -ldflags "$containerd_version_flags" "github.com/containerd/containerd/v2/cmd/$name@$CONTAINERD_VERSION" ;;
    *) build "$name" "$bin_dir" -- env -C "$kube_module" GOFLAGS="-mod=mod -modcacherw" go build -trimpath -ldflags "$k8s_version_flags" -o "$staging/$name" "k8s.io/kubernetes/cmd/$name" ;;
  esac
done
# Several versions built in a row (scripts/matrix.sh) share the caches: most third-party packages are the same.
[ "${KEEP_GO_CACHES:-0}" = 1 ] || rm -rf "$go_caches"
echo "build-controlplane: cold build took $(( $(date +%s) - started )) s -> $bin_dir" >&2
echo "$bin_dir"
