import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type DeleteClient, deleteJobs, REVOCATION_SETTLE_MS } from '../../src/cleanup/delete.ts';
import { findStaleDirs } from '../../src/cleanup/job-dirs.ts';
import { type ListClient, listJobs } from '../../src/cleanup/list.ts';
import { renderJson, renderTable } from '../../src/cleanup/render.ts';
import { type CleanupClient, cleanupCommand } from '../../src/commands/cleanup.ts';
import { KubernetesError } from '../../src/errors.ts';
import { parseOwner, type JobOwner } from '../../src/exec/job-dir.ts';
import {
  addObject,
  addStaleDirs,
  type CleanupKind,
  decideState,
  deleteSelector,
  deletionPhases,
  formatAge,
  type Job,
  type JobReport,
  type ListedObject,
  matchesFilters,
  ORPHAN_SELECTOR,
  selectJobs,
} from '../../src/cleanup/model.ts';
import { ownerSelector } from '../../src/teardown/order.ts';
import { loginToSlug } from '../../src/plan/names.ts';
import { Annotation, JOB_LABEL, type JobLease, MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_LABEL, USER_LABEL } from '../../src/plan/types.ts';

const now = new Date('2025-03-01T12:00:00.000Z');
const ago = (seconds: number) => new Date(now.getTime() - seconds * 1000);
const iso = (seconds: number) => ago(seconds).toISOString();
const everywhere = () => true;

interface Fixture {
  namespace?: string;
  name?: string;
  jobId?: string;
  user?: string;
  owner?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  created?: Date;
  spec?: unknown;
}

/** The owner (job ServiceAccount name) of a user's job, as the fixtures name it. */
const ownerOf = (jobId: string, user = 'alice') => `dss-spark-${user}-${jobId}`;

/** An object as the tool labels it; by default named like the job's ServiceAccount, RoleBinding and Lease. */
function object(f: Fixture = {}): ListedObject {
  const jobId = f.jobId ?? 'job1';
  const user = f.user ?? 'alice';
  const owner = f.owner ?? ownerOf(jobId, user);
  return {
    metadata: {
      name: f.name ?? owner,
      namespace: f.namespace ?? 'dss-ns-alice',
      creationTimestamp: f.created ?? ago(600),
      labels: f.labels ?? { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [JOB_LABEL]: jobId, [USER_LABEL]: user, [OWNER_LABEL]: owner },
      annotations: f.annotations ?? {},
    },
    ...(f.spec ? { spec: f.spec } : {}),
  };
}

/** What `run` puts on the accounts, RoleBinding and Lease. */
function jobAnnotations(createdSecondsAgo: number, expiresInSeconds: number, login = 'alice') {
  return {
    [Annotation.login]: login,
    [Annotation.createdAt]: iso(createdSecondsAgo),
    [Annotation.expiresAt]: iso(-expiresInSeconds),
  };
}

function lease(renewedSecondsAgo: number, durationSeconds = 120, f: Fixture = {}): JobLease {
  const { metadata } = object({ annotations: jobAnnotations(600, 3000), ...f });
  return {
    metadata,
    spec: { holderIdentity: 'dss-host/42/2025-03-01T11:50:00.000Z', leaseDurationSeconds: durationSeconds, renewTime: iso(renewedSecondsAgo) },
  };
}

/** The objects of one job as run makes them: both ServiceAccounts, the RoleBinding and (optionally) the Lease. */
function trusted(f: Fixture = {}, withLease: ListedObject | undefined = lease(10, 120, f)): [CleanupKind, ListedObject][] {
  const owner = f.owner ?? ownerOf(f.jobId ?? 'job1', f.user);
  return [
    ['serviceaccounts', object({ annotations: jobAnnotations(600, 3000), ...f, name: owner })],
    ['serviceaccounts', object({ annotations: jobAnnotations(600, 3000), ...f, name: `${owner}-exec` })],
    ['rolebindings', object({ annotations: jobAnnotations(600, 3000), ...f, name: owner })],
    ...(withLease ? [['leases', withLease] as [CleanupKind, ListedObject]] : []),
  ];
}

function group(objects: [CleanupKind, ListedObject][], warn?: (message: string) => void): Map<string, Job> {
  const jobs = new Map<string, Job>();
  for (const [kind, o] of objects) addObject(jobs, kind, o, warn);
  return jobs;
}

function onlyJob(objects: [CleanupKind, ListedObject][]): Job {
  const jobs = [...group(objects).values()];
  expect(jobs).toHaveLength(1);
  return jobs[0]!;
}

describe('addObject: a job is made only of what dssuser alone writes', () => {
  it('keys jobs by namespace and owner; pods and PVCs join the job of their owner label', () => {
    const jobs = group([
      ['serviceaccounts', object()],
      ['serviceaccounts', object({ name: `${ownerOf('job1')}-exec` })],
      ['rolebindings', object()],
      ['serviceaccounts', object({ jobId: 'job2' })],
      // The same job id in another namespace, or of another user, is another job: its Lease must not speak for this one.
      ['serviceaccounts', object({ namespace: 'dss-ns-bob' })],
      ['serviceaccounts', object({ user: 'bob' })],
      ['pods', object({ name: 'exec-1' })],
      ['persistentvolumeclaims', object({ name: 'exec-1-spark-local' })],
    ]);
    expect([...jobs.keys()].sort()).toEqual([
      `dss-ns-alice/${ownerOf('job1')}`,
      `dss-ns-alice/${ownerOf('job2')}`,
      `dss-ns-alice/${ownerOf('job1', 'bob')}`,
      `dss-ns-bob/${ownerOf('job1')}`,
    ]);
    expect(jobs.get(`dss-ns-alice/${ownerOf('job1')}`)).toMatchObject({
      jobId: 'job1',
      owner: ownerOf('job1'),
      objects: {
        serviceaccounts: [ownerOf('job1'), `${ownerOf('job1')}-exec`],
        rolebindings: [ownerOf('job1')],
        pods: ['exec-1'],
        persistentvolumeclaims: ['exec-1-spark-local'],
      },
    });
  });

  it('never makes a job of pods or PVCs, whatever their labels say: at most a leftover of the owner they name (finding 1)', () => {
    const victim = { jobId: 'victim' };
    const jobs = group([
      // What the ephemeral-volume controller made for a hostile pod: managed-by, the victim's job id, and no owner or a made-up one.
      [
        'persistentvolumeclaims',
        object({ ...victim, name: 'x-1', labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [JOB_LABEL]: 'victim', [USER_LABEL]: 'alice' } }),
      ],
      ['persistentvolumeclaims', object({ ...victim, name: 'x-2', owner: ownerOf('ghost') })],
      // A pod that names an owner with no ServiceAccount, RoleBinding or Lease.
      ['pods', object({ name: 'x-3', owner: ownerOf('ghost'), annotations: jobAnnotations(99_999, -99_000) })],
    ]);
    // Only the ghost's own objects, as a leftover: nothing read from their annotations, no Lease, no process.
    expect([...jobs.values()].map((j) => [j.owner, j.leftover, j.objects, j.lease, j.process, j.login, j.expiresAt])).toEqual([
      [ownerOf('ghost'), true, { persistentvolumeclaims: ['x-2'], pods: ['x-3'] }, undefined, undefined, undefined, undefined],
    ]);
  });

  it("counts a pod listed before its job's trusted objects for that job all the same", () => {
    const jobs = group([['pods', object({ name: 'exec-0' })], ...trusted(), ['pods', object({ name: 'exec-1' })]]);
    expect([...jobs.values()].map((j) => [j.objects.pods, j.leftover])).toEqual([[['exec-0', 'exec-1'], undefined]]);
  });

  it('ignores trusted objects not named after their owner label, or without a job id, or with another job id', () => {
    const warnings: string[] = [];
    const jobs = group(
      [
        ['serviceaccounts', object({ name: 'dss-spark-alice-other' })],
        ['rolebindings', object({ name: `${ownerOf('job1')}-exec` })],
        ['leases', lease(5, 120, { name: 'dss-spark-alice-other' })],
        ['serviceaccounts', object({ labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [OWNER_LABEL]: ownerOf('job1') } })],
        ['rolebindings', object()],
        ['leases', lease(5, 120, { owner: ownerOf('job1'), jobId: 'job9', name: ownerOf('job1') })],
      ],
      (w) => warnings.push(w),
    );
    expect([...jobs.values()].map((j) => [j.owner, j.objects, j.lease])).toEqual([[ownerOf('job1'), { rolebindings: [ownerOf('job1')] }, undefined]]);
    expect(warnings).toEqual([
      `ignoring serviceaccounts dss-ns-alice/dss-spark-alice-other: its owner label is "${ownerOf('job1')}", so its name should be "${ownerOf('job1')}" or "${ownerOf('job1')}-exec"`,
      `ignoring rolebindings dss-ns-alice/${ownerOf('job1')}-exec: its owner label is "${ownerOf('job1')}", so its name should be "${ownerOf('job1')}"`,
      `ignoring leases dss-ns-alice/dss-spark-alice-other: its owner label is "${ownerOf('job1')}", so its name should be "${ownerOf('job1')}"`,
      `ignoring serviceaccounts dss-ns-alice/${ownerOf('job1')}: it has no job id label`,
      `ignoring leases dss-ns-alice/${ownerOf('job1')}: its job id "job9" is not the job id "job1" of the other objects of ${ownerOf('job1')}`,
    ]);
  });

  it('ignores objects without the managed-by label or an owner label', () => {
    const jobs = group([
      ['serviceaccounts', object({ labels: { [JOB_LABEL]: 'job1', [OWNER_LABEL]: ownerOf('job1') } })],
      ['serviceaccounts', object({ labels: { [MANAGED_BY_LABEL]: 'someone-else', [JOB_LABEL]: 'job1', [OWNER_LABEL]: ownerOf('job1') } })],
      ['serviceaccounts', object({ labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [JOB_LABEL]: 'job1' } })],
      ['serviceaccounts', object({ labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [JOB_LABEL]: 'job1', [OWNER_LABEL]: '' } })],
    ]);
    expect(jobs.size).toBe(0);
  });

  it('lists by the managed-by and owner labels', () => {
    expect(ORPHAN_SELECTOR).toBe(`${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE},${OWNER_LABEL}`);
  });

  it('takes login, created-at, expires-at and the process only from the kinds no job token can write', () => {
    const job = onlyJob([
      ['serviceaccounts', object({ created: ago(300), annotations: jobAnnotations(300, 3000) })],
      [
        'pods',
        object({
          name: 'exec-1',
          created: ago(60),
          annotations: {
            [Annotation.login]: 'mallory',
            [Annotation.createdAt]: iso(99_999),
            [Annotation.expiresAt]: iso(99_999),
            [Annotation.host]: 'h',
            [Annotation.pid]: '1',
            [Annotation.processStart]: 'x',
          },
        }),
      ],
    ]);
    expect(job).toMatchObject({ login: 'alice', createdAt: ago(300), expiresAt: ago(-3000) });
    expect(job.process).toBeUndefined();
  });

  it('reads renewTime with microseconds, and falls back to acquireTime', () => {
    const micro = onlyJob([['leases', object({ spec: { leaseDurationSeconds: 120, renewTime: '2025-03-01T11:59:30.123456Z' } })]]);
    expect(micro.lease?.renewTime?.toISOString()).toBe('2025-03-01T11:59:30.123Z');
    const acquired = onlyJob([['leases', object({ spec: { leaseDurationSeconds: 120, acquireTime: iso(30) } })]]);
    expect(acquired.lease?.renewTime).toEqual(ago(30));
  });
});

describe('decideState (fixed clock)', () => {
  const sa = (annotations: Record<string, string>, created = ago(600)) => ['serviceaccounts', object({ annotations, created })] as [CleanupKind, ListedObject];

  it.each([
    ['a Lease renewed 30 s ago (120 s duration)', 'live', 'lease renewed 30s ago', [['leases', lease(30)]]],
    ['a Lease renewed 119 s ago', 'live', 'lease renewed 119s ago', [['leases', lease(119)]]],
    ['a Lease renewed exactly its duration ago', 'orphaned', 'lease expired 0s ago', [['leases', lease(120)]]],
    ['a Lease renewed 10 min ago', 'orphaned', 'lease expired 8m ago', [['leases', lease(600)], sa(jobAnnotations(900, 3000))]],
    // A live Lease wins even when expires-at has passed: rotation keeps long jobs working.
    ['a live Lease past expires-at', 'live', 'lease renewed 5s ago', [['leases', lease(5)], sa(jobAnnotations(9000, -5400))]],
    ['no Lease, expires-at passed', 'orphaned', 'no lease, expired at 2025-03-01T11:53:20Z', [sa(jobAnnotations(4000, -400))]],
    ['no Lease, not expired yet (a starting job)', 'pending', 'no lease yet, expires at 2025-03-01T12:59:58Z', [sa(jobAnnotations(2, 3598))]],
    ['no Lease, no expiry, created 2 h ago', 'orphaned', 'no lease and no expiry', [sa({}, ago(7200))]],
    ['no Lease, no expiry, created 10 min ago', 'pending', 'no lease and no expiry; orphaned 60m after creation', [sa({}, ago(600))]],
    // A pod's own expires-at does not count: only the job's accounts, RoleBinding and Lease do.
    [
      'a pod with a forged past expires-at',
      'pending',
      'no lease and no expiry; orphaned 60m after creation',
      [sa({}), ['pods', object({ name: 'p', created: ago(60), annotations: { [Annotation.expiresAt]: iso(9999) } })]],
    ],
  ] as [string, string, string, [CleanupKind, ListedObject][]][])('%s → %s', (_title, state, reason, objects) => {
    expect(decideState(onlyJob(objects), now)).toEqual({ state, reason });
  });

  it('uses the grace period given (--older-than) for jobs without Lease or expiry', () => {
    const job = onlyJob([sa({}, ago(600))]);
    expect(decideState(job, now, 300).state).toBe('orphaned');
    expect(decideState(job, now, 900).state).toBe('pending');
  });

  it('takes a job without Lease whose process on this host is gone for orphaned at once (it died provisioning)', () => {
    const started = {
      ...jobAnnotations(2, 3598),
      [Annotation.host]: 'dss-host',
      [Annotation.pid]: '4242',
      [Annotation.processStart]: '2025-03-01T11:59:00.000Z',
    };
    const job = onlyJob([sa(started), ['pods', object({ name: 'p', annotations: { [Annotation.host]: 'dss-host', [Annotation.pid]: '1' } })]]);
    expect(job.process).toEqual({ host: 'dss-host', pid: 4242, processStart: '2025-03-01T11:59:00.000Z' });
    const seen: unknown[] = [];
    const dead = {
      host: 'dss-host',
      isAlive: (p: unknown) => {
        seen.push(p);
        return false;
      },
    };
    expect(decideState(job, now, 3600, dead)).toEqual({ state: 'orphaned', reason: 'no lease, and its process 4242 on this host is gone' });
    expect(seen).toEqual([job.process]);
    expect(decideState(job, now, 3600, { host: 'dss-host', isAlive: () => true }).state).toBe('pending');
    // Another host's process cannot be checked from here; a Lease, when there is one, decides alone.
    expect(decideState(job, now, 3600, { host: 'other-host', isAlive: () => false }).state).toBe('pending');
    expect(decideState(onlyJob([sa(started), ['leases', lease(5)]]), now, 3600, dead).state).toBe('live');
  });

  it('takes a stale temp directory without a job for orphaned', () => {
    const jobs = new Map<string, Job>();
    addStaleDirs(jobs, [staleDir('job9', 'dss-ns-alice')], everywhere);
    expect([...jobs.values()].map((job) => decideState(job, now))).toEqual([{ state: 'orphaned', reason: 'no objects left; temp dir of dead process 4242' }]);
  });
});

function staleDir(jobId: string, namespace: string, serviceAccount?: string) {
  return {
    path: `/tmp/dss-spark-k8s-${jobId}-abc123`,
    owner: { jobId, namespace, host: 'h', pid: 4242, processStart: 'x', ...(serviceAccount ? { serviceAccount } : {}) },
    createdAt: ago(60),
  };
}

describe('addStaleDirs', () => {
  it('attaches a directory to the job of its owner, or makes it a job without owner, within the namespaces asked for', () => {
    const jobs = group([...trusted({ user: 'bob' }), ['serviceaccounts', object()]]);
    const inScope = (namespace: string) => namespace !== 'dss-ns-carol';
    addStaleDirs(
      jobs,
      [
        staleDir('job1', 'dss-ns-alice', ownerOf('job1', 'bob')),
        staleDir('job7', 'dss-ns-bob', ownerOf('job7')),
        staleDir('job8', 'dss-ns-carol', ownerOf('job8')),
      ],
      inScope,
    );
    expect(jobs.get(`dss-ns-alice/${ownerOf('job1', 'bob')}`)!.tempDir?.path).toBe('/tmp/dss-spark-k8s-job1-abc123');
    expect(jobs.get(`dss-ns-alice/${ownerOf('job1')}`)!.tempDir).toBeUndefined();
    const lone = [...jobs.values()].filter((job) => job.owner === undefined);
    expect(lone).toEqual([
      { jobId: 'job7', namespace: 'dss-ns-bob', objects: {}, createdAt: ago(60), tempDir: staleDir('job7', 'dss-ns-bob', ownerOf('job7')) },
    ]);
    expect(jobs.size).toBe(3);
  });

  it("never attaches a directory to an owner whose job id is not the directory's", () => {
    const jobs = group([['serviceaccounts', object()]]);
    addStaleDirs(jobs, [staleDir('job2', 'dss-ns-alice', ownerOf('job1'))], everywhere);
    expect(jobs.get(`dss-ns-alice/${ownerOf('job1')}`)!.tempDir).toBeUndefined();
    expect([...jobs.values()].filter((job) => job.owner === undefined)).toHaveLength(1);
  });

  it('attaches a directory of an older version (no serviceAccount) by job id, and leaves it out when two jobs share the id', () => {
    const one = group([['serviceaccounts', object()]]);
    addStaleDirs(one, [staleDir('job1', 'dss-ns-alice')], everywhere);
    expect([...one.values()].map((j) => j.tempDir?.path)).toEqual(['/tmp/dss-spark-k8s-job1-abc123']);

    const two = group([
      ['serviceaccounts', object()],
      ['serviceaccounts', object({ user: 'bob' })],
    ]);
    const warnings: string[] = [];
    addStaleDirs(two, [staleDir('job1', 'dss-ns-alice')], everywhere, (w) => warnings.push(w));
    expect([...two.values()].map((j) => j.tempDir)).toEqual([undefined, undefined]);
    expect(two.size).toBe(2);
    expect(warnings).toEqual(['leaving /tmp/dss-spark-k8s-job1-abc123 alone: 2 jobs in dss-ns-alice have the job id job1']);
  });
});

describe('matchesFilters', () => {
  const job = onlyJob([['serviceaccounts', object({ created: ago(7200), user: loginToSlug('John.Doe'), annotations: jobAnnotations(7200, 0, 'John.Doe') })]]);

  it('--user matches the login annotation or the user label, nothing else', () => {
    expect(matchesFilters(job, { user: 'John.Doe' }, now)).toBe(true);
    expect(matchesFilters(job, { user: 'john-doe' }, now)).toBe(false);
    expect(matchesFilters(job, { user: 'john.doe' }, now)).toBe(false);
    const unannotated = onlyJob([['rolebindings', object({ user: loginToSlug('John.Doe') })]]);
    expect(matchesFilters(unannotated, { user: 'John.Doe' }, now)).toBe(true);
    expect(matchesFilters(unannotated, { user: 'bob' }, now)).toBe(false);
  });

  it('--older-than keeps jobs created longer ago', () => {
    expect(matchesFilters(job, { olderThanSeconds: 3600 }, now)).toBe(true);
    expect(matchesFilters(job, { olderThanSeconds: 7201 }, now)).toBe(false);
  });

  it('selectJobs drops a lone temp directory under --user (it names no user)', () => {
    const jobs = group([['serviceaccounts', object({ annotations: jobAnnotations(600, 3000) })]]);
    addStaleDirs(jobs, [staleDir('job5', 'dss-ns-alice')], everywhere);
    expect(selectJobs(jobs, { graceSeconds: 3600 }, now).map((r) => r.job.jobId)).toEqual(['job1', 'job5']);
    expect(selectJobs(jobs, { user: 'alice', graceSeconds: 3600 }, now).map((r) => r.job.jobId)).toEqual(['job1']);
  });
});

describe('deletionPhases and deleteSelector', () => {
  it('revokes first (anchors, binding, accounts), then deletes what the token made, and the Lease last', () => {
    const job = onlyJob([...trusted({}, lease(600)), ['pods', object({ name: 'exec-1' })]]);
    expect(deletionPhases(job)).toEqual({
      revoke: ['secrets', 'rolebindings', 'serviceaccounts'],
      tokenMade: ['pods', 'persistentvolumeclaims'],
      last: ['leases'],
    });
  });

  it('deletes only the trusted kinds the job has, only what the token made for a leftover, and nothing for a temp directory alone', () => {
    expect(deletionPhases(onlyJob([['serviceaccounts', object()]]))).toEqual({
      revoke: ['secrets', 'serviceaccounts'],
      tokenMade: ['pods', 'persistentvolumeclaims'],
      last: [],
    });
    expect(deletionPhases(onlyJob([['pods', object({ name: 'exec-1' })]]))).toEqual({ revoke: [], tokenMade: ['pods', 'persistentvolumeclaims'], last: [] });
    expect(deletionPhases({ jobId: 'j', namespace: 'n', objects: {} })).toEqual({ revoke: [], tokenMade: [], last: [] });
  });

  it('selects by one owner and the managed-by label, never without an owner', () => {
    expect(deleteSelector({ owner: ownerOf('job1') })).toBe(`${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE},${OWNER_LABEL}=${ownerOf('job1')}`);
    expect(deleteSelector({ owner: ownerOf('job1') })).toBe(ownerSelector(ownerOf('job1')));
    expect(() => deleteSelector({})).toThrow("internal: a delete selector needs the job's owner label, got undefined");
    expect(() => deleteSelector({ owner: 'a,b' })).toThrow(/internal/);
  });
});

/** Records every request; `leases` is what a re-read of a Lease returns; requests in `failOn` get 403. */
function fakeKube(options: { failOn?: string[]; leases?: JobLease[]; listFails?: Record<string, number> } = {}) {
  const calls: string[] = [];
  const answer = (call: string) => {
    calls.push(call);
    return options.failOn?.includes(call) ? Promise.reject(new KubernetesError(`${call} failed (403 Forbidden): denied`, 403)) : Promise.resolve();
  };
  const kube = {
    list: async (kind: string, namespace: string | undefined, selector: string) => {
      calls.push(`list ${kind} ${namespace ?? '*'} ${selector}`);
      const status = options.listFails?.[`${kind} ${namespace ?? '*'}`];
      if (status) throw new KubernetesError(`list ${kind} in ${namespace ?? '*'} failed (${status}): no`, status);
      return { items: [] };
    },
    getServiceAccount: async (namespace: string, name: string) => {
      calls.push(`get serviceaccount ${namespace}/${name}`);
      return undefined;
    },
    getLease: async (namespace: string, name: string) => {
      calls.push(`get lease ${namespace}/${name}`);
      return options.leases?.find((l) => l.metadata?.namespace === namespace && l.metadata?.name === name);
    },
    deleteCollection: (kind: string, namespace: string, selector: string) => answer(`collection ${kind} ${namespace} ${selector}`),
  } satisfies DeleteClient & ListClient;
  return { kube, calls };
}

describe('deleteJobs', () => {
  const pauses: number[] = [];
  const ctx = { concurrency: 4, now: () => now, graceSeconds: 3600, isAlive: () => false, sleep: async (ms: number) => void pauses.push(ms) };
  const selectorOf = (jobId: string, user = 'alice') => ownerSelector(ownerOf(jobId, user));
  const reportOf = (objects: [CleanupKind, ListedObject][]): JobReport => {
    const job = onlyJob(objects);
    return { job, decision: decideState(job, now) };
  };
  const deadJob = () => reportOf([...trusted({}, lease(600)), ['pods', object({ name: 'exec-1' })]]);

  it('reads the Lease again, then deletes in order, each kind by the one owner selector', async () => {
    const { kube, calls } = fakeKube({ leases: [lease(600)] });
    const report = deadJob();
    pauses.length = 0;
    await deleteJobs(kube, [report], ctx);
    expect(calls).toEqual([
      `get lease dss-ns-alice/${ownerOf('job1')}`,
      `collection secrets dss-ns-alice ${selectorOf('job1')}`,
      `collection rolebindings dss-ns-alice ${selectorOf('job1')}`,
      `collection serviceaccounts dss-ns-alice ${selectorOf('job1')}`,
      `collection pods dss-ns-alice ${selectorOf('job1')}`,
      `collection persistentvolumeclaims dss-ns-alice ${selectorOf('job1')}`,
      `collection leases dss-ns-alice ${selectorOf('job1')}`,
    ]);
    // The revocation is given time to hold before the pods go.
    expect(pauses).toEqual([REVOCATION_SETTLE_MS]);
    expect([report.result, report.errors]).toEqual(['deleted', undefined]);
  });

  it('skips a job whose Lease was renewed since the listing, and one whose Lease appeared', async () => {
    const { kube, calls } = fakeKube({ leases: [lease(5)] });
    const renewed = deadJob();
    await deleteJobs(kube, [renewed], ctx);
    expect(renewed).toMatchObject({ result: 'skipped', decision: { state: 'live', reason: 'lease renewed 5s ago' } });
    const noLease = reportOf([['serviceaccounts', object({ annotations: jobAnnotations(7200, -60) })]]);
    expect(noLease.decision.state).toBe('orphaned');
    await deleteJobs(kube, [noLease], ctx);
    expect(noLease.result).toBe('skipped');
    expect(calls.filter((c) => !c.startsWith('get'))).toEqual([]);
  });

  it("does not take a re-read Lease of another job id for the job's", async () => {
    const { kube, calls } = fakeKube({ leases: [lease(5, 120, { jobId: 'other', owner: ownerOf('job1') })] });
    const expired = { annotations: jobAnnotations(9000, -3600) };
    const report = reportOf(trusted(expired, lease(600, 120, expired)));
    await deleteJobs(kube, [report], ctx);
    // Without a Lease of its own, its expires-at decides; and no Lease is deleted.
    expect(report).toMatchObject({ result: 'deleted', decision: { state: 'orphaned' } });
    expect(calls.at(-1)).toBe(`collection persistentvolumeclaims dss-ns-alice ${selectorOf('job1')}`);
  });

  it('touches nothing of a job whose Lease cannot be read again, and reports it as failed', async () => {
    const { kube, calls } = fakeKube();
    kube.getLease = () => Promise.reject(new KubernetesError('get Lease failed (403 Forbidden): no', 403));
    const report = deadJob();
    await deleteJobs(kube, [report], ctx);
    expect(calls).toEqual([]);
    expect([report.result, report.errors]).toEqual(['failed', ['get Lease failed (403 Forbidden): no']]);
  });

  it('still deletes the ServiceAccounts after a failure, keeps the Lease and records every failure', async () => {
    const pods = `collection pods dss-ns-alice ${selectorOf('job1')}`;
    const bindings = `collection rolebindings dss-ns-alice ${selectorOf('job1')}`;
    const { kube, calls } = fakeKube({ failOn: [pods, bindings], leases: [lease(600)] });
    const report = deadJob();
    await deleteJobs(kube, [report], ctx);
    expect(report.result).toBe('failed');
    expect(report.errors).toEqual([`${bindings} failed (403 Forbidden): denied`, `${pods} failed (403 Forbidden): denied`]);
    expect(calls).toContain(`collection serviceaccounts dss-ns-alice ${selectorOf('job1')}`);
    expect(calls.filter((call) => call.includes('leases'))).toEqual([]);
  });
});

describe('the forged-label attack of finding 1, replayed on the model', () => {
  // One team namespace: a live victim, a dead neighbour, and what a hostile job had a controller make.
  const ns = 'dss-team';
  const victim = { namespace: ns, jobId: 'victim', user: 'alice' };
  const dead = { namespace: ns, jobId: 'dead', user: 'bob' };
  const listed: [CleanupKind, ListedObject][] = [
    ...trusted(victim, lease(5, 120, victim)),
    ...trusted(dead, lease(900, 120, dead)),
    ['persistentvolumeclaims', object({ ...victim, name: 'evil-1', labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [JOB_LABEL]: 'victim' } })],
    ['persistentvolumeclaims', object({ ...victim, name: 'evil-2', owner: ownerOf('ghost') })],
    ['pods', object({ ...victim, name: 'evil-3', owner: ownerOf('ghost'), labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [OWNER_LABEL]: ownerOf('ghost') } })],
    ['persistentvolumeclaims', object({ ...victim, name: 'evil-4' })],
  ];

  it("finds the two real jobs and a leftover of the ghost; the objects carrying the victim's owner label count as the victim's", () => {
    const reports = selectJobs(group(listed), { graceSeconds: 2 }, now);
    expect(reports.map((r) => [r.job.jobId, r.job.owner, r.decision.state, r.job.objects.persistentvolumeclaims ?? []])).toEqual([
      // What the ghost's own token labelled as its own: a leftover, whatever job id it claims.
      ['', ownerOf('ghost'), 'orphaned', ['evil-2']],
      ['dead', ownerOf('dead', 'bob'), 'orphaned', []],
      ['victim', ownerOf('victim'), 'live', ['evil-4']],
    ]);
  });

  it("with --yes, every delete request names the dead job's owner or the ghost's, never the victim's", async () => {
    const { kube, calls } = fakeKube({ leases: [lease(900, 120, dead), lease(5, 120, victim)] });
    const reports = selectJobs(group(listed), { graceSeconds: 2 }, now);
    for (const report of reports.filter((r) => r.decision.state === 'orphaned'))
      await deleteJobs(kube, [report], { concurrency: 4, now: () => now, graceSeconds: 2, isAlive: () => false, sleep: async () => {} });
    const deletes = calls.filter((c) => c.startsWith('collection'));
    expect(deletes.filter((c) => c.endsWith(` ${ownerSelector(ownerOf('dead', 'bob'))}`))).toHaveLength(6);
    // The leftover: its owner checked for an account or Lease first, then only pods and claims.
    expect(calls.filter((c) => c.includes(ownerOf('ghost')))).toEqual([
      `get serviceaccount dss-team/${ownerOf('ghost')}`,
      `get lease dss-team/${ownerOf('ghost')}`,
      `collection pods dss-team ${ownerSelector(ownerOf('ghost'))}`,
      `collection persistentvolumeclaims dss-team ${ownerSelector(ownerOf('ghost'))}`,
    ]);
    expect(deletes).toHaveLength(8);
    expect(calls.some((c) => c.includes('victim') || c.includes(JOB_LABEL))).toBe(false);
  });
});

describe('listJobs', () => {
  it('goes on after a namespace whose trusted lists fail, leaves its jobs out and reports it', async () => {
    const { kube, calls } = fakeKube({ listFails: { 'serviceaccounts dss-b': 403 } });
    const warnings: string[] = [];
    const listing = await listJobs(kube, { namespaces: ['dss-a', 'dss-b', 'dss-c'], pageSize: 500, concurrency: 1, warn: (w) => warnings.push(w) });
    expect(listing.failures).toEqual([{ namespace: 'dss-b', kind: 'serviceaccounts', message: 'list serviceaccounts in dss-b failed (403): no' }]);
    expect([...listing.unknown]).toEqual(['dss-b']);
    expect(warnings).toEqual(['list serviceaccounts in dss-b failed (403): no; the jobs in dss-b are left alone']);
    // dss-a and dss-c are listed fully; dss-b's driver kinds are not listed at all.
    for (const ns of ['dss-a', 'dss-c'])
      for (const kind of ['leases', 'rolebindings', 'serviceaccounts', 'pods', 'persistentvolumeclaims'])
        expect(calls).toContain(`list ${kind} ${ns} ${ORPHAN_SELECTOR}`);
    expect(calls.filter((c) => c.startsWith('list pods dss-b') || c.startsWith('list persistentvolumeclaims dss-b'))).toEqual([]);
  });

  it('asks metadata only for every kind but the Leases', async () => {
    const seen: string[] = [];
    const kube = {
      list: async (kind: string, _ns: string, _selector: string, _limit: number, _continue: string | undefined, metadataOnly: boolean) => {
        seen.push(`${kind} ${metadataOnly}`);
        return { items: [] };
      },
    } satisfies ListClient;
    await listJobs(kube, { namespaces: [], pageSize: 500, concurrency: 1 });
    expect(seen.sort()).toEqual(['leases false', 'persistentvolumeclaims true', 'pods true', 'rolebindings true', 'serviceaccounts true']);
  });

  it('throws when a trusted list across all namespaces fails, and only reports a failed driver-kind list', async () => {
    await expect(listJobs(fakeKube({ listFails: { 'leases *': 403 } }).kube, { namespaces: [], pageSize: 500, concurrency: 1 })).rejects.toThrow(
      'list leases in * failed (403): no',
    );
    const listing = await listJobs(fakeKube({ listFails: { 'pods dss-a': 403 } }).kube, { namespaces: ['dss-a'], pageSize: 500, concurrency: 1 });
    expect(listing.failures.map((f) => `${f.namespace} ${f.kind}`)).toEqual(['dss-a pods']);
    expect([...listing.unknown]).toEqual([]);
  });
});

describe('cleanupCommand with a namespace whose lists fail', () => {
  it('cleans the others, says which one failed, and exits 69', async () => {
    const dead = { namespace: 'dss-a', jobId: 'dead' };
    const items: Record<string, ListedObject[]> = {
      'serviceaccounts dss-a': [object({ ...dead, annotations: jobAnnotations(9000, -3600) })],
    };
    const calls: string[] = [];
    const kube = {
      list: async (kind: string, namespace: string) => {
        if (namespace === 'dss-b') throw new KubernetesError(`list ${kind} in dss-b failed (403 Forbidden): denied`, 403);
        return { items: items[`${kind} ${namespace}`] ?? [] };
      },
      getLease: async () => undefined,
      deleteCollection: async (kind: string, namespace: string, selector: string) => void calls.push(`${kind} ${namespace} ${selector}`),
      getServiceAccount: async () => undefined,
      close: async () => {},
    } satisfies CleanupClient;
    let stdout = '';
    let stderr = '';
    const work = mkdtempSync(join(tmpdir(), 'orphans-unit-'));
    const config = join(work, 'config.yaml');
    writeFileSync(config, JSON.stringify({ profiles: { default: { sparkSubmit: '/bin/true', tempDir: work } } }));
    const run = cleanupCommand(
      { orphans: true, namespace: ['dss-b', 'dss-a'], yes: true, output: 'json', config },
      {
        kube,
        stdout: { write: (t: string) => (stdout += t) },
        stderr: { write: (t: string) => (stderr += t) },
        env: {},
        now: () => now,
        isAlive: () => false,
        sleep: async () => {},
      },
    );
    await expect(run).rejects.toMatchObject({
      exitCode: 69,
      message: 'could not list everything in dss-b (reasons above); what could not be seen was left alone; run cleanup --orphans again',
    });
    expect(calls).toEqual(['secrets', 'serviceaccounts', 'pods', 'persistentvolumeclaims'].map((kind) => `${kind} dss-a ${ownerSelector(ownerOf('dead'))}`));
    expect(JSON.parse(stdout).map((j: { jobId: string; result: string }) => [j.jobId, j.result])).toEqual([['dead', 'deleted']]);
    expect(stderr).toMatch(/^dss-spark-k8s: list \w+ in dss-b failed \(403 Forbidden\): denied; the jobs in dss-b are left alone$/m);
    rmSync(work, { recursive: true });
  });
});

describe('findStaleDirs', () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function jobDir(name: string, owner: Partial<JobOwner> | string | undefined) {
    const path = join(dir, name);
    mkdirSync(path);
    if (owner !== undefined) {
      const full =
        typeof owner === 'string' ? owner : JSON.stringify({ jobId: 'j1', host: hostname(), pid: 1234, processStart: 'p', namespace: 'dss-ns-a', ...owner });
      writeFileSync(join(path, 'owner.json'), full);
    }
    return path;
  }

  it('finds our directories whose owner process is gone, on this host only', async () => {
    dir = mkdtempSync(join(tmpdir(), 'orphans-unit-'));
    const stale = jobDir('dss-spark-k8s-j1-AbC123', { serviceAccount: 'dss-spark-a-j1' });
    jobDir('dss-spark-k8s-j2-AbC123', { jobId: 'j2', pid: 1 }); // alive
    jobDir('dss-spark-k8s-j3-AbC123', { jobId: 'j3', host: 'another-host' }); // not this host's to judge
    jobDir('dss-spark-k8s-cluster', undefined); // not a job directory
    jobDir('dss-spark-k8s-j4-AbC123', 'not json');
    jobDir('dss-spark-k8s-j5-AbC123', { jobId: 'j1' }); // owner.json of another job
    jobDir('other-j6-AbC123', { jobId: 'j6' });
    symlinkSync(stale, join(dir, 'dss-spark-k8s-j1-link00'));
    const warnings: string[] = [];
    const found = await findStaleDirs(
      dir,
      (owner) => owner.pid === 1,
      (w) => warnings.push(w),
    );
    expect(found.map((d) => d.path)).toEqual([stale]);
    expect(found[0]!.owner).toEqual({ jobId: 'j1', host: hostname(), pid: 1234, processStart: 'p', namespace: 'dss-ns-a', serviceAccount: 'dss-spark-a-j1' });
    expect(warnings.sort()).toEqual([
      `ignoring ${join(dir, 'dss-spark-k8s-j4-AbC123')}: owner.json is not JSON`,
      `ignoring ${join(dir, 'dss-spark-k8s-j5-AbC123')}: owner.json names job "j1", not the job of the directory name`,
    ]);
  });

  it('finds nothing in a temp directory that does not exist', async () => {
    dir = join(tmpdir(), 'orphans-unit-missing');
    expect(await findStaleDirs(dir, () => false)).toEqual([]);
  });

  it('deleteJob removes a lone directory from disk only, and only while its owner is still dead', async () => {
    dir = mkdtempSync(join(tmpdir(), 'orphans-unit-'));
    const path = jobDir('dss-spark-k8s-j1-AbC123', { serviceAccount: 'dss-spark-a-j1' });
    const [found] = await findStaleDirs(dir, () => false);
    const jobs = new Map<string, Job>();
    addStaleDirs(jobs, [found!], everywhere);
    const job = [...jobs.values()][0]!;
    const { kube, calls } = fakeKube();
    const report = (): JobReport => ({ job, decision: decideState(job, now) });
    const ctx = (isAlive: boolean) => ({ concurrency: 1, now: () => now, graceSeconds: 3600, isAlive: () => isAlive });
    await deleteJobs(kube, [report()], ctx(true));
    expect(await findStaleDirs(dir, () => false)).toHaveLength(1);
    const removed = report();
    await deleteJobs(kube, [removed], ctx(false));
    expect(removed.result).toBe('deleted');
    expect(await findStaleDirs(dir, () => false)).toEqual([]);
    expect(() => rmSync(path)).toThrow(/ENOENT/);
    expect(calls).toEqual([]);
  });
});

describe('parseOwner', () => {
  it('requires every field, and a serviceAccount that is a name when there is one, naming the key that is wrong', () => {
    expect(() => parseOwner('{"jobId":"j","host":"h","pid":"12","processStart":"p","namespace":"n"}')).toThrow(
      'owner.json: pid: expected an integer, got "12"',
    );
    expect(() => parseOwner('{"jobId":"j","pid":12,"processStart":"p","namespace":"n"}')).toThrow(
      'owner.json: host: required; owner.json names the jobId, host, pid, processStart and namespace of its job',
    );
    expect(() => parseOwner('null')).toThrow('owner.json: expected a JSON object, got null');
    expect(() => parseOwner('{"jobId":"j","host":"h","pid":12,"processStart":"p","namespace":"n","serviceAccount":"a,b"}')).toThrow(
      'owner.json: serviceAccount: expected a ServiceAccount name, got "a,b"',
    );
    const owner = parseOwner('{"jobId":"j","host":"h","pid":12,"processStart":"p","namespace":"n","serviceAccount":"dss-spark-a","extra":1}');
    expect(owner).toEqual({ jobId: 'j', host: 'h', pid: 12, processStart: 'p', namespace: 'n', serviceAccount: 'dss-spark-a' });
  });
});

describe('output', () => {
  const reports = () =>
    selectJobs(
      group([
        ['serviceaccounts', object({ jobId: 'j-live', annotations: jobAnnotations(600, 3000) })],
        ['leases', lease(10, 120, { jobId: 'j-live' })],
        ['serviceaccounts', object({ jobId: 'j-dead', annotations: jobAnnotations(7200, -3600) })],
        ['pods', object({ jobId: 'j-dead', name: 'exec-1' })],
      ]),
      { graceSeconds: 3600 },
      now,
    );

  it('prints a table with one row per job', () => {
    expect(renderTable(reports(), now, false)).toBe(
      [
        'JOB     USER   NAMESPACE     AGE  STATE     REASON                                     OBJECTS',
        'j-dead  alice  dss-ns-alice  2h   orphaned  no lease, expired at 2025-03-01T11:00:00Z  2',
        'j-live  alice  dss-ns-alice  10m  live      lease renewed 10s ago                      2',
        '',
      ].join('\n'),
    );
  });

  it('prints JSON with every object of every job', () => {
    const [dead] = JSON.parse(renderJson(reports(), now));
    expect(dead).toEqual({
      jobId: 'j-dead',
      namespace: 'dss-ns-alice',
      user: 'alice',
      createdAt: '2025-03-01T10:00:00.000Z',
      ageSeconds: 7200,
      state: 'orphaned',
      reason: 'no lease, expired at 2025-03-01T11:00:00Z',
      objects: [
        { kind: 'serviceaccounts', name: 'dss-spark-alice-j-dead' },
        { kind: 'pods', name: 'exec-1' },
      ],
      tempDir: null,
    });
  });

  it('formats ages like kubectl', () => {
    expect([59_000, 119_000, 120_000, 7_199_000, 7_200_000, 172_799_000, 172_800_000].map(formatAge)).toEqual(['59s', '119s', '2m', '119m', '2h', '47h', '2d']);
  });
});
