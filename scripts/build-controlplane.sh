#!/usr/bin/env bash
# Builds the local cluster's binaries from the Go module proxy into version-keyed cache directories outside
# the repository, each once: etcd v3.6.16; kube-apiserver, kubectl, kube-controller-manager, kube-scheduler,
# kubelet v1.34.4 (controlplane/kube); crictl v1.34.0; the sandbox program (controlplane/pause); containerd
# v2.4.2 with its runc shim and ctr. Prints the Kubernetes binaries' directory on stdout; containerd's is its subdirectory
# containerd-v2.4.2. A cold build prints one line per component on stderr; the Go tool's own output goes to
# a log file that the line names.
set -euo pipefail

K8S_VERSION=v1.34.4
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

K8S_COMMANDS=(kube-apiserver kubectl kube-controller-manager kube-scheduler kubelet)
CONTAINERD_COMMANDS=(containerd containerd-shim-runc-v2 ctr)

missing() {
  local name
  for name in etcd pause crictl "${K8S_COMMANDS[@]}"; do [ -x "$bin_dir/$name" ] || echo "$name"; done
  for name in "${CONTAINERD_COMMANDS[@]}"; do [ -x "$containerd_dir/$name" ] || echo "containerd/$name"; done
}

if [ -z "$(missing)" ]; then
  echo "$bin_dir"
  exit 0
fi

mkdir -p "$containerd_dir" "$cache_root/logs"
chmod 755 "$cache_root" "$bin_dir" "$containerd_dir"
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
 -X k8s.io/component-base/version.gitMinor=34 \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION \
 -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=34"
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

export CGO_ENABLED=0
for name in $todo; do
  case "$name" in
    etcd) build etcd "$bin_dir" -- env -C "$here/controlplane/etcd" GOFLAGS="-mod=mod -modcacherw" go build -trimpath -ldflags "-s -w" -o "$staging/etcd" go.etcd.io/etcd/server/v3 ;;
    pause) build pause "$bin_dir" -- env -C "$here/controlplane/pause" go build -trimpath -ldflags "-s -w" -o "$staging/pause" . ;;
    crictl) build crictl "$bin_dir" -- env GOFLAGS=-modcacherw GOBIN="$staging" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION" ;;
    containerd/*)
      # `go install pkg@version` builds containerd's own module as released (its go.mod, its replaces).
      name=${name#containerd/}
      build "$name" "$containerd_dir" -- env GOFLAGS=-modcacherw GOBIN="$staging" go install -trimpath -tags no_btrfs \
        -ldflags "$containerd_version_flags" "github.com/containerd/containerd/v2/cmd/$name@$CONTAINERD_VERSION" ;;
    *) build "$name" "$bin_dir" -- env -C "$here/controlplane/kube" GOFLAGS="-mod=mod -modcacherw" go build -trimpath -ldflags "$k8s_version_flags" -o "$staging/$name" "k8s.io/kubernetes/cmd/$name" ;;
  esac
done
rm -rf "$go_caches"
echo "build-controlplane: cold build took $(( $(date +%s) - started )) s -> $bin_dir" >&2
echo "$bin_dir"
