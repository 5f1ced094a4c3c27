// Creates a job's objects as dssuser, recording each one so that a failure midway, and the teardown at
// the end, delete exactly what this job created (never a pre-existing object).
import { KubernetesError } from '../errors.ts';
import type { DryRun, KubeClient } from '../k8s/client.ts';
import type { JobKind } from '../plan/kinds.ts';
import { tokenJti } from '../audit/credential-id.ts';
import { boundTokenRequest } from '../plan/objects.ts';
import type { JobLease, JobPlan } from '../plan/types.ts';
import type { CreatedObject } from '../teardown/teardown.ts';

export type { CreatedObject } from '../teardown/teardown.ts';

export type ProvisionClient = Pick<
  KubeClient,
  | 'getNamespace'
  | 'createNamespace'
  | 'createResourceQuota'
  | 'createLimitRange'
  | 'createNetworkPolicy'
  | 'createServiceAccount'
  | 'createSecret'
  | 'createRoleBinding'
  | 'createLease'
  | 'requestToken'
>;

export interface Provisioned {
  /** Whether this job created the namespace (it is never deleted: other jobs share it). */
  namespaceCreated: boolean;
  /** The Lease as stored (its resourceVersion is needed to renew it). */
  lease?: JobLease;
  token: string;
  tokenExpiresAt: Date;
  /** The token's jti: its credential id in audit events (undefined for a dry run or a token without one). */
  credentialId?: string;
}

/**
 * Ensure the namespace, then the service accounts, RoleBinding, Lease and token anchor together, then the
 * TokenRequest (it needs the service account and the anchor's uid): three dependent round trips, four when
 * the namespace is new.
 */
/** `beforeWrites` is awaited after the first read and before the first write (local checks run meanwhile). */
export async function provision(
  kube: ProvisionClient,
  plan: JobPlan,
  created: CreatedObject[],
  dryRun?: DryRun,
  beforeWrites?: Promise<unknown>,
): Promise<Provisioned> {
  try {
    return await createAll(kube, plan, created, dryRun, beforeWrites);
  } catch (error) {
    throw explain(error);
  }
}

async function createAll(
  kube: ProvisionClient,
  plan: JobPlan,
  created: CreatedObject[],
  dryRun?: DryRun,
  beforeWrites?: Promise<unknown>,
): Promise<Provisioned> {
  const namespaceCreated = await ensureNamespace(kube, plan, dryRun, beforeWrites);
  if (dryRun && namespaceCreated) {
    // The namespace does not exist, so the server cannot dry-run objects inside it.
    return { namespaceCreated, token: '', tokenExpiresAt: new Date(0) };
  }
  const record = (kind: JobKind, object: { metadata?: { name?: string } }) => {
    if (!dryRun) created.push({ kind, namespace: plan.namespace, name: object.metadata!.name! });
  };
  // A create whose answer was lost (network, timeout, server error) may have happened: teardown deletes it
  // by name (NotFound is fine). A refusal (4xx, e.g. 409 for someone else's object) created nothing of ours.
  const create = <T>(kind: JobKind, object: { metadata?: { name?: string } }, request: Promise<T>): Promise<T> =>
    request.then(
      (response) => {
        record(kind, object);
        return response;
      },
      (error: unknown) => {
        const status = error instanceof KubernetesError ? error.status : undefined;
        if (status === undefined || status >= 500) record(kind, object);
        throw error;
      },
    );
  // allSettled: every create is answered (and recorded) before a failure starts the rollback.
  const [, anchor, , , lease] = settled(
    await Promise.allSettled([
      create('serviceaccounts', plan.serviceAccount, kube.createServiceAccount(plan.serviceAccount, dryRun)),
      create('secrets', plan.tokenAnchor, kube.createSecret(plan.tokenAnchor, dryRun)),
      create('serviceaccounts', plan.executorServiceAccount, kube.createServiceAccount(plan.executorServiceAccount, dryRun)),
      create('rolebindings', plan.roleBinding, kube.createRoleBinding(plan.roleBinding, dryRun)),
      create('leases', plan.lease, kube.createLease(plan.lease, dryRun)),
    ]),
  );
  if (dryRun) return { namespaceCreated, token: '', tokenExpiresAt: new Date(0) };
  const anchorRef = { name: plan.tokenAnchor.metadata!.name!, uid: (anchor as { metadata?: { uid?: string } }).metadata?.uid ?? '' };
  const token = await kube.requestToken(plan.namespace, plan.baseName, boundTokenRequest(plan.tokenRequest, anchorRef));
  const credentialId = tokenJti(token.token);
  return { namespaceCreated, lease: lease as JobLease, token: token.token, tokenExpiresAt: token.expiresAt, ...(credentialId ? { credentialId } : {}) };
}

async function ensureNamespace(kube: ProvisionClient, plan: JobPlan, dryRun?: DryRun, beforeWrites?: Promise<unknown>): Promise<boolean> {
  // Not ours to create: a missing one fails the next create clearly.
  const read = plan.namespaceObject ? kube.getNamespace(plan.namespace).then((namespace) => namespace !== undefined) : Promise.resolve(true);
  read.catch(() => {}); // awaited below; never an unhandled rejection meanwhile
  // The local checks' refusal wins over whatever the apiserver answers meanwhile (a slow one times out later).
  await beforeWrites;
  const exists = await read;
  if (exists) return false;
  try {
    await kube.createNamespace(plan.namespaceObject!, dryRun);
    // The namespace's own quota, limits and NetworkPolicy, made with it (a job that finds the namespace leaves them be).
    if (!dryRun) {
      await Promise.all([
        plan.namespaceQuota && kube.createResourceQuota(plan.namespaceQuota),
        plan.namespaceLimitRange && kube.createLimitRange(plan.namespaceLimitRange),
        plan.namespaceNetworkPolicy && kube.createNetworkPolicy(plan.namespaceNetworkPolicy),
      ]);
    }
    return true;
  } catch (error) {
    // Another job of the same user created it in the meantime.
    if (error instanceof KubernetesError && error.status === 409) return false;
    throw error;
  }
}

/** The values of settled promises, or the first failure thrown. */
function settled(results: PromiseSettledResult<unknown>[]): unknown[] {
  const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) throw failure.reason;
  return results.map((r) => (r as PromiseFulfilledResult<unknown>).value);
}

/** Adds the likely fix to the errors an administrator sees most when setting up. */
function explain(error: unknown): unknown {
  if (!(error instanceof KubernetesError)) return error;
  if (error.status === 404 && /namespaces? "[^"]+" not found/.test(error.message)) {
    return new KubernetesError(
      `${error.message}; the namespace does not exist and the profile does not create it (autoCreateNamespace: false): ask an administrator to create it`,
      404,
    );
  }
  if (error.status === 403) {
    return new KubernetesError(`${error.message}; grant dssuser the rights of deploy/rbac (dss-spark-k8s doctor shows what is missing)`, 403);
  }
  return error;
}
