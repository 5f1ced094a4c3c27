// Deletes orphaned jobs, in the order of teardown (teardown/order.ts), with at most `concurrency` requests in
// flight across all jobs.
import { setTimeout as delay } from 'node:timers/promises';
import { rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import pLimit from 'p-limit';
import pMap from 'p-map';
import type { KubeClient } from '../k8s/client.ts';
import { withRetry, type RetryPolicy } from '../k8s/retry.ts';
import type { LabelledKind } from '../plan/kinds.ts';
import { deleteInOrder, type JobDeletions } from '../teardown/order.ts';
import { readStaleDir } from './job-dirs.ts';
import { addObject, decideState, deleteSelector, deletionPhases, jobKey, type Job, type JobProcess, type JobReport } from './model.ts';

export type DeleteClient = Pick<KubeClient, 'deleteCollection' | 'getLease' | 'getServiceAccount'>;

export interface DeleteContext {
  /** Requests in flight at most, across all jobs. */
  concurrency: number;
  now: () => Date;
  graceSeconds: number;
  isAlive: (process: JobProcess) => boolean;
  /** Waits between revoking the jobs and deleting what their tokens made (default: a real timer). */
  sleep?: (ms: number) => Promise<void>;
  retry?: Partial<RetryPolicy>;
  /** Called as each job is done. */
  onDone?: () => void;
}

/** Time for every apiserver to stop authorizing a revoked token (RBAC and token caches) before the pod deletes. */
export const REVOCATION_SETTLE_MS = 2000;

/**
 * Deletes orphaned jobs. Each one's Lease is read again first (a leftover's owner is checked for an account or
 * Lease again) and a job that is no longer orphaned is skipped; then, for all jobs together, the phases of
 * deletionPhases — with one pause after the revoking deletes, before what the tokens made — then the temp
 * directories. NotFound counts as deleted, transient failures are retried, every failure is recorded and none
 * stops the later phases (the ServiceAccounts, and with them the token, go even when a pod could not be
 * deleted), except that a job with a failure keeps its Lease. Never throws.
 */
export async function deleteJobs(kube: DeleteClient, reports: JobReport[], ctx: DeleteContext): Promise<void> {
  const limit = pLimit(Math.max(1, ctx.concurrency));
  const retried = <T>(call: () => Promise<T>) => limit(() => withRetry(call, ctx.retry));
  const going: { report: JobReport; deletions: JobDeletions }[] = [];
  await Promise.all(
    reports.map(async (report) => {
      const job = await lookAgain(kube, report, ctx, retried);
      if (job) going.push({ report, deletions: deletionsOf(kube, job) });
    }),
  );
  await deleteInOrder(
    going.map((g) => g.deletions),
    { limit, awaitRevocation: () => (ctx.sleep ?? delay)(REVOCATION_SETTLE_MS).then(() => undefined), ...(ctx.retry ? { retry: ctx.retry } : {}) },
  );
  for (const { report, deletions } of going) for (const failure of deletions.failures) fail(report, new Error(failure));
  await pMap(
    reports.filter((r) => r.result === undefined),
    async (report) => {
      const dir = report.job.tempDir;
      if (dir) {
        try {
          // Read the owner again: the directory is removed only if it still belongs to a dead process.
          if (await readStaleDir(dir.path, ctx.isAlive)) await rm(dir.path, { recursive: true, force: true });
        } catch (error) {
          fail(report, new Error(`remove ${dir.path} failed: ${(error as Error).message}`));
        }
      }
      report.result = report.errors?.length ? 'failed' : 'deleted';
      ctx.onDone?.();
    },
    { concurrency: Math.max(1, ctx.concurrency) },
  );
}

/** One deletecollection per kind, by the job's owner label alone. */
function deletionsOf(kube: DeleteClient, job: Job): JobDeletions {
  const phases = deletionPhases(job);
  const by = (kinds: LabelledKind[]) => {
    if (kinds.length === 0) return [];
    const selector = deleteSelector(job);
    return kinds.map((kind) => ({ send: () => kube.deleteCollection(kind, job.namespace, selector) }));
  };
  return { revoke: by(phases.revoke), tokenMade: by(phases.tokenMade), last: by(phases.last), failures: [] };
}

function fail(report: JobReport, error: unknown) {
  report.errors = [...(report.errors ?? []), (error as Error).message];
}

/** The job as it is now if it is still orphaned; else the report says why not (skipped, or failed to look). */
async function lookAgain(
  kube: DeleteClient,
  report: JobReport,
  ctx: DeleteContext,
  retried: <T>(call: () => Promise<T>) => Promise<T>,
): Promise<Job | undefined> {
  const listed = report.job;
  const owner = listed.owner;
  if (owner === undefined) return undefined; // a temp directory alone: nothing to ask the cluster
  try {
    if (listed.leftover) {
      if (!(await retried(() => ownerExists(kube, listed.namespace, owner)))) return listed;
      // A job of that name is being made: the next run decides with its account and Lease in view.
      report.decision = { state: 'pending', reason: 'its account or Lease exists again' };
      report.result = 'skipped';
      return undefined;
    }
    const job = await retried(() => withFreshLease(kube, listed, owner));
    const decision = decideState(job, ctx.now(), ctx.graceSeconds, { host: hostname(), isAlive: ctx.isAlive });
    if (decision.state === 'orphaned') return job;
    report.decision = decision;
    report.result = 'skipped';
  } catch (error) {
    // Without a fresh look at its Lease, the job is not touched.
    fail(report, error);
    report.result = 'failed';
  }
  return undefined;
}

/** Whether the owner of a leftover has a ServiceAccount or a Lease again. */
async function ownerExists(kube: DeleteClient, namespace: string, owner: string): Promise<boolean> {
  const [account, lease] = await Promise.all([kube.getServiceAccount(namespace, owner), kube.getLease(namespace, owner)]);
  return Boolean(account || lease);
}

/** The job with its Lease as the server has it now (none if it is gone or no longer the job's). */
async function withFreshLease(kube: DeleteClient, job: Job, owner: string): Promise<Job> {
  const { lease: _listed, ...rest } = job;
  const object = await kube.getLease(job.namespace, owner);
  if (!object) return rest;
  const probe = new Map<string, Job>();
  addObject(probe, 'leases', object);
  const fresh = probe.get(jobKey(job.namespace, owner));
  return fresh?.lease && fresh.jobId === job.jobId ? { ...rest, lease: fresh.lease } : rest;
}
