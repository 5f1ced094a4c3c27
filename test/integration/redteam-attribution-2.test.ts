// Red team of the job-attribution policy and of dssuser's ServiceAccount bounds, second round: the same claims
// attacked through other encodings. A job token relabels its own pod by JSON patch, merge patch with null,
// strategic merge directives, server-side apply, PUT and subresources, forges a login by case or whitespace,
// uses generateName, deletes by a forged label selector, and races the policy's parameter informer right after its
// account is created; dssuser spells a foreign annotation in upper case or sends it by server-side apply, and
// writes more than 32 credential ids by JSON patch, apply or another alphabet. Every attack here is refused today
// (the report of this round lists the ones that got through, kept out of this file). Server-side dry runs unless
// a real object is needed; everything made is deleted with the namespaces afterwards.
import { readFileSync } from 'node:fs';
import type { V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { boundTokenRequest } from '../../src/plan/objects.ts';
import { Annotation, JOB_LABEL, OWNER_LABEL, USER_LABEL } from '../../src/plan/types.ts';
import { createManagedNamespace, uniqueName } from '../support/kube.ts';
import { profileWith } from '../support/profile.ts';
import {
  adminApi,
  dssuserApi,
  executorPod,
  ownClaim,
  planFor,
  provisionJob,
  REFUSED_BY,
  tokenApi,
  type Api,
  type Job,
  type Outcome,
} from '../support/redteam.ts';

const admin = adminApi();
const team = uniqueName('dss-team-rtb');
const teamProfile = profileWith({ targetNamespace: '${adminProperty:k8sNS}' });
const perUserProfile = profileWith({ autoCreateNamespace: true });
const IDS = Annotation.credentialIds;
const OWN_IDENTITY = /must carry the job id, user and login of dss-spark-/;
const pointer = (key: string) => key.replace('/', '~1');
const nowhere = { 'dss-spark-k8s.test/nowhere': 'true' };
const namespaces: string[] = [team];
let alice: Job;
let bob: Job;
let carol: Job;
let dssuser: Api;

beforeAll(async () => {
  await createManagedNamespace(team);
  [alice, bob, carol] = await Promise.all([
    provisionJob(teamProfile, 'alice', { k8sNS: team }),
    provisionJob(teamProfile, 'bob', { k8sNS: team }),
    provisionJob(perUserProfile, uniqueName('carol')),
  ]);
  namespaces.push(carol.namespace);
  dssuser = dssuserApi();
});

afterAll(async () => {
  for (const namespace of namespaces) await admin.delete('namespaces', undefined, namespace, { dryRun: false });
});

function expectRefused(answer: Outcome, by: RegExp, reason?: RegExp) {
  expect(answer.status, answer.message).toBe(403);
  expect(answer.message).toMatch(by);
  if (reason) expect(answer.message).toMatch(reason);
}

const apply = (api: Api, resource: string, name: string, body: unknown, force = true) =>
  api.send(
    'PATCH',
    `/api/v1/namespaces/${team}/${resource}/${name}?dryRun=All&fieldManager=redteam${force ? '&force=true' : ''}`,
    body,
    'application/apply-patch+yaml',
  );

describe("a job token cannot relabel its own pod as another job's, whatever the patch", () => {
  let podName: string;
  let bobPod: string;
  beforeAll(async () => {
    const pod = executorPod(alice);
    pod.metadata!.annotations = { [Annotation.login]: 'alice' };
    pod.spec!.nodeSelector = nowhere;
    const other = executorPod(bob);
    other.spec!.nodeSelector = nowhere;
    const created = await Promise.all([alice.api.create('pods', team, pod, { dryRun: false }), bob.api.create('pods', team, other, { dryRun: false })]);
    for (const answer of created) expect(answer.status, answer.message).toBe(201);
    podName = pod.metadata!.name!;
    bobPod = other.metadata!.name!;
  });

  const patches: [string, () => unknown, 'merge' | 'strategic' | 'json'][] = [
    [
      'a JSON patch adding the job-id of another job',
      () => [{ op: 'add', path: `/metadata/labels/${pointer(JOB_LABEL)}`, value: bob.labels[JOB_LABEL] }],
      'json',
    ],
    ['a JSON patch removing the job-id label', () => [{ op: 'remove', path: `/metadata/labels/${pointer(JOB_LABEL)}` }], 'json'],
    ['a JSON patch removing the user label', () => [{ op: 'remove', path: `/metadata/labels/${pointer(USER_LABEL)}` }], 'json'],
    [
      "a JSON patch replacing every label by the other job's (own owner label kept)",
      () => [{ op: 'replace', path: '/metadata/labels', value: { ...bob.labels, [OWNER_LABEL]: alice.base } }],
      'json',
    ],
    ['a merge patch setting the job-id label to null', () => ({ metadata: { labels: { [JOB_LABEL]: null } } }), 'merge'],
    ['a merge patch writing another login', () => ({ metadata: { annotations: { [Annotation.login]: 'bob' } } }), 'merge'],
    [
      "a strategic merge $patch: replace of the labels by the other job's",
      () => ({ metadata: { labels: { $patch: 'replace', ...bob.labels, [OWNER_LABEL]: alice.base } } }),
      'strategic',
    ],
  ];
  for (const [what, body, type] of patches) {
    it(`refuses ${what}`, async () => {
      expectRefused(await alice.api.patch('pods', team, podName, body(), { type }), REFUSED_BY.attributionPolicy, OWN_IDENTITY);
    });
  }

  it('refuses strategic merge $patch: delete of the labels and $retainKeys dropping them (both job policies refuse)', async () => {
    for (const body of [{ metadata: { labels: { $patch: 'delete' } } }, { metadata: { $retainKeys: ['name'] } }]) {
      const answer = await alice.api.patch('pods', team, podName, body, { type: 'strategic' });
      expectRefused(answer, /ValidatingAdmissionPolicy 'dss-spark-k8s-job-(attribution|isolation)'/);
    }
  });

  it('refuses a server-side apply forcing the job-id of another job', async () => {
    const body = { apiVersion: 'v1', kind: 'Pod', metadata: { name: podName, labels: { [JOB_LABEL]: bob.labels[JOB_LABEL] } } };
    expectRefused(await apply(alice.api, 'pods', podName, body), REFUSED_BY.attributionPolicy, OWN_IDENTITY);
  });

  it('has no update (PUT) and no pod subresource that could carry labels past the policy', async () => {
    const current = (await alice.api.get('pods', team, podName)).body as unknown as V1Pod;
    current.metadata!.labels![JOB_LABEL] = bob.labels[JOB_LABEL]!;
    expectRefused(await alice.api.replace('pods', team, podName, current), REFUSED_BY.rbac, /cannot update resource "pods"/);
    const relabel = { metadata: { labels: { [JOB_LABEL]: bob.labels[JOB_LABEL] } } };
    for (const subresource of ['status', 'ephemeralcontainers', 'resize']) {
      const answer = await alice.api.patch('pods', team, podName, relabel, { subresource });
      expectRefused(answer, REFUSED_BY.rbac, new RegExp(`cannot patch resource "pods/${subresource}"`));
    }
    const binding = { apiVersion: 'v1', kind: 'Binding', metadata: { name: podName }, target: { kind: 'Node', name: 'nowhere' } };
    expectRefused(await alice.api.post('pods', team, podName, 'binding', binding, { dryRun: 'All' }), REFUSED_BY.rbac, /"pods\/binding"/);
    const eviction = { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: bobPod, namespace: team } };
    expectRefused(await alice.api.post('pods', team, bobPod, 'eviction', eviction, { dryRun: 'All' }), REFUSED_BY.rbac, /"pods\/eviction"/);
  });

  it("refuses a deletecollection selecting the other job's pods by its job-id label, and the other pod stays", async () => {
    const answer = await alice.api.deleteCollection('pods', team, `${JOB_LABEL}=${bob.labels[JOB_LABEL]}`);
    expectRefused(answer, REFUSED_BY.isolationPolicy, new RegExp(`may not delete pods "${bobPod}"`));
    expect((await bob.api.get('pods', team, bobPod)).status).toBe(200);
  });

  it("control: a label that is not the tool's still patches", async () => {
    const answer = await alice.api.patch('pods', team, podName, { metadata: { labels: { 'spark-exec-inactive': 'true' } } });
    expect(answer.status, answer.message).toBe(200);
  });
});

describe("a job token cannot create a pod or claim claiming another job's identity, however it spells it", () => {
  const forged: [string, (pod: V1Pod) => void][] = [
    ['the login with a trailing space', (pod) => (pod.metadata!.annotations = { [Annotation.login]: 'alice ' })],
    ['the login in another case', (pod) => (pod.metadata!.annotations = { [Annotation.login]: 'Alice' })],
    ['an empty login', (pod) => (pod.metadata!.annotations = { [Annotation.login]: '' })],
    ['an empty user label', (pod) => (pod.metadata!.labels![USER_LABEL] = '')],
    [
      "a generated name and the other job's job-id",
      (pod) => {
        pod.metadata!.generateName = `${alice.base}-exec-g`;
        delete pod.metadata!.name;
        pod.metadata!.labels![JOB_LABEL] = bob.labels[JOB_LABEL]!;
      },
    ],
  ];
  for (const [what, change] of forged) {
    it(`refuses a pod with ${what}`, async () => {
      const pod = executorPod(alice);
      change(pod);
      expectRefused(await alice.api.create('pods', team, pod), REFUSED_BY.attributionPolicy, OWN_IDENTITY);
    });
  }

  it("refuses a server-side apply creating a pod with the other job's job-id", async () => {
    const pod = executorPod(alice);
    pod.metadata!.labels![JOB_LABEL] = bob.labels[JOB_LABEL]!;
    const answer = await apply(alice.api, 'pods', pod.metadata!.name!, { apiVersion: 'v1', kind: 'Pod', ...pod }, false);
    expectRefused(answer, REFUSED_BY.attributionPolicy, OWN_IDENTITY);
  });

  it("refuses an ephemeral claim template carrying the other job's job-id (the controller would create it as itself)", async () => {
    const pod = executorPod(alice);
    pod.spec!.volumes!.push({
      name: 'e',
      ephemeral: {
        volumeClaimTemplate: {
          metadata: { labels: { [JOB_LABEL]: bob.labels[JOB_LABEL]! } },
          spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
        },
      },
    });
    expectRefused(await alice.api.create('pods', team, pod), REFUSED_BY.isolationPolicy, /volume\(s\) e not allowed/);
  });

  it("refuses a claim annotated with the other job's login, and has no patch on claims (so no apply)", async () => {
    const claim = ownClaim(alice) as ReturnType<typeof ownClaim> & { metadata: { annotations?: Record<string, string> } };
    claim.metadata.annotations = { [Annotation.login]: 'bob' };
    expectRefused(await alice.api.create('persistentvolumeclaims', team, claim), REFUSED_BY.attributionPolicy, OWN_IDENTITY);
    const applied = await apply(alice.api, 'persistentvolumeclaims', claim.metadata.name, claim, false);
    expectRefused(applied, REFUSED_BY.rbac, /cannot patch resource "persistentvolumeclaims"/);
  });

  it('gets an invalid (422) label key with an upper-case prefix or a label value with a space: nothing to forge', async () => {
    const upper = executorPod(alice);
    upper.metadata!.labels!['DSS-SPARK-K8S.dataiku.io/job-id'] = bob.labels[JOB_LABEL]!;
    const spaced = executorPod(alice);
    spaced.metadata!.labels![JOB_LABEL] = ` ${alice.labels[JOB_LABEL]}`;
    for (const pod of [upper, spaced]) {
      const answer = await alice.api.create('pods', team, pod);
      expect(answer.status, answer.message).toBe(422);
    }
  });

  it("cannot write in another user's namespace, where an account of its name could be another job's", async () => {
    expectRefused(await alice.api.create('pods', carol.namespace, executorPod(alice)), REFUSED_BY.rbac);
  });

  it('names its own job in the audit event of a request the isolation policy refuses', async () => {
    const pod = executorPod(alice);
    pod.spec!.hostNetwork = true;
    expectRefused(await alice.api.create('pods', team, pod), REFUSED_BY.isolationPolicy, /hostNetwork/);
    const auditLog = inject('cluster').auditLog;
    const deadline = Date.now() + 10_000;
    let annotations: Record<string, string> | undefined;
    while (annotations === undefined && Date.now() < deadline) {
      const line = readFileSync(auditLog, 'utf8')
        .split('\n')
        .find((l) => l.includes(`"name":"${pod.metadata!.name}"`) && l.includes('"stage":"ResponseComplete"'));
      if (line) annotations = (JSON.parse(line) as { annotations?: Record<string, string> }).annotations;
      else await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(annotations, `no audit event of pod ${pod.metadata!.name} in ${auditLog}`).toMatchObject({
      'dss-spark-k8s-job-isolation/job-account': alice.base,
      'dss-spark-k8s-job-attribution/job-id': alice.labels[JOB_LABEL],
      'dss-spark-k8s-job-attribution/user': alice.labels[USER_LABEL],
      'dss-spark-k8s-job-attribution/login': 'alice',
    });
  });
});

// The policy is skipped where its parameter informer has no account of the requester (parameterNotFoundAction
// Allow in a namespace with none; no evaluation of its own in one with others). The tightest a token can follow
// its account: binding, anchor and executor account first, then the account, its token and at once a forged pod.
describe('the parameter informer right after a job account is created', () => {
  for (const where of ['a namespace with no other account of the tool', 'the team namespace, among other jobs']) {
    it(`refuses a forged pod made as soon as the token exists, every time, in ${where}`, async () => {
      let namespace = team;
      if (where.startsWith('a namespace')) {
        namespace = uniqueName('dss-team-rtl');
        await createManagedNamespace(namespace);
        namespaces.push(namespace);
      }
      const outcomes: string[] = [];
      for (let i = 0; i < 8; i++) {
        const plan = planFor(teamProfile, 'racer', { k8sNS: namespace });
        const [binding, anchor, executor] = await Promise.all([
          dssuser.create('rolebindings', namespace, plan.roleBinding, { dryRun: false }),
          dssuser.create('secrets', namespace, plan.tokenAnchor, { dryRun: false }),
          dssuser.create('serviceaccounts', namespace, plan.executorServiceAccount, { dryRun: false }),
        ]);
        for (const answer of [binding, anchor, executor]) expect(answer.status, answer.message).toBe(201);
        // RBAC must see the binding first, or the pod is refused by RBAC and proves nothing.
        await new Promise((resolve) => setTimeout(resolve, 150));
        const account = await dssuser.create('serviceaccounts', namespace, plan.serviceAccount, { dryRun: false });
        expect(account.status, account.message).toBe(201);
        const { uid, name } = (anchor.body as { metadata: { uid: string; name: string } }).metadata;
        const request = await dssuser.post('serviceaccounts', namespace, plan.baseName, 'token', boundTokenRequest(plan.tokenRequest, { name, uid }));
        const token = (request.body as { status?: { token?: string } }).status?.token;
        expect(token, request.message).toBeTruthy();
        const pod = executorPod({ namespace, base: plan.baseName, executorAccount: `${plan.baseName}-exec`, labels: plan.labels });
        pod.metadata!.labels![JOB_LABEL] = bob.labels[JOB_LABEL]!;
        const answer = await tokenApi(token!).create('pods', namespace, pod);
        outcomes.push(`${answer.status} ${REFUSED_BY.attributionPolicy.test(answer.message) ? 'attribution' : answer.message.slice(0, 120)}`);
        await Promise.all([
          dssuser.deleteCollection('serviceaccounts', namespace, `${OWNER_LABEL}=${plan.baseName}`, { dryRun: false }),
          dssuser.delete('rolebindings', namespace, plan.baseName, { dryRun: false }),
          dssuser.delete('secrets', namespace, name, { dryRun: false }),
        ]);
      }
      expect(outcomes).toEqual(outcomes.map(() => '403 attribution'));
    });
  }
});

const ids = (n: number) => Array.from({ length: n }, (_, i) => `a${i.toString(16)}`).join(',');
/** A new job account as the tool plans it, for a dry-run create. */
const account = () =>
  structuredClone(planFor(teamProfile, 'mallory', { k8sNS: team }).serviceAccount) as { metadata: { name: string; annotations: Record<string, string> } };

describe('dssuser cannot put a foreign annotation on a ServiceAccount, nor more than 32 credential ids, by another spelling', () => {
  const foreign: [string, Record<string, string>][] = [
    ["the tool's prefix in upper case (annotation keys are valid in any case)", { 'DSS-SPARK-K8S.dataiku.io/login': 'bob' }],
    ["the tool's prefix in mixed case", { 'Dss-Spark-K8s.dataiku.io/x': 'y' }],
    ["kubectl's last-applied-configuration", { 'kubectl.kubernetes.io/last-applied-configuration': '{}' }],
  ];
  for (const [what, annotations] of foreign) {
    it(`refuses a create with ${what}`, async () => {
      const sa = account();
      Object.assign(sa.metadata.annotations, annotations);
      expectRefused(await dssuser.create('serviceaccounts', team, sa), REFUSED_BY.dssuserPolicy, /carry only dss-spark-k8s.dataiku.io\/ annotations/);
    });
  }

  it('refuses a server-side apply creating an account with a cloud workload identity', async () => {
    const sa = account();
    sa.metadata.annotations['eks.amazonaws.com/role-arn'] = 'arn:aws:iam::1:role/x';
    const answer = await apply(dssuser, 'serviceaccounts', sa.metadata.name, sa, false);
    expectRefused(answer, REFUSED_BY.dssuserPolicy, /carry only dss-spark-k8s.dataiku.io\/ annotations/);
  });

  it('control: 32 credential ids patch', async () => {
    const answer = await dssuser.patch('serviceaccounts', team, alice.base, { metadata: { annotations: { [IDS]: ids(32) } } });
    expect(answer.status, answer.message).toBe(200);
  });

  const patches: [string, () => unknown, ('merge' | 'json')?][] = [
    ['33 ids by JSON patch', () => [{ op: 'add', path: `/metadata/annotations/${pointer(IDS)}`, value: ids(33) }], 'json'],
    ['upper-case hex ids', () => ({ metadata: { annotations: { [IDS]: 'ABCDEF' } } })],
    ['an id of 65 characters', () => ({ metadata: { annotations: { [IDS]: 'a'.repeat(65) } } })],
    ['a trailing comma', () => ({ metadata: { annotations: { [IDS]: 'ab,' } } })],
    ['ids separated by semicolons', () => ({ metadata: { annotations: { [IDS]: ids(33).replaceAll(',', ';') } } })],
  ];
  for (const [what, body, type] of patches) {
    it(`refuses ${what}`, async () => {
      expectRefused(await dssuser.patch('serviceaccounts', team, alice.base, body(), { type }), REFUSED_BY.dssuserPolicy, /credential-ids/);
    });
  }

  it('refuses a server-side apply of 33 ids, and one of the ids with a changed label', async () => {
    const body = (metadata: Record<string, unknown>) => ({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: alice.base, ...metadata } });
    for (const metadata of [{ annotations: { [IDS]: ids(33) } }, { labels: { [JOB_LABEL]: bob.labels[JOB_LABEL] }, annotations: { [IDS]: 'ab' } }]) {
      expectRefused(await apply(dssuser, 'serviceaccounts', alice.base, body(metadata)), REFUSED_BY.dssuserPolicy, /credential-ids/);
    }
  });
});

// Found by the second round and closed: create-time bounds of dssuser's job objects, and the account's uid.
const withoutIds = (annotations: Record<string, string>) => Object.fromEntries(Object.entries(annotations).filter(([key]) => key !== IDS));
describe('dssuser cannot make a job account lie, nor keep its objects past teardown', () => {
  it('refuses a ServiceAccount created with credential ids (1000, or not token ids): only the patch once a token exists writes them a ServiceAccount created with 1000 credential ids, or ids that are not token ids', async () => {
    for (const value of [ids(1000), 'not a token id; <script>']) {
      const sa = account();
      sa.metadata.annotations[IDS] = value;
      const answer = await dssuser.create('serviceaccounts', team, sa);
      expectRefused(answer, REFUSED_BY.dssuserPolicy);
    }
  });
  it('refuses job objects (account, binding, anchor, Lease) created created with a finalizer or an owner reference', async () => {
    const plan = planFor(teamProfile, 'mallory', { k8sNS: team });
    const withFinalizer = (o: object) => {
      const copy = structuredClone(o) as { metadata: Record<string, unknown> };
      copy.metadata.finalizers = ['example.com/keep'];
      return copy;
    };
    const owned = structuredClone(plan.serviceAccount) as { metadata: Record<string, unknown> };
    owned.metadata.ownerReferences = [{ apiVersion: 'v1', kind: 'Namespace', name: 'kube-system', uid: '00000000-0000-0000-0000-000000000000' }];
    const tries: [string, unknown][] = [
      ['serviceaccounts', withFinalizer(plan.serviceAccount)],
      ['serviceaccounts', owned],
      ['rolebindings', withFinalizer(plan.roleBinding)],
      ['secrets', withFinalizer(plan.tokenAnchor)],
      ['leases', withFinalizer(plan.lease)],
    ];
    const answers = [];
    for (const [resource, body] of tries) {
      const answer = await dssuser.create(resource, team, body);
      answers.push(answer.status);
    }
    expect(answers).toEqual([403, 403, 403, 403, 403]);
  });
  it('refuses the token of a running job whose account dssuser deleted and made again under other labels (the uid differs)', async () => {
    const dave = await provisionJob(teamProfile, 'dave', { k8sNS: team });
    // The running driver uses its token all the time: the apiserver caches the authentication (10 s).
    expect((await dave.api.create('pods', team, executorPod(dave))).status).toBe(201);
    const sa = (await dssuser.get('serviceaccounts', team, dave.base)).body as {
      metadata: { labels: Record<string, string>; annotations: Record<string, string> };
    };
    const deleted = await dssuser.delete('serviceaccounts', team, dave.base, { dryRun: false });
    const recreated = await dssuser.create(
      'serviceaccounts',
      team,
      {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: {
          name: dave.base,
          labels: { ...sa.metadata.labels, [JOB_LABEL]: bob.labels[JOB_LABEL], [USER_LABEL]: bob.labels[USER_LABEL] },
          annotations: { ...withoutIds(sa.metadata.annotations), [Annotation.login]: 'bob' },
        },
        automountServiceAccountToken: false,
      },
      { dryRun: false },
    );
    expect(deleted.status, deleted.message).toBe(200);
    expect(recreated.status, recreated.message).toBe(201);
    // Within the token cache's 10 s, once the apiserver's informer has the new account (under a second).
    await new Promise((r) => setTimeout(r, 2500));
    const pod = executorPod(dave);
    pod.metadata!.labels![JOB_LABEL] = bob.labels[JOB_LABEL]!;
    pod.metadata!.labels![USER_LABEL] = bob.labels[USER_LABEL]!;
    pod.metadata!.annotations = { [Annotation.login]: 'bob' };
    const answer = await dave.api.create('pods', team, pod);
    expect(answer.status, answer.message).toBe(403);
    expect(answer.message).toMatch(/belongs to an earlier account of that name/);
  });
});
