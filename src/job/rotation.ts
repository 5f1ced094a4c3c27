// Token rotation for jobs that outlive their token: a new token, bound to a new anchor Secret, replaces
// the kubeconfig atomically (Spark's fabric8 client re-reads a kubeconfig token about every minute and on
// a 401); then the previous anchor is deleted, which revokes the superseded token at once. Every attempt
// takes a fresh generation, and an attempt that fails after creating its anchor deletes it again, so a
// failure never blocks the next attempt nor leaves an anchor behind.
import type { ClusterEndpoint, Kube } from '../k8s/client.ts';
import { writeJobKubeconfig, type JobFiles } from '../exec/job-files.ts';
import { boundTokenRequest, tokenAnchorName } from '../plan/objects.ts';
import type { JobPlan } from '../plan/types.ts';
import type { CreatedObject } from './apply.ts';

export interface RotationTarget {
  kube: Kube;
  plan: JobPlan;
  files: JobFiles;
  endUserUid: number;
  endpoint: ClusterEndpoint;
  /** The job's record of what exists, kept current so that teardown deletes the live anchor. */
  created: CreatedObject[];
}

/** Seconds until the next rotation: the profile's interval, else 80 % of the granted lifetime. */
export function rotationDelaySeconds(configured: number | undefined, tokenExpiresAt: Date, now: Date): number {
  return configured ?? Math.max(10, (0.8 * (tokenExpiresAt.getTime() - now.getTime())) / 1000);
}

export function startTokenRotation(
  target: RotationTarget,
  configuredSeconds: number | undefined,
  firstExpiry: Date,
  report: { rotated(generation: number, expiresAt: Date): void; failed(message: string): void },
): () => Promise<void> {
  let generation = 0;
  let attempts = 0;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let inFlight: Promise<void> = Promise.resolve();
  const schedule = (expiresAt: Date) => {
    if (stopped) return;
    timer = setTimeout(() => (inFlight = rotate()), rotationDelaySeconds(configuredSeconds, expiresAt, new Date()) * 1000);
    timer.unref();
  };
  const rotate = async () => {
    attempts += 1;
    try {
      const expiresAt = await rotateOnce(target, attempts);
      generation = attempts;
      report.rotated(generation, expiresAt);
      schedule(expiresAt);
    } catch (error) {
      // The current token stays valid until it expires: try again after a short pause.
      report.failed((error as Error).message);
      if (!stopped) {
        timer = setTimeout(() => (inFlight = rotate()), 10_000);
        timer.unref();
      }
    }
  };
  schedule(firstExpiry);
  // Stopping waits for a rotation in flight, so that teardown sees every anchor it created.
  return async () => {
    stopped = true;
    clearTimeout(timer);
    await inFlight;
  };
}

async function rotateOnce({ kube, plan, files, endUserUid, endpoint, created }: RotationTarget, generation: number): Promise<Date> {
  const anchorBody = { ...plan.tokenAnchor, metadata: { ...plan.tokenAnchor.metadata, name: tokenAnchorName(plan.baseName, generation) } };
  const anchor = await kube.createSecret(anchorBody);
  const record: CreatedObject = { kind: 'secrets', namespace: plan.namespace, name: anchor.metadata!.name! };
  created.push(record);
  let token: string;
  let expiresAt: Date;
  try {
    ({ token, expiresAt } = await kube.requestToken(plan.namespace, plan.baseName, boundTokenRequest(plan.tokenRequest, { name: record.name, uid: anchor.metadata!.uid! })));
    await writeJobKubeconfig(files, endUserUid, endpoint, plan.namespace, token);
  } catch (error) {
    // The driver still uses the previous token: this attempt's anchor goes (and with it any token it got).
    await kube.deleteNamespaced('secrets', record.namespace, record.name).then(
      () => created.splice(created.indexOf(record), 1),
      () => undefined, // kept in `created`: teardown deletes it
    );
    throw error;
  }
  // Every older anchor goes: the live one the driver just stopped using and any a failed attempt left.
  for (const previous of created.filter((o) => o.kind === 'secrets' && o !== record)) {
    await kube.deleteNamespaced('secrets', previous.namespace, previous.name);
    created.splice(created.indexOf(previous), 1);
  }
  return expiresAt;
}
