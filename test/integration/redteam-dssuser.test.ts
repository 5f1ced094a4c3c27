// Issue 13, finding 3, the compromised dssuser: with exactly the rights of deploy/rbac (the set-up applies the
// per-user manifest; the team manifest's dssuser policy is the same), every write of its manifest is tried outside
// the tool's lane — other names, unlabelled objects, other accounts' tokens, unmanaged namespaces, other Pod
// Security levels — and must be refused; the real provisioning path must still work. Each attack is then made by a
// dssuser as the pre-issue-13 manifests made it (their ClusterRole and dssuser policies, applied under scratch
// names to a scratch account), to show which ones got through. Every attack is a server-side dry run: admission
// policies run on dry runs, and the pre-issue-13 identity really holds the rights it is tried with.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { teardown } from '../../src/teardown/teardown.ts';
import { buildNamespace } from '../../src/plan/objects.ts';
import { buildNetworkPolicy } from '../../src/plan/network-policy.ts';
import type { JobPlan } from '../../src/plan/types.ts';
import { MANAGED_BY_LABEL, OWNER_LABEL } from '../../src/plan/types.ts';
import { adminCore, createManagedNamespace, dssuserKube, uniqueName } from '../support/kube.ts';
import { profileWith } from '../support/profile.ts';
import {
  adminApi,
  dssuserApi,
  installPreIssue13Dssuser,
  PRE_ISSUE_13,
  planFor,
  provisionJob,
  REFUSED_BY,
  type Api,
  type Job,
  type Outcome,
  type PreIssue13Dssuser,
} from '../support/redteam.ts';

interface Attack {
  name: string;
  attempt(api: Api): Promise<Outcome>;
  refusedBy: 'rbac' | 'dssuserPolicy';
  /** What a dssuser of the pre-issue-13 manifests got. */
  pre13: 'admitted' | 'refused';
}

const admin = adminApi();
const teamProfile = profileWith({ targetNamespace: '${adminProperty:k8sNS}' });
const perUserProfile = profileWith({ autoCreateNamespace: true });
const team = uniqueName('dss-team-rt');
/** A team namespace as an administrator makes it: labelled managed, not managed-by (the tool did not create it). */
const adminTeam = uniqueName('dss-team-admin');
const unmanagedVictim = uniqueName('dss-spark-rt-victim');
let jobA: Job;
let jobB: Job;
let perUserJob: Job;
/** A job planned in the team namespace and never provisioned: valid objects, for one change at a time. */
let planned: JobPlan;
/** Another user's job, planned in the per-user namespace of perUserJob's user. */
let intruder: JobPlan;
let pre13: PreIssue13Dssuser;

const clone = <T>(object: T, change: (copy: T) => void = () => {}): T => {
  const copy = structuredClone(object);
  change(copy);
  return copy;
};
const withoutManagedBy = <T extends { metadata?: { labels?: Record<string, string> } }>(object: T) =>
  clone(object, (copy) => delete copy.metadata!.labels![MANAGED_BY_LABEL]);
const renamed = <T extends { metadata?: { name?: string } }>(object: T, name: string) => clone(object, (copy) => (copy.metadata!.name = name));
const inNamespace = <T extends { metadata?: { namespace?: string } }>(object: T, namespace: string) =>
  clone(object, (copy) => (copy.metadata!.namespace = namespace));

function token(api: Api, namespace: string, account: string, spec: Record<string, unknown>) {
  return api.post('serviceaccounts', namespace, account, 'token', { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec }, { dryRun: 'All' });
}
const anchorRef = (name: string) => ({ apiVersion: 'v1', kind: 'Secret', name });
const binding = (
  subjects: unknown[],
  roleRef: Record<string, string> = { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'dss-spark-k8s-driver' },
) => clone(planned.roleBinding, (rb) => Object.assign(rb, { roleRef, subjects }));
const jobSubject = () => ({ kind: 'ServiceAccount', name: planned.baseName, namespace: team });

/** The namespace the tool would create, with `change` applied. */
function namespaceAttack(
  name: string,
  change: (labels: Record<string, string>, object: { metadata: { name: string } }) => void,
  pre13: Attack['pre13'],
): Attack {
  return {
    name,
    attempt: (api) => {
      const namespace = buildNamespace(uniqueName('dss-rt'), perUserProfile) as { metadata: { name: string; labels: Record<string, string> } };
      change(namespace.metadata.labels, namespace);
      return api.create('namespaces', undefined, namespace);
    },
    refusedBy: 'dssuserPolicy',
    pre13,
  };
}

/** The NetworkPolicy the tool gives an auto-created namespace (a driver address, extra egress). */
const toolNetworkPolicy = (namespace: string) =>
  buildNetworkPolicy(namespace, { enabled: true, driverPorts: { from: 40000, to: 40127 }, egress: [{ cidr: '10.1.0.0/16', ports: [443] }] }, [
    '192.0.2.2/32',
  ]) as { metadata: { name: string }; spec: { ingress: unknown[]; egress: unknown[] } };

const policy = { refusedBy: 'dssuserPolicy' } as const;
const rbac = { refusedBy: 'rbac' } as const;

const NAMESPACE_ATTACKS: Attack[] = [
  namespaceAttack('namespace whose name does not start with dss-', (_, ns) => (ns.metadata.name = uniqueName('evil')), 'refused'),
  namespaceAttack(
    'namespace dss-evil, managed, enforcing privileged (the node-root attack)',
    (labels, ns) => {
      ns.metadata.name = uniqueName('dss-evil');
      labels['pod-security.kubernetes.io/enforce'] = 'privileged';
    },
    'admitted',
  ),
  namespaceAttack('namespace with no enforce label', (labels) => delete labels['pod-security.kubernetes.io/enforce'], 'admitted'),
  namespaceAttack('namespace with enforce-version not latest', (labels) => (labels['pod-security.kubernetes.io/enforce-version'] = 'v1.24'), 'admitted'),
  namespaceAttack('namespace auditing privileged', (labels) => (labels['pod-security.kubernetes.io/audit'] = 'privileged'), 'admitted'),
  namespaceAttack('namespace warning privileged', (labels) => (labels['pod-security.kubernetes.io/warn'] = 'privileged'), 'admitted'),
  namespaceAttack('namespace without the managed-by label', (labels) => delete labels[MANAGED_BY_LABEL], 'admitted'),
  namespaceAttack('namespace without the managed label', (labels) => delete labels['dss-spark-k8s.dataiku.io/managed'], 'refused'),
  namespaceAttack(
    'namespace with a finalizer (it would never finish deleting)',
    (_, ns) => {
      (ns.metadata as { finalizers?: string[] }).finalizers = ['example.com/block'];
    },
    'admitted',
  ),
  namespaceAttack(
    "namespace allowing its jobs to bind any PersistentVolume by name (an administrator's annotation)",
    (_, ns) => {
      (ns.metadata as { annotations?: Record<string, string> }).annotations = { 'dss-spark-k8s.dataiku.io/allowed-persistent-volumes': 'other-teams-pv' };
    },
    'admitted',
  ),
  {
    name: 'relabelling an existing managed namespace to enforce privileged',
    attempt: (api) => api.patch('namespaces', undefined, team, { metadata: { labels: { 'pod-security.kubernetes.io/enforce': 'privileged' } } }),
    ...policy,
    pre13: 'refused',
  },
  { name: 'deleting a managed namespace that is not per-user', attempt: (api) => api.delete('namespaces', undefined, team), ...policy, pre13: 'refused' },
];

const TOKEN_ATTACKS: Attack[] = [
  {
    name: "token for an administrator's account (team-ci) in a managed namespace",
    attempt: (api) => token(api, team, 'team-ci', {}),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: "token for team-ci bound to a job's anchor Secret",
    attempt: (api) => token(api, team, 'team-ci', { boundObjectRef: anchorRef(`${jobA.base}-t0`) }),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: "token for a job's executor account",
    attempt: (api) => token(api, team, jobA.executorAccount, { boundObjectRef: anchorRef(`${jobA.base}-t0`) }),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: 'token for a job account without boundObjectRef',
    attempt: (api) => token(api, team, jobA.base, { expirationSeconds: 3600 }),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: 'token for a job account for more than 24 hours',
    attempt: (api) => token(api, team, jobA.base, { expirationSeconds: 86401, boundObjectRef: anchorRef(`${jobA.base}-t0`) }),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: 'token for a job account bound to a Pod (it lives as long as the pod)',
    attempt: (api) => token(api, team, jobA.base, { boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: 'job-pod' } }),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: "token for a job account bound to another job's anchor",
    attempt: (api) => token(api, team, jobA.base, { boundObjectRef: anchorRef(`${jobB.base}-t0`) }),
    ...policy,
    pre13: 'admitted',
  },
];

const DELETE_ATTACKS: Attack[] = [
  {
    name: "delete of an unlabelled RoleBinding (an administrator's)",
    attempt: (api) => api.delete('rolebindings', team, 'team-ci-view'),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: "delete of an unlabelled ServiceAccount (an administrator's)",
    attempt: (api) => api.delete('serviceaccounts', team, 'team-ci'),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: 'delete of a ServiceAccount labelled managed-by but not named dss-spark-…',
    attempt: (api) => api.delete('serviceaccounts', team, 'team-bot'),
    ...policy,
    pre13: 'admitted',
  },
  { name: 'delete of an unlabelled Lease', attempt: (api) => api.delete('leases', team, 'team-lock'), ...policy, pre13: 'admitted' },
  { name: 'delete of an unlabelled Secret', attempt: (api) => api.delete('secrets', team, 'team-secret'), ...policy, pre13: 'refused' },
  { name: 'delete of an unlabelled pod', attempt: (api) => api.delete('pods', team, 'team-pod'), ...policy, pre13: 'admitted' },
  { name: 'delete of an unlabelled claim', attempt: (api) => api.delete('persistentvolumeclaims', team, 'team-data'), ...policy, pre13: 'admitted' },
  {
    name: 'deletecollection of every RoleBinding of the namespace',
    attempt: (api) => api.deleteCollection('rolebindings', team, undefined),
    ...policy,
    pre13: 'admitted',
  },
  { name: 'deletecollection of every Lease of the namespace', attempt: (api) => api.deleteCollection('leases', team, undefined), ...policy, pre13: 'admitted' },
  {
    name: 'deletecollection of every Secret of the namespace',
    attempt: (api) => api.deleteCollection('secrets', team, undefined),
    ...policy,
    pre13: 'refused',
  },
  { name: 'deletecollection of every pod of the namespace', attempt: (api) => api.deleteCollection('pods', team, undefined), ...policy, pre13: 'admitted' },
  {
    name: 'deletecollection of every claim of the namespace',
    attempt: (api) => api.deleteCollection('persistentvolumeclaims', team, undefined),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: 'deletecollection of the ServiceAccounts labelled managed-by',
    attempt: (api) => api.deleteCollection('serviceaccounts', team, `${MANAGED_BY_LABEL}=dss-spark-k8s`),
    ...policy,
    pre13: 'admitted',
  },
];

const CREATE_ATTACKS: Attack[] = [
  {
    name: 'ServiceAccount not named dss-spark-…',
    attempt: (api) => api.create('serviceaccounts', team, renamed(planned.serviceAccount, 'team-x')),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: 'RoleBinding not named dss-spark-…',
    attempt: (api) => api.create('rolebindings', team, renamed(planned.roleBinding, 'team-x')),
    ...policy,
    pre13: 'admitted',
  },
  { name: 'Lease not named dss-spark-…', attempt: (api) => api.create('leases', team, renamed(planned.lease, 'team-x')), ...policy, pre13: 'admitted' },
  { name: 'Secret not named dss-spark-…', attempt: (api) => api.create('secrets', team, renamed(planned.tokenAnchor, 'team-x')), ...policy, pre13: 'admitted' },
  {
    name: 'ServiceAccount without managed-by',
    attempt: (api) => api.create('serviceaccounts', team, withoutManagedBy(planned.serviceAccount)),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: 'RoleBinding without managed-by',
    attempt: (api) => api.create('rolebindings', team, withoutManagedBy(planned.roleBinding)),
    ...policy,
    pre13: 'admitted',
  },
  { name: 'Lease without managed-by', attempt: (api) => api.create('leases', team, withoutManagedBy(planned.lease)), ...policy, pre13: 'admitted' },
  { name: 'Secret without managed-by', attempt: (api) => api.create('secrets', team, withoutManagedBy(planned.tokenAnchor)), ...policy, pre13: 'refused' },
  {
    name: 'ServiceAccount named after no job account (owner label of another name)',
    attempt: (api) =>
      api.create(
        'serviceaccounts',
        team,
        clone(planned.serviceAccount, (sa) => (sa.metadata!.labels![OWNER_LABEL] = jobA.base)),
      ),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: 'ServiceAccount with automountServiceAccountToken true',
    attempt: (api) =>
      api.create(
        'serviceaccounts',
        team,
        clone(planned.serviceAccount, (sa) => (sa.automountServiceAccountToken = true)),
      ),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: 'ServiceAccount with automountServiceAccountToken unset',
    attempt: (api) =>
      api.create(
        'serviceaccounts',
        team,
        clone(planned.serviceAccount, (sa) => delete sa.automountServiceAccountToken),
      ),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: 'ServiceAccount listing secrets',
    attempt: (api) =>
      api.create(
        'serviceaccounts',
        team,
        clone(planned.serviceAccount, (sa) => (sa.secrets = [{ name: 'team-secret' }])),
      ),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: 'ServiceAccount listing image pull secrets',
    attempt: (api) =>
      api.create(
        'serviceaccounts',
        team,
        clone(planned.serviceAccount, (sa) => (sa.imagePullSecrets = [{ name: 'team-secret' }])),
      ),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: 'RoleBinding to ClusterRole edit',
    attempt: (api) => api.create('rolebindings', team, binding([jobSubject()], { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'edit' })),
    // RBAC's escalation check runs before admission, and refuses it once the controller-manager has aggregated
    // edit's rules (without one, edit is empty and only the policy refuses it).
    ...rbac,
    pre13: 'refused',
  },
  {
    name: "RoleBinding to dssuser's own ClusterRole",
    attempt: (api) =>
      api.create('rolebindings', team, binding([jobSubject()], { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'dss-spark-k8s' })),
    ...policy,
    pre13: 'refused',
  },
  {
    name: 'RoleBinding to a Role of the namespace',
    attempt: (api) => api.create('rolebindings', team, binding([jobSubject()], { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'team-empty' })),
    ...policy,
    pre13: 'refused',
  },
  {
    name: 'RoleBinding to a User',
    attempt: (api) => api.create('rolebindings', team, binding([{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'mallory' }])),
    ...policy,
    pre13: 'refused',
  },
  {
    name: "RoleBinding to an administrator's ServiceAccount (team-ci)",
    attempt: (api) => api.create('rolebindings', team, binding([{ kind: 'ServiceAccount', name: 'team-ci', namespace: team }])),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: "RoleBinding to the job's executor account",
    attempt: (api) => api.create('rolebindings', team, binding([{ kind: 'ServiceAccount', name: `${planned.baseName}-exec`, namespace: team }])),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: 'RoleBinding to a ServiceAccount of another namespace',
    attempt: (api) => api.create('rolebindings', team, binding([{ kind: 'ServiceAccount', name: planned.baseName, namespace: 'kube-system' }])),
    ...policy,
    pre13: 'refused',
  },
  {
    name: 'RoleBinding to its job account and team-ci',
    attempt: (api) => api.create('rolebindings', team, binding([jobSubject(), { kind: 'ServiceAccount', name: 'team-ci', namespace: team }])),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: 'Secret of type kubernetes.io/service-account-token (a never-expiring token for team-ci)',
    attempt: (api) =>
      api.create(
        'secrets',
        team,
        clone(planned.tokenAnchor, (s) => {
          s.type = 'kubernetes.io/service-account-token';
          s.metadata!.annotations = { 'kubernetes.io/service-account.name': 'team-ci' };
          delete s.immutable;
        }),
      ),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: 'Opaque Secret with data',
    attempt: (api) =>
      api.create(
        'secrets',
        team,
        clone(planned.tokenAnchor, (s) => (s.data = { k: 'dg==' })),
      ),
    ...policy,
    pre13: 'refused',
  },
  {
    name: 'Opaque Secret with stringData',
    attempt: (api) =>
      api.create(
        'secrets',
        team,
        clone(planned.tokenAnchor, (s) => (s.stringData = { k: 'v' })),
      ),
    ...policy,
    pre13: 'refused',
  },
  {
    name: 'Secret of type kubernetes.io/dockerconfigjson',
    attempt: (api) =>
      api.create(
        'secrets',
        team,
        clone(planned.tokenAnchor, (s) =>
          Object.assign(s, { type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': Buffer.from('{"auths":{}}').toString('base64') } }),
        ),
      ),
    ...policy,
    pre13: 'refused',
  },
  {
    name: "another user's job ServiceAccount in a per-user namespace",
    attempt: (api) => api.create('serviceaccounts', perUserJob.namespace, intruder.serviceAccount),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: "another user's job Secret in a per-user namespace",
    attempt: (api) => api.create('secrets', perUserJob.namespace, intruder.tokenAnchor),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: 'update of an unlabelled Lease',
    attempt: async (api) => api.replace('leases', team, 'team-lock', (await admin.get('leases', team, 'team-lock')).body),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: "update of a job's Lease dropping managed-by",
    attempt: async (api) => {
      const lease = (await admin.get('leases', team, jobA.base)).body as { metadata: { labels: Record<string, string> } };
      delete lease.metadata.labels[MANAGED_BY_LABEL];
      return api.replace('leases', team, jobA.base, lease);
    },
    ...policy,
    pre13: 'admitted',
  },
  {
    name: "update of a job's Lease handing it to another job",
    attempt: async (api) => {
      const lease = (await admin.get('leases', team, jobA.base)).body as { metadata: { labels: Record<string, string> } };
      lease.metadata.labels[OWNER_LABEL] = jobB.base;
      return api.replace('leases', team, jobA.base, lease);
    },
    ...policy,
    pre13: 'admitted',
  },
  {
    name: 'ResourceQuota of another name',
    attempt: (api) =>
      api.create('resourcequotas', team, { metadata: { name: 'team-x', labels: { [MANAGED_BY_LABEL]: 'dss-spark-k8s' } }, spec: { hard: { pods: '1000' } } }),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: 'the dss-spark-k8s ResourceQuota in a namespace an administrator made (pods: 0 starves the team)',
    attempt: (api) =>
      api.create('resourcequotas', adminTeam, {
        metadata: { name: 'dss-spark-k8s', labels: { [MANAGED_BY_LABEL]: 'dss-spark-k8s' } },
        spec: { hard: { pods: '0' } },
      }),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: 'the dss-spark-k8s ResourceQuota with a scope selector (it would unlock limited priority classes)',
    attempt: (api) =>
      api.create('resourcequotas', team, {
        metadata: { name: 'dss-spark-k8s', labels: { [MANAGED_BY_LABEL]: 'dss-spark-k8s' } },
        spec: { hard: { pods: '10' }, scopeSelector: { matchExpressions: [{ scopeName: 'PriorityClass', operator: 'In', values: ['high'] }] } },
      }),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: 'ServiceAccount carrying a cloud workload identity (eks.amazonaws.com/role-arn)',
    attempt: (api) =>
      api.create(
        'serviceaccounts',
        team,
        clone(
          planned.serviceAccount,
          (sa) => (sa.metadata!.annotations = { ...sa.metadata!.annotations, 'eks.amazonaws.com/role-arn': 'arn:aws:iam::1:role/admin' }),
        ),
      ),
    ...policy,
    pre13: 'admitted',
  },
  {
    // kube2iam/kiam read this one; any annotation but the tool's is refused, not only the known identity prefixes.
    name: "ServiceAccount carrying an annotation that is not the tool's (iam.amazonaws.com/role)",
    attempt: (api) =>
      api.create(
        'serviceaccounts',
        team,
        clone(planned.serviceAccount, (sa) => (sa.metadata!.annotations = { ...sa.metadata!.annotations, 'iam.amazonaws.com/role': 'admin' })),
      ),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: "RoleBinding granting the driver role to a job's executor account",
    attempt: (api) =>
      api.create('rolebindings', team, {
        ...clone(planned.roleBinding, (rb) => {
          rb.metadata!.name = `${planned.baseName}-exec`;
          rb.metadata!.labels![OWNER_LABEL] = `${planned.baseName}-exec`;
          rb.subjects = [{ kind: 'ServiceAccount', name: `${planned.baseName}-exec`, namespace: team }];
        }),
      }),
    ...policy,
    pre13: 'admitted',
  },
  {
    name: 'LimitRange of another name',
    attempt: (api) => api.create('limitranges', team, { metadata: { name: 'team-x', labels: { [MANAGED_BY_LABEL]: 'dss-spark-k8s' } }, spec: { limits: [] } }),
    ...policy,
    pre13: 'admitted',
  },
  // NetworkPolicies are additive: a compromised dssuser must not open traffic with the one it may create.
  {
    name: 'NetworkPolicy of another name',
    attempt: (api) => api.create('networkpolicies', team, renamed(toolNetworkPolicy(team), 'team-x')),
    ...policy,
    pre13: 'refused',
  },
  {
    name: 'NetworkPolicy allowing ingress from every namespace',
    attempt: (api) =>
      api.create(
        'networkpolicies',
        team,
        clone(toolNetworkPolicy(team), (np) => np.spec.ingress.push({ from: [{ namespaceSelector: {} as never }] })),
      ),
    ...policy,
    pre13: 'refused',
  },
  {
    name: 'NetworkPolicy allowing egress everywhere',
    attempt: (api) =>
      api.create(
        'networkpolicies',
        team,
        clone(toolNetworkPolicy(team), (np) => np.spec.egress.push({ to: [] })),
      ),
    ...policy,
    pre13: 'refused',
  },
  {
    name: 'NetworkPolicy selecting only some pods',
    attempt: (api) =>
      api.create(
        'networkpolicies',
        team,
        clone(toolNetworkPolicy(team), (np) => Object.assign(np.spec, { podSelector: { matchLabels: { app: 'x' } }, ingress: [{}] })),
      ),
    ...policy,
    pre13: 'refused',
  },
  {
    name: 'the dss-spark-k8s NetworkPolicy in a namespace an administrator made',
    attempt: (api) => api.create('networkpolicies', adminTeam, toolNetworkPolicy(adminTeam)),
    ...policy,
    pre13: 'refused',
  },
  {
    name: 'pod create (its role has no pods create: RBAC)',
    attempt: (api) =>
      api.create('pods', team, {
        metadata: { name: uniqueName('p') },
        spec: { automountServiceAccountToken: false, containers: [{ name: 'c', image: 'busybox' }] },
      }),
    ...rbac,
    pre13: 'refused',
  },
  {
    name: 'claim create (RBAC)',
    attempt: (api) =>
      api.create('persistentvolumeclaims', team, {
        metadata: { name: uniqueName('c') },
        spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
      }),
    ...rbac,
    pre13: 'refused',
  },
  { name: 'ConfigMap create (RBAC)', attempt: (api) => api.create('configmaps', team, { metadata: { name: uniqueName('cm') } }), ...rbac, pre13: 'refused' },
  {
    name: 'Service create (RBAC)',
    attempt: (api) => api.create('services', team, { metadata: { name: uniqueName('s') }, spec: { ports: [{ port: 80 }] } }),
    ...rbac,
    pre13: 'refused',
  },
  {
    name: 'pods/exec (RBAC)',
    attempt: (api) => api.post('pods', team, 'team-pod', 'exec', undefined, { command: 'sh', stdout: 'true' }),
    ...rbac,
    pre13: 'refused',
  },
  {
    name: 'ClusterRoleBinding create (RBAC)',
    attempt: (api) =>
      api.create('clusterrolebindings', undefined, {
        metadata: { name: uniqueName('crb') },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'dss-spark-k8s-driver' },
        subjects: [jobSubject()],
      }),
    ...rbac,
    pre13: 'refused',
  },
];

const UNMANAGED_ATTACKS: Attack[] = ['default', 'kube-system']
  .flatMap((namespace): Attack[] => [
    {
      name: `job ServiceAccount in ${namespace}`,
      attempt: (api) => api.create('serviceaccounts', namespace, inNamespace(planned.serviceAccount, namespace)),
      ...policy,
      pre13: 'refused',
    },
    {
      name: `job RoleBinding in ${namespace}`,
      attempt: (api) => api.create('rolebindings', namespace, inNamespace(binding([{ ...jobSubject(), namespace }]), namespace)),
      ...policy,
      pre13: 'refused',
    },
    {
      name: `job Lease in ${namespace}`,
      attempt: (api) => api.create('leases', namespace, inNamespace(planned.lease, namespace)),
      ...policy,
      pre13: 'refused',
    },
    {
      name: `job Secret in ${namespace}`,
      attempt: (api) => api.create('secrets', namespace, inNamespace(planned.tokenAnchor, namespace)),
      ...policy,
      pre13: 'refused',
    },
  ])
  .concat([
    {
      name: 'delete of a labelled dss-spark- ServiceAccount in default',
      attempt: (api) => api.delete('serviceaccounts', 'default', unmanagedVictim),
      ...policy,
      pre13: 'refused',
    },
    {
      name: 'token for a dss-spark- ServiceAccount in default',
      attempt: (api) => token(api, 'default', unmanagedVictim, { boundObjectRef: anchorRef(`${unmanagedVictim}-t0`) }),
      ...policy,
      pre13: 'refused',
    },
  ]);

const ATTACKS = [...NAMESPACE_ATTACKS, ...TOKEN_ATTACKS, ...DELETE_ATTACKS, ...CREATE_ATTACKS, ...UNMANAGED_ATTACKS];

beforeAll(async () => {
  await createManagedNamespace(team);
  await adminCore().createNamespace({ body: { metadata: { name: adminTeam, labels: { 'dss-spark-k8s.dataiku.io/managed': 'true' } } } });
  const labelled = { [MANAGED_BY_LABEL]: 'dss-spark-k8s' };
  const real = { dryRun: false };
  const made = await Promise.all([
    // The controller-manager makes every namespace's "default" account, perhaps before this does (409).
    admin.create('serviceaccounts', team, { metadata: { name: 'default' } }, real).then((a) => (a.status === 409 ? { ...a, status: 201 } : a)),
    admin.create('serviceaccounts', team, { metadata: { name: 'team-ci' } }, real),
    admin.create('serviceaccounts', team, { metadata: { name: 'team-bot', labels: labelled } }, real),
    admin.create(
      'rolebindings',
      team,
      {
        metadata: { name: 'team-ci-view' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
        subjects: [{ kind: 'ServiceAccount', name: 'team-ci', namespace: team }],
      },
      real,
    ),
    admin.create('roles', team, { metadata: { name: 'team-empty' }, rules: [] }, real),
    admin.create('leases', team, { metadata: { name: 'team-lock' }, spec: { holderIdentity: 'ci' } }, real),
    admin.create('secrets', team, { metadata: { name: 'team-secret' }, stringData: { k: 'v' } }, real),
    admin.create(
      'persistentvolumeclaims',
      team,
      { metadata: { name: 'team-data' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } },
      real,
    ),
    admin.create('serviceaccounts', 'default', { metadata: { name: unmanagedVictim, labels: { ...labelled, [OWNER_LABEL]: unmanagedVictim } } }, real),
    admin.create('secrets', 'default', { metadata: { name: `${unmanagedVictim}-t0`, labels: { ...labelled, [OWNER_LABEL]: unmanagedVictim } } }, real),
  ]);
  const pod = await admin.create('pods', team, { metadata: { name: 'team-pod' }, spec: { containers: [{ name: 'c', image: 'busybox' }] } }, real);
  for (const answer of [...made, pod]) if (answer.status !== 201) throw new Error(`set-up: ${answer.status} ${answer.message}`);
  [jobA, jobB] = await Promise.all([provisionJob(teamProfile, 'alice', { k8sNS: team }), provisionJob(teamProfile, 'bob', { k8sNS: team })]);
  // A pod running as job A's account, for a token bound to it (the apiserver binds only to a pod of the same account).
  const jobPod = {
    metadata: { name: 'job-pod' },
    spec: { serviceAccountName: jobA.base, automountServiceAccountToken: false, containers: [{ name: 'c', image: 'busybox' }] },
  };
  const madePod = await admin.create('pods', team, jobPod, real);
  if (madePod.status !== 201) throw new Error(`set-up: ${madePod.status} ${madePod.message}`);
  perUserJob = await provisionJob(perUserProfile, uniqueName('rt'));
  planned = planFor(teamProfile, 'carol', { k8sNS: team });
  intruder = (() => {
    const plan = planFor(perUserProfile, 'mallory');
    return {
      ...plan,
      serviceAccount: inNamespace(plan.serviceAccount, perUserJob.namespace),
      tokenAnchor: inNamespace(plan.tokenAnchor, perUserJob.namespace),
    };
  })();
  pre13 = await installPreIssue13Dssuser();
});

afterAll(async () => {
  await pre13?.remove();
  await admin.delete('serviceaccounts', 'default', unmanagedVictim, { dryRun: false });
  await admin.delete('secrets', 'default', `${unmanagedVictim}-t0`, { dryRun: false });
  for (const namespace of [team, adminTeam, perUserJob?.namespace].filter(Boolean)) await admin.delete('namespaces', undefined, namespace!, { dryRun: false });
});

describe('dssuser, with exactly the rights of deploy/rbac', () => {
  it('holds these write rights in a managed namespace, each tried out of lane below (a right added later fails here)', async () => {
    const writes = (await dssuserApi().rulesIn(team)).filter((r) => /:(create|update|patch|delete|deletecollection|bind|escalate|impersonate|\*)$/.test(r));
    expect(writes.filter((r) => !/^authorization\.k8s\.io\/|^authentication\.k8s\.io\//.test(r))).toEqual(
      [
        '/limitranges:create',
        '/namespaces:create',
        '/namespaces:delete', // only per-user namespaces it created: test/integration/namespaces-prune.test.ts
        '/namespaces:patch', // only their last-used annotation: namespaces-prune.test.ts
        'networking.k8s.io/networkpolicies:create',
        '/persistentvolumeclaims:delete',
        '/persistentvolumeclaims:deletecollection',
        '/pods:delete',
        '/pods:deletecollection',
        '/resourcequotas:create',
        '/secrets:create',
        '/secrets:delete',
        '/secrets:deletecollection',
        '/serviceaccounts/token:create',
        '/serviceaccounts:create',
        '/serviceaccounts:delete',
        '/serviceaccounts:deletecollection',
        '/serviceaccounts:patch', // only a job account's credential-ids annotation: test/integration/audit.test.ts
        'coordination.k8s.io/leases:create',
        'coordination.k8s.io/leases:delete',
        'coordination.k8s.io/leases:deletecollection',
        'coordination.k8s.io/leases:update',
        'rbac.authorization.k8s.io/clusterroles[dss-spark-k8s-driver]:bind',
        'rbac.authorization.k8s.io/rolebindings:create',
        'rbac.authorization.k8s.io/rolebindings:delete',
        'rbac.authorization.k8s.io/rolebindings:deletecollection',
      ].sort(),
    );
  });

  describe('is refused', () => {
    for (const attack of ATTACKS) {
      it(attack.name, async () => {
        const outcome = await attack.attempt(dssuserApi());
        expect(outcome.status, outcome.message).toBe(403);
        expect(outcome.message).toMatch(REFUSED_BY[attack.refusedBy]);
      });
    }
  });

  describe('is allowed', () => {
    it('to create the namespace the tool plans, at restricted or at baseline', async () => {
      const restricted = await dssuserApi().create('namespaces', undefined, buildNamespace(uniqueName('dss-rt'), perUserProfile, 'alice'));
      const baseline = await dssuserApi().create(
        'namespaces',
        undefined,
        buildNamespace(uniqueName('dss-rt'), profileWith({ podSecurity: { enforce: 'baseline', audit: 'restricted', warn: 'restricted' } })),
      );
      expect([restricted.status, baseline.status], restricted.message + baseline.message).toEqual([201, 201]);
    });

    it('to create the NetworkPolicy the tool plans (server-side dry run)', async () => {
      const outcome = await dssuserApi().create('networkpolicies', team, toolNetworkPolicy(team));
      expect(outcome.status, outcome.message).toBe(201);
    });

    it("to ask a job account's token bound to its anchor, for at most 24 hours", async () => {
      const outcome = await token(dssuserApi(), team, jobA.base, { expirationSeconds: 86400, boundObjectRef: anchorRef(`${jobA.base}-t0`) });
      expect(outcome.status, outcome.message).toBe(201);
    });

    it("to delete a job's accounts, bindings, Leases and anchors as a collection, by the job's labels", async () => {
      const selector = `${MANAGED_BY_LABEL}=dss-spark-k8s,${OWNER_LABEL}=${jobA.base}`;
      const outcomes = await Promise.all(
        ['serviceaccounts', 'rolebindings', 'leases', 'secrets'].map((kind) => dssuserApi().deleteCollection(kind, team, selector)),
      );
      expect(outcomes.map((o) => `${o.status} ${o.message}`)).toEqual(outcomes.map(() => '200 '));
    });

    it("to renew a job's Lease", async () => {
      const dssuser = dssuserApi();
      const lease = (await dssuser.get('leases', team, jobA.base)).body as { spec: Record<string, unknown> };
      lease.spec.renewTime = new Date().toISOString().replace('Z', '000Z');
      const outcome = await dssuser.replace('leases', team, jobA.base, lease);
      expect(outcome.status, outcome.message).toBe(200);
    });

    for (const mode of ['team', 'per-user'] as const) {
      it(`to provision a job through the tool's own path and tear it down, in a ${mode} namespace`, async () => {
        const job = mode === 'team' ? await provisionJob(teamProfile, 'dave', { k8sNS: team }) : await provisionJob(perUserProfile, perUserJob.plan.login);
        const review = await job.api.create('selfsubjectreviews', undefined, { spec: {} }, { dryRun: false });
        expect((review.body.status as { userInfo: { username: string } }).userInfo.username).toBe(`system:serviceaccount:${job.namespace}:${job.base}`);
        expect(job.created.map((o) => o.kind).sort()).toEqual(['leases', 'rolebindings', 'secrets', 'serviceaccounts', 'serviceaccounts']);
        const dssuser = dssuserKube();
        const result = await teardown(dssuser, job.namespace, { baseName: job.base }, job.created, { driverMayHaveRun: true }).finally(() => dssuser.close());
        expect(result.left).toEqual([]);
        for (const object of job.created)
          expect((await admin.get(object.kind, object.namespace, object.name)).status, `${object.kind} ${object.name}`).toBe(404);
      });
    }
  });
});

describe(`the same attacks by a dssuser of the manifests before issue 13 (${PRE_ISSUE_13})`, () => {
  for (const attack of ATTACKS) {
    it(`${attack.name}: ${attack.pre13}`, async () => {
      const outcome = await attack.attempt(pre13.api);
      if (attack.pre13 === 'admitted') expect([200, 201], outcome.message).toContain(outcome.status);
      else expect(outcome.status, outcome.message).toBe(403);
    });
  }
});
