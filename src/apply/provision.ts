// Creates a job's objects as dssuser, recording each one so that a failure midway, and the teardown at
// the end, delete exactly what this job created (never a pre-existing object).
import { KubernetesError } from '../errors.ts';
import type { DryRun, KubeClient } from '../k8s/client.ts';
import type { JobKind } from '../plan/kinds.ts';
import { tokenJti } from '../audit/credential-id.ts';
import { beingDeletedMessage, isBeingDeleted, isToolPerUserNamespace, lastUsedAnnotations } from '../namespaces/prune.ts';
import { boundTokenRequest } from '../plan/objects.ts';
import { USER_LABEL, type JobLease, type JobPlan } from '../plan/types.ts';
import type { CreatedObject } from '../teardown/teardown.ts';

export type { CreatedObject } from '../teardown/teardown.ts';

export type ProvisionClient = Pick<
  KubeClient,
  | 'getNamespace'
  | 'createNamespace'
  | 'annotateNamespace'
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
  /** What went wrong without failing the job (the caller reports them). */
  warnings?: string[];
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
  const warnings: string[] = [];
  const namespaceCreated = await ensureNamespace(kube, plan, warnings, dryRun, beforeWrites);
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
  return {
    namespaceCreated,
    lease: lease as JobLease,
    token: token.token,
    tokenExpiresAt: token.expiresAt,
    ...(credentialId ? { credentialId } : {}),
    ...(warnings.length > 0 ? { warnings } : {}),
  };
}

async function ensureNamespace(kube: ProvisionClient, plan: JobPlan, warnings: string[], dryRun?: DryRun, beforeWrites?: Promise<unknown>): Promise<boolean> {
  // Not ours to create: a missing one fails the next create clearly.
  const read = plan.namespaceObject ? kube.getNamespace(plan.namespace) : Promise.resolve(undefined);
  read.catch(() => {}); // awaited below; never an unhandled rejection meanwhile
  // The local checks' refusal wins over whatever the apiserver answers meanwhile (a slow one times out later).
  await beforeWrites;
  const existing = await read;
  if (!plan.namespaceObject) return false;
  if (existing) {
    if (isBeingDeleted(existing)) throw new KubernetesError(beingDeletedMessage(plan.namespace));
    if (!dryRun && plan.namespaceObject.metadata?.labels?.[USER_LABEL] && isToolPerUserNamespace(existing)) {
      await recordLastUsed(kube, plan.namespace, warnings);
    }
    return false;
  }
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

/**
 * The job's start on its per-user namespace, before any of its objects: the patch changes the namespace's
 * resourceVersion, so a `namespaces prune` that read it before fails its delete (409) and keeps it; one that
 * deleted it first shows in the answer. Without the right (a manifest before prune): a warning, and no prune
 * either (the same manifest grants both).
 */
async function recordLastUsed(kube: ProvisionClient, namespace: string, warnings: string[]): Promise<void> {
  let patched: Awaited<ReturnType<ProvisionClient['annotateNamespace']>>;
  try {
    patched = await kube.annotateNamespace(namespace, lastUsedAnnotations(new Date()));
  } catch (error) {
    if (error instanceof KubernetesError && error.status === 404) throw new KubernetesError(beingDeletedMessage(namespace));
    if (error instanceof KubernetesError && error.status === 403 && !TERMINATING.test(error.message)) {
      warnings.push(`could not record the job's start on namespace ${namespace} (namespaces prune reads it): ${error.message}`);
      return;
    }
    throw error;
  }
  if (isBeingDeleted(patched)) throw new KubernetesError(beingDeletedMessage(namespace));
}

/** NamespaceLifecycle's refusal of anything new in a namespace being deleted (403), or of re-creating it (409). */
const TERMINATING = /is being terminated|is being deleted/;

/** The values of settled promises, or the first failure thrown. */
function settled(results: PromiseSettledResult<unknown>[]): unknown[] {
  const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) throw failure.reason;
  return results.map((r) => (r as PromiseFulfilledResult<unknown>).value);
}

/** Adds the likely fix to the errors an administrator sees most when setting up. */
function explain(error: unknown): unknown {
  if (!(error instanceof KubernetesError)) return error;
  const namespace = /namespace "?([a-z0-9-]+)"? because it is being terminated/.exec(error.message)?.[1];
  if ((error.status === 403 || error.status === 409) && namespace !== undefined) return new KubernetesError(beingDeletedMessage(namespace), error.status);
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
