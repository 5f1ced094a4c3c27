#!/usr/bin/env bash
# Installs pyspark (spark-submit + the Kubernetes jars) into a version-keyed virtual environment
# in the cache outside the repository, once. Prints the path of spark-submit on stdout.
# PYSPARK_VERSION selects another release (the tests read it too): 3.5.9 is the newest Spark 3.5, what DSS ships.
set -euo pipefail

PYSPARK_DEFAULT_VERSION=4.3.0
PYSPARK_VERSION=${PYSPARK_VERSION:-$PYSPARK_DEFAULT_VERSION}
if ! [[ $PYSPARK_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "install-pyspark: PYSPARK_VERSION must be a pyspark release such as 3.5.9, not '$PYSPARK_VERSION'" >&2
  exit 64
fi
# The system interpreter: the end users who run spark-submit through sudo must be able to reach it.
python=${PYTHON:-/usr/bin/python3}
if ! command -v "$python" >/dev/null 2>&1; then
  echo "install-pyspark: python3 (>= 3.10) is required for pyspark; install it and retry" >&2
  exit 1
fi
if ! command -v java >/dev/null 2>&1; then
  echo "install-pyspark: Java 17 or newer is required by spark-submit; install openjdk-17-jre-headless and retry" >&2
  exit 1
fi
py_version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# Under root the cache lives in /var/cache so that the test Unix users can run what is in it.
if [ "$(id -u)" = 0 ]; then default_cache=/var/cache/dss-spark-k8s; else default_cache=${XDG_CACHE_HOME:-$HOME/.cache}/dss-spark-k8s; fi
cache_root=${DSS_SPARK_K8S_CACHE:-$default_cache}
venv="$cache_root/pyspark-$PYSPARK_VERSION-py$py_version"
# The script inside the package, not the venv's bin/ wrapper: that one needs the venv's python first on
# PATH to find SPARK_HOME, and sudo resets PATH.
spark_submit="$venv/lib/python$py_version/site-packages/pyspark/bin/spark-submit"

if [ -x "$spark_submit" ] && [ -f "$venv/.complete" ]; then
  echo "$spark_submit"
  exit 0
fi

started=$(date +%s)
echo "install-pyspark: installing pyspark $PYSPARK_VERSION into $venv (once; a large download)" >&2
rm -rf "$venv"
mkdir -p "$cache_root"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet "pyspark==$PYSPARK_VERSION" >&2
ls "$venv"/lib/python*/site-packages/pyspark/jars/spark-kubernetes_*.jar >/dev/null
# Every Unix user (the end users run spark-submit through sudo) must be able to read and run it.
chmod -R a+rX "$venv"
touch "$venv/.complete"
echo "install-pyspark: took $(( $(date +%s) - started ))s" >&2
echo "$spark_submit"
