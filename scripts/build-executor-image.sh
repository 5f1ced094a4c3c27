#!/usr/bin/env bash
# Builds the test cluster's Spark executor image without a registry or an image builder, once per set of
# inputs: Debian (the host's release, from the host's apt sources) with Java 17, Python 3 and tini, by
# debootstrap; the jars and Python libraries of the pyspark that scripts/install-pyspark.sh installs;
# scripts/executor-entrypoint.sh; the user `spark` (uid 185, Spark's own image's). Writes an OCI image layout
# into the cache and prints two lines on stdout: the image's fully qualified name, then the layout's directory.
# Pods use it with imagePullPolicy: Never once it is imported into containerd (scripts/node.sh does that).
# Rebuilt only when an input changes: this script, oci-layout.sh, the entrypoint, the package list, the
# Debian release, pyspark's files.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=oci-layout.sh
source "$here/oci-layout.sh"

EXECUTOR_UID=185
PACKAGES=openjdk-17-jre-headless,python3,procps,bash,tini

if [ "$(id -u)" != 0 ]; then
  echo "build-executor-image: must run as root (debootstrap)" >&2
  exit 1
fi
for tool in debootstrap sha256sum; do
  command -v "$tool" >/dev/null || { echo "build-executor-image: '$tool' is missing; run 'bash scripts/setup.sh' first" >&2; exit 1; }
done
cache_root=${DSS_SPARK_K8S_CACHE:-/var/cache/dss-spark-k8s}
spark_submit=$(bash "$here/install-pyspark.sh")
pyspark_home=$(cd "$(dirname "$spark_submit")/.." && pwd)
pyspark_version=$(sed -nE 's/^__version__.*["'"'"'](.*)["'"'"']/\1/p' "$pyspark_home/version.py")
# shellcheck disable=SC1091
suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
# The host's own Debian mirror (the first deb URI of its apt sources): nothing else is reachable.
mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
  grep -E '^(URIs:|deb )' | grep -v security | head -1 | sed -E 's/^URIs: *//; s/^deb +(\[[^]]*\] +)?//; s/ .*//' || true)
[ -n "$mirror" ] || { echo "build-executor-image: no Debian mirror found in the apt sources" >&2; exit 1; }

# What the image is made of; its digest names the image.
inputs_digest=$({
  echo "$suite $PACKAGES uid=$EXECUTOR_UID"
  cat "$0" "$here/oci-layout.sh" "$here/executor-entrypoint.sh"
  (cd "$pyspark_home" && find jars python/lib -type f -printf '%p %s\n' | sort)
} | sha256sum | cut -c1-12)
name="docker.io/dss-spark-k8s/spark-executor:$pyspark_version-$inputs_digest"
layout="$cache_root/executor-image-$pyspark_version-$inputs_digest"

if [ -f "$layout/index.json" ]; then
  printf '%s\n%s\n' "$name" "$layout"
  exit 0
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.executor-image.lock"
flock 9
if [ -f "$layout/index.json" ]; then
  printf '%s\n%s\n' "$name" "$layout"
  exit 0
fi
started=$(date +%s)
log="$cache_root/logs/executor-image-$inputs_digest.log"
mkdir -p "$cache_root/logs"
echo "build-executor-image: building $name (Debian $suite by debootstrap + pyspark $pyspark_version's jars; once, ~2 min; log: $log)" >&2
staging=$(mktemp -d "$cache_root/.executor-image.XXXXXX")
trap 'rm -rf "$staging"' EXIT
rootfs="$staging/rootfs"

if ! nice -n 10 debootstrap --variant=minbase --include="$PACKAGES" "$suite" "$rootfs" "$mirror" >"$log" 2>&1; then
  echo "build-executor-image: debootstrap failed; the end of $log:" >&2
  tail -15 "$log" >&2
  exit 1
fi
# Nothing the executor needs: package lists and caches, documentation, translations.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
  "$rootfs"/usr/share/doc "$rootfs"/usr/share/man "$rootfs"/usr/share/info "$rootfs"/usr/share/locale \
  "$rootfs"/var/log/*.log "$rootfs"/var/log/apt
java_home=$(dirname "$(dirname "$(readlink -f "$rootfs/usr/bin/java" | sed "s|^$rootfs||")")")
[ -x "$rootfs$java_home/bin/java" ] || { echo "build-executor-image: no java in the image ($java_home)" >&2; exit 1; }

echo "spark:x:$EXECUTOR_UID:$EXECUTOR_UID:Spark executor:/opt/spark/work-dir:/bin/bash" >>"$rootfs/etc/passwd"
echo "spark:x:$EXECUTOR_UID:" >>"$rootfs/etc/group"
echo "spark:!:1::::::" >>"$rootfs/etc/shadow"
mkdir -p "$rootfs/opt/spark/python" "$rootfs/opt/spark/work-dir"
cp -a "$pyspark_home/jars" "$rootfs/opt/spark/jars"
cp -a "$pyspark_home/python/lib" "$rootfs/opt/spark/python/lib"
install -m 755 "$here/executor-entrypoint.sh" "$rootfs/opt/entrypoint.sh"
chown "$EXECUTOR_UID:$EXECUTOR_UID" "$rootfs/opt/spark/work-dir"
chmod 775 "$rootfs/opt/spark/work-dir"

py4j_zip=$(cd "$rootfs/opt/spark/python/lib" && ls py4j-*-src.zip)
config=$(printf '{"User":"%s","WorkingDir":"/opt/spark/work-dir","Entrypoint":["/usr/bin/tini","-s","--","/opt/entrypoint.sh"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","JAVA_HOME=%s","SPARK_HOME=/opt/spark","PYSPARK_PYTHON=python3","PYTHONPATH=/opt/spark/python/lib/pyspark.zip:/opt/spark/python/lib/%s","LANG=C.UTF-8"]}' \
  "$EXECUTOR_UID" "$java_home" "$py4j_zip")
rootfs_size=$(du -sm "$rootfs" | cut -f1)
write_oci_layout "$rootfs" "$staging/layout" "$name" "$config"
rm -rf "$rootfs"
rm -rf "$layout"
mv "$staging/layout" "$layout"
# Layouts of earlier inputs are never used again.
find "$cache_root" -maxdepth 1 -name 'executor-image-*' ! -path "$layout" -exec rm -rf {} +
chmod -R a+rX "$layout"
echo "build-executor-image: built in $(( $(date +%s) - started )) s: root file system ${rootfs_size} MB, layout $(du -sm "$layout" | cut -f1) MB in $layout" >&2
printf '%s\n%s\n' "$name" "$layout"
