// Deletes what a job leaves, in the one order teardown and cleanup --orphans share (TEARDOWN_PHASES):
// 1. revoke: the token anchor Secrets, the RoleBinding and the ServiceAccounts (each kills the token's rights
//    on its own);
// 2. once the job's token can no longer create anything, what it made: its pods and PVCs, by its owner label.
//    In this order a process that kept the token (a driver's forked child) cannot add a pod behind the delete;
// 3. the Lease, last and only when all else is gone: left unrenewed, it makes cleanup --orphans find whatever
//    failed.
// NotFound counts as deleted; transient failures are retried; every failure is reported.
import { setTimeout as delay } from 'node:timers/promises';
import { KubernetesError } from '../errors.ts';
import { DRIVER_CREATED_KINDS, type Kube, type LabelledKind } from '../k8s/client.ts';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_LABEL } from '../plan/types.ts';
import type { CreatedObject } from './apply.ts';
import { withRetry } from './retry.ts';

/** The kinds whose deletion revokes a job's token, then what the token made, then the Lease. */
export const TEARDOWN_PHASES: readonly (readonly LabelledKind[])[] = [['secrets', 'rolebindings', 'serviceaccounts'], DRIVER_CREATED_KINDS, ['leases']];

/** How long teardown waits for the apiserver to stop authorizing the revoked token (RBAC caches briefly). */
export const REVOCATION_WAIT_MS = 10_000;
const REVOCATION_POLL_MS = 100;

export interface TeardownResult {
  /** One line per object (or kind) that could not be deleted, with the reason. */
  left: string[];
}

export interface TeardownOptions {
  /** The driver may have run: delete what its token made. */
  driverMayHaveRun: boolean;
  /** True once the job's token may no longer create pods (see tokenRevoked); without it, no wait. */
  revoked?: () => Promise<boolean>;
  sleep?: (ms: number) => Promise<void>;
}

export async function teardown(kube: Kube, namespace: string, job: { jobId: string; baseName: string }, created: CreatedObject[], options: TeardownOptions): Promise<TeardownResult> {
  const { driverMayHaveRun, revoked, sleep = delay } = options;
  const left: string[] = [];
  const attempt = (what: string, call: () => Promise<void>) =>
    withRetry(call).catch((error: Error) => {
      left.push(`${what}: ${error.message}`);
    });
  const deleteAll = (objects: CreatedObject[]) =>
    Promise.all(objects.map((o) => attempt(`${o.kind} ${o.namespace}/${o.name}`, () => kube.deleteNamespaced(o.kind, o.namespace, o.name))));
  const [revoking, driverKinds, last] = TEARDOWN_PHASES as [LabelledKind[], LabelledKind[], LabelledKind[]];

  await deleteAll(created.filter((o) => revoking.includes(o.kind)));
  if (driverMayHaveRun) {
    // Waiting is for a revocation that was sent: when a revoking delete failed (an unreachable apiserver),
    // the token keeps its rights anyway and the Lease stays for cleanup --orphans.
    if (revoked && left.length === 0) {
      for (const deadline = Date.now() + REVOCATION_WAIT_MS; !(await revoked().catch(() => false)) && Date.now() < deadline; ) await sleep(REVOCATION_POLL_MS);
    }
    // The isolation policy makes every object a job token creates carry both labels, and the owner label is
    // unique per job.
    const selector = ownerSelector(job.baseName);
    await Promise.all(driverKinds.map((kind) => attempt(`${kind} with ${selector} in ${namespace}`, () => kube.deleteCollection(kind, namespace, selector))));
  }
  const leases = created.filter((o) => last.includes(o.kind));
  if (left.length === 0) await deleteAll(leases);
  else left.push(...leases.map((o) => `${o.kind} ${o.namespace}/${o.name}: kept, so that cleanup --orphans finds this job`));
  return { left };
}

/**
 * Asks the apiserver, with the job's own token, whether it may still create pods: false once its RoleBinding
 * or account is gone (403 from the review, or 401 for the token itself).
 */
export async function tokenRevoked(jobKube: Pick<Kube, 'canI'>, namespace: string): Promise<boolean> {
  try {
    return !(await jobKube.canI({ verb: 'create', resource: 'pods', namespace }));
  } catch (error) {
    if (error instanceof KubernetesError && (error.status === 401 || error.status === 403)) return true;
    throw error;
  }
}

/** Everything of one job that its token created: dssuser may delete only what carries managed-by. */
export function ownerSelector(baseName: string): string {
  return `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE},${OWNER_LABEL}=${baseName}`;
}
