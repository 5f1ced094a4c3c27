// 3. The namespace, dssuser's rights in it and the driver's ClusterRole: each missing right with the YAML to add.
import pMap from 'p-map';
import type { Profile } from '../config/types.ts';
import { CliError, KubernetesError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { DRIVER_CREATED_KINDS } from '../plan/kinds.ts';
import { resolveAdminProperties } from '../plan/admin-properties.ts';
import { resolveNamespace } from '../plan/names.ts';
import { DRIVER_CLUSTER_ROLE, DRIVER_RULES } from '../plan/objects.ts';
import { MANAGED_NAMESPACE_LABEL } from '../plan/types.ts';
import { isTeamMode } from './config.ts';
import { result, type CheckResult } from './result.ts';

/** The namespace the sample user would get (admin properties from the flags and the profile's file), or why none. */
export function sampleNamespace(profile: Profile, login: string | undefined, adminPropertyFlags: string[]): { namespace: string } | { result: CheckResult } {
  try {
    const sample = login ?? PLACEHOLDER_LOGIN;
    return { namespace: resolveNamespace(profile, { login: sample, adminProperties: resolveAdminProperties(sample, adminPropertyFlags, profile) }) };
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    const fix = /has no admin property/.test(error.message)
      ? 'pass --user LOGIN of a sample end user, with --admin-property NAME=VALUE unless adminPropertiesFile holds it'
      : `change targetNamespace or allowedNamespaces of profile "${profile.name}" in ${profile.source}`;
    return { result: result('namespace', 'namespace', 'fail', error.message, fix) };
  }
}

export async function checkNamespace(kube: Pick<KubeClient, 'getNamespace'>, profile: Profile, namespace: string, sampleUser: boolean): Promise<CheckResult> {
  const title = `namespace ${namespace}`;
  if (!sampleUser) {
    return result(
      'namespace',
      title,
      'warn',
      `from the placeholder login "${PLACEHOLDER_LOGIN}": existence and label not checked`,
      'pass --user LOGIN to check the namespace of a real end user',
    );
  }
  const label = `${MANAGED_NAMESPACE_LABEL}=true`;
  let found: Awaited<ReturnType<KubeClient['getNamespace']>>;
  try {
    found = await kube.getNamespace(namespace);
  } catch (error) {
    if (error instanceof KubernetesError && error.status === 403) {
      return result('namespace', title, 'warn', `cannot read it (no get on namespaces): make sure it exists and is labelled ${label}`);
    }
    if (error instanceof KubernetesError) return result('namespace', title, 'fail', error.message);
    throw error;
  }
  if (found === undefined) {
    if (profile.autoCreateNamespace) return result('namespace', title, 'pass', 'does not exist yet: the first job creates it (autoCreateNamespace)');
    return result(
      'namespace',
      title,
      'fail',
      'does not exist and autoCreateNamespace is off',
      `kubectl create namespace ${namespace} && kubectl label namespace ${namespace} ${label}`,
    );
  }
  if (found.metadata?.labels?.[MANAGED_NAMESPACE_LABEL] !== 'true') {
    return result(
      'namespace',
      title,
      'fail',
      `exists but is not labelled ${label}: dssuser may not write in it`,
      `kubectl label namespace ${namespace} ${label}`,
    );
  }
  return result('namespace', title, 'pass', `exists, labelled ${label}`);
}

/** Login used to expand a per-user namespace template when no --user is given. */
export const PLACEHOLDER_LOGIN = 'sample-user';

export interface Right {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  /** A right on one object only (RBAC resourceNames). */
  name?: string;
}

/** Every right a job of this profile needs in its namespace (namespaces: cluster-scoped, only to auto-create). */
export function requiredRights(
  profile: Pick<Profile, 'autoCreateNamespace' | 'resourceQuota' | 'limitRange'> & Partial<Pick<Profile, 'networkPolicy'>>,
): Right[] {
  const each = (group: string, resources: string[], verbs: string[]): Right[] =>
    resources.flatMap((resource) => verbs.map((verb) => ({ verb, group, resource })));
  return [
    // patch: the last-used record of a job's start on its per-user namespace (run warns without it; namespaces prune reads it).
    ...(profile.autoCreateNamespace ? each('', ['namespaces'], ['get', 'create', 'patch']) : []),
    ...(profile.autoCreateNamespace && profile.resourceQuota ? each('', ['resourcequotas'], ['create']) : []),
    ...(profile.autoCreateNamespace && profile.limitRange ? each('', ['limitranges'], ['create']) : []),
    ...(profile.autoCreateNamespace && profile.networkPolicy?.enabled ? each('networking.k8s.io', ['networkpolicies'], ['create']) : []),
    // deletecollection: cleanup --orphans deletes jobs a batch at a time, by their labels.
    // patch: the credential ids of the job's tokens on its account (run warns without it).
    ...each('', ['serviceaccounts'], ['create', 'get', 'list', 'patch', 'delete', 'deletecollection']),
    { verb: 'create', group: '', resource: 'serviceaccounts', subresource: 'token' },
    ...each('rbac.authorization.k8s.io', ['rolebindings'], ['create', 'get', 'list', 'delete', 'deletecollection']),
    // A job's RoleBinding refers to the driver's ClusterRole; dssuser may bind that one and no other.
    { verb: 'bind', group: 'rbac.authorization.k8s.io', resource: 'clusterroles', name: DRIVER_CLUSTER_ROLE },
    ...each('coordination.k8s.io', ['leases'], ['create', 'get', 'list', 'update', 'delete', 'deletecollection']),
    // Each job token is bound to an empty Secret (its token anchor); never get/list/watch.
    ...each('', ['secrets'], ['create', 'delete', 'deletecollection']),
    // What Spark's driver creates: dssuser only finds and deletes what a job left of them.
    ...each('', [...DRIVER_CREATED_KINDS], ['list', 'delete', 'deletecollection']),
  ];
}

export function rightName(right: Right): string {
  const resource = right.subresource ? `${right.resource}/${right.subresource}` : right.resource;
  return `${right.verb} ${resource}${right.group ? `.${right.group}` : ''}`;
}

/** The missing rights as RBAC rules (YAML): one rule per API group and set of verbs, in the order given. */
export function rulesYaml(missing: Right[]): string {
  const rules: { group: string; resources: string[]; name: string; verbs: string[] }[] = [];
  const verbsOf = new Map<string, string[]>();
  for (const right of missing) {
    const key = `${right.group}\0${right.subresource ? `${right.resource}/${right.subresource}` : right.resource}\0${right.name ?? ''}`;
    verbsOf.set(key, [...(verbsOf.get(key) ?? []), right.verb]);
  }
  for (const [key, verbs] of verbsOf) {
    const [group, resource, name] = key.split('\0') as [string, string, string];
    const same = rules.find((rule) => rule.group === group && rule.name === name && rule.verbs.join() === verbs.join());
    if (same) same.resources.push(resource);
    else rules.push({ group, resources: [resource], name, verbs });
  }
  return rules
    .map((rule) =>
      [
        `- apiGroups: [${rule.group === '' ? '""' : rule.group}]`,
        `  resources: [${rule.resources.join(', ')}]`,
        ...(rule.name ? [`  resourceNames: [${rule.name}]`] : []),
        `  verbs: [${rule.verbs.join(', ')}]`,
      ].join('\n'),
    )
    .join('\n');
}

/** Parallel access reviews, over a few keep-alive connections rather than one TLS handshake each. */
const SSAR_CONCURRENCY = 8;

export async function checkRights(kube: Pick<KubeClient, 'canI'>, profile: Profile, namespace: string, username: string | undefined): Promise<CheckResult> {
  const title = `rights in ${namespace}`;
  const rights = requiredRights(profile);
  let allowed: boolean[];
  try {
    allowed = await pMap(
      rights,
      (right) =>
        // As the apiserver sees the requests: POST /namespaces has no namespace, GET /namespaces/<ns> has both.
        right.resource === 'namespaces'
          ? kube.canI({ ...right, ...(right.verb === 'create' ? {} : { namespace, name: namespace }) })
          : kube.canI({ ...right, namespace }), // bind on a ClusterRole, too: it is checked in the binding's namespace
      { concurrency: SSAR_CONCURRENCY },
    );
  } catch (error) {
    if (error instanceof KubernetesError) return result('rights', title, 'fail', error.message);
    throw error;
  }
  const missing = rights.filter((_, i) => !allowed[i]);
  if (missing.length === 0) return result('rights', title, 'pass', `all ${rights.length} rights a job needs`);
  const who = username ?? 'dssuser';
  const where = isTeamMode(profile)
    ? `# add to the rules of the Role bound to ${who} in namespace ${namespace} (dss-spark-k8s of deploy/rbac/team-namespaces.yaml):`
    : `# add to the rules of the ClusterRole bound to ${who} (dss-spark-k8s of deploy/rbac/per-user-namespaces.yaml):`;
  return result(
    'rights',
    title,
    'fail',
    `missing ${missing.length} of ${rights.length}: ${missing.map(rightName).join(', ')}`,
    `${where}\n${rulesYaml(missing)}`,
  );
}

/** The driver's ClusterRole (deploy/rbac) exists and grants exactly DRIVER_RULES: a job's RoleBinding refers to it. */
export async function checkDriverRole(kube: Pick<KubeClient, 'getClusterRoleRules'>, profile: Profile): Promise<CheckResult> {
  const title = 'driver role';
  const manifest = isTeamMode(profile) ? 'team-namespaces.yaml' : 'per-user-namespaces.yaml';
  const fix = `kubectl apply -f deploy/rbac/${manifest}   # as a cluster administrator`;
  let rules: RuleLike[] | undefined;
  try {
    rules = await kube.getClusterRoleRules(DRIVER_CLUSTER_ROLE);
  } catch (error) {
    if (error instanceof KubernetesError && error.status === 403) {
      return result(
        'driver-role',
        title,
        'warn',
        `cannot read ClusterRole ${DRIVER_CLUSTER_ROLE} (no get on it): make sure it exists as in deploy/rbac/${manifest}, or jobs get no rights`,
      );
    }
    if (error instanceof KubernetesError) return result('driver-role', title, 'fail', error.message);
    throw error;
  }
  if (rules === undefined) return result('driver-role', title, 'fail', `ClusterRole ${DRIVER_CLUSTER_ROLE} does not exist: jobs would get no rights`, fix);
  const granted = ruleSet(rules);
  const needed = ruleSet(DRIVER_RULES);
  const extra = [...granted].filter((right) => !needed.has(right));
  const lacking = [...needed].filter((right) => !granted.has(right));
  if (extra.length > 0)
    return result('driver-role', title, 'fail', `ClusterRole ${DRIVER_CLUSTER_ROLE} grants jobs more than the driver needs: ${extra.join(', ')}`, fix);
  if (lacking.length > 0)
    return result('driver-role', title, 'fail', `ClusterRole ${DRIVER_CLUSTER_ROLE} lacks rights the driver needs: ${lacking.join(', ')}`, fix);
  return result('driver-role', title, 'pass', `ClusterRole ${DRIVER_CLUSTER_ROLE} grants exactly the driver's rights`);
}

/** Rules as "verb resource.group" strings; anything broader than plain names (wildcards, resourceNames, URLs) shows as such. */
type RuleLike = {
  apiGroups?: readonly string[];
  resources?: readonly string[];
  verbs: readonly string[];
  resourceNames?: readonly string[];
  nonResourceURLs?: readonly string[];
};

function ruleSet(rules: readonly RuleLike[]): Set<string> {
  const rights = new Set<string>();
  for (const rule of rules) {
    if (rule.nonResourceURLs?.length) rights.add(`${rule.verbs.join('/')} ${rule.nonResourceURLs.join(',')}`);
    for (const group of rule.apiGroups ?? []) {
      for (const resource of rule.resources ?? []) {
        for (const verb of rule.verbs)
          rights.add(`${verb} ${resource}${group ? `.${group}` : ''}${rule.resourceNames?.length ? ` (${rule.resourceNames.join(',')})` : ''}`);
      }
    }
  }
  return rights;
}
