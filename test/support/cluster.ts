// Test-side helpers around the control plane: the admin applies manifests, the dssuser identity.
import { execFileSync } from 'node:child_process';
import { chownSync, readFileSync, writeFileSync } from 'node:fs';
import { KubeConfig, CoreV1Api } from '@kubernetes/client-node';

export function kubectl(kubectlPath: string, kubeconfig: string, args: string[], input?: string): string {
  return execFileSync(kubectlPath, ['--kubeconfig', kubeconfig, ...args], { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

/**
 * Extra dssuser identities of the tests (team-mode ones) are ServiceAccounts in namespaces named so: the
 * dssuser admission policy treats them as dssuser too.
 */
export const EXTRA_IDENTITY_NAMESPACE_PREFIX = 'dss-identity-';

/**
 * Applies a manifest of deploy/rbac as an admin would, with the identity `dssuserName` put in place of "dssuser".
 * The global set-up applies it whole, once, for the run's dssuser; `namespacedOnly` (the extra identities of team
 * tests) applies only its Role and RoleBinding, so that the cluster-scoped objects every test relies on (the
 * admission policies, the driver and doctor roles) are never rewritten for another identity during a run.
 */
export function applyManifest(
  kubectlPath: string,
  adminKubeconfig: string,
  file: string,
  dssuserName: string,
  namespace?: string,
  options: { namespacedOnly?: boolean } = {},
) {
  let text = readFileSync(file, 'utf8');
  text = text.replaceAll(
    'request.userInfo.username == "dssuser"',
    `(request.userInfo.username == "${dssuserName}" || request.userInfo.username.startsWith("system:serviceaccount:${EXTRA_IDENTITY_NAMESPACE_PREFIX}"))`,
  );
  if (dssuserName !== 'dssuser') {
    const [, ns, name] = dssuserName.split(':').slice(1);
    text = text.replaceAll('- kind: User\n    name: dssuser', `- kind: ServiceAccount\n    name: ${name}\n    namespace: ${ns}`);
  }
  if (options.namespacedOnly) {
    text = text
      .split(/^---$/m)
      .filter((doc) => /^kind: (Role|RoleBinding)$/m.test(doc))
      .join('---');
  }
  const nsArgs = namespace ? ['-n', namespace] : [];
  kubectl(kubectlPath, adminKubeconfig, ['apply', ...nsArgs, '-f', '-'], text);
}

/** Admission policies take effect a moment after they are created: wait until one denies dssuser. */
export async function waitForAdmissionPolicy(kubectlPath: string, dssuserKubeconfig: string) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      kubectl(kubectlPath, dssuserKubeconfig, ['create', 'serviceaccount', 'policy-probe', '-n', 'kube-system', '--dry-run=server']);
    } catch (error) {
      if (String((error as { stderr?: string }).stderr).includes('ValidatingAdmissionPolicy')) return;
    }
    if (Date.now() > deadline) throw new Error('test set-up: the dssuser admission policy never took effect');
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** On an external cluster (TEST_KUBECONFIG) the dssuser identity is a service account with a token. */
export async function externalDssuserIdentity(adminKubeconfig: string): Promise<{ name: string; kubeconfig: string }> {
  const kc = new KubeConfig();
  kc.loadFromFile(adminKubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const namespace = 'dss-spark-k8s-test';
  await core.createNamespace({ body: { metadata: { name: namespace } } }).catch(ignoreConflict);
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'dssuser' } } }).catch(ignoreConflict);
  const token = await core.createNamespacedServiceAccountToken({
    name: 'dssuser',
    namespace,
    body: { spec: { audiences: [], expirationSeconds: 24 * 3600 } },
  });
  const kubeconfig = `/tmp/dss-spark-k8s-test-dssuser-${process.pid}.kubeconfig`;
  const cluster = kc.getCurrentCluster()!;
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name: 'dssuser', token: token.status!.token }],
    contexts: [{ name: 'dssuser', cluster: cluster.name, user: 'dssuser' }],
    currentContext: 'dssuser',
  });
  writeFileSync(kubeconfig, kc.exportConfig(), { mode: 0o600 });
  return { name: `system:serviceaccount:${namespace}:dssuser`, kubeconfig };
}

function ignoreConflict(error: { code?: number }) {
  if (error.code !== 409) throw error;
}

/** A self-contained copy (CA embedded) of a token kubeconfig, owned by and readable only by `owner`. */
export function writeTokenKubeconfig(source: string, target: string, owner: { uid: number; gid: number }) {
  const kc = new KubeConfig();
  kc.loadFromFile(source);
  const cluster = kc.getCurrentCluster()!;
  const caData = cluster.caFile ? readFileSync(cluster.caFile).toString('base64') : cluster.caData;
  kc.loadFromOptions({
    clusters: [{ ...cluster, caFile: undefined, caData }],
    users: kc.users,
    contexts: kc.contexts,
    currentContext: kc.currentContext,
  });
  writeFileSync(target, kc.exportConfig(), { mode: 0o600 });
  chownSync(target, owner.uid, owner.gid);
}
