// Token rotation for jobs that outlive their token: a new token, bound to a new anchor Secret, replaces
// the kubeconfig atomically (Spark's fabric8 client re-reads a kubeconfig token about every minute and on
// a 401); then the previous anchor is deleted, which revokes the superseded token at once. Every attempt
// takes a fresh generation, and an attempt that fails after creating its anchor deletes it again, so a
// failure never blocks the next attempt nor leaves an anchor behind.
import type { V1Secret } from '@kubernetes/client-node';
import { KubernetesError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { tokenJti } from '../audit/credential-id.ts';
import { boundTokenRequest, tokenAnchorName } from '../plan/objects.ts';
import type { JobPlan } from '../plan/types.ts';
import type { CreatedObject } from '../teardown/teardown.ts';

export type RotationClient = Pick<KubeClient, 'createSecret' | 'requestToken' | 'deleteNamespaced'>;

export interface RotationTarget {
  kube: RotationClient;
  plan: JobPlan;
  /** Replaces the job kubeconfig's token (atomically: the driver never reads half a file). */
  writeToken: (token: string) => Promise<void>;
  /** The job's record of what exists, kept current so that teardown deletes every anchor still there. */
  created: CreatedObject[];
}

export interface RotationReport {
  /** credentialId: the new token's jti (its credential id in audit events), when it has one. */
  rotated(generation: number, expiresAt: Date, credentialId?: string): void;
  /** The attempt failed, or its superseded anchors could not be deleted: the next attempt comes in 10 s. */
  failed(message: string): void;
}

export interface RotationTimers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  now(): Date;
}

const realTimers: RotationTimers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms).unref(),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
  now: () => new Date(),
};

export const ROTATION_RETRY_SECONDS = 10;

/** Seconds until the next rotation: the profile's interval, else 80 % of the granted lifetime. */
export function rotationDelaySeconds(configured: number | undefined, tokenExpiresAt: Date, now: Date): number {
  return configured ?? Math.max(10, (0.8 * (tokenExpiresAt.getTime() - now.getTime())) / 1000);
}

export function startTokenRotation(
  target: RotationTarget,
  configuredSeconds: number | undefined,
  firstExpiry: Date,
  report: RotationReport,
  timers: RotationTimers = realTimers,
): () => Promise<void> {
  let attempts = 0;
  let timer: unknown;
  let stopped = false;
  let inFlight: Promise<void> = Promise.resolve();
  const after = (seconds: number) => {
    if (stopped) return;
    timer = timers.setTimeout(() => {
      inFlight = rotate().catch(() => undefined); // a report that throws must not end the process
    }, seconds * 1000);
  };
  const rotate = async () => {
    if (stopped) return;
    attempts += 1;
    const generation = attempts;
    let rotated: { anchor: CreatedObject; expiresAt: Date; credentialId?: string };
    try {
      rotated = await rotateOnce(target, generation);
    } catch (error) {
      // The current token stays valid until it expires: try again soon, with the next generation.
      report.failed((error as Error).message);
      return after(ROTATION_RETRY_SECONDS);
    }
    report.rotated(generation, rotated.expiresAt, rotated.credentialId);
    const unrevoked = await deleteSupersededAnchors(target, rotated.anchor);
    // A superseded token that still works is what rotation is there to prevent: the next attempt (which
    // deletes every older anchor again) comes soon; teardown deletes whatever is left.
    if (unrevoked.length > 0) {
      report.failed(`the superseded token anchor could not be deleted: ${unrevoked.join('; ')}`);
      return after(ROTATION_RETRY_SECONDS);
    }
    after(rotationDelaySeconds(configuredSeconds, rotated.expiresAt, timers.now()));
  };
  after(rotationDelaySeconds(configuredSeconds, firstExpiry, timers.now()));
  // Stopping waits for a rotation in flight, so that teardown sees every anchor it created.
  return async () => {
    stopped = true;
    timers.clearTimeout(timer);
    await inFlight;
  };
}

async function rotateOnce(target: RotationTarget, generation: number): Promise<{ anchor: CreatedObject; expiresAt: Date; credentialId?: string }> {
  const { kube, plan, writeToken, created } = target;
  const name = tokenAnchorName(plan.baseName, generation);
  const record: CreatedObject = { kind: 'secrets', namespace: plan.namespace, name };
  let anchor: V1Secret;
  try {
    anchor = await kube.createSecret({ ...plan.tokenAnchor, metadata: { ...plan.tokenAnchor.metadata, name } });
  } catch (error) {
    // A create whose answer was lost (network, timeout, server error) may have happened: its anchor goes
    // like any failed attempt's. A refusal (4xx, e.g. 409 for an object of that name) created nothing.
    const status = error instanceof KubernetesError ? error.status : undefined;
    if (status === undefined || status >= 500) {
      created.push(record);
      await deleteAnchor(kube, created, record).catch(() => undefined); // kept in `created`: teardown deletes it
    }
    throw error;
  }
  created.push(record);
  try {
    const { token, expiresAt } = await kube.requestToken(
      plan.namespace,
      plan.baseName,
      boundTokenRequest(plan.tokenRequest, { name, uid: anchor.metadata!.uid! }),
    );
    await writeToken(token);
    const credentialId = tokenJti(token);
    return { anchor: record, expiresAt, ...(credentialId ? { credentialId } : {}) };
  } catch (error) {
    // The driver still uses the previous token: this attempt's anchor goes (and with it any token it got).
    await deleteAnchor(kube, created, record).catch(() => undefined); // kept in `created`: teardown deletes it
    throw error;
  }
}

/** Deletes every anchor of the job but the live one (the one just superseded, and any a failed attempt left). */
async function deleteSupersededAnchors({ kube, plan, created }: RotationTarget, live: CreatedObject): Promise<string[]> {
  const anchorPrefix = tokenAnchorName(plan.baseName, 0).slice(0, -1);
  const superseded = created.filter((o) => o.kind === 'secrets' && o !== live && o.name.startsWith(anchorPrefix));
  const failures: string[] = [];
  for (const anchor of superseded) await deleteAnchor(kube, created, anchor).catch((error: Error) => failures.push(error.message));
  return failures;
}

async function deleteAnchor(kube: RotationClient, created: CreatedObject[], anchor: CreatedObject): Promise<void> {
  await kube.deleteNamespaced('secrets', anchor.namespace, anchor.name);
  const index = created.indexOf(anchor);
  if (index >= 0) created.splice(index, 1);
}
