// Red team of dssuser's namespaces `patch` and `delete` (namespaces prune, run's last-used record): the request
// forms and subresources the per-user-namespace lane might leak through, what a job token may do to its namespace,
// and a real job starting between prune's read and its delete. Each attack here is refused today; the controls
// show the lane itself still works. Server-side dry runs, except the deletes of namespaces this file made.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { namespacesPruneCommand, type PruneClient } from '../../src/commands/namespaces-prune.ts';
import type { Kube } from '../../src/k8s/client.ts';
import { buildNamespace } from '../../src/plan/objects.ts';
import { Annotation } from '../../src/plan/types.ts';
import { uniqueJobId, writeConfig } from '../support/cli.ts';
import { dssuserKube } from '../support/kube.ts';
import { profileWith } from '../support/profile.ts';
import { adminApi, dssuserApi, planFor, provisionJob, REFUSED_BY, type Api, type Job, type Outcome } from '../support/redteam.ts';

const suffix = uniqueJobId('rn').slice(-6);
const template = `dss-rn${suffix}-\${dssUserLogin}`;
const ns = (name: string) => `dss-rn${suffix}-${name}`;
const profile = profileWith({ targetNamespace: template, autoCreateNamespace: true, networkPolicy: { ...profileWith().networkPolicy, enabled: false } });
const admin = adminApi();
const HOLD = 'dss-spark-k8s.test/hold';
const LAST_USED = Annotation.lastUsed;
const lastUsed = (value = '2026-12-03T14:00:00Z') => ({ [LAST_USED]: value });
const own = ns('own');
const team = ns('team');
const held = ns('held');
const made: string[] = [own, team, held];

let dssuser: Api;
let job: Job;
let kube: Kube;

function expectStatus(outcome: Outcome, status: number) {
  expect(outcome.status, outcome.message).toBe(status);
}

function expectPolicy(outcome: Outcome) {
  expect(outcome.status, outcome.message).toBe(403);
  expect(outcome.message).toMatch(REFUSED_BY.dssuserPolicy);
}

function expectRbac(outcome: Outcome) {
  expect(outcome.status, outcome.message).toBe(403);
  expect(outcome.message).toMatch(REFUSED_BY.rbac);
}

const namespacePath = (name: string, query = 'dryRun=All') => `/api/v1/namespaces/${name}?${query}`;

beforeAll(async () => {
  dssuser = dssuserApi();
  kube = dssuserKube();
  const teamBody = { metadata: { name: team, labels: { 'dss-spark-k8s.dataiku.io/managed': 'true', 'pod-security.kubernetes.io/enforce': 'restricted' } } };
  const [, , , provisioned] = await Promise.all([
    dssuser.create('namespaces', undefined, buildNamespace(own, profile, 'own'), { dryRun: false }).then((o) => expectStatus(o, 201)),
    dssuser.create('namespaces', undefined, buildNamespace(held, profile, 'held'), { dryRun: false }).then((o) => expectStatus(o, 201)),
    admin.create('namespaces', undefined, teamBody, { dryRun: false }).then((o) => expectStatus(o, 201)),
    provisionJob(profile, 'rnjob'),
  ]);
  job = provisioned;
  made.push(job.namespace);
});

afterAll(async () => {
  await kube?.close();
  await admin.patch('namespaces', undefined, held, { metadata: { finalizers: null } }, { dryRun: false });
  await Promise.all(made.map((name) => admin.delete('namespaces', undefined, name, { dryRun: false })));
});

describe("dssuser's update of a per-user namespace it made: only last-used, whatever the request form", () => {
  it('control: a server-side apply of last-used alone, with the labels as they are, is admitted', async () => {
    const current = (await dssuser.get('namespaces', undefined, own)).body as { metadata: { labels: Record<string, string> } };
    const body = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: own, labels: current.metadata.labels, annotations: lastUsed() } };
    expectStatus(await dssuser.send('PATCH', namespacePath(own, 'dryRun=All&fieldManager=redteam&force=true'), body, 'application/apply-patch+yaml'), 200);
  });

  const escaped = (key: string) => key.replaceAll('~', '~0').replaceAll('/', '~1');
  const refused: [string, () => unknown, 'merge' | 'strategic' | 'json'][] = [
    [
      'a JSON patch adding pod-security enforce-version (an old, weaker level)',
      () => [
        { op: 'add', path: '/metadata/annotations', value: lastUsed() },
        { op: 'add', path: `/metadata/labels/${escaped('pod-security.kubernetes.io/enforce-version')}`, value: 'v1.0' },
      ],
      'json',
    ],
    [
      'a JSON patch replacing enforce restricted by privileged',
      () => [
        { op: 'add', path: '/metadata/annotations', value: lastUsed() },
        { op: 'replace', path: `/metadata/labels/${escaped('pod-security.kubernetes.io/enforce')}`, value: 'privileged' },
      ],
      'json',
    ],
    [
      'a JSON patch removing the enforce label (no Pod Security at all)',
      () => [
        { op: 'add', path: '/metadata/annotations', value: lastUsed() },
        { op: 'remove', path: `/metadata/labels/${escaped('pod-security.kubernetes.io/enforce')}` },
      ],
      'json',
    ],
    [
      'a strategic merge patch adding pod-security warn and audit privileged (labels it lacked)',
      () => ({
        metadata: { annotations: lastUsed(), labels: { 'pod-security.kubernetes.io/warn': 'privileged', 'pod-security.kubernetes.io/audit': 'privileged' } },
      }),
      'strategic',
    ],
    [
      'a merge patch changing the user label (to make it another user\u2019s)',
      () => ({ metadata: { annotations: lastUsed(), labels: { 'dss-spark-k8s.dataiku.io/user': 'bob' } } }),
      'merge',
    ],
    [
      'a merge patch removing the managed label (out of every job policy)',
      () => ({ metadata: { annotations: lastUsed(), labels: { 'dss-spark-k8s.dataiku.io/managed': null } } }),
      'merge',
    ],
    ['a merge patch changing generateName', () => ({ metadata: { annotations: lastUsed(), generateName: 'dss-other-' } }), 'merge'],
    [
      'a JSON patch adding a metadata finalizer',
      () => [
        { op: 'add', path: '/metadata/annotations', value: lastUsed() },
        { op: 'add', path: '/metadata/finalizers', value: ['example.com/keep'] },
      ],
      'json',
    ],
  ];
  for (const [what, body, type] of refused) {
    it(`refuses ${what}`, async () => {
      expectPolicy(await dssuser.patch('namespaces', undefined, own, body(), { type }));
    });
  }

  it('refuses a server-side apply forcing enforce privileged', async () => {
    const body = {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: own, annotations: lastUsed(), labels: { 'pod-security.kubernetes.io/enforce': 'privileged' } },
    };
    expectPolicy(await dssuser.send('PATCH', namespacePath(own, 'dryRun=All&fieldManager=redteam&force=true'), body, 'application/apply-patch+yaml'));
  });

  it('refuses a PUT of the namespace (no update right), the status subresource and the finalize subresource', async () => {
    const current = (await dssuser.get('namespaces', undefined, own)).body;
    expectRbac(await dssuser.replace('namespaces', undefined, own, current));
    expectRbac(await dssuser.patch('namespaces', undefined, own, { status: { phase: 'Terminating' } }, { subresource: 'status' }));
    expectRbac(await dssuser.send('PUT', `/api/v1/namespaces/${own}/status?dryRun=All`, current));
  });

  it('cannot set deletionTimestamp or deletionGracePeriodSeconds by a patch (immutable), nor the phase (status is ignored)', async () => {
    for (const meta of [{ deletionGracePeriodSeconds: 0 }, { deletionTimestamp: '2026-01-01T00:00:00Z' }]) {
      const answer = await dssuser.patch('namespaces', undefined, own, { metadata: { annotations: lastUsed(), ...meta } });
      expect(answer.status, answer.message).toBe(422);
      expect(answer.message).toMatch(/field is immutable/);
    }
    const phase = await dssuser.patch('namespaces', undefined, own, { metadata: { annotations: lastUsed() }, status: { phase: 'Terminating' } });
    expectStatus(phase, 200);
    expect((phase.body as { status: { phase: string } }).status.phase).toBe('Active');
  });
});

describe('a namespace dssuser creates cannot outlive its delete nor belong to something else', () => {
  it("refuses a create with a spec finalizer other than the apiserver's (the namespace would stay Terminating)", async () => {
    const body = buildNamespace(ns('spec-fin'), profile, 'specfin');
    expectPolicy(await dssuser.create('namespaces', undefined, { ...body, spec: { finalizers: ['example.com/x'] } }));
    // The apiserver's own finalizer is what every namespace has: admitted.
    expectStatus(await dssuser.create('namespaces', undefined, { ...body, spec: { finalizers: ['kubernetes'] } }), 201);
  });

  it('refuses a create with an owner reference', async () => {
    const body = buildNamespace(ns('owned'), profile, 'owned');
    body.metadata!.ownerReferences = [{ apiVersion: 'v1', kind: 'Namespace', name: team, uid: '00000000-0000-0000-0000-000000000000' }];
    expectPolicy(await dssuser.create('namespaces', undefined, body));
  });
});

describe("dssuser's deletes of namespaces", () => {
  it('refuses a deletecollection of namespaces (not granted: it would skip nothing but RBAC)', async () => {
    const selector = encodeURIComponent('dss-spark-k8s.dataiku.io/managed=true');
    expectRbac(await dssuser.send('DELETE', `/api/v1/namespaces?dryRun=All&labelSelector=${selector}`));
  });

  for (const policy of ['Orphan', 'Foreground', 'Background']) {
    it(`refuses the delete of a team namespace with propagationPolicy ${policy}`, async () => {
      expectPolicy(await dssuser.send('DELETE', namespacePath(team, `dryRun=All&propagationPolicy=${policy}`)));
    });
  }

  it('refuses the delete of a team namespace with a body of delete options (gracePeriodSeconds 0, no preconditions)', async () => {
    expectPolicy(
      await dssuser.send('DELETE', namespacePath(team), { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0, propagationPolicy: 'Orphan' }),
    );
  });

  it('refuses kube-public and kube-node-lease (not the tool\u2019s; kube-public also kept by the apiserver)', async () => {
    expectStatus(await dssuser.delete('namespaces', undefined, 'kube-public'), 403);
    expectPolicy(await dssuser.send('DELETE', namespacePath('kube-node-lease', 'dryRun=All&propagationPolicy=Orphan')));
  });

  it('cannot take over a team namespace by creating it under the tool\u2019s labels (409: a create never overwrites)', async () => {
    const answer = await dssuser.create('namespaces', undefined, buildNamespace(team, profile, 'bob'));
    expect(answer.status, answer.message).toBe(409);
    const read = (await admin.get('namespaces', undefined, team)).body as { metadata: { labels: Record<string, string> } };
    expect(read.metadata.labels['dss-spark-k8s.dataiku.io/user']).toBeUndefined();
  });

  it('a namespace it deleted and that is held Terminating: finalize is not granted and its finalizers stay', async () => {
    expectStatus(await admin.patch('namespaces', undefined, held, { metadata: { finalizers: [HOLD] } }, { dryRun: false }), 200);
    expectStatus(await dssuser.delete('namespaces', undefined, held, { dryRun: false }), 200);
    const finalize = await dssuser.send('PUT', `/api/v1/namespaces/${held}/finalize`, {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: held },
      spec: { finalizers: [] },
    });
    expectRbac(finalize);
    expectPolicy(await dssuser.patch('namespaces', undefined, held, { metadata: { annotations: lastUsed(), finalizers: null } }));
    const read = (await admin.get('namespaces', undefined, held)).body as {
      metadata: { finalizers?: string[] };
      spec: { finalizers?: string[] };
      status: { phase: string };
    };
    expect(read.status.phase).toBe('Terminating');
    expect(read.metadata.finalizers).toEqual([HOLD]);
  });
});

describe('a job token (the end user) cannot steer prune', () => {
  it('may not create a Lease (what makes prune keep a namespace), nor patch or delete its namespace', async () => {
    const lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: `${job.base}-x` }, spec: { holderIdentity: 'x' } };
    expectRbac(await job.api.create('leases', job.namespace, lease));
    expectRbac(await job.api.patch('namespaces', undefined, job.namespace, { metadata: { annotations: lastUsed('9999-12-31T23:59:59Z') } }));
    expectRbac(await job.api.delete('namespaces', undefined, job.namespace));
    expectRbac(await job.api.delete('namespaces', undefined, own));
  });
});

describe('a job that starts while prune runs', () => {
  it('keeps its namespace: the job provisions between prune\u2019s contents check and its delete, the delete answers 409', async () => {
    const login = 'rnrace';
    const plan = planFor(profile, login);
    made.push(plan.namespace);
    expectStatus(await dssuser.create('namespaces', undefined, plan.namespaceObject, { dryRun: false }), 201);
    const config = writeConfig({ targetNamespace: template, networkPolicy: { enabled: false } }).path;
    let racer: Job | undefined;
    const racing: PruneClient = {
      listNamespaces: kube.listNamespaces.bind(kube),
      list: kube.list.bind(kube),
      deleteNamespace: async (name, preconditions) => {
        if (name === plan.namespace) racer = await provisionJob(profile, login);
        return kube.deleteNamespace(name, preconditions);
      },
    };
    let stdout = '';
    const exitCode = await namespacesPruneCommand(
      { idle: '1d', yes: true, output: 'json', config },
      { kube: racing, now: () => new Date(Date.now() + 2 * 86400_000), stdout: { write: (t: string) => (stdout += t) }, stderr: { write: () => true } },
    );
    expect(exitCode).toBe(0);
    const rows = JSON.parse(stdout) as { namespace: string; state: string }[];
    expect(rows.find((row) => row.namespace === plan.namespace)?.state).toBe('in use again');
    expect(racer?.namespace).toBe(plan.namespace);
    const read = (await admin.get('namespaces', undefined, plan.namespace)).body as { status: { phase: string } };
    expect(read.status.phase).toBe('Active');
    // The job still works: its token creates (dry run) in its namespace, its Lease is there.
    expectStatus(await admin.get('leases', plan.namespace, racer!.base), 200);
  });
});
