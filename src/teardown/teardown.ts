// Deletes what a job made, in the order of TEARDOWN_PHASES (order.ts): the objects it created, by name
// (never a pre-existing one: `created` records exactly what this job made), then what its token made, by its
// owner label, once the job's own token is refused; its Lease last.
import { setTimeout as delay } from 'node:timers/promises';
import { KubernetesError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import type { RetryPolicy } from '../k8s/retry.ts';
import { TEARDOWN_PHASES, type JobKind, type LabelledKind } from '../plan/kinds.ts';
import { deleteInOrder, ownerSelector, type Deletion, type JobDeletions } from './order.ts';

/** How long teardown waits for the apiserver to stop authorizing the revoked token (RBAC caches briefly). */
export const REVOCATION_WAIT_MS = 10_000;
const REVOCATION_POLL_MS = 100;

export type TeardownClient = Pick<KubeClient, 'deleteNamespaced' | 'deleteCollection'>;

/** An object a job created (or may have: a create whose answer was lost), recorded for its teardown. */
export interface CreatedObject {
  kind: JobKind;
  namespace: string;
  name: string;
}

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
  now?: () => number;
  retry?: Partial<RetryPolicy>;
}

export async function teardown(
  kube: TeardownClient,
  namespace: string,
  job: { baseName: string },
  created: readonly CreatedObject[],
  options: TeardownOptions,
): Promise<TeardownResult> {
  const { driverMayHaveRun, revoked, sleep = delay, now = Date.now } = options;
  const byName = (kinds: readonly LabelledKind[]): Deletion[] =>
    created
      .filter((o) => kinds.includes(o.kind))
      .map((o) => ({ what: `${o.kind} ${o.namespace}/${o.name}`, send: () => kube.deleteNamespaced(o.kind, o.namespace, o.name) }));
  // The isolation policy makes every object a job token creates carry both labels; the owner label is unique per job.
  const selector = ownerSelector(job.baseName);
  const deletions: JobDeletions = {
    revoke: byName(TEARDOWN_PHASES.revoke),
    tokenMade: driverMayHaveRun
      ? TEARDOWN_PHASES.tokenMade.map((kind) => ({
          what: `${kind} with ${selector} in ${namespace}`,
          send: () => kube.deleteCollection(kind, namespace, selector),
        }))
      : [],
    last: byName(TEARDOWN_PHASES.last),
    failures: [],
  };
  await deleteInOrder([deletions], {
    ...(options.retry ? { retry: options.retry } : {}),
    awaitRevocation: async () => {
      if (!revoked) return;
      for (const deadline = now() + REVOCATION_WAIT_MS; !(await revoked().catch(() => false)) && now() < deadline; ) await sleep(REVOCATION_POLL_MS);
    },
  });
  const kept = deletions.keptLast ? byName(TEARDOWN_PHASES.last).map((d) => `${d.what}: kept, so that cleanup --orphans finds this job`) : [];
  return { left: [...deletions.failures, ...kept] };
}

/**
 * Asks the apiserver, with the job's own token, whether it may still create pods: false once its RoleBinding
 * or account is gone (403 from the review, or 401 for the token itself).
 */
export async function tokenRevoked(jobKube: Pick<KubeClient, 'canI'>, namespace: string): Promise<boolean> {
  try {
    return !(await jobKube.canI({ verb: 'create', resource: 'pods', namespace }));
  } catch (error) {
    if (error instanceof KubernetesError && (error.status === 401 || error.status === 403)) return true;
    throw error;
  }
}
