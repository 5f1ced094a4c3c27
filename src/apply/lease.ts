// Keeps the job's Lease fresh while spark-submit runs: cleanup --orphans takes a job whose Lease was not
// renewed for its whole duration (4 intervals) for dead. Renewal survives conflicts (someone updated the
// Lease) and lost answers (the PUT applied but its answer never came): a 409 re-reads the Lease and retries.
// A job whose Lease or ServiceAccount disappears while it runs was torn down by someone else: that is
// reported once, through `lost`, and renewal stops.
import { KubernetesError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { microTime } from '../plan/objects.ts';
import type { JobLease } from '../plan/types.ts';

export type LeaseClient = Pick<KubeClient, 'replaceLease' | 'getLease' | 'getServiceAccount'>;

export interface LeaseReport {
  /** A renewal failed for a reason that may pass (the apiserver did not answer, a 5xx). */
  warn(message: string): void;
  /** The job's Lease or ServiceAccount is gone, or another holder took the Lease: the job cannot go on. */
  lost(reason: string): void;
}

export interface Timers {
  setInterval(callback: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
  now(): Date;
}

const realTimers: Timers = {
  setInterval: (callback, ms) => setInterval(callback, ms).unref(),
  clearInterval: (handle) => clearInterval(handle as NodeJS.Timeout),
  now: () => new Date(),
};

export function startLeaseRenewal(
  kube: LeaseClient,
  lease: JobLease,
  intervalSeconds: number,
  report: LeaseReport,
  job: { namespace: string; name: string },
  timers: Timers = realTimers,
): () => Promise<void> {
  let current = lease;
  let inFlight: Promise<void> | undefined;
  let done = false;
  const holder = lease.spec?.holderIdentity;
  // The job's token is bound to its ServiceAccount's uid: a ServiceAccount of the same name made later is not the job's.
  let accountUid: string | undefined;
  const leaseName = `${job.namespace}/${job.name}`;

  const loseJob = (reason: string) => {
    if (done) return;
    done = true;
    timers.clearInterval(handle);
    report.lost(reason);
  };

  const put = (base: JobLease) => kube.replaceLease<JobLease>({ ...base, spec: { ...base.spec, renewTime: microTime(timers.now()) } });

  const renewLease = async () => {
    try {
      current = await put(current);
    } catch (error) {
      if (!(error instanceof KubernetesError) || (error.status !== 409 && error.status !== 404)) throw error;
      // 409: the stored Lease is newer than ours (an administrator's edit, or our own PUT whose answer was lost).
      const stored = await kube.getLease(job.namespace, job.name);
      if (!stored) return loseJob(`its Lease ${leaseName}`);
      const storedHolder = stored.spec?.holderIdentity;
      if (storedHolder !== holder) return loseJob(`its Lease ${leaseName} (now held by ${storedHolder ?? 'nobody'})`);
      if (done) return;
      current = await put(stored);
    }
  };

  const checkAccount = async () => {
    const account = await kube.getServiceAccount(job.namespace, job.name);
    if (!account) return loseJob(`its ServiceAccount ${leaseName}`);
    const uid = account.metadata?.uid;
    accountUid ??= uid;
    if (uid !== accountUid) return loseJob(`its ServiceAccount ${leaseName} (replaced by another of that name)`);
  };

  // Both at once: a failing check of one never holds back the other (renewing is what keeps the job alive).
  const renew = async () => {
    const outcomes = await Promise.allSettled([renewLease(), checkAccount()]);
    for (const outcome of outcomes) if (outcome.status === 'rejected') report.warn((outcome.reason as Error).message);
  };

  const handle = timers.setInterval(() => {
    if (inFlight || done) return;
    inFlight = renew()
      .catch(() => undefined) // a report that throws must not end the process
      .finally(() => {
        inFlight = undefined;
      });
  }, intervalSeconds * 1000);

  // Stopping waits for a renewal in flight, so that it cannot race the Lease's deletion; once stopped,
  // nothing is reported lost (teardown is deleting the job's objects itself).
  return async () => {
    done = true;
    timers.clearInterval(handle);
    await inFlight;
  };
}
