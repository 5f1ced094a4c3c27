// `namespaces prune` as the restricted dssuser on the real cluster: idle per-user namespaces are listed, and deleted
// with --yes; one with a job, with a claim (unless --include-volumes), a team namespace, one the tool made without a
// user and a recent one are kept; a job that starts between prune's read and its delete keeps its namespace (the
// delete's resourceVersion precondition answers 409); `run` records last-used and fails in one line on a namespace
// being deleted. Then dssuser's raw API: the policy refuses every namespace change and delete outside that lane,
// and the same requests by an identity with the same RBAC rights and no policy get through.
//
// The command runs in-process with dssuser's client and a clock two days ahead (a namespace made now cannot be
// idle for the minimum of an hour otherwise); the CLI binary runs the flag checks and one listing with the real clock.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { namespacesPruneCommand, type PruneClient } from '../../src/commands/namespaces-prune.ts';
import type { Kube } from '../../src/k8s/client.ts';
import { lastUsedAnnotations } from '../../src/namespaces/prune.ts';
import { buildNamespace } from '../../src/plan/objects.ts';
import { Annotation } from '../../src/plan/types.ts';
import { jobObjects, runCli, uniqueJobId, writeConfig } from '../support/cli.ts';
import { dssuserKube } from '../support/kube.ts';
import { profileWith } from '../support/profile.ts';
import { adminApi, dssuserApi, provisionJob, REFUSED_BY, tokenApi, type Api, type Outcome } from '../support/redteam.ts';

const unix = inject('unix');
const [alice, bob] = unix.endUsers as [(typeof unix.endUsers)[0], (typeof unix.endUsers)[0]];
const suffix = uniqueJobId('pr').slice(-6);
const template = `dss-pr${suffix}-\${dssUserLogin}`;
const ns = (slug: string) => `dss-pr${suffix}-${slug}`;
/** A second template for the `run` cases: their namespaces are no candidates of the prune runs above. */
const runTemplate = `dss-pu${suffix}-\${dssUserLogin}`;
const runNamespace = (login: string) => `dss-pu${suffix}-${login}`;
const profile = profileWith({ targetNamespace: template, autoCreateNamespace: true });
const admin = adminApi();
const DAY = 86400_000;
/** The prune runs' clock: two days from now. */
const later = new Date(Date.now() + 2 * DAY);
const HOLD = 'dss-spark-k8s.test/hold';
const unguarded = `pr-unguarded-${suffix}`;

let config: string;
let runConfig: string;
let dssuser: Kube;
let jobNamespace: string;
let unguardedApi: Api;
const made: string[] = [];

function expectStatus(outcome: Outcome, status: number) {
  expect(outcome.status, outcome.message).toBe(status);
}

/** A per-user namespace as `run` creates it (labels managed-by, managed, user), made by dssuser. */
async function perUserNamespace(name: string, slug: string | undefined, annotations: Record<string, string> = {}) {
  const body = buildNamespace(name, profile, slug);
  body.metadata!.annotations = { ...body.metadata!.annotations, ...annotations };
  made.push(name);
  expectStatus(await dssuserApi().create('namespaces', undefined, body, { dryRun: false }), 201);
}

async function namespaceState(name: string): Promise<string> {
  const read = await admin.get('namespaces', undefined, name);
  if (read.status === 404) return 'gone';
  return (read.body as { status?: { phase?: string } }).status?.phase ?? `HTTP ${read.status}`;
}

async function prune(args: { idle?: string; yes?: boolean; includeVolumes?: boolean }, kube: PruneClient = dssuser) {
  let stdout = '';
  let stderr = '';
  const exitCode = await namespacesPruneCommand(
    { idle: '1d', output: 'json', config, ...args },
    { kube, now: () => later, stdout: { write: (text: string) => (stdout += text) }, stderr: { write: (text: string) => (stderr += text) } },
  );
  const rows = JSON.parse(stdout) as { namespace: string; state: string; detail?: string }[];
  return { exitCode, stderr, rows, states: Object.fromEntries(rows.map((row) => [row.namespace, row.state])) };
}

beforeAll(async () => {
  config = writeConfig({ targetNamespace: template, networkPolicy: { enabled: false } }).path;
  runConfig = writeConfig({ targetNamespace: runTemplate, networkPolicy: { enabled: false } }).path;
  dssuser = dssuserKube();
  const team = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns('team'), labels: { 'dss-spark-k8s.dataiku.io/managed': 'true' } } };
  const adminMade = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns('admin') } };
  made.push(ns('team'), ns('admin'), unguarded);
  const [job] = await Promise.all([
    provisionJob(profile, 'job'),
    perUserNamespace(ns('idle'), 'idle'),
    perUserNamespace(ns('pvc'), 'pvc'),
    perUserNamespace(ns('race'), 'race'),
    perUserNamespace(ns('nouser'), undefined),
    perUserNamespace(ns('recent'), 'recent', lastUsedAnnotations(new Date(later.getTime() - 60_000))),
    perUserNamespace(runNamespace(alice.name), alice.name),
    perUserNamespace(runNamespace(bob.name), bob.name),
    admin.create('namespaces', undefined, team, { dryRun: false }).then((o) => expectStatus(o, 201)),
    admin.create('namespaces', undefined, adminMade, { dryRun: false }).then((o) => expectStatus(o, 201)),
    admin.create('namespaces', undefined, { metadata: { name: unguarded } }, { dryRun: false }).then((o) => expectStatus(o, 201)),
  ]);
  jobNamespace = job!.namespace;
  made.push(jobNamespace);
  const claim = { metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } };
  expectStatus(await admin.create('persistentvolumeclaims', ns('pvc'), claim, { dryRun: false }), 201);
  unguardedApi = await unguardedIdentity();
});

afterAll(async () => {
  await dssuser?.close();
  await admin.patch('namespaces', undefined, runNamespace(bob.name), { metadata: { finalizers: null } }, { dryRun: false });
  await admin.send('DELETE', `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${unguarded}`);
  await admin.send('DELETE', `/apis/rbac.authorization.k8s.io/v1/clusterroles/${unguarded}`);
  await Promise.all(made.map((name) => admin.delete('namespaces', undefined, name, { dryRun: false })));
});

/** A ServiceAccount holding the manifest's namespaces rule and matched by no dssuser policy: RBAC alone. */
async function unguardedIdentity(): Promise<Api> {
  const rule = { apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'list', 'create', 'patch', 'delete'] };
  const role = { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: unguarded }, rules: [rule] };
  const binding = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: unguarded },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: unguarded },
    subjects: [{ kind: 'ServiceAccount', name: 'unguarded', namespace: unguarded }],
  };
  for (const [path, body] of [
    ['/apis/rbac.authorization.k8s.io/v1/clusterroles', role],
    ['/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', binding],
    [`/api/v1/namespaces/${unguarded}/serviceaccounts`, { metadata: { name: 'unguarded' } }],
  ] as const)
    expectStatus(await admin.send('POST', path, body), 201);
  const token = await admin.post('serviceaccounts', unguarded, 'unguarded', 'token', { spec: { expirationSeconds: 3600 } });
  expectStatus(token, 201);
  return tokenApi((token.body.status as { token: string }).token);
}

describe('namespaces prune', () => {
  it('lists the idle per-user namespaces and what keeps the others, and deletes nothing without --yes', async () => {
    const result = await prune({});
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.states).toEqual({
      [ns('idle')]: 'would delete',
      [ns('race')]: 'would delete',
      [ns('pvc')]: 'has volumes',
      [jobNamespace]: 'has a job',
    });
    expect(result.rows.find((row) => row.namespace === jobNamespace)?.detail).toMatch(/^Lease dss-spark-[a-z0-9-]+, ServiceAccount dss-spark-[a-z0-9-]+/);
    for (const name of [ns('idle'), ns('race'), ns('pvc'), jobNamespace]) expect(await namespaceState(name), name).toBe('Active');
  });

  it('with --yes deletes the idle one and keeps one a job started in between its read and its delete (409: in use again)', async () => {
    // A job starts in the race namespace just before prune's delete, as `run` does: its last-used patch.
    const racing = {
      listNamespaces: dssuser.listNamespaces.bind(dssuser),
      list: dssuser.list.bind(dssuser),
      deleteNamespace: async (name: string, preconditions: { uid: string; resourceVersion: string }) => {
        if (name === ns('race')) await dssuser.annotateNamespace(name, lastUsedAnnotations(later));
        return dssuser.deleteNamespace(name, preconditions);
      },
    };
    const result = await prune({ yes: true }, racing);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.states).toEqual({ [ns('idle')]: 'deleted', [ns('race')]: 'in use again', [ns('pvc')]: 'has volumes', [jobNamespace]: 'has a job' });
    expect(result.stderr).toMatch(new RegExp(`^dss-spark-k8s: deleting namespace ${ns('idle')} \\(idle for \\d+d\\d+h\\)\n$`));
    expect(['Terminating', 'gone']).toContain(await namespaceState(ns('idle')));
    for (const name of [ns('race'), ns('pvc'), jobNamespace, ns('team'), ns('nouser'), ns('recent'), ns('admin')]) {
      expect(await namespaceState(name), name).toBe('Active');
    }
  });

  it('deletes a namespace holding claims only with --include-volumes', async () => {
    const result = await prune({ yes: true, includeVolumes: true });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.states).toEqual({ [ns('pvc')]: 'deleted', [jobNamespace]: 'has a job' });
    expect(['Terminating', 'gone']).toContain(await namespaceState(ns('pvc')));
    expect(await namespaceState(jobNamespace)).toBe('Active');
  });

  it('as the CLI binary: lists nothing with the real clock (all were used just now), exit 0', async () => {
    const result = await runCli(['namespaces', 'prune', '--idle', '1h', '--config', config, '--yes', '-o', 'json']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual([]);
  });

  it.each([
    [['--idle', '30m'], /^dss-spark-k8s: --idle "30m": at least 1h \(/],
    [['--idle', 'soon'], /^dss-spark-k8s: --idle "soon": expected a duration such as 90s, 30m, 12h, 7d or 2w$/],
    [[], /^dss-spark-k8s: required option '--idle <duration>' not specified; see dss-spark-k8s --help$/],
  ])('refuses %j in one line (exit 64)', async (args, message) => {
    const result = await runCli(['namespaces', 'prune', '--config', config, ...args]);
    expect(result.exitCode).toBe(64);
    expect(result.stderr.trim()).toMatch(message);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('refuses a team profile in one line (exit 64)', async () => {
    const team = writeConfig({ targetNamespace: '${adminProperty:k8sNS}', autoCreateNamespace: false }).path;
    const result = await runCli(['namespaces', 'prune', '--idle', '7d', '--config', team]);
    expect(result.exitCode).toBe(64);
    expect(result.stderr.trim()).toBe(
      'dss-spark-k8s: profile "default" uses team namespaces (${adminProperty:k8sNS}): namespaces prune deletes only per-user namespaces; name a per-user profile with --profile',
    );
  });
});

describe('run and the last-used record', () => {
  const lastUsed = async (name: string) =>
    ((await admin.get('namespaces', undefined, name)).body as { metadata: { annotations?: Record<string, string> } }).metadata.annotations?.[
      Annotation.lastUsed
    ];

  it("records each job's start on its per-user namespace (not a server-side dry run)", async () => {
    const run = (extra: string[]) =>
      runCli(['run', '--user', alice.name, '--config', runConfig, '--job-id', uniqueJobId('pr'), ...extra, '--', 'app', 'probe']);
    const dry = await run(['--dry-run=server']);
    expect(dry.exitCode, dry.stderr).toBe(0);
    expect(await lastUsed(runNamespace(alice.name))).toBeUndefined();
    const before = Math.floor(Date.now() / 1000) * 1000;
    const job = await run([]);
    expect(job.exitCode, job.stderr).toBe(0);
    expect(job.stderr).not.toMatch(/could not record/);
    const written = await lastUsed(runNamespace(alice.name));
    expect(written).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    expect(new Date(written!).getTime()).toBeGreaterThanOrEqual(before);
    expect(new Date(written!).getTime()).toBeLessThanOrEqual(Date.now());
  });

  it('fails in one line (exit 69), leaving nothing, when the namespace is being deleted', async () => {
    const name = runNamespace(bob.name);
    // Held in Terminating by a finalizer of the test's (removed in afterAll).
    expectStatus(await admin.patch('namespaces', undefined, name, { metadata: { finalizers: [HOLD] } }, { dryRun: false }), 200);
    expectStatus(await admin.delete('namespaces', undefined, name, { dryRun: false }), 200);
    const jobId = uniqueJobId('pr');
    const result = await runCli(['run', '--user', bob.name, '--config', runConfig, '--job-id', jobId, '--', 'app', 'probe']);
    expect(result.exitCode).toBe(69);
    expect(result.stderr.trim()).toBe(`dss-spark-k8s: namespace ${name} is being deleted (namespaces prune); run the job again in a minute`);
    expect(await jobObjects(jobId)).toEqual([]);
  });
});

const LAST_USED = { [Annotation.lastUsed]: '2026-12-03T13:50:00Z' };
const annotated = (extra: Record<string, unknown>) => ({ metadata: { annotations: { ...LAST_USED, ...extra } } });

interface NamespaceAttack {
  name: string;
  attempt(api: Api): Promise<Outcome>;
}

/** Each refused by dssuser's policy (dry runs); an identity with the same rights and no policy gets them through. */
const ATTACKS: NamespaceAttack[] = [
  { name: 'delete of a team namespace (managed, made by an administrator)', attempt: (api) => api.delete('namespaces', undefined, ns('team')) },
  { name: 'delete of a namespace the tool made without a user (not per-user)', attempt: (api) => api.delete('namespaces', undefined, ns('nouser')) },
  { name: "delete of an administrator's dss- namespace without labels", attempt: (api) => api.delete('namespaces', undefined, ns('admin')) },
  { name: 'delete of an unmanaged system namespace (kube-node-lease)', attempt: (api) => api.delete('namespaces', undefined, 'kube-node-lease') },
  {
    name: 'patch of a label of a per-user namespace (enforce privileged)',
    attempt: (api) =>
      api.patch('namespaces', undefined, ns('recent'), {
        metadata: { labels: { 'pod-security.kubernetes.io/enforce': 'privileged' }, ...annotated({}).metadata },
      }),
  },
  {
    name: "patch of another annotation of a per-user namespace (an administrator's allowed-persistent-volumes)",
    attempt: (api) => api.patch('namespaces', undefined, ns('recent'), annotated({ 'dss-spark-k8s.dataiku.io/allowed-persistent-volumes': 'other-teams-pv' })),
  },
  {
    name: 'patch of last-used with a value that is not an RFC 3339 UTC time to the second',
    attempt: (api) =>
      api.patch('namespaces', undefined, ns('recent'), { metadata: { annotations: { [Annotation.lastUsed]: '2026-12-03T13:50:00.123+01:00' } } }),
  },
  {
    name: 'patch removing last-used',
    attempt: (api) => api.patch('namespaces', undefined, ns('recent'), { metadata: { annotations: { [Annotation.lastUsed]: null } } }),
  },
  {
    name: 'patch adding a finalizer to a per-user namespace (it would never finish deleting)',
    attempt: (api) => api.patch('namespaces', undefined, ns('recent'), { metadata: { finalizers: ['example.com/block'], ...annotated({}).metadata } }),
  },
  {
    name: 'patch adding an owner to a per-user namespace (the garbage collector would delete it)',
    attempt: (api) =>
      api.patch('namespaces', undefined, ns('recent'), {
        metadata: {
          ownerReferences: [{ apiVersion: 'v1', kind: 'Namespace', name: 'gone', uid: '00000000-0000-0000-0000-000000000001' }],
          ...annotated({}).metadata,
        },
      }),
  },
  { name: 'patch of last-used on a team namespace', attempt: (api) => api.patch('namespaces', undefined, ns('team'), annotated({})) },
];

describe("dssuser's raw API on namespaces", () => {
  describe('is refused by dss-spark-k8s-dssuser-scope', () => {
    for (const attack of ATTACKS) {
      it(attack.name, async () => {
        const outcome = await attack.attempt(dssuserApi());
        expect(outcome.status, outcome.message).toBe(403);
        expect(outcome.message).toMatch(REFUSED_BY.dssuserPolicy);
      });
    }
  });

  it('is refused deleting default and kube-system (the apiserver keeps them before any policy)', async () => {
    for (const name of ['default', 'kube-system']) expectStatus(await dssuserApi().delete('namespaces', undefined, name), 403);
  });

  it("cannot change a namespace's spec.finalizers: the apiserver keeps them on update, and namespaces/finalize is not granted", async () => {
    const patched = await dssuserApi().patch('namespaces', undefined, ns('recent'), { spec: { finalizers: [] }, ...annotated({}) });
    expectStatus(patched, 200);
    expect((patched.body as { spec: { finalizers: string[] } }).spec.finalizers).toEqual(['kubernetes']);
    const subresource = await dssuserApi().send('PUT', `/api/v1/namespaces/${ns('recent')}/finalize?dryRun=All`, {
      metadata: { name: ns('recent') },
      spec: { finalizers: [] },
    });
    expect(subresource.status).toBe(403);
    expect(subresource.message).toMatch(REFUSED_BY.rbac);
  });

  it("is allowed the tool's own last-used patch and the delete of a per-user namespace it made (dry runs)", async () => {
    expectStatus(await dssuserApi().patch('namespaces', undefined, ns('recent'), annotated({})), 200);
    expectStatus(await dssuserApi().delete('namespaces', undefined, ns('recent')), 200);
    expect(await namespaceState(ns('recent'))).toBe('Active');
  });

  describe('by an identity with the same namespaces rights and no dssuser policy, is admitted (the policy is the defence)', () => {
    for (const attack of ATTACKS) {
      it(attack.name, async () => {
        const outcome = await attack.attempt(unguardedApi);
        expect(outcome.status, outcome.message).toBe(200);
      });
    }
  });
});
