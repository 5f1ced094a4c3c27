// Lease renewal on the real apiserver, as dssuser: an administrator's update of the job's Lease (a new
// resourceVersion) must not stop its renewal; a Lease or ServiceAccount deleted under a running job is reported.
import { CoordinationV1Api, type V1Lease } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { thisProcess } from '../../src/exec/process-identity.ts';
import type { Kube } from '../../src/k8s/client.ts';
import { startLeaseRenewal } from '../../src/job/lease.ts';
import { planJob } from '../../src/plan/plan.ts';
import type { JobLease, JobPlan } from '../../src/plan/types.ts';
import { profileWith } from '../support/profile.ts';
import { adminCore, adminKubeConfig, createManagedNamespace, dssuserKube, uniqueName } from '../support/kube.ts';

const namespace = uniqueName('dss-lease');
const coordination = () => adminKubeConfig().makeApiClient(CoordinationV1Api);
let kube: Kube;

function plan(jobId: string): JobPlan {
  return planJob(
    profileWith({ targetNamespace: namespace, sparkSubmit: '/bin/true', leaseRenewSeconds: 1 }),
    { jobId, login: 'alice', uid: 1001, adminProperties: {}, ...thisProcess(), now: new Date() },
    { apiServer: 'https://127.0.0.1:6443', callerArgs: [] },
  );
}

async function readLease(p: JobPlan): Promise<V1Lease> {
  return coordination().readNamespacedLease({ namespace, name: p.baseName });
}

const renewedAt = (lease: V1Lease) => new Date(lease.spec!.renewTime!).getTime();

/** Polls `check` every 100 ms until it holds (at most `timeoutMs`); the last value. */
async function eventually<T>(read: () => Promise<T>, check: (value: T) => boolean, timeoutMs = 6000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (check(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  await createManagedNamespace(namespace);
  kube = dssuserKube();
});

afterAll(async () => {
  await kube.close();
  await adminCore().deleteNamespace({ name: namespace });
});

describe('Lease renewal against the real apiserver', () => {
  it('goes on after an administrator updated the Lease (409 on the stale resourceVersion)', async () => {
    const p = plan(uniqueName('upd'));
    await kube.createServiceAccount(p.serviceAccount);
    const stored = await kube.createLease<JobLease>(p.lease);
    const warnings: string[] = [];
    const lost: string[] = [];
    const stop = startLeaseRenewal(kube, stored, 1, { warn: (m) => warnings.push(m), lost: (r) => lost.push(r) }, { namespace, name: p.baseName });
    try {
      const first = await eventually(() => readLease(p), (l) => renewedAt(l) > renewedAt(stored as V1Lease));
      expect(renewedAt(first)).toBeGreaterThan(renewedAt(stored as V1Lease));

      const updated = await coordination().replaceNamespacedLease({
        namespace,
        name: p.baseName,
        body: { ...first, metadata: { ...first.metadata, annotations: { ...first.metadata?.annotations, 'example.com/audited': 'yes' } } },
      });
      expect(updated.metadata!.resourceVersion).not.toBe(first.metadata!.resourceVersion);

      const later = await eventually(() => readLease(p), (l) => renewedAt(l) > renewedAt(updated) + 1000);
      expect(renewedAt(later)).toBeGreaterThan(renewedAt(updated) + 1000);
      // The administrator's change is kept: the renewal is based on the Lease as it is now.
      expect(later.metadata!.annotations!['example.com/audited']).toBe('yes');
      expect(lost).toEqual([]);
      expect(warnings).toEqual([]);
    } finally {
      await stop();
    }
  });

  for (const gone of ['Lease', 'ServiceAccount'] as const) {
    it(`reports once that the job lost its ${gone} when an administrator deletes it`, async () => {
      const p = plan(uniqueName('del'));
      await kube.createServiceAccount(p.serviceAccount);
      const stored = await kube.createLease<JobLease>(p.lease);
      const lost: string[] = [];
      const stop = startLeaseRenewal(kube, stored, 1, { warn: () => undefined, lost: (r) => lost.push(r) }, { namespace, name: p.baseName });
      try {
        if (gone === 'Lease') await coordination().deleteNamespacedLease({ namespace, name: p.baseName });
        else await adminCore().deleteNamespacedServiceAccount({ namespace, name: p.baseName });
        await eventually(async () => lost.length, (n) => n > 0);
        await new Promise((r) => setTimeout(r, 2500));
        expect(lost).toHaveLength(1);
        expect(lost[0]).toContain(`its ${gone} ${namespace}/${p.baseName}`);
      } finally {
        await stop();
      }
    });
  }
});
