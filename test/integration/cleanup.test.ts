// `cleanup --orphans` on the real control plane, as the restricted dssuser identity. Jobs are built with the
// same pure planner `run` uses and created straight through the API (admin only makes namespaces and the
// objects dssuser may not write: what a driver creates, and look-alikes): a job whose Lease has expired, a
// live job, jobs without a Lease (expired and not), unlabelled look-alikes, stale and live temp directories.
// The forged-label attacks of issue 13 are in cleanup-forgery.test.ts.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuthenticationV1Api, CoordinationV1Api, CoreV1Api, RbacAuthorizationV1Api, type V1ObjectMeta } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { cleanupCommand, type CleanupOptions } from '../../src/commands/cleanup.ts';
import { CliError } from '../../src/errors.ts';
import type { Profile } from '../../src/config/types.ts';
import { profileWith } from '../support/profile.ts';
import { thisProcess } from '../../src/exec/process-identity.ts';
import type { Kube } from '../../src/k8s/client.ts';
import { boundTokenRequest } from '../../src/plan/objects.ts';
import { planJob } from '../../src/plan/plan.ts';
import { JOB_LABEL, MANAGED_BY_LABEL, OWNER_LABEL, type JobPlan } from '../../src/plan/types.ts';
import { runCli } from '../support/cli.ts';
import {
  adminCore,
  adminKube,
  adminKubeConfig,
  createManagedNamespace,
  dssuserKube,
  statusEventually,
  statusOf,
  tokenKubeConfig,
  uniqueName,
} from '../support/kube.ts';

const nsA = uniqueName('dss-cleanup-a');
const nsB = uniqueName('dss-cleanup-b');
/** Not labelled managed: the admission policy denies dssuser every write there. */
const nsLocked = uniqueName('dss-cleanup-locked');
const suffix = Math.random().toString(36).slice(2, 7);
const id = (name: string) => `${name}-${suffix}`;

const MINUTE = 60_000;
let work: string;
let configPath: string;
let tempDir: string;

function profile(namespace: string, overrides: Partial<Profile> = {}): Profile {
  return profileWith({ targetNamespace: namespace, sparkSubmit: '/bin/true', ...overrides });
}

/** A job's objects as `run` would plan them, as if it had started `startedAgoMs` ago on this host. */
function plan(jobId: string, login: string, namespace: string, startedAgoMs: number, overrides: Partial<Profile> = {}): JobPlan {
  return planJob(
    profile(namespace, overrides),
    // Run by this (live) process: only Leases and expiry decide these jobs' states.
    { jobId, login, uid: 1001, adminProperties: {}, ...thisProcess(), now: new Date(Date.now() - startedAgoMs) },
    { apiServer: 'https://127.0.0.1:6443', callerArgs: [] },
  );
}

interface Created {
  plan: JobPlan;
  pods: string[];
  claims: string[];
}

/** Creates the plan's objects as dssuser; the Lease only if `withLease`; plus executor-like pods and PVCs. */
async function createJob(kube: Kube, p: JobPlan, options: { withLease: boolean; pods?: number; claims?: number }): Promise<Created> {
  await kube.createServiceAccount(p.serviceAccount);
  await kube.createServiceAccount(p.executorServiceAccount);
  await kube.createRoleBinding(p.roleBinding);
  await kube.createSecret(p.tokenAnchor);
  if (options.withLease) await kube.createLease(p.lease);
  // What a driver would have created (dssuser may only list and delete those kinds).
  const core = adminCore();
  const labels = p.labels;
  const pods = Array.from({ length: options.pods ?? 0 }, (_, i) => `${p.baseName}-exec-${i + 1}`);
  const claims = Array.from({ length: options.claims ?? 0 }, (_, i) => `${p.baseName}-exec-${i + 1}-spark-local`);
  for (const name of pods) {
    await core.createNamespacedPod({
      namespace: p.namespace,
      body: {
        metadata: { name, labels },
        spec: {
          serviceAccountName: p.executorServiceAccount.metadata!.name!,
          automountServiceAccountToken: false,
          containers: [{ name: 'executor', image: 'spark:4.0.0' }],
        },
      },
    });
  }
  for (const name of claims) await core.createNamespacedPersistentVolumeClaim({ namespace: p.namespace, body: claim(name, labels) });
  return { plan: p, pods, claims };
}

function claim(name: string, labels: Record<string, string>) {
  return { metadata: { name, labels }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } };
}

interface JsonJob {
  jobId: string;
  namespace: string;
  user: string | null;
  state: string;
  reason: string;
  objects: { kind: string; name: string }[];
  tempDir: string | null;
  result?: string;
  errors?: string[];
}

/** A token bound to the job's first anchor Secret, as run requests it. */
async function jobToken(kube: Kube, p: JobPlan): Promise<string> {
  const anchor = await adminCore().readNamespacedSecret({ namespace: p.namespace, name: p.tokenAnchor.metadata!.name! });
  return (await kube.requestToken(p.namespace, p.baseName, boundTokenRequest(p.tokenRequest, { name: anchor.metadata!.name!, uid: anchor.metadata!.uid! })))
    .token;
}

/**
 * Runs the command in-process as dssuser (its kubeconfig), with the test's config file (its temp directory);
 * a CliError ends it as main.ts would: one stderr line and its exit code.
 */
async function cleanup(args: Partial<CleanupOptions>, deps: { pageSize?: number; kube?: Kube } = {}) {
  let stdout = '';
  let stderr = '';
  const options: CleanupOptions = {
    orphans: true,
    namespace: [nsA, nsB],
    output: 'json',
    config: configPath,
    kubeconfig: inject('cluster').dssuserKubeconfig,
    ...args,
  };
  let exitCode: number;
  try {
    exitCode = await cleanupCommand(options, {
      stdout: { write: (text: string) => (stdout += text) },
      stderr: { write: (text: string) => (stderr += text) },
      env: {},
      ...deps,
    });
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    stderr += `dss-spark-k8s: ${error.message}\n`;
    exitCode = error.exitCode;
  }
  return { exitCode, stdout, stderr, jobs: options.output === 'json' ? (JSON.parse(stdout) as JsonJob[]) : [] };
}

const byId = (jobs: JsonJob[], jobId: string) => jobs.find((j) => j.jobId === jobId);

/**
 * Every object of the test namespaces, as admin sees them: "<kind> <namespace>/<name>". An object being
 * deleted is gone: a PVC keeps its pvc-protection finalizer until kube-controller-manager, which this
 * cluster does not run, removes it.
 */
async function everything(namespaces: string[]): Promise<string[]> {
  const kc = adminKubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  const coordination = kc.makeApiClient(CoordinationV1Api);
  const names: string[] = [];
  const add = (kind: string, items: { metadata?: V1ObjectMeta }[]) => {
    for (const o of items) if (!o.metadata?.deletionTimestamp) names.push(`${kind} ${o.metadata!.namespace}/${o.metadata!.name}`);
  };
  for (const namespace of namespaces) {
    add('pods', (await core.listNamespacedPod({ namespace })).items);
    add('persistentvolumeclaims', (await core.listNamespacedPersistentVolumeClaim({ namespace })).items);
    add('serviceaccounts', (await core.listNamespacedServiceAccount({ namespace })).items);
    add('rolebindings', (await rbac.listNamespacedRoleBinding({ namespace })).items);
    add('leases', (await coordination.listNamespacedLease({ namespace })).items);
    add('secrets', (await core.listNamespacedSecret({ namespace })).items);
  }
  return names.sort();
}

function objectsOf(c: Created): string[] {
  const p = c.plan;
  const ns = p.namespace;
  return [
    `serviceaccounts ${ns}/${p.serviceAccount.metadata!.name}`,
    `serviceaccounts ${ns}/${p.executorServiceAccount.metadata!.name}`,
    `rolebindings ${ns}/${p.roleBinding.metadata!.name}`,
    `secrets ${ns}/${p.tokenAnchor.metadata!.name}`,
    ...c.pods.map((name) => `pods ${ns}/${name}`),
    ...c.claims.map((name) => `persistentvolumeclaims ${ns}/${name}`),
  ];
}

/** A job directory as `run` makes it: owner.json (with the job's account) and a kubeconfig, mode 0700. */
function jobDir(jobId: string, namespace: string, owner: { pid: number; processStart: string; serviceAccount: string }): string {
  const dir = join(tempDir, `dss-spark-k8s-${jobId}-${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(dir, { mode: 0o700 });
  writeFileSync(join(dir, 'owner.json'), JSON.stringify({ jobId, host: hostname(), namespace, ...owner }), { mode: 0o600 });
  writeFileSync(join(dir, 'kubeconfig'), 'apiVersion: v1\nkind: Config\n', { mode: 0o600 });
  return dir;
}

/** The pid of a process that has exited. */
function deadPid(): number {
  const pid = Number(execFileSync('sh', ['-c', 'sh -c "echo \\$\\$"'], { encoding: 'utf8' }).trim());
  expect(existsSync(`/proc/${pid}`)).toBe(false);
  return pid;
}

describe('cleanup --orphans', () => {
  let orphan: Created; // Lease expired 10 min ago (duration 4 s)
  let live: Created; // Lease renewed 2 min ago (duration 40 min)
  let expired: Created; // no Lease, expires-at passed 50 min ago
  let starting: Created; // no Lease, expires-at in an hour: a starting job
  let lookalikes: string[];
  let orphanToken: string;
  let liveToken: string;
  const orphanDirs: string[] = [];
  let liveDir: string;
  const loneJob = id('lone');

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'dss-cleanup-test-'));
    tempDir = join(work, 'tmp');
    mkdirSync(tempDir);
    configPath = join(work, 'config.yaml');
    writeFileSync(configPath, JSON.stringify({ profiles: { default: { sparkSubmit: '/bin/true', tempDir } } }));

    await Promise.all([createManagedNamespace(nsA), createManagedNamespace(nsB)]);
    const kube = dssuserKube();
    orphan = await createJob(kube, plan(id('orphan'), 'alice', nsA, 10 * MINUTE, { leaseRenewSeconds: 1 }), { withLease: true, pods: 2, claims: 5 });
    live = await createJob(kube, plan(id('live'), 'alice', nsA, 2 * MINUTE, { leaseRenewSeconds: 600 }), { withLease: true, pods: 1, claims: 1 });
    expired = await createJob(kube, plan(id('expired'), 'alice', nsB, 2 * 60 * MINUTE, { tokenTtlSeconds: 4200 }), { withLease: false, claims: 1 });
    starting = await createJob(kube, plan(id('starting'), 'bob', nsB, 0), { withLease: false });

    // Look-alikes: the orphan's names and even its job and owner labels, but not the managed-by label (made by
    // the admin: dssuser may create none of them).
    const core = adminCore();
    const base = orphan.plan.baseName;
    const unmanaged = { [JOB_LABEL]: orphan.plan.jobId, [OWNER_LABEL]: base };
    const otherTool = { [MANAGED_BY_LABEL]: 'someone-else', [JOB_LABEL]: orphan.plan.jobId, [OWNER_LABEL]: base };
    await core.createNamespacedPersistentVolumeClaim({ namespace: nsA, body: claim(`${base}-exec-lookalike`, unmanaged) });
    await core.createNamespacedPersistentVolumeClaim({ namespace: nsA, body: claim(`${base}-exec-other-tool`, otherTool) });
    await core.createNamespacedServiceAccount({ namespace: nsA, body: { metadata: { name: `${base}-x`, labels: unmanaged } } });
    const rbac = adminKubeConfig().makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRoleBinding({ namespace: nsA, body: { ...orphan.plan.roleBinding, metadata: { name: `${base}-x`, labels: otherTool } } });
    lookalikes = [
      `persistentvolumeclaims ${nsA}/${base}-exec-lookalike`,
      `persistentvolumeclaims ${nsA}/${base}-exec-other-tool`,
      `serviceaccounts ${nsA}/${base}-x`,
      `rolebindings ${nsA}/${base}-x`,
    ];

    orphanToken = await jobToken(kube, orphan.plan);
    liveToken = await jobToken(kube, live.plan);

    // The orphan's directory: its pid now belongs to another process (this one). A lone directory of a dead
    // process whose job left nothing in the cluster. The live job's directory: owned by this very process.
    orphanDirs.push(jobDir(orphan.plan.jobId, nsA, { pid: process.pid, processStart: '2001-01-01T00:00:00.000Z', serviceAccount: orphan.plan.baseName }));
    orphanDirs.push(
      jobDir(loneJob, nsB, { pid: deadPid(), processStart: '2001-01-01T00:00:00.000Z', serviceAccount: plan(loneJob, 'carol', nsB, 0).baseName }),
    );
    liveDir = jobDir(live.plan.jobId, nsA, { ...thisProcess(), serviceAccount: live.plan.baseName });
  });

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('lists orphaned, live and pending jobs, across several pages, and deletes nothing', async () => {
    const kube = dssuserKube();
    const continued: string[] = [];
    const list = kube.list.bind(kube);
    kube.list = (kind, namespace, selector, limit, continueToken) => {
      if (continueToken) continued.push(`${kind} ${namespace}`);
      return list(kind, namespace, selector, limit, continueToken);
    };
    const before = await everything([nsA, nsB]);
    const { exitCode, jobs, stderr } = await cleanup({}, { pageSize: 2, kube });
    expect(exitCode).toBe(0);
    // 6 claims and 4 service accounts of one namespace take several pages of 2.
    expect(continued).toEqual(expect.arrayContaining([`persistentvolumeclaims ${nsA}`, `serviceaccounts ${nsA}`]));

    expect(jobs.map((j) => [j.jobId, j.state]).sort()).toEqual(
      [
        [orphan.plan.jobId, 'orphaned'],
        [live.plan.jobId, 'live'],
        [expired.plan.jobId, 'orphaned'],
        [starting.plan.jobId, 'pending'],
        [loneJob, 'orphaned'],
      ].sort(),
    );
    const o = byId(jobs, orphan.plan.jobId)!;
    expect(o.reason).toMatch(/^lease expired (9|10)m ago$/);
    expect(o.user).toBe('alice');
    expect(o.tempDir).toBe(orphanDirs[0]);
    // Every labelled object of the job, the Lease included, and none of the look-alikes; not the anchor
    // Secret: dssuser may not list Secrets (it deletes them by label).
    const listable = objectsOf(orphan).filter((x) => !x.startsWith('secrets '));
    expect(o.objects.map((x) => `${x.kind} ${nsA}/${x.name}`).sort()).toEqual([...listable, `leases ${nsA}/${orphan.plan.baseName}`].sort());
    expect(byId(jobs, expired.plan.jobId)!.reason).toMatch(/^no lease, expired at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(byId(jobs, starting.plan.jobId)!.reason).toMatch(/^no lease yet, expires at /);
    expect(byId(jobs, loneJob)).toMatchObject({ namespace: nsB, objects: [], tempDir: orphanDirs[1], user: null });
    expect(byId(jobs, live.plan.jobId)!.tempDir).toBeNull();
    expect(stderr).toContain('run again with --yes to delete the 3 orphaned job(s)');

    expect(await everything([nsA, nsB])).toEqual(before);
    for (const dir of [...orphanDirs, liveDir]) expect(existsSync(dir)).toBe(true);
  });

  it('filters by --user and --older-than, and prints a table', async () => {
    const bob = await cleanup({ user: 'bob' });
    expect(bob.jobs.map((j) => j.jobId)).toEqual([starting.plan.jobId]);

    const old = await cleanup({ olderThan: '30m' });
    expect(old.jobs.map((j) => j.jobId)).toEqual([expired.plan.jobId]);

    const table = await cleanup({ output: 'table' });
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^JOB +USER +NAMESPACE +AGE +STATE +REASON +OBJECTS$/);
    expect(lines).toHaveLength(6);
    const row = lines.find((l) => l.startsWith(`${orphan.plan.jobId} `))!;
    expect(row.split(/ {2,}/)).toEqual([orphan.plan.jobId, 'alice', nsA, '10m', 'orphaned', expect.stringMatching(/^lease expired/), '11 +dir']);
  });

  it('lists across all namespaces when no -n is given', async () => {
    const { jobs } = await cleanup({ namespace: [] });
    expect(byId(jobs, orphan.plan.jobId)?.state).toBe('orphaned');
    expect(byId(jobs, live.plan.jobId)?.state).toBe('live');
    expect(byId(jobs, expired.plan.jobId)?.state).toBe('orphaned');
  });

  it('--yes deletes the orphaned jobs and their stale directories, and nothing else; their token dies', async () => {
    const asOrphan = tokenKubeConfig(orphanToken).makeApiClient(AuthenticationV1Api);
    const asLive = tokenKubeConfig(liveToken).makeApiClient(AuthenticationV1Api);
    expect(await statusOf(asOrphan.createSelfSubjectReview({ body: {} }))).toBe(200);
    const before = await everything([nsA, nsB]);

    const { exitCode, jobs, stderr } = await cleanup({ yes: true }, { pageSize: 2 });
    expect(exitCode, stderr).toBe(0);
    expect(Object.fromEntries(jobs.map((j) => [j.jobId, j.result ?? '-']))).toEqual({
      [orphan.plan.jobId]: 'deleted',
      [expired.plan.jobId]: 'deleted',
      [loneJob]: 'deleted',
      [live.plan.jobId]: '-',
      [starting.plan.jobId]: '-',
    });
    // orphan: 2 accounts, binding, Lease, 2 pods, 5 claims; expired: 2 accounts, binding, 1 claim.
    expect(stderr).toContain('deleted 3 orphaned job(s): 15 object(s), 2 temp dir(s)');

    const removed = [...objectsOf(orphan), `leases ${nsA}/${orphan.plan.baseName}`, ...objectsOf(expired)];
    expect(await everything([nsA, nsB])).toEqual(before.filter((o) => !removed.includes(o)));
    for (const o of [...objectsOf(live), ...objectsOf(starting), ...lookalikes]) expect(before).toContain(o);
    for (const dir of orphanDirs) expect(existsSync(dir)).toBe(false);
    expect(existsSync(liveDir)).toBe(true);

    // The apiserver caches a successful token authentication for up to 10 s.
    expect(await statusEventually(() => asOrphan.createSelfSubjectReview({ body: {} }), 401, 15_000)).toBe(401);
    expect(await statusOf(asLive.createSelfSubjectReview({ body: {} }))).toBe(200);

    const again = await cleanup({ yes: true });
    expect(again.exitCode).toBe(0);
    expect(again.jobs.map((j) => j.state).sort()).toEqual(['live', 'pending']);
  });
});

describe('cleanup --orphans --yes where dssuser may not delete', () => {
  let jobId: string;

  beforeAll(async () => {
    // Labelled objects in a namespace dssuser may list but not write in, made by an admin.
    await adminCore().createNamespace({ body: { metadata: { name: nsLocked } } });
    const p = plan(id('locked'), 'carol', nsLocked, 10 * MINUTE, { leaseRenewSeconds: 1 });
    jobId = p.jobId;
    const admin = adminKube();
    await admin.createServiceAccount(p.serviceAccount);
    await admin.createLease(p.lease);
    await admin.close();
  });

  it('exits 75 with one line per failure, keeps the Lease, and finds the job again', async () => {
    const unix = inject('unix');
    const args = ['cleanup', '--orphans', '-n', nsLocked, '--kubeconfig', unix.dssuserKubeconfig];
    const result = await runCli([...args, '--yes']);
    expect(result.exitCode).toBe(75);
    expect(result.stdout).toMatch(new RegExp(`^${jobId} +carol +${nsLocked} .* orphaned +lease expired .* failed$`, 'm'));
    expect(result.stderr).toContain(`dss-spark-k8s: job ${jobId} in ${nsLocked}: delete serviceaccounts with `);
    expect(result.stderr).toContain('(403 Forbidden)');
    expect(result.stderr.trimEnd().split('\n').at(-1)).toBe(
      'dss-spark-k8s: could not delete everything of 1 orphaned job(s) (reasons above); run cleanup --orphans --yes again or delete them by hand',
    );

    const listed = await runCli([...args, '-o', 'json']);
    expect(listed.exitCode).toBe(0);
    expect(JSON.parse(listed.stdout)).toMatchObject([
      { jobId, state: 'orphaned', objects: expect.arrayContaining([{ kind: 'leases', name: expect.any(String) }]) },
    ]);
  });
});
