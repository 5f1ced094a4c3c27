// Lease renewal on the real apiserver, as dssuser: an administrator's update of the job's Lease (a new
// resourceVersion) and a renewal whose answer was lost (the PUT applied, the client timed out) must not stop
// its renewal; a Lease or ServiceAccount deleted, or a Lease taken by another holder, under a running job is
// reported once.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinationV1Api, type V1Lease } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { thisProcess } from '../../src/exec/process-identity.ts';
import { Kube } from '../../src/k8s/client.ts';
import { loadCredentials } from '../../src/k8s/kubeconfig.ts';
import { startLeaseRenewal } from '../../src/apply/lease.ts';
import { planJob } from '../../src/plan/plan.ts';
import type { JobLease, JobPlan } from '../../src/plan/types.ts';
import { dirEntries, dssuserDir, jobObjects, startCli, uniqueJobId, writeConfig } from '../support/cli.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { profileWith } from '../support/profile.ts';
import { adminCore, adminKubeConfig, createManagedNamespace, dssuserKube, uniqueName } from '../support/kube.ts';
import { JOB_LABEL } from '../../src/plan/types.ts';

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

const scratch = mkdtempSync(join(tmpdir(), 'dss-spark-k8s-test-lease-'));

/** dssuser's client through a fault proxy, with a short request timeout (the proxy can delay answers past it). */
async function proxiedDssuser(proxy: FaultProxy, timeoutSeconds: number): Promise<Kube> {
  const dssuser = loadCredentials({ kubeconfig: inject('cluster').dssuserKubeconfig }, {});
  const token = (await dssuser.headers()).authorization!.replace(/^Bearer /, '');
  const path = join(scratch, 'proxied.kubeconfig');
  const cluster = { server: proxy.url, 'certificate-authority-data': Buffer.from(dssuser.endpoint.caPem!).toString('base64') };
  writeFileSync(
    path,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': 'x',
      clusters: [{ name: 'c', cluster }],
      users: [{ name: 'u', user: { token } }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
    }),
    { mode: 0o600 },
  );
  return Kube.load({ kubeconfig: path, timeoutSeconds });
}

function startProxy(): Promise<FaultProxy> {
  const cluster = inject('cluster');
  return startFaultProxy({
    server: cluster.server,
    caFile: cluster.caFile,
    certFile: join(cluster.dir, 'apiserver.crt'),
    keyFile: join(cluster.dir, 'apiserver.key'),
  });
}

beforeAll(async () => {
  await createManagedNamespace(namespace);
  kube = dssuserKube();
});

afterAll(async () => {
  await kube.close();
  await adminCore().deleteNamespace({ name: namespace });
  rmSync(scratch, { recursive: true, force: true });
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
      const first = await eventually(
        () => readLease(p),
        (l) => renewedAt(l) > renewedAt(stored as V1Lease),
      );
      expect(renewedAt(first)).toBeGreaterThan(renewedAt(stored as V1Lease));

      const updated = await coordination().replaceNamespacedLease({
        namespace,
        name: p.baseName,
        body: { ...first, metadata: { ...first.metadata, annotations: { ...first.metadata?.annotations, 'example.com/audited': 'yes' } } },
      });
      expect(updated.metadata!.resourceVersion).not.toBe(first.metadata!.resourceVersion);

      const later = await eventually(
        () => readLease(p),
        (l) => renewedAt(l) > renewedAt(updated) + 1000,
      );
      expect(renewedAt(later)).toBeGreaterThan(renewedAt(updated) + 1000);
      // The administrator's change is kept: the renewal is based on the Lease as it is now.
      expect(later.metadata!.annotations!['example.com/audited']).toBe('yes');
      expect(lost).toEqual([]);
      expect(warnings).toEqual([]);
    } finally {
      await stop();
    }
  });

  it('goes on after a renewal whose answer was lost: the PUT applied, the client timed out, the next PUT is 409', async () => {
    const p = plan(uniqueName('lost'));
    await kube.createServiceAccount(p.serviceAccount);
    const stored = await kube.createLease<JobLease>(p.lease);
    const proxy = await startProxy();
    const proxied = await proxiedDssuser(proxy, 2);
    let loseNext = false;
    const isRenewal = (r: { method: string; path: string }) => r.method === 'PUT' && r.path.split('?')[0]!.endsWith(`/leases/${p.baseName}`);
    // The apiserver applies the PUT; its answer reaches the proxy at once and the client only after 4 s.
    proxy.addRule({
      match: (r) => {
        if (!loseNext || !isRenewal(r)) return false;
        loseNext = false;
        return true;
      },
      delayResponseMs: 4000,
    });
    const warnings: string[] = [];
    const lost: string[] = [];
    const stop = startLeaseRenewal(proxied, stored, 1, { warn: (m) => warnings.push(m), lost: (r) => lost.push(r) }, { namespace, name: p.baseName });
    const isLeaseRequest = (r: { path: string }) => r.path.split('?')[0]!.endsWith(`/leases/${p.baseName}`);
    try {
      const before = await eventually(
        () => readLease(p),
        (l) => renewedAt(l) > renewedAt(stored as V1Lease),
      );
      loseNext = true;
      await eventually(
        async () => warnings.length,
        (n) => n > 0,
      );
      expect(warnings).toEqual([`renew Lease ${namespace}/${p.baseName} failed: the request timed out`]);
      // The apiserver did renew: the client just never heard of it.
      const afterLoss = await readLease(p);
      expect(renewedAt(afterLoss)).toBeGreaterThan(renewedAt(before));
      // The held renewal itself (later renewals may already be in the log on a busy machine).
      const lostAt = proxy.log.findIndex((r) => isRenewal(r) && (r.outcome === 'held' || r.outcome === 'dropped'));
      expect(lostAt).toBeGreaterThanOrEqual(0);

      const later = await eventually(
        () => readLease(p),
        (l) => renewedAt(l) > renewedAt(afterLoss) + 1000,
      );
      expect(renewedAt(later)).toBeGreaterThan(renewedAt(afterLoss) + 1000);
      // The renewal after the lost answer met the stale resourceVersion, re-read the Lease and renewed.
      const next = await eventually(
        async () =>
          proxy.log
            .slice(lostAt + 1)
            .filter(isLeaseRequest)
            .slice(0, 3)
            .map((r) => `${r.method} ${r.outcome}`),
        (requests) => requests.length === 3 && !requests.some((r) => r.endsWith('held')),
      );
      expect(next).toEqual(['PUT 409', 'GET 200', 'PUT 200']);
      expect(
        await eventually(
          async () => proxy.log[lostAt]!.outcome,
          (outcome) => outcome !== 'held',
        ),
      ).toBe('dropped');
      expect(warnings).toHaveLength(1);
      expect(lost).toEqual([]);
    } finally {
      await stop();
      await proxied.close();
      await proxy.close();
    }
  });

  it('reports once that another holder took the Lease, and leaves that holder alone', async () => {
    const p = plan(uniqueName('held'));
    await kube.createServiceAccount(p.serviceAccount);
    const stored = await kube.createLease<JobLease>(p.lease);
    const lost: string[] = [];
    const stop = startLeaseRenewal(kube, stored, 1, { warn: () => undefined, lost: (r) => lost.push(r) }, { namespace, name: p.baseName });
    try {
      const current = await eventually(
        () => readLease(p),
        (l) => renewedAt(l) > renewedAt(stored as V1Lease),
      );
      const taken = await coordination().replaceNamespacedLease({
        namespace,
        name: p.baseName,
        body: { ...current, spec: { ...current.spec, holderIdentity: 'other-host/1/2026-01-01T00:00:00.000Z' } },
      });
      await eventually(
        async () => lost.length,
        (n) => n > 0,
      );
      await new Promise((r) => setTimeout(r, 2500));
      expect(lost).toEqual([`its Lease ${namespace}/${p.baseName} (now held by other-host/1/2026-01-01T00:00:00.000Z)`]);
      expect((await readLease(p)).metadata!.resourceVersion).toBe(taken.metadata!.resourceVersion);
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
        await eventually(
          async () => lost.length,
          (n) => n > 0,
        );
        await new Promise((r) => setTimeout(r, 2500));
        expect(lost).toHaveLength(1);
        expect(lost[0]).toContain(`its ${gone} ${namespace}/${p.baseName}`);
      } finally {
        await stop();
      }
    });
  }
});

describe('run: a job whose Lease or ServiceAccount is deleted while it runs', () => {
  for (const gone of ['Lease', 'ServiceAccount'] as const) {
    it(`stops the driver, says so on stderr and in an event, exits 76 and leaves nothing (${gone} deleted)`, async () => {
      const alice = inject('unix').endUsers[0]!;
      const config = writeConfig({ targetNamespace: namespace, leaseRenewSeconds: '1s' });
      const events = join(dssuserDir(), 'events.jsonl');
      const jobId = uniqueJobId('lost');
      const cli = startCli([
        'run',
        '--user',
        alice.name,
        '--config',
        config.path,
        '--job-id',
        jobId,
        '--events',
        events,
        '--',
        'app',
        'marker',
        'running',
        'sleep',
        '30',
      ]);
      await cli.waitForEvent('marker');
      const selector = { namespace, labelSelector: `${JOB_LABEL}=${jobId}` };
      if (gone === 'Lease') {
        const [lease] = (await coordination().listNamespacedLease(selector)).items;
        await coordination().deleteNamespacedLease({ namespace, name: lease!.metadata!.name! });
      } else {
        const [account] = (await adminCore().listNamespacedServiceAccount(selector)).items.filter((a) => !a.metadata!.name!.endsWith('-exec'));
        await adminCore().deleteNamespacedServiceAccount({ namespace, name: account!.metadata!.name! });
      }
      const result = await cli.result;

      expect(result.exitCode, result.stderr).toBe(76);
      expect(result.stdout).toContain('"event":"signalled","signal":"SIGTERM"'); // the driver was stopped
      expect(result.stderr).toContain(`job ${jobId} lost its ${gone} ${namespace}/`);
      const lines = readFileSync(events, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { event: string; reason?: string });
      expect(lines.filter((l) => l.event === 'lost')).toEqual([expect.objectContaining({ reason: expect.stringContaining(`its ${gone} ${namespace}/`) })]);
      expect(lines.at(-1)).toMatchObject({ event: 'torn-down', outcome: 'ok', left: [] });
      expect(await jobObjects(jobId)).toEqual([]);
      expect(dirEntries(config.tempDir)).toEqual([]);
    });
  }
});
