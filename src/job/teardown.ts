// Deletes what a job leaves: what Spark's driver created (by its owner label), the RoleBinding, the service
// accounts and the anchor Secret together (the driver has exited; each of the last three kills the token on
// its own), then the Lease. NotFound counts as deleted; transient failures are retried; every failure is
// reported.
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_LABEL } from '../plan/types.ts';
import { DRIVER_CREATED_KINDS, type Kube } from '../k8s/client.ts';
import type { CreatedObject } from './apply.ts';
import { withRetry } from './retry.ts';

export interface TeardownResult {
  /** One line per object (or kind) that could not be deleted, with the reason. */
  left: string[];
}

export async function teardown(kube: Kube, namespace: string, job: { jobId: string; baseName: string }, created: CreatedObject[], driverMayHaveRun: boolean): Promise<TeardownResult> {
  const left: string[] = [];
  const attempt = (what: string, call: () => Promise<void>) =>
    withRetry(call).catch((error: Error) => {
      left.push(`${what}: ${error.message}`);
    });

  // The isolation policy makes every object a job token creates carry both labels (whatever else it carries or
  // lacks, e.g. the job-id label), and the owner label is unique per job.
  const selector = ownerSelector(job.baseName);
  const deleteAll = (objects: CreatedObject[]) =>
    objects.map((o) => attempt(`${o.kind} ${o.namespace}/${o.name}`, () => kube.deleteNamespaced(o.kind, o.namespace, o.name)));
  await Promise.all([
    ...(driverMayHaveRun
      ? DRIVER_CREATED_KINDS.map((kind) => attempt(`${kind} with ${selector} in ${namespace}`, () => kube.deleteCollection(kind, namespace, selector)))
      : []),
    ...deleteAll(created.filter((o) => o.kind !== 'leases')),
  ]);
  // The Lease goes last and only when all else is gone: left unrenewed, it makes cleanup --orphans find
  // whatever failed within four renewal intervals.
  const leases = created.filter((o) => o.kind === 'leases');
  if (left.length === 0) await Promise.all(deleteAll(leases));
  else left.push(...leases.map((o) => `${o.kind} ${o.namespace}/${o.name}: kept, so that cleanup --orphans finds this job`));
  return { left };
}

/** Everything of one job that its token created: dssuser may delete only what carries managed-by. */
export function ownerSelector(baseName: string): string {
  return `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE},${OWNER_LABEL}=${baseName}`;
}
