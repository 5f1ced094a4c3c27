// The kinds of objects a job is made of, and the one order in which they are deleted (teardown and cleanup
// --orphans both follow TEARDOWN_PHASES). A new kind the tool creates is added here, given a builder in
// objects.ts and a place in plan.ts; the client (k8s/client.ts) maps each kind to its API path.

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
