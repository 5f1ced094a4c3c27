// The kinds of objects the tool touches, their API paths and names, and the one order in which a job's are
// deleted (teardown and cleanup --orphans both follow TEARDOWN_PHASES). A new kind is added here, given a
// builder in objects.ts and a place in plan.ts.

/** Kinds the tool creates itself and can list: they alone make a job (only dssuser may write them). */
export const JOB_KINDS = ['leases', 'rolebindings', 'serviceaccounts'] as const;

/**
 * Empty Secrets that anchor the job's tokens (TokenRequest boundObjectRef): deleting one revokes its token
 * at once, which is how a rotated token dies. dssuser may create and delete them, never read or list.
 */
export const TOKEN_ANCHOR_KIND = 'secrets';

/** Kinds Spark's driver creates in the job namespace with the job's token (the driver role's rules). */
export const DRIVER_CREATED_KINDS = ['pods', 'persistentvolumeclaims'] as const;

export type TrustedKind = (typeof JOB_KINDS)[number];
export type JobKind = TrustedKind | typeof TOKEN_ANCHOR_KIND;
export type DriverCreatedKind = (typeof DRIVER_CREATED_KINDS)[number];
/** Kinds listed by label (dssuser may not list Secrets). */
export type ListableKind = DriverCreatedKind | TrustedKind;
export type LabelledKind = DriverCreatedKind | JobKind;

/**
 * 1. revoke: the token anchor Secrets, the RoleBinding and the ServiceAccounts (each kills the token's rights
 *    on its own);
 * 2. once the job's token can no longer create anything, what it made (by the job's owner label): a process
 *    that kept the token cannot add a pod behind the delete;
 * 3. the Lease, last and only when all else is gone: left unrenewed, it makes cleanup --orphans find whatever
 *    failed.
 */
export const TEARDOWN_PHASES = {
  revoke: ['secrets', 'rolebindings', 'serviceaccounts'],
  tokenMade: DRIVER_CREATED_KINDS,
  last: ['leases'],
} as const satisfies Record<string, readonly LabelledKind[]>;

/** Namespace guardrails, created with an auto-created namespace and never deleted by teardown or cleanup. */
export type NamespaceGuardrailKind = 'resourcequotas' | 'limitranges' | 'networkpolicies';
export type NamespacedKind = LabelledKind | NamespaceGuardrailKind;
/** Cluster-scoped kinds the tool reads or writes (policy apply, doctor). */
export type ClusterKind = 'namespaces' | 'clusterroles' | 'validatingadmissionpolicies' | 'validatingadmissionpolicybindings';

export const API_PREFIX: Record<NamespacedKind | ClusterKind, string> = {
  pods: '/api/v1',
  persistentvolumeclaims: '/api/v1',
  serviceaccounts: '/api/v1',
  secrets: '/api/v1',
  resourcequotas: '/api/v1',
  limitranges: '/api/v1',
  networkpolicies: '/apis/networking.k8s.io/v1',
  namespaces: '/api/v1',
  leases: '/apis/coordination.k8s.io/v1',
  rolebindings: '/apis/rbac.authorization.k8s.io/v1',
  clusterroles: '/apis/rbac.authorization.k8s.io/v1',
  validatingadmissionpolicies: '/apis/admissionregistration.k8s.io/v1',
  validatingadmissionpolicybindings: '/apis/admissionregistration.k8s.io/v1',
};

/** The kind's name in messages, as kubectl and the apiserver say it. */
export const KIND_NAME: Record<NamespacedKind | ClusterKind, string> = {
  pods: 'Pod',
  persistentvolumeclaims: 'PersistentVolumeClaim',
  serviceaccounts: 'ServiceAccount',
  secrets: 'Secret',
  resourcequotas: 'ResourceQuota',
  limitranges: 'LimitRange',
  networkpolicies: 'NetworkPolicy',
  namespaces: 'Namespace',
  leases: 'Lease',
  rolebindings: 'RoleBinding',
  clusterroles: 'ClusterRole',
  validatingadmissionpolicies: 'ValidatingAdmissionPolicy',
  validatingadmissionpolicybindings: 'ValidatingAdmissionPolicyBinding',
};
