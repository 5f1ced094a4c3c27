// 2. The cluster: dssuser's kubeconfig reaches the apiserver, and who it is there.
import { CliError, KubernetesError } from '../errors.ts';
import type { Kube } from '../k8s/client.ts';
import { result, type CheckResult } from './result.ts';

export async function checkCluster(load: () => Kube, where: string): Promise<{ result: CheckResult; kube?: Kube; username?: string }> {
  const title = 'cluster';
  let kube: Kube;
  try {
    kube = load();
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    return { result: result('cluster', title, 'fail', error.message, `set kubeconfig (and context) in ${where}, or pass --kubeconfig and --context`) };
  }
  try {
    const version = await kube.serverVersion();
    const username = await kube.whoAmI().then(
      (me) => me.username,
      () => undefined,
    );
    const as = username ? ` as ${username}` : '';
    return { result: result('cluster', title, 'pass', `${kube.endpoint.server}: Kubernetes ${version}${as}`), kube, username };
  } catch (error) {
    if (!(error instanceof KubernetesError)) throw error;
    const fix =
      error.status === 401
        ? `the credentials of dssuser's kubeconfig are rejected: renew them (kubeconfig key of ${where}, or --kubeconfig)`
        : `make ${kube.endpoint.server} reachable from this host, or point kubeconfig/context of ${where} at the right cluster`;
    await kube.close();
    return { result: result('cluster', title, 'fail', error.message, fix) };
  }
}
