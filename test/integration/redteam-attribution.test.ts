// Red team of the attribution surfaces: dssuser's `patch` on ServiceAccounts (bounded by dssuser-scope to the
// credential-ids annotation of job accounts) and job-token pods a merged executorPodTemplate could produce. Each
// attack here is refused today; the control cases show the lane itself still works. Server-side dry runs only
// (admission policies run on dry runs), so nothing is left behind but the namespace, deleted afterwards.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { V1Pod } from '@kubernetes/client-node';
import { Annotation, JOB_LABEL, USER_LABEL } from '../../src/plan/types.ts';
import { createManagedNamespace, uniqueName } from '../support/kube.ts';
import { profileWith } from '../support/profile.ts';
import { auditLines, auditMark } from '../support/audit-log.ts';
import { adminApi, dssuserApi, executorPod, ownClaim, provisionJob, REFUSED_BY, type Api, type Job } from '../support/redteam.ts';

const admin = adminApi();
const team = uniqueName('dss-team-rta');
const teamProfile = profileWith({ targetNamespace: '${adminProperty:k8sNS}' });
const IDS = Annotation.credentialIds;
let job: Job;
let dssuser: Api;

beforeAll(async () => {
  await createManagedNamespace(team);
  job = await provisionJob(teamProfile, 'alice', { k8sNS: team });
  dssuser = dssuserApi();
});

afterAll(async () => {
  await admin.delete('namespaces', undefined, team, { dryRun: false });
});

const withIds = (extra: Record<string, unknown> = {}, annotations: Record<string, string> = {}) => ({
  ...extra,
  metadata: { ...((extra.metadata as object) ?? {}), annotations: { [IDS]: '0123abcd-ef', ...annotations } },
});

describe('dssuser patch on serviceaccounts: only credential-ids of a job account', () => {
  it('control: the credential-ids annotation of the job account is admitted (merge patch)', async () => {
    const answer = await dssuser.patch('serviceaccounts', team, job.base, withIds());
    expect(answer.status, answer.message).toBe(200);
  });

  const refused: [string, () => Record<string, unknown> | unknown[], ('merge' | 'strategic' | 'json')?][] = [
    ['a changed owner label', () => withIds({ metadata: { labels: { 'dss-spark-k8s.dataiku.io/owner-sa': 'dss-spark-other' } } })],
    ['an added label', () => withIds({ metadata: { labels: { team: 'x' } } })],
    ['a changed login annotation', () => withIds({}, { [Annotation.login]: 'bob' })],
    ['automountServiceAccountToken true', () => withIds({ automountServiceAccountToken: true })],
    ['automountServiceAccountToken removed', () => withIds({ automountServiceAccountToken: null })],
    ['a listed secret', () => withIds({ secrets: [{ name: 'x' }] })],
    ['an image pull secret (strategic merge)', () => withIds({ imagePullSecrets: [{ name: 'x' }] }), 'strategic'],
    ['eks.amazonaws.com/role-arn', () => withIds({}, { 'eks.amazonaws.com/role-arn': 'arn:aws:iam::1:role/x' })],
    ['iam.gke.io/gcp-service-account', () => withIds({}, { 'iam.gke.io/gcp-service-account': 'x@p.iam.gserviceaccount.com' })],
    ['azure.workload.identity/client-id', () => withIds({}, { 'azure.workload.identity/client-id': '00000000-0000-0000-0000-000000000000' })],
    ['a finalizer', () => withIds({ metadata: { finalizers: ['example.com/keep'] } })],
    [
      'an owner reference',
      () =>
        withIds({ metadata: { ownerReferences: [{ apiVersion: 'v1', kind: 'Namespace', name: 'kube-system', uid: '00000000-0000-0000-0000-000000000000' }] } }),
    ],
    ['credential ids with a newline', () => withIds({}, { [IDS]: 'abc\ninjected' })],
    ['credential ids with a comma-space', () => withIds({}, { [IDS]: 'abc, def' })],
    ['no credential ids at all (only a label)', () => ({ metadata: { labels: { a: 'b' } } })],
    [
      'a JSON patch setting the ids and the token automount',
      () => [
        { op: 'add', path: `/metadata/annotations/${IDS.replace('/', '~1')}`, value: 'ab' },
        { op: 'replace', path: '/automountServiceAccountToken', value: true },
      ],
      'json',
    ],
    [
      'a JSON patch removing the login annotation',
      () => [
        { op: 'add', path: `/metadata/annotations/${IDS.replace('/', '~1')}`, value: 'ab' },
        { op: 'remove', path: `/metadata/annotations/${Annotation.login.replace('/', '~1')}` },
      ],
      'json',
    ],
  ];
  for (const [what, body, type] of refused) {
    it(`refuses ${what}`, async () => {
      const answer = await dssuser.patch('serviceaccounts', team, job.base, body(), { type });
      expect(answer.status, answer.message).toBe(403);
      expect(answer.message).toMatch(REFUSED_BY.dssuserPolicy);
    });
  }

  it('refuses the ids on the executor account and on the namespace default account', async () => {
    for (const name of [job.executorAccount, 'default']) {
      const answer = await dssuser.patch('serviceaccounts', team, name, withIds());
      expect(answer.status, `${name}: ${answer.message}`).toBe(403);
      expect(answer.message).toMatch(REFUSED_BY.dssuserPolicy);
    }
  });

  it('refuses a patch in an unmanaged namespace', async () => {
    const answer = await dssuser.patch('serviceaccounts', 'default', 'default', withIds());
    expect(answer.status, answer.message).toBe(403);
    expect(answer.message).toMatch(/only write in namespaces labelled dss-spark-k8s.dataiku.io\/managed=true/);
  });

  it('refuses a server-side apply forcing the token automount on, and any PUT (no update right)', async () => {
    const applied = await dssuser.send(
      'PATCH',
      `/api/v1/namespaces/${team}/serviceaccounts/${job.base}?dryRun=All&fieldManager=redteam&force=true`,
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: job.base, annotations: { [IDS]: 'ab' } }, automountServiceAccountToken: true },
      'application/apply-patch+yaml',
    );
    expect(applied.status, applied.message).toBe(403);
    expect(applied.message).toMatch(REFUSED_BY.dssuserPolicy);
    const current = await dssuser.get('serviceaccounts', team, job.base);
    const put = await dssuser.replace('serviceaccounts', team, job.base, current.body);
    expect(put.status, put.message).toBe(403);
    expect(put.message).toMatch(REFUSED_BY.rbac);
  });
});

describe('job-token pods a merged executorPodTemplate could produce, refused at admission', () => {
  const attacks: [string, (pod: V1Pod) => void, RegExp][] = [
    [
      'an ephemeral volume cloning another claim',
      (pod) =>
        pod.spec!.volumes!.push({
          name: 'clone',
          ephemeral: {
            volumeClaimTemplate: {
              spec: {
                dataSource: { kind: 'PersistentVolumeClaim', name: 'victim' },
                accessModes: ['ReadWriteOnce'],
                resources: { requests: { storage: '1Gi' } },
              },
            },
          },
        }),
      /volume\(s\) clone not allowed/,
    ],
    [
      "an ephemeral volume carrying another job's owner label",
      (pod) =>
        pod.spec!.volumes!.push({
          name: 'own',
          ephemeral: {
            volumeClaimTemplate: {
              metadata: { labels: { 'dss-spark-k8s.dataiku.io/owner-sa': 'dss-spark-victim' } },
              spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
            },
          },
        }),
      /volume\(s\) own not allowed/,
    ],
    [
      'a postStart hook sent by the kubelet to the metadata address',
      (pod) => (pod.spec!.containers[0]!.lifecycle = { postStart: { httpGet: { host: '169.254.169.254', path: '/', port: 80 } } }),
      /a probe or lifecycle host not allowed/,
    ],
    [
      'the AppArmor unconfined annotation',
      (pod) =>
        (pod.metadata!.annotations = {
          ...pod.metadata!.annotations,
          'container.apparmor.security.beta.kubernetes.io/spark-kubernetes-executor': 'unconfined',
        }),
      /AppArmor Unconfined not allowed/,
    ],
    ['an unlisted image pull secret', (pod) => (pod.spec!.imagePullSecrets = [{ name: 'regcred' }]), /image pull secret\(s\) regcred not allowed/],
    [
      'a Windows HostProcess container with the host network',
      (pod) => {
        pod.spec!.hostNetwork = true;
        pod.spec!.securityContext = { ...pod.spec!.securityContext, windowsOptions: { hostProcess: true } };
      },
      /hostNetwork(, [a-zA-Z ]+)* not allowed/,
    ],
  ];
  for (const [what, change, reason] of attacks) {
    it(`refuses ${what}`, async () => {
      const pod = executorPod(job);
      change(pod);
      const answer = await job.api.create('pods', job.namespace, pod);
      expect(answer.status, answer.message).toBe(403);
      expect(answer.message).toMatch(REFUSED_BY.isolationPolicy);
      expect(answer.message).toMatch(reason);
    });
  }
});

// Red-team F1: a job token wrote another job's job-id, user and login on its own pods, and the isolation policy's
// audit annotations repeated them. The annotations now come from the job's ServiceAccount (the policy's parameter),
// and a job's writes must carry its own job id, user and login.
describe("a job token cannot claim another job's identity (labels, login, audit annotations)", () => {
  const cluster = inject('cluster');
  let other: Job;
  beforeAll(async () => {
    other = await provisionJob(teamProfile, 'bob', { k8sNS: team });
  });

  const OWN_IDENTITY = /must carry the job id, user and login of dss-spark-/;
  const forged: [string, (pod: V1Pod) => void][] = [
    ['refuses a pod with the job-id label of another job', (pod) => (pod.metadata!.labels![JOB_LABEL] = other.labels[JOB_LABEL]!)],
    ['refuses a pod with the user label of another job', (pod) => (pod.metadata!.labels![USER_LABEL] = other.labels[USER_LABEL]!)],
    ['refuses a pod with no job-id label', (pod) => delete pod.metadata!.labels![JOB_LABEL]],
    ['refuses a pod with the login annotation of another job', (pod) => (pod.metadata!.annotations = { [Annotation.login]: 'bob' })],
  ];
  for (const [title, change] of forged) {
    it(title, async () => {
      const pod = executorPod(job);
      change(pod);
      const answer = await job.api.create('pods', team, pod);
      expect(answer.status, answer.message).toBe(403);
      expect(answer.message).toMatch(REFUSED_BY.attributionPolicy);
      expect(answer.message).toMatch(OWN_IDENTITY);
    });
  }

  it("refuses a claim with the other job's job-id label", async () => {
    const claim = ownClaim(job);
    claim.metadata.labels[JOB_LABEL] = other.labels[JOB_LABEL]!;
    const answer = await job.api.create('persistentvolumeclaims', team, claim);
    expect(answer.status, answer.message).toBe(403);
    expect(answer.message).toMatch(OWN_IDENTITY);
  });

  it("refuses a patch of the job's own pod to the other job's job-id; its own pod and login pass", async () => {
    const pod = executorPod(job);
    pod.metadata!.annotations = { [Annotation.login]: 'alice' };
    // Never scheduled: no node carries this label.
    pod.spec!.nodeSelector = { 'dss-spark-k8s.test/nowhere': 'true' };
    const created = await job.api.create('pods', team, pod, { dryRun: false });
    expect(created.status, created.message).toBe(201);
    try {
      const patched = await job.api.patch('pods', team, pod.metadata!.name!, { metadata: { labels: { [JOB_LABEL]: other.labels[JOB_LABEL] } } });
      expect(patched.status, patched.message).toBe(403);
      expect(patched.message).toMatch(OWN_IDENTITY);
      const relabelled = await job.api.patch('pods', team, pod.metadata!.name!, { metadata: { labels: { 'spark-exec-inactive': 'true' } } });
      expect(relabelled.status, relabelled.message).toBe(200);
    } finally {
      await job.api.delete('pods', team, pod.metadata!.name!, { dryRun: false });
    }
  });

  it("writes the job's own job id, user and login into the audit event of a forged request, from its ServiceAccount", async () => {
    const pod = executorPod(job);
    pod.metadata!.labels![JOB_LABEL] = other.labels[JOB_LABEL]!;
    pod.metadata!.labels![USER_LABEL] = other.labels[USER_LABEL]!;
    pod.metadata!.annotations = { [Annotation.login]: 'bob' };
    const mark = auditMark(cluster.auditLog);
    expect((await job.api.create('pods', team, pod)).status).toBe(403);
    const name = pod.metadata!.name!;
    const deadline = Date.now() + 15_000;
    let annotations: Record<string, string> | undefined;
    while (annotations === undefined && Date.now() < deadline) {
      const line = (await auditLines(cluster.auditLog, mark, `"name":"${name}"`)).find((l) => l.includes('"stage":"ResponseComplete"'));
      if (line) annotations = (JSON.parse(line) as { annotations?: Record<string, string> }).annotations;
      else await new Promise((resolve) => setTimeout(resolve, 300));
    }
    expect(annotations, `no audit event of pod ${name} in ${cluster.auditLog}`).toBeDefined();
    expect(annotations).toMatchObject({
      'dss-spark-k8s-job-isolation/job-account': job.base,
      'dss-spark-k8s-job-attribution/job-id': job.labels[JOB_LABEL],
      'dss-spark-k8s-job-attribution/user': job.labels[USER_LABEL],
      'dss-spark-k8s-job-attribution/login': 'alice',
    });
  });
});
