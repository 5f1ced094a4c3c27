// The Spark settings of a client-mode job on the local node, shared by the node tests and the job benchmark;
// the tool adds its managed ones (namespace, accounts, pod template, labels, driver ports).

export function nodeSparkConf(executorImage: string): Record<string, string> {
  return {
    'spark.kubernetes.container.image': executorImage,
    'spark.kubernetes.container.image.pullPolicy': 'Never',
    'spark.executor.instances': '2',
    'spark.executor.memory': '512m',
    // Two executors and other test files' pods share a 2-core node.
    'spark.kubernetes.executor.request.cores': '100m',
    // The first computation starts once both executors have registered.
    'spark.scheduler.minRegisteredResourcesRatio': '1.0',
    'spark.scheduler.maxRegisteredResourcesWaitingTime': '180s',
    'spark.ui.enabled': 'false',
  };
}
