import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { renderJson, renderTable, selectJobs } from '../../src/commands/cleanup.ts';
import { KubernetesError } from '../../src/errors.ts';
import type { JobOwner } from '../../src/exec/job-files.ts';
import type { Kube, LabelledKind } from '../../src/k8s/client.ts';
import {
  addObject,
  addStaleDirs,
  decideState,
  deleteJob,
  deletionSteps,
  findStaleDirs,
  forEachLimited,
  formatAge,
  type Job,
  type ListedObject,
  matchesFilters,
  ORPHAN_SELECTOR,
  parseOwner,
} from '../../src/job/orphans.ts';
import { loginToSlug } from '../../src/plan/names.ts';
import { Annotation, JOB_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, USER_LABEL } from '../../src/plan/types.ts';

const now = new Date('2025-03-01T12:00:00.000Z');
const ago = (seconds: number) => new Date(now.getTime() - seconds * 1000);
const iso = (seconds: number) => ago(seconds).toISOString();

interface Fixture {
  namespace?: string;
  name?: string;
  jobId?: string;
  user?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  created?: Date;
  spec?: unknown;
}

function object(f: Fixture = {}): ListedObject {
  const jobId = f.jobId ?? 'job1';
  return {
    metadata: {
      name: f.name ?? `dss-spark-alice-${jobId}`,
      namespace: f.namespace ?? 'dss-ns-alice',
      creationTimestamp: f.created ?? ago(600),
      labels: f.labels ?? { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [JOB_LABEL]: jobId, [USER_LABEL]: f.user ?? 'alice' },
      annotations: f.annotations ?? {},
    },
    ...(f.spec ? { spec: f.spec } : {}),
  };
}

/** What `run` puts on the accounts, Role, RoleBinding and Lease. */
function jobAnnotations(createdSecondsAgo: number, expiresInSeconds: number, login = 'alice') {
  return {
    [Annotation.login]: login,
    [Annotation.createdAt]: iso(createdSecondsAgo),
    [Annotation.expiresAt]: iso(-expiresInSeconds),
  };
}

function lease(renewedSecondsAgo: number, durationSeconds = 120, f: Fixture = {}): ListedObject {
  return object({
    annotations: jobAnnotations(600, 3000),
    ...f,
    spec: { holderIdentity: 'dss-host/42/2025-03-01T11:50:00.000Z', leaseDurationSeconds: durationSeconds, renewTime: iso(renewedSecondsAgo) },
  });
}

function group(objects: [LabelledKind, ListedObject][]): Map<string, Job> {
  const jobs = new Map<string, Job>();
  for (const [kind, o] of objects) addObject(jobs, kind, o);
  return jobs;
}

function onlyJob(objects: [LabelledKind, ListedObject][]): Job {
  const jobs = [...group(objects).values()];
  expect(jobs).toHaveLength(1);
  return jobs[0]!;
}

describe('addObject', () => {
  it('groups objects by namespace and job id', () => {
    const jobs = group([
      ['serviceaccounts', object({ name: 'sa-a' })],
      ['serviceaccounts', object({ name: 'sa-a-exec' })],
      ['roles', object({ name: 'sa-a' })],
      ['pods', object({ name: 'exec-1' })],
      ['serviceaccounts', object({ jobId: 'job2', name: 'sa-b' })],
      // The same job id in another namespace is another job: its Lease must not speak for this one.
      ['serviceaccounts', object({ namespace: 'dss-ns-bob', name: 'sa-c' })],
    ]);
    expect([...jobs.keys()].sort()).toEqual(['dss-ns-alice/job1', 'dss-ns-alice/job2', 'dss-ns-bob/job1']);
    expect(jobs.get('dss-ns-alice/job1')!.objects).toEqual({ serviceaccounts: ['sa-a', 'sa-a-exec'], roles: ['sa-a'], pods: ['exec-1'] });
  });

  it('ignores objects without the managed-by label or a job label', () => {
    const jobs = group([
      ['serviceaccounts', object({ labels: { [JOB_LABEL]: 'job1' } })],
      ['serviceaccounts', object({ labels: { [MANAGED_BY_LABEL]: 'someone-else', [JOB_LABEL]: 'job1' } })],
      ['serviceaccounts', object({ labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE } })],
      ['serviceaccounts', object({ labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [JOB_LABEL]: '' } })],
    ]);
    expect(jobs.size).toBe(0);
  });

  it('selects with both labels', () => {
    expect(ORPHAN_SELECTOR).toBe(`${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE},${JOB_LABEL}`);
  });

  it('takes login, created-at and expires-at only from the kinds no job token can write', () => {
    const job = onlyJob([
      ['pods', object({ name: 'exec-1', created: ago(60), annotations: { [Annotation.login]: 'mallory', [Annotation.createdAt]: iso(99_999), [Annotation.expiresAt]: iso(99_999) } })],
      ['serviceaccounts', object({ created: ago(300), annotations: jobAnnotations(300, 3000) })],
    ]);
    expect(job.login).toBe('alice');
    expect(job.createdAt).toEqual(ago(300));
    expect(job.expiresAt).toEqual(ago(-3000));
  });

  it('keeps the fresher of two Leases', () => {
    const job = onlyJob([
      ['leases', lease(600, 120, { name: 'old' })],
      ['leases', lease(10, 120, { name: 'fresh' })],
      ['leases', lease(900, 120, { name: 'older' })],
    ]);
    expect(job.lease?.name).toBe('fresh');
  });

  it('reads renewTime with microseconds, and falls back to acquireTime', () => {
    const micro = onlyJob([['leases', object({ spec: { leaseDurationSeconds: 120, renewTime: '2025-03-01T11:59:30.123456Z' } })]]);
    expect(micro.lease?.renewTime?.toISOString()).toBe('2025-03-01T11:59:30.123Z');
    const acquired = onlyJob([['leases', object({ spec: { leaseDurationSeconds: 120, acquireTime: iso(30) } })]]);
    expect(acquired.lease?.renewTime).toEqual(ago(30));
  });
});

describe('decideState (fixed clock)', () => {
  const sa = (annotations: Record<string, string>, created = ago(600)) => ['serviceaccounts', object({ annotations, created })] as [LabelledKind, ListedObject];

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
    // A pod's own expires-at does not count: only the job's accounts, Role, RoleBinding and Lease do.
    ['pods only, with a forged past expires-at', 'pending', 'no lease and no expiry; orphaned 60m after creation', [['pods', object({ created: ago(60), annotations: { [Annotation.expiresAt]: iso(9999) } })]]],
  ] as [string, string, string, [LabelledKind, ListedObject][]][])('%s → %s', (_title, state, reason, objects) => {
    expect(decideState(onlyJob(objects), now)).toEqual({ state, reason });
  });

  it('uses the grace period given (--older-than) for jobs without Lease or expiry', () => {
    const job = onlyJob([sa({}, ago(600))]);
    expect(decideState(job, now, 300).state).toBe('orphaned');
    expect(decideState(job, now, 900).state).toBe('pending');
  });

  it('takes a stale temp directory without objects for orphaned', () => {
    const jobs = new Map<string, Job>();
    addStaleDirs(jobs, [staleDir('job9', 'dss-ns-alice')], []);
    expect(decideState(jobs.get('dss-ns-alice/job9')!, now)).toEqual({ state: 'orphaned', reason: 'no objects left; temp dir of dead process 4242' });
  });
});

function staleDir(jobId: string, namespace: string) {
  return { path: `/tmp/dss-spark-k8s-${jobId}-abc123`, owner: { jobId, namespace, host: 'h', pid: 4242, processStart: 'x' }, createdAt: ago(60) };
}

describe('addStaleDirs', () => {
  it('attaches a directory to its job, or makes it a job of its own, within the namespaces asked for', () => {
    const jobs = group([['serviceaccounts', object()]]);
    addStaleDirs(jobs, [staleDir('job1', 'dss-ns-alice'), staleDir('job7', 'dss-ns-bob'), staleDir('job8', 'dss-ns-carol')], ['dss-ns-alice', 'dss-ns-bob']);
    expect(jobs.get('dss-ns-alice/job1')!.tempDir?.path).toBe('/tmp/dss-spark-k8s-job1-abc123');
    expect(jobs.get('dss-ns-bob/job7')).toMatchObject({ objects: {}, createdAt: ago(60) });
    expect(jobs.has('dss-ns-carol/job8')).toBe(false);
  });
});

describe('matchesFilters', () => {
  const job = onlyJob([['serviceaccounts', object({ created: ago(7200), user: loginToSlug('John.Doe'), annotations: jobAnnotations(7200, 0, 'John.Doe') })]]);

  it('--user matches the login annotation or the user label, nothing else', () => {
    expect(matchesFilters(job, { user: 'John.Doe' }, now)).toBe(true);
    expect(matchesFilters(job, { user: 'john-doe' }, now)).toBe(false);
    expect(matchesFilters(job, { user: 'john.doe' }, now)).toBe(false);
    const unannotated = onlyJob([['pods', object({ user: loginToSlug('John.Doe') })]]);
    expect(matchesFilters(unannotated, { user: 'John.Doe' }, now)).toBe(true);
    expect(matchesFilters(unannotated, { user: 'bob' }, now)).toBe(false);
  });

  it('--older-than keeps jobs created longer ago', () => {
    expect(matchesFilters(job, { olderThanSeconds: 3600 }, now)).toBe(true);
    expect(matchesFilters(job, { olderThanSeconds: 7201 }, now)).toBe(false);
  });

  it('selectJobs drops a lone temp directory under --user (it names no user)', () => {
    const jobs = group([['serviceaccounts', object({ annotations: jobAnnotations(600, 3000) })]]);
    addStaleDirs(jobs, [staleDir('job5', 'dss-ns-alice')], []);
    expect(selectJobs(jobs, { graceSeconds: 3600 }, now).map((r) => r.job.jobId)).toEqual(['job1', 'job5']);
    expect(selectJobs(jobs, { user: 'alice', graceSeconds: 3600 }, now).map((r) => r.job.jobId)).toEqual(['job1']);
  });
});

describe('deletionSteps', () => {
  it('deletes pods, services, configmaps and PVCs by label, then binding, role, accounts, and the Lease last', () => {
    const job = onlyJob([
      ['leases', lease(600)],
      ['serviceaccounts', object({ name: 'sa' })],
      ['serviceaccounts', object({ name: 'sa-exec' })],
      ['roles', object({ name: 'sa' })],
      ['rolebindings', object({ name: 'sa' })],
      ['persistentvolumeclaims', object({ name: 'pvc-1' })],
      ['configmaps', object({ name: 'cm-1' })],
      ['configmaps', object({ name: 'cm-2' })],
      ['services', object({ name: 'svc' })],
      ['pods', object({ name: 'exec-1' })],
      ['pods', object({ name: 'exec-2' })],
    ]);
    expect(deletionSteps(job)).toEqual([
      { kind: 'pods', collection: true },
      { kind: 'services', collection: true },
      { kind: 'configmaps', collection: true },
      { kind: 'persistentvolumeclaims', collection: true },
      { kind: 'rolebindings', name: 'sa' },
      { kind: 'roles', name: 'sa' },
      { kind: 'serviceaccounts', name: 'sa' },
      { kind: 'serviceaccounts', name: 'sa-exec' },
      { kind: 'leases', name: 'dss-spark-alice-job1' },
    ]);
  });

  it('sends no collection delete for a kind the job has none of', () => {
    expect(deletionSteps(onlyJob([['serviceaccounts', object({ name: 'sa' })]]))).toEqual([{ kind: 'serviceaccounts', name: 'sa' }]);
  });
});

describe('deleteJob', () => {
  function fakeKube(failOn: string[] = []) {
    const calls: string[] = [];
    const answer = (call: string) => {
      calls.push(call);
      return failOn.includes(call) ? Promise.reject(new KubernetesError(`${call} failed (403 Forbidden): denied`, 403)) : Promise.resolve();
    };
    const kube = {
      deleteCollection: (kind: string, namespace: string, selector: string) => answer(`collection ${kind} ${namespace} ${selector}`),
      deleteNamespaced: (kind: string, namespace: string, name: string) => answer(`${kind} ${namespace}/${name}`),
    } as unknown as Kube;
    return { kube, calls };
  }
  const job = () =>
    onlyJob([
      ['pods', object({ name: 'exec-1' })],
      ['rolebindings', object({ name: 'rb' })],
      ['serviceaccounts', object({ name: 'sa' })],
      ['leases', lease(600, 120, { name: 'lease' })],
    ]);

  it('deletes in order, by the job selector with the managed-by label', async () => {
    const { kube, calls } = fakeKube();
    expect(await deleteJob(kube, job())).toEqual([]);
    expect(calls).toEqual([
      `collection pods dss-ns-alice ${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE},${JOB_LABEL}=job1`,
      'rolebindings dss-ns-alice/rb',
      'serviceaccounts dss-ns-alice/sa',
      'leases dss-ns-alice/lease',
    ]);
  });

  it('still deletes the ServiceAccount after a failure, keeps the Lease and reports every failure', async () => {
    const { kube, calls } = fakeKube([`collection pods dss-ns-alice ${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE},${JOB_LABEL}=job1`, 'rolebindings dss-ns-alice/rb']);
    const failures = await deleteJob(kube, job());
    expect(failures).toHaveLength(2);
    expect(failures[1]).toBe('rolebindings dss-ns-alice/rb failed (403 Forbidden): denied');
    expect(calls).toContain('serviceaccounts dss-ns-alice/sa');
    expect(calls).not.toContain('leases dss-ns-alice/lease');
  });
});

describe('findStaleDirs', () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function jobDir(name: string, owner: Partial<JobOwner> | string | undefined) {
    const path = join(dir, name);
    mkdirSync(path);
    if (owner !== undefined) {
      const full = typeof owner === 'string' ? owner : JSON.stringify({ jobId: 'j1', host: hostname(), pid: 1234, processStart: 'p', namespace: 'dss-ns-a', ...owner });
      writeFileSync(join(path, 'owner.json'), full);
    }
    return path;
  }

  it('finds our directories whose owner process is gone, on this host only', async () => {
    dir = mkdtempSync(join(tmpdir(), 'orphans-unit-'));
    const stale = jobDir('dss-spark-k8s-j1-AbC123', {});
    jobDir('dss-spark-k8s-j2-AbC123', { jobId: 'j2', pid: 1 }); // alive
    jobDir('dss-spark-k8s-j3-AbC123', { jobId: 'j3', host: 'another-host' }); // not this host's to judge
    jobDir('dss-spark-k8s-cluster', undefined); // not a job directory
    jobDir('dss-spark-k8s-j4-AbC123', 'not json');
    jobDir('dss-spark-k8s-j5-AbC123', { jobId: 'j1' }); // owner.json of another job
    jobDir('other-j6-AbC123', { jobId: 'j6' });
    symlinkSync(stale, join(dir, 'dss-spark-k8s-j1-link00'));
    const warnings: string[] = [];
    const found = await findStaleDirs(dir, (owner) => owner.pid === 1, (w) => warnings.push(w));
    expect(found.map((d) => d.path)).toEqual([stale]);
    expect(found[0]!.owner).toEqual({ jobId: 'j1', host: hostname(), pid: 1234, processStart: 'p', namespace: 'dss-ns-a' });
    expect(warnings.sort()).toEqual([
      `ignoring ${join(dir, 'dss-spark-k8s-j4-AbC123')}: owner.json is not JSON`,
      `ignoring ${join(dir, 'dss-spark-k8s-j5-AbC123')}: owner.json names job "j1", not the job of the directory name`,
    ]);
  });

  it('finds nothing in a temp directory that does not exist', async () => {
    dir = join(tmpdir(), 'orphans-unit-missing');
    expect(await findStaleDirs(dir, () => false)).toEqual([]);
  });

  it('deleteJob removes the directory only while its owner is still dead', async () => {
    dir = mkdtempSync(join(tmpdir(), 'orphans-unit-'));
    const path = jobDir('dss-spark-k8s-j1-AbC123', {});
    const [found] = await findStaleDirs(dir, () => false);
    const job: Job = { jobId: 'j1', namespace: 'dss-ns-a', objects: {}, tempDir: found! };
    const kube = {} as Kube;
    expect(await deleteJob(kube, job, () => true)).toEqual([]);
    expect(await findStaleDirs(dir, () => false)).toHaveLength(1);
    expect(await deleteJob(kube, job, () => false)).toEqual([]);
    expect(await findStaleDirs(dir, () => false)).toEqual([]);
    expect(() => rmSync(path)).toThrow(/ENOENT/);
  });
});

describe('parseOwner', () => {
  it('requires every field', () => {
    expect(() => parseOwner('{"jobId":"j","host":"h","pid":"12","processStart":"p","namespace":"n"}')).toThrow('owner.json lacks jobId, host, pid, processStart or namespace');
    expect(() => parseOwner('null')).toThrow(/lacks/);
  });
});

describe('forEachLimited', () => {
  it('keeps at most `limit` calls in flight and visits every item', async () => {
    let inFlight = 0;
    let most = 0;
    const seen: number[] = [];
    await forEachLimited(Array.from({ length: 50 }, (_, i) => i), 4, async (i) => {
      most = Math.max(most, ++inFlight);
      await new Promise((r) => setTimeout(r, 1));
      seen.push(i);
      inFlight--;
    });
    expect(most).toBe(4);
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('stops taking items after a failure and rejects', async () => {
    const seen: number[] = [];
    const run = forEachLimited([1, 2, 3, 4, 5, 6], 1, async (i) => {
      seen.push(i);
      if (i === 2) throw new Error('boom');
    });
    await expect(run).rejects.toThrow('boom');
    expect(seen).toEqual([1, 2]);
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
