// Extra dssuser identities for tests that take rights away: a ServiceAccount (made by the admin) bound
// to a copy of the documented ClusterRole with some rules changed.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CoreV1Api, RbacAuthorizationV1Api, loadAllYaml, type V1ClusterRole, type V1PolicyRule } from '@kubernetes/client-node';
import { inject } from 'vitest';
import { writeTokenKubeconfig } from './cluster.ts';
import { adminKubeConfig, uniqueName } from './kube.ts';

const root = resolve(import.meta.dirname, '../..');
const identityNamespace = 'dss-spark-k8s-test-identities';

/** The rules of the documented ClusterRole (deploy/rbac/per-user-namespaces.yaml). */
export function documentedRules(): V1PolicyRule[] {
  const docs = loadAllYaml(readFileSync(join(root, 'deploy/rbac/per-user-namespaces.yaml'), 'utf8')) as { kind: string }[];
  return (docs.find((d) => d.kind === 'ClusterRole') as V1ClusterRole).rules!;
}

/** Removes one verb of one resource from a rule set. */
export function withoutVerb(rules: V1PolicyRule[], resource: string, verb: string): V1PolicyRule[] {
  return rules.flatMap((rule) => {
    if (!rule.resources?.includes(resource) || !rule.verbs.includes(verb)) return [rule];
    const others = rule.resources.filter((r) => r !== resource);
    const kept = rule.verbs.filter((v) => v !== verb);
    return [...(others.length ? [{ ...rule, resources: others }] : []), ...(kept.length ? [{ ...rule, resources: [resource], verbs: kept }] : [])];
  });
}

export interface TestIdentity {
  name: string;
  /** A kubeconfig for it, readable by the dssuser Unix account. */
  kubeconfig: string;
  setRules(rules: V1PolicyRule[]): Promise<void>;
}

/** A ServiceAccount identity with the given cluster-wide rules. */
export async function createIdentity(rules: V1PolicyRule[]): Promise<TestIdentity> {
  const kc = adminKubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  const name = uniqueName('dssuser');
  await core.createNamespace({ body: { metadata: { name: identityNamespace } } }).catch(() => {});
  await core.createNamespacedServiceAccount({ namespace: identityNamespace, body: { metadata: { name } } });
  await rbac.createClusterRole({ body: { metadata: { name }, rules } });
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
      subjects: [{ kind: 'ServiceAccount', name, namespace: identityNamespace }],
    },
  });
  const token = await core.createNamespacedServiceAccountToken({
    name,
    namespace: identityNamespace,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const unix = inject('unix');
  const admin = kc.getCurrentCluster()!;
  const kubeconfig = join(unix.dssuser.home, `${name}.kubeconfig`);
  const staged = `/tmp/${name}.kubeconfig`;
  const { writeFileSync, rmSync } = await import('node:fs');
  writeFileSync(
    staged,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: admin.server, 'certificate-authority': admin.caFile } }],
      users: [{ name: 'u', user: { token: token.status!.token } }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'x',
    }),
    { mode: 0o600 },
  );
  writeTokenKubeconfig(staged, kubeconfig, unix.dssuser);
  rmSync(staged);
  return {
    name: `system:serviceaccount:${identityNamespace}:${name}`,
    kubeconfig,
    async setRules(newRules) {
      await rbac.replaceClusterRole({ name, body: { metadata: { name }, rules: newRules } });
    },
  };
}
