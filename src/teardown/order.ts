// The one order in which a job's objects are deleted (TEARDOWN_PHASES), for the teardown of a job that ends
// and for cleanup --orphans of the jobs that crashed: the deletes that revoke the job's tokens, then — once the
// revocation holds — what the tokens made, then the Lease, which is kept when anything before it failed (left
// unrenewed, it makes cleanup --orphans find the job again). NotFound counts as deleted (the client), transient
// failures are retried, every failure is recorded and none stops the later phases but the last.
import { withRetry, type RetryPolicy } from '../k8s/retry.ts';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_LABEL } from '../plan/types.ts';

/** One delete request. */
export interface Deletion {
  send: () => Promise<void>;
  /** Prefixed to its failure's message (the client's message already names the request). */
  what?: string;
}

/** The deletes of one job, phase by phase (see TEARDOWN_PHASES), and what failed. */
export interface JobDeletions {
  revoke: Deletion[];
  tokenMade: Deletion[];
  last: Deletion[];
  failures: string[];
  /** Set when the last phase was not sent because something before it failed. */
  keptLast?: boolean;
}

export interface DeleteOrderOptions {
  /** Waited for between revoking and deleting what the tokens made, when a revocation was sent without failure. */
  awaitRevocation: () => Promise<void>;
  /** Bounds the requests in flight (cleanup shares one limit across its jobs). */
  limit?: <T>(call: () => Promise<T>) => Promise<T>;
  retry?: Partial<RetryPolicy>;
}

/** Deletes the jobs phase by phase, all jobs together; never throws (failures are in each job's record). */
export async function deleteInOrder(jobs: readonly JobDeletions[], options: DeleteOrderOptions): Promise<void> {
  const limit = options.limit ?? ((call) => call());
  const send = (job: JobDeletions, deletions: Deletion[]) =>
    Promise.all(
      deletions.map((deletion) =>
        limit(() => withRetry(deletion.send, options.retry)).catch((error: Error) => {
          job.failures.push(deletion.what ? `${deletion.what}: ${error.message}` : error.message);
        }),
      ),
    );
  await Promise.all(jobs.map((job) => send(job, job.revoke)));
  // When a revoking delete failed (an unreachable apiserver), the token keeps its rights anyway: waiting
  // for a revocation that was never sent would only hold the deletes back.
  const revoked = jobs.some((job) => job.tokenMade.length > 0 && job.revoke.length > 0 && job.failures.length === 0);
  if (revoked) await options.awaitRevocation();
  await Promise.all(jobs.map((job) => send(job, job.tokenMade)));
  await Promise.all(
    jobs.map((job) => {
      if (job.failures.length === 0) return send(job, job.last);
      if (job.last.length > 0) job.keptLast = true;
      return undefined;
    }),
  );
}

/** Everything of one job, by its owner label: dssuser may delete only what carries managed-by. */
export function ownerSelector(owner: string): string {
  return `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE},${OWNER_LABEL}=${owner}`;
}
