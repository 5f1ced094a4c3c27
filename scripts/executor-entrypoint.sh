#!/bin/bash
# The executor image's entrypoint (under tini): what Spark's own image does for `executor`. The driver puts the
# executor's settings in the pod's environment (BasicExecutorFeatureStep); this turns them into the
# KubernetesExecutorBackend command line. Any other first argument is run as a command.
set -euo pipefail

if [ "${1:-}" != executor ]; then
  exec "$@"
fi

# SPARK_JAVA_OPT_0, _1, ...: the executor's JVM options, in their numeric order.
java_opts=()
while IFS= read -r name; do
  java_opts+=("${!name}")
done < <(compgen -e | grep '^SPARK_JAVA_OPT_[0-9]*$' | sort -t_ -k4 -n)

classpath="$SPARK_HOME/jars/*"
[ -n "${SPARK_CLASSPATH:-}" ] && classpath="$SPARK_CLASSPATH:$classpath"
[ -n "${SPARK_EXECUTOR_LIBRARY_PATH:-}" ] && export LD_LIBRARY_PATH="$SPARK_EXECUTOR_LIBRARY_PATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# An IPv6 pod address is written in brackets on Spark's command line.
hostname=$SPARK_EXECUTOR_POD_IP
[[ $hostname == *:* ]] && hostname="[$hostname]"

exec "$JAVA_HOME/bin/java" "${java_opts[@]}" \
  -Xms"$SPARK_EXECUTOR_MEMORY" -Xmx"$SPARK_EXECUTOR_MEMORY" \
  -cp "$classpath" org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
  --driver-url "$SPARK_DRIVER_URL" \
  --executor-id "$SPARK_EXECUTOR_ID" \
  --cores "$SPARK_EXECUTOR_CORES" \
  --app-id "$SPARK_APPLICATION_ID" \
  --hostname "$hostname" \
  --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID:-0}" \
  --podName "$SPARK_EXECUTOR_POD_NAME"
