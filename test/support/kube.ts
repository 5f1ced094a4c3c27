// Clients for tests: the admin (set-up only), the restricted dssuser identity, and any bearer token.
import { readFileSync } from 'node:fs';
import { ApiException, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { inject } from 'vitest';
import { Kube } from '../../src/k8s/client.ts';
import { loadCredentials } from '../../src/k8s/kubeconfig.ts';

export function adminKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(inject('cluster').adminKubeconfig);
  return kc;
}

export function adminCore(): CoreV1Api {
  return adminKubeConfig().makeApiClient(CoreV1Api);
}

/** The tool's own client with the admin's credentials (set-up of objects in the tool's JSON form). */
export function adminKube(): Kube {
  return Kube.load({ kubeconfig: inject('cluster').adminKubeconfig, timeoutSeconds: 30 });
}

export function dssuserKube(): Kube {
  return Kube.load({ kubeconfig: inject('cluster').dssuserKubeconfig, timeoutSeconds: 30 });
}

/** A KubeConfig that authenticates with a bearer token against the test cluster. */
export function tokenKubeConfig(token: string, namespace?: string): KubeConfig {
  const admin = adminKubeConfig();
  const cluster = admin.getCurrentCluster()!;
  const caData = cluster.caFile ? readFileSync(cluster.caFile).toString('base64') : cluster.caData;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: cluster.server, caData, skipTLSVerify: cluster.skipTLSVerify }],
    users: [{ name: 'u', token }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u', namespace }],
    currentContext: 'x',
  });
  return kc;
}

/** The tool's own client with a bearer token. */
export function tokenKube(token: string): Kube {
  const { endpoint } = loadCredentials({ kubeconfig: inject('cluster').adminKubeconfig }, {});
  return new Kube({ endpoint, headers: async () => ({ authorization: `Bearer ${token}` }) }, 30);
}

/** The HTTP status a request ends with (200 for success). */
export async function statusOf(request: Promise<unknown>): Promise<number> {
  try {
    await request;
    return 200;
  } catch (error) {
    if (error instanceof ApiException) return Number(error.code);
    const status = (error as { status?: number }).status;
    if (typeof status === 'number') return status;
    throw error;
  }
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
}

/** A namespace dssuser may write in, as an admin (or an auto-create) would make it. */
export async function createManagedNamespace(name: string): Promise<void> {
  await adminCore().createNamespace({
    body: { metadata: { name, labels: { 'dss-spark-k8s.dataiku.io/managed': 'true', 'app.kubernetes.io/managed-by': 'dss-spark-k8s' } } },
  });
}

/**
 * The apiserver checks a service-account token against its informer cache, so a deleted service account
 * takes a moment to revoke its tokens: wait (at most 10 s) until the token gets the expected status.
 */
export async function statusEventually(request: () => Promise<unknown>, expected: number, timeoutMs = 10_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await statusOf(request());
    if (status === expected || Date.now() > deadline) return status;
    await new Promise((r) => setTimeout(r, 100));
  }
}
