#!/usr/bin/env bash
# Builds kube-apiserver, kubectl (v1.34.4) and etcd (v3.6.16) from the Go module proxy into a
# version-keyed cache directory outside the repository, once. Prints the directory on stdout.
set -euo pipefail

K8S_VERSION=v1.34.4
ETCD_VERSION=v3.6.16
here=$(cd "$(dirname "$0")/.." && pwd)

if ! command -v go >/dev/null 2>&1; then
  echo "build-controlplane: the Go toolchain (go >= 1.24) is required to build kube-apiserver and etcd; install it and retry" >&2
  exit 1
fi
go_version=$(go env GOVERSION)
# Under root the cache lives in /var/cache so that the test Unix users can run what is in it.
if [ "$(id -u)" = 0 ]; then default_cache=/var/cache/dss-spark-k8s; else default_cache=${XDG_CACHE_HOME:-$HOME/.cache}/dss-spark-k8s; fi
cache_root=${DSS_SPARK_K8S_CACHE:-$default_cache}
bin_dir="$cache_root/controlplane-k8s-$K8S_VERSION-etcd-$ETCD_VERSION-$go_version"

if [ -x "$bin_dir/kube-apiserver" ] && [ -x "$bin_dir/etcd" ] && [ -x "$bin_dir/kubectl" ]; then
  echo "$bin_dir"
  exit 0
fi

started=$(date +%s)
echo "build-controlplane: cold build of kube-apiserver/kubectl $K8S_VERSION and etcd $ETCD_VERSION with $go_version (takes many minutes once)" >&2
staging=$(mktemp -d "$cache_root.build.XXXXXX" 2>/dev/null || { mkdir -p "$cache_root"; mktemp -d "$cache_root.build.XXXXXX"; })
trap 'rm -rf "$staging"' EXIT

version_flags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=34 \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION \
 -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=34"

export CGO_ENABLED=0 GOFLAGS=-mod=mod
(cd "$here/controlplane/etcd" && go build -trimpath -ldflags "-s -w" -o "$staging/etcd" go.etcd.io/etcd/server/v3)
(cd "$here/controlplane/kube" && go build -trimpath -ldflags "$version_flags" -o "$staging/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)
(cd "$here/controlplane/kube" && go build -trimpath -ldflags "$version_flags" -o "$staging/kubectl" k8s.io/kubernetes/cmd/kubectl)

mkdir -p "$cache_root"
rm -rf "$bin_dir"
mv "$staging" "$bin_dir"
trap - EXIT
chmod 755 "$bin_dir"
echo "build-controlplane: cold build took $(( $(date +%s) - started ))s -> $bin_dir" >&2
echo "$bin_dir"
