// Keeps the job's Lease fresh while spark-submit runs: cleanup --orphans takes a job whose Lease was not
// renewed for its whole duration (4 intervals) for dead.
import type { Kube } from '../k8s/client.ts';
import { microTime } from '../plan/objects.ts';
import type { JobLease } from '../plan/types.ts';

export function startLeaseRenewal(kube: Kube, lease: JobLease, intervalSeconds: number, onError: (message: string) => void): () => Promise<void> {
  let current = lease;
  let inFlight: Promise<void> | undefined;
  const timer = setInterval(() => {
    if (inFlight) return;
    const renewed: JobLease = { ...current, spec: { ...current.spec, renewTime: microTime(new Date()) } };
    inFlight = kube
      .replaceLease(renewed)
      .then((response) => {
        current = response;
      })
      .catch((error: Error) => onError(error.message))
      .finally(() => {
        inFlight = undefined;
      });
  }, intervalSeconds * 1000);
  timer.unref();
  // Stopping waits for a renewal in flight, so that it cannot race the Lease's deletion.
  return async () => {
    clearInterval(timer);
    await inFlight;
  };
}
