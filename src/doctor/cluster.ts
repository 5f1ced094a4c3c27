// 2. The cluster: dssuser's kubeconfig reaches the apiserver, who it is there, and whether the server has what
// the tool uses (src/k8s/server-capabilities.ts).
import { CliError, KubernetesError } from '../errors.ts';
import type { Kube } from '../k8s/client.ts';
import { capabilityVerdict, readServerCapabilities } from '../k8s/server-capabilities.ts';
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
    const [server, username] = await Promise.all([
      readServerCapabilities(kube),
      kube.whoAmI().then(
        (me) => me.username,
        () => undefined,
      ),
    ]);
    const as = username ? ` as ${username}` : '';
    const reached = `${kube.endpoint.server}: Kubernetes ${server.version.gitVersion}${as}`;
    // What the server lacks of what the tool uses (run refuses a server without a required capability).
    const verdict = capabilityVerdict(server);
    if (verdict.status === 'pass') return { result: result('cluster', title, 'pass', reached), kube, username };
    return {
      result: result('cluster', title, verdict.status, `${reached}; ${verdict.detail.replace(/^Kubernetes \S+ /, 'it ')}`, verdict.fix),
      kube,
      username,
    };
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
