import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { renderJson, renderTable, selectJobs } from '../../src/commands/cleanup.ts';
import { KubernetesError } from '../../src/errors.ts';
import type { JobOwner } from '../../src/exec/job-files.ts';
import type { Kube } from '../../src/k8s/client.ts';
import {
  addObject,
  addStaleDirs,
  batches,
  type CleanupKind,
  type DeleteRequest,
  decideState,
  deleteBatch,
  deletionPhases,
  findStaleDirs,
  forEachLimited,
  formatAge,
  type Job,
  type JobReport,
  limiter,
  type ListedObject,
  matchesFilters,
  jobsSelector,
  ORPHAN_SELECTOR,
  parseOwner,
} from '../../src/job/orphans.ts';
import { loginToSlug } from '../../src/plan/names.ts';
import { Annotation, JOB_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_LABEL, USER_LABEL } from '../../src/plan/types.ts';

const now = new Date('2025-03-01T12:00:00.000Z');
const ago = (seconds: number) => new Date(now.getTime() - seconds * 1000);
const iso = (seconds: number) => ago(seconds).toISOString();

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

function object(f: Fixture = {}): ListedObject {
  const jobId = f.jobId ?? 'job1';
  return {
    metadata: {
      name: f.name ?? `dss-spark-alice-${jobId}`,
      namespace: f.namespace ?? 'dss-ns-alice',
      creationTimestamp: f.created ?? ago(600),
      labels: f.labels ?? { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [JOB_LABEL]: jobId, [USER_LABEL]: f.user ?? 'alice', [OWNER_LABEL]: f.owner ?? `dss-spark-alice-${jobId}` },
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

function lease(renewedSecondsAgo: number, durationSeconds = 120, f: Fixture = {}): ListedObject {
  return object({
    annotations: jobAnnotations(600, 3000),
    ...f,
    spec: { holderIdentity: 'dss-host/42/2025-03-01T11:50:00.000Z', leaseDurationSeconds: durationSeconds, renewTime: iso(renewedSecondsAgo) },
  });
}

function group(objects: [CleanupKind, ListedObject][]): Map<string, Job> {
  const jobs = new Map<string, Job>();
  for (const [kind, o] of objects) addObject(jobs, kind, o);
  return jobs;
}

function onlyJob(objects: [CleanupKind, ListedObject][]): Job {
  const jobs = [...group(objects).values()];
  expect(jobs).toHaveLength(1);
  return jobs[0]!;
}

describe('addObject', () => {
  it('groups objects by namespace, job id and owner', () => {
    const jobs = group([
      ['serviceaccounts', object({ name: 'sa-a' })],
      ['serviceaccounts', object({ name: 'sa-a-exec' })],
      ['rolebindings', object({ name: 'sa-a' })],
      ['pods', object({ name: 'exec-1' })],
      ['serviceaccounts', object({ jobId: 'job2', name: 'sa-b' })],
      // The same job id in another namespace, or of another user, is another job: its Lease must not speak for this one.
      ['serviceaccounts', object({ namespace: 'dss-ns-bob', name: 'sa-c' })],
      ['serviceaccounts', object({ user: 'bob', owner: 'dss-spark-bob-job1', name: 'sa-d' })],
    ]);
    expect([...jobs.keys()].sort()).toEqual([
      'dss-ns-alice/job1/dss-spark-alice-job1',
      'dss-ns-alice/job1/dss-spark-bob-job1',
      'dss-ns-alice/job2/dss-spark-alice-job2',
      'dss-ns-bob/job1/dss-spark-alice-job1',
    ]);
    expect(jobs.get('dss-ns-alice/job1/dss-spark-alice-job1')!.objects).toEqual({ serviceaccounts: ['sa-a', 'sa-a-exec'], rolebindings: ['sa-a'], pods: ['exec-1'] });
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
    ['pods only, with a forged past expires-at', 'pending', 'no lease and no expiry; orphaned 60m after creation', [['pods', object({ created: ago(60), annotations: { [Annotation.expiresAt]: iso(9999) } })]]],
  ] as [string, string, string, [CleanupKind, ListedObject][]][])('%s → %s', (_title, state, reason, objects) => {
    expect(decideState(onlyJob(objects), now)).toEqual({ state, reason });
  });

  it('uses the grace period given (--older-than) for jobs without Lease or expiry', () => {
    const job = onlyJob([sa({}, ago(600))]);
    expect(decideState(job, now, 300).state).toBe('orphaned');
    expect(decideState(job, now, 900).state).toBe('pending');
  });

  it('takes a job without Lease whose process on this host is gone for orphaned at once (it died provisioning)', () => {
    const started = { ...jobAnnotations(2, 3598), [Annotation.host]: 'dss-host', [Annotation.pid]: '4242', [Annotation.processStart]: '2025-03-01T11:59:00.000Z' };
    const job = onlyJob([sa(started), ['pods', object({ annotations: { [Annotation.host]: 'dss-host', [Annotation.pid]: '1' } })]]);
    expect(job.process).toEqual({ host: 'dss-host', pid: 4242, processStart: '2025-03-01T11:59:00.000Z' });
    const seen: unknown[] = [];
    const dead = { host: 'dss-host', isAlive: (p: unknown) => (seen.push(p), false) };
    expect(decideState(job, now, 3600, dead)).toEqual({ state: 'orphaned', reason: 'no lease, and its process 4242 on this host is gone' });
    expect(seen).toEqual([job.process]);
    expect(decideState(job, now, 3600, { host: 'dss-host', isAlive: () => true }).state).toBe('pending');
    // Another host's process cannot be checked from here; a Lease, when there is one, decides alone.
    expect(decideState(job, now, 3600, { host: 'other-host', isAlive: () => false }).state).toBe('pending');
    expect(decideState(onlyJob([sa(started), ['leases', lease(5)]]), now, 3600, dead).state).toBe('live');
    // A pod's annotations (written with the job's token) never name the process.
    expect(onlyJob([['pods', object({ annotations: { [Annotation.host]: 'dss-host', [Annotation.pid]: '1', [Annotation.processStart]: 'x' } })]]).process).toBeUndefined();
  });

  it('takes a stale temp directory without objects for orphaned', () => {
    const jobs = new Map<string, Job>();
    addStaleDirs(jobs, [staleDir('job9', 'dss-ns-alice')], []);
    expect(decideState(jobs.get('dss-ns-alice/job9/')!, now)).toEqual({ state: 'orphaned', reason: 'no objects left; temp dir of dead process 4242' });
  });
});

function staleDir(jobId: string, namespace: string) {
  return { path: `/tmp/dss-spark-k8s-${jobId}-abc123`, owner: { jobId, namespace, host: 'h', pid: 4242, processStart: 'x' }, createdAt: ago(60) };
}

describe('addStaleDirs', () => {
  it('attaches a directory to its job, or makes it a job of its own, within the namespaces asked for', () => {
    const jobs = group([['serviceaccounts', object()]]);
    addStaleDirs(jobs, [staleDir('job1', 'dss-ns-alice'), staleDir('job7', 'dss-ns-bob'), staleDir('job8', 'dss-ns-carol')], ['dss-ns-alice', 'dss-ns-bob']);
    expect(jobs.get('dss-ns-alice/job1/dss-spark-alice-job1')!.tempDir?.path).toBe('/tmp/dss-spark-k8s-job1-abc123');
    expect(jobs.get('dss-ns-bob/job7/')).toMatchObject({ objects: {}, createdAt: ago(60) });
    expect(jobs.size).toBe(2);
  });

  it('leaves out a directory whose job id two jobs of the namespace share', () => {
    const jobs = group([
      ['serviceaccounts', object()],
      ['serviceaccounts', object({ user: 'bob', owner: 'dss-spark-bob-job1' })],
    ]);
    const warnings: string[] = [];
    addStaleDirs(jobs, [staleDir('job1', 'dss-ns-alice')], [], (w) => warnings.push(w));
    expect([...jobs.values()].map((j) => j.tempDir)).toEqual([undefined, undefined]);
    expect(jobs.size).toBe(2);
    expect(warnings).toEqual(['leaving /tmp/dss-spark-k8s-job1-abc123 alone: 2 jobs in dss-ns-alice have the job id job1']);
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

describe('deletionPhases', () => {
  /** A request as a line: "kind job1,job2". */
  const show = (phases: DeleteRequest[][]) => phases.map((phase) => phase.map((r) => `${r.kind} ${r.jobs.map((j) => j.jobId).join(',')}`));

  it('deletes what drivers made, the anchors and the bindings together, then the accounts, and the Leases last', () => {
    const jobs = group([
      ['leases', lease(600)],
      ['serviceaccounts', object({ name: 'sa' })],
      ['serviceaccounts', object({ name: 'sa-exec' })],
      ['rolebindings', object({ name: 'sa' })],
      ['persistentvolumeclaims', object({ name: 'pvc-1' })],
      ['configmaps', object({ name: 'cm-1' })],
      ['configmaps', object({ name: 'cm-2' })],
      ['services', object({ name: 'svc' })],
      ['pods', object({ name: 'exec-1' })],
      ['pods', object({ name: 'exec-2' })],
      ['serviceaccounts', object({ jobId: 'job2', name: 'sa2' })],
      ['configmaps', object({ jobId: 'job2', name: 'cm-3' })],
    ]);
    expect(show(deletionPhases([...jobs.values()]))).toEqual([
      ['pods job1', 'services job1', 'configmaps job1,job2', 'persistentvolumeclaims job1', 'secrets job1,job2', 'rolebindings job1'],
      ['serviceaccounts job1,job2'],
      ['leases job1'],
    ]);
  });

  it('sends no request for a kind no job has, and none at all for a temp directory alone', () => {
    expect(show(deletionPhases([onlyJob([['serviceaccounts', object({ name: 'sa' })]])]))).toEqual([['secrets job1'], ['serviceaccounts job1']]);
    expect(deletionPhases([{ jobId: 'j', namespace: 'n', objects: {} }])).toEqual([]);
  });

  it('selects exactly the jobs by job id and owner, with the managed-by label', () => {
    const jobs = [...group([['serviceaccounts', object()], ['serviceaccounts', object({ jobId: 'job2' })]]).values()];
    expect(jobsSelector(jobs)).toBe(`${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE},${JOB_LABEL} in (job1,job2),${OWNER_LABEL} in (dss-spark-alice-job1,dss-spark-alice-job2)`);
    expect(jobsSelector([{ jobId: 'j', namespace: 'n', objects: {} }])).toBe(`${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE},${JOB_LABEL} in (j)`);
  });

  it('batches jobs by namespace, at most `size` per batch', () => {
    const item = (namespace: string, jobId: string) => ({ job: { jobId, namespace, objects: {} } });
    const items = [item('a', '1'), item('b', '2'), item('a', '3'), item('a', '4'), item('b', '5')];
    expect(batches(items, 2).map((batch) => batch.map((i) => `${i.job.namespace}/${i.job.jobId}`))).toEqual([['a/1', 'a/3'], ['a/4'], ['b/2', 'b/5']]);
  });
});

describe('deleteBatch', () => {
  const selectorOf = (ids: string[]) => `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE},${JOB_LABEL} in (${ids.join(',')}),${OWNER_LABEL} in (${ids.map((id) => `dss-spark-alice-${id}`).join(',')})`;

  /** Records every request; `leases` is what a re-read of the Leases returns; requests in `failOn` get 403. */
  function fakeKube(options: { failOn?: string[]; leases?: ListedObject[] } = {}) {
    const calls: string[] = [];
    const answer = (call: string) => {
      calls.push(call);
      return options.failOn?.includes(call) ? Promise.reject(new KubernetesError(`${call} failed (403 Forbidden): denied`, 403)) : Promise.resolve();
    };
    const kube = {
      list: async (kind: string, namespace: string, selector: string) => {
        calls.push(`list ${kind} ${namespace} ${selector}`);
        return { items: options.leases ?? [] };
      },
      deleteCollection: (kind: string, namespace: string, selector: string) => answer(`collection ${kind} ${namespace} ${selector}`),
      deleteNamespaced: (kind: string, namespace: string, name: string) => answer(`${kind} ${namespace}/${name}`),
    } as unknown as Kube;
    return { kube, calls };
  }
  const ctx = { limit: limiter(4), now: () => now, graceSeconds: 3600, isAlive: () => false };
  const reports = (): JobReport[] =>
    [
      ...group([
        ['pods', object({ name: 'exec-1' })],
        ['rolebindings', object({ name: 'rb' })],
        ['serviceaccounts', object({ name: 'sa' })],
        ['leases', lease(600, 120, { name: 'lease' })],
        ['serviceaccounts', object({ jobId: 'job2', name: 'sa2', annotations: jobAnnotations(7200, -60) })],
      ]).values(),
    ].map((job) => ({ job, decision: decideState(job, now) }));

  it('reads the Leases again, then deletes in order, by selectors with the managed-by label', async () => {
    const { kube, calls } = fakeKube({ leases: [lease(600, 120, { name: 'lease' })] });
    const batch = reports();
    await deleteBatch(kube, batch, ctx);
    expect(calls).toEqual([
      `list leases dss-ns-alice ${selectorOf(['job1', 'job2'])}`,
      `collection pods dss-ns-alice ${selectorOf(['job1'])}`,
      `collection secrets dss-ns-alice ${selectorOf(['job1', 'job2'])}`,
      `collection rolebindings dss-ns-alice ${selectorOf(['job1'])}`,
      `collection serviceaccounts dss-ns-alice ${selectorOf(['job1', 'job2'])}`,
      `collection leases dss-ns-alice ${selectorOf(['job1'])}`,
    ]);
    expect(batch.map((r) => [r.result, r.errors])).toEqual([
      ['deleted', undefined],
      ['deleted', undefined],
    ]);
  });

  it('skips a job whose Lease was renewed since the listing', async () => {
    const { kube, calls } = fakeKube({ leases: [lease(5, 120, { name: 'lease' })] });
    const batch = reports();
    await deleteBatch(kube, batch, ctx);
    expect(batch[0]).toMatchObject({ result: 'skipped', decision: { state: 'live', reason: 'lease renewed 5s ago' } });
    expect(batch[1]!.result).toBe('deleted');
    expect(calls.slice(1)).toEqual([`collection secrets dss-ns-alice ${selectorOf(['job2'])}`, `collection serviceaccounts dss-ns-alice ${selectorOf(['job2'])}`]);
  });

  it('touches nothing of a job whose Lease cannot be read again, and reports it as failed', async () => {
    const { kube, calls } = fakeKube();
    kube.list = () => Promise.reject(new KubernetesError('list leases failed (503 ServiceUnavailable): down', 503));
    const batch = reports();
    await deleteBatch(kube, batch, { ...ctx, limit: (call) => call() });
    expect(calls).toEqual([]);
    expect(batch.map((r) => [r.result, r.errors])).toEqual([
      ['failed', ['list leases failed (503 ServiceUnavailable): down']],
      ['failed', ['list leases failed (503 ServiceUnavailable): down']],
    ]);
  }, 10_000);

  it('still deletes the ServiceAccount after a failure, keeps the Lease and records every failure', async () => {
    const pods = `collection pods dss-ns-alice ${selectorOf(['job1'])}`;
    const bindings = `collection rolebindings dss-ns-alice ${selectorOf(['job1'])}`;
    const { kube, calls } = fakeKube({ failOn: [pods, bindings], leases: [lease(600, 120, { name: 'lease' })] });
    const batch = reports();
    await deleteBatch(kube, batch, ctx);
    expect(batch[0]!.result).toBe('failed');
    expect(batch[0]!.errors).toEqual([`${pods} failed (403 Forbidden): denied`, `${bindings} failed (403 Forbidden): denied`]);
    expect(calls).toContain(`collection serviceaccounts dss-ns-alice ${selectorOf(['job1', 'job2'])}`);
    expect(calls.filter((call) => call.includes('leases') && !call.startsWith('list'))).toEqual([]);
    expect(batch[1]!.result).toBe('deleted');
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

  it('deleteBatch removes the directory only while its owner is still dead', async () => {
    dir = mkdtempSync(join(tmpdir(), 'orphans-unit-'));
    const path = jobDir('dss-spark-k8s-j1-AbC123', {});
    const [found] = await findStaleDirs(dir, () => false);
    const job: Job = { jobId: 'j1', namespace: 'dss-ns-a', objects: {}, tempDir: found! };
    const kube = {} as Kube;
    const report = (): JobReport => ({ job, decision: decideState(job, now) });
    const ctx = (isAlive: boolean) => ({ limit: limiter(1), now: () => now, graceSeconds: 3600, isAlive: () => isAlive });
    await deleteBatch(kube, [report()], ctx(true));
    expect(await findStaleDirs(dir, () => false)).toHaveLength(1);
    const removed = report();
    await deleteBatch(kube, [removed], ctx(false));
    expect(removed.result).toBe('deleted');
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

describe('limiter', () => {
  it('keeps at most `max` calls in flight', async () => {
    const limit = limiter(3);
    let inFlight = 0;
    let most = 0;
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        limit(async () => {
          most = Math.max(most, ++inFlight);
          await new Promise((r) => setTimeout(r, 1));
          inFlight--;
          if (i === 5) throw new Error('five');
          return i;
        }).catch((e: Error) => e.message),
      ),
    );
    expect(most).toBe(3);
    expect(results[5]).toBe('five');
    expect(results[19]).toBe(19);
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
