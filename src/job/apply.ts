// Creates a job's objects as dssuser, recording each one so that a failure midway, and the teardown at
// the end, delete exactly what this job created (never a pre-existing object).
import { KubernetesError } from '../errors.ts';
import type { DryRun, JobKind, Kube } from '../k8s/client.ts';
import { boundTokenRequest } from '../plan/objects.ts';
import type { JobPlan } from '../plan/types.ts';

export interface CreatedObject {
  kind: JobKind;
  namespace: string;
  name: string;
}

export interface Provisioned {
  /** Whether this job created the namespace (it is never deleted: other jobs share it). */
  namespaceCreated: boolean;
  token: string;
  tokenExpiresAt: Date;
}

/**
 * Ensure the namespace, then the service accounts, Role, Lease and token anchor together, then the
 * RoleBinding (it needs the Role) and the TokenRequest (it needs the service account and the anchor)
 * together: three dependent round trips, four when the namespace is new.
 */
export async function provision(kube: Kube, plan: JobPlan, created: CreatedObject[], dryRun?: DryRun): Promise<Provisioned> {
  try {
    return await createAll(kube, plan, created, dryRun);
  } catch (error) {
    throw explain(error);
  }
}

async function createAll(kube: Kube, plan: JobPlan, created: CreatedObject[], dryRun?: DryRun): Promise<Provisioned> {
  const namespaceCreated = await ensureNamespace(kube, plan, dryRun);
  if (dryRun && namespaceCreated) {
    // The namespace does not exist, so the server cannot dry-run objects inside it.
    return { namespaceCreated, token: '', tokenExpiresAt: new Date(0) };
  }
  const record = (kind: JobKind, object: { metadata?: { name?: string } }) => {
    if (!dryRun) created.push({ kind, namespace: plan.namespace, name: object.metadata!.name! });
  };
  let anchorUid = '';
  const results = await Promise.allSettled([
    kube.createServiceAccount(plan.serviceAccount, dryRun).then(() => record('serviceaccounts', plan.serviceAccount)),
    kube.createSecret(plan.tokenAnchor, dryRun).then((anchor) => {
      anchorUid = anchor.metadata?.uid ?? '';
      record('secrets', plan.tokenAnchor);
    }),
    kube.createServiceAccount(plan.executorServiceAccount, dryRun).then(() => record('serviceaccounts', plan.executorServiceAccount)),
    kube.createRole(plan.role, dryRun).then(() => record('roles', plan.role)),
    kube.createLease(plan.lease, dryRun).then(() => record('leases', plan.lease)),
  ]);
  throwFirstFailure(results);
  const [, token] = await Promise.all([
    kube.createRoleBinding(plan.roleBinding, dryRun).then(() => record('rolebindings', plan.roleBinding), ignoreMissingRoleInDryRun(dryRun)),
    dryRun ? undefined : kube.requestToken(plan.namespace, plan.baseName, boundTokenRequest(plan.tokenRequest, { name: plan.tokenAnchor.metadata!.name!, uid: anchorUid })),
  ]);
  return { namespaceCreated, token: token?.token ?? '', tokenExpiresAt: token?.expiresAt ?? new Date(0) };
}

// A dry-run Role is not stored, so the server's escalation check on the binding cannot find it: the
// binding was authorized, which is what a dry run can tell.
function ignoreMissingRoleInDryRun(dryRun?: DryRun) {
  return (error: unknown) => {
    if (dryRun && error instanceof KubernetesError && error.status === 404) return;
    throw error;
  };
}

async function ensureNamespace(kube: Kube, plan: JobPlan, dryRun?: DryRun): Promise<boolean> {
  if (!plan.namespaceObject) return false; // not ours to create: a missing one fails the next create clearly
  if (await kube.getNamespace(plan.namespace)) return false;
  try {
    await kube.createNamespace(plan.namespaceObject, dryRun);
    return true;
  } catch (error) {
    // Another job of the same user created it in the meantime.
    if (error instanceof KubernetesError && error.status === 409) return false;
    throw error;
  }
}

function throwFirstFailure(results: PromiseSettledResult<unknown>[]) {
  const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) throw failure.reason;
}

/** Adds the likely fix to the errors an administrator sees most when setting up. */
function explain(error: unknown): unknown {
  if (!(error instanceof KubernetesError)) return error;
  if (error.status === 404 && /namespaces? "[^"]+" not found/.test(error.message)) {
    return new KubernetesError(`${error.message}; the namespace does not exist and the profile does not create it (autoCreateNamespace: false): ask an administrator to create it`, 404);
  }
  if (error.status === 403) {
    return new KubernetesError(`${error.message}; grant dssuser the rights of deploy/rbac (dss-spark-k8s doctor shows what is missing)`, 403);
  }
  return error;
}
