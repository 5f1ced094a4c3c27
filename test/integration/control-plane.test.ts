// Proof that the control plane is real: RBAC and the admission policy deny, TokenRequest tokens
// authenticate as their service account and die with it. All as the restricted dssuser identity.
import { AuthenticationV1Api, CoreV1Api, KubeConfig, RbacAuthorizationV1Api, VersionApi } from '@kubernetes/client-node';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { thisProcess } from '../../src/exec/process-identity.ts';
import { boundTokenRequest } from '../../src/plan/objects.ts';
import { planJob } from '../../src/plan/plan.ts';
import type { JobPlan } from '../../src/plan/types.ts';
import { profileWith } from '../support/profile.ts';
import { adminKubeConfig, createManagedNamespace, dssuserKube, statusEventually, statusOf, tokenKubeConfig, uniqueName } from '../support/kube.ts';

const namespace = uniqueName('dss-foundation');

/** A job's objects exactly as `run` makes them: the only shape the dssuser admission policy lets through. */
function jobPlan(): JobPlan {
  return planJob(
    profileWith({ targetNamespace: namespace }),
    { jobId: uniqueName('j').replace('-', ''), login: 'alice', uid: 1001, adminProperties: {}, ...thisProcess(), now: new Date() },
    { apiServer: 'https://127.0.0.1:6443', callerArgs: [] },
  );
}

describe('local control plane', () => {
  beforeAll(() => createManagedNamespace(namespace));

  it('serves Kubernetes v1.34.4', async () => {
    const version = await adminKubeConfig().makeApiClient(VersionApi).getCode();
    expect(version.gitVersion).toBe('v1.34.4');
  });

  it('knows dssuser as the documented identity, not an admin', async () => {
    const me = await dssuserKube().whoAmI();
    expect(me.username).toBe(inject('cluster').dssuserName);
    expect(me.groups).not.toContain('system:masters');
  });

  it("lets dssuser create a job's ServiceAccount in a managed namespace, and no other", async () => {
    const sa = await dssuserKube().createServiceAccount(jobPlan().serviceAccount);
    expect(sa.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(
      (
        await dssuserKube()
          .createServiceAccount({ metadata: { name: 'probe', namespace } })
          .catch((e) => e)
      ).status,
    ).toBe(403);
  });

  it('forbids dssuser to create a ServiceAccount in kube-system (403)', async () => {
    const error = await dssuserKube()
      .createServiceAccount({ metadata: { name: uniqueName('probe'), namespace: 'kube-system' } })
      .catch((e) => e);
    expect(error.status).toBe(403);
  });

  it('forbids dssuser to create an unmanaged namespace, read secrets or bind cluster roles (403)', async () => {
    const dssuser = tokenKubeConfig(dssuserToken());
    const core = dssuser.makeApiClient(CoreV1Api);
    const rbac = dssuser.makeApiClient(RbacAuthorizationV1Api);
    expect(await statusOf(core.createNamespace({ body: { metadata: { name: uniqueName('other') } } }))).toBe(403);
    expect(await statusOf(core.listNamespacedSecret({ namespace }))).toBe(403);
    expect(
      await statusOf(
        rbac.createClusterRoleBinding({
          body: {
            metadata: { name: uniqueName('x') },
            roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
            subjects: [{ kind: 'User', name: 'dssuser' }],
          },
        }),
      ),
    ).toBe(403);
  });

  it("lets dssuser bind only the driver ClusterRole, only to ServiceAccounts of the binding's namespace, and create no Role or pod", async () => {
    const dssuser = tokenKubeConfig(dssuserToken());
    const rbac = dssuser.makeApiClient(RbacAuthorizationV1Api);
    const core = dssuser.makeApiClient(CoreV1Api);
    const binding = (roleName: string, subject: { kind: string; name: string; namespace?: string }) =>
      rbac.createNamespacedRoleBinding({
        namespace,
        body: {
          metadata: { name: uniqueName('rb') },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: roleName },
          subjects: [subject],
        },
      });
    const ownAccount = { kind: 'ServiceAccount', name: 'job', namespace };
    expect(await statusOf(rbac.createNamespacedRoleBinding({ namespace, body: jobPlan().roleBinding }))).toBe(200);
    expect(await statusOf(binding('edit', ownAccount))).toBe(403); // RBAC: no bind on it, and dssuser lacks its rights
    expect(await statusOf(binding('dss-spark-k8s-driver', { kind: 'User', name: 'mallory' }))).toBe(403); // the admission policy
    expect(await statusOf(binding('dss-spark-k8s-driver', { kind: 'ServiceAccount', name: 'default', namespace: 'kube-system' }))).toBe(403);
    expect(await statusOf(rbac.createNamespacedRole({ namespace, body: { metadata: { name: uniqueName('role') }, rules: [] } }))).toBe(403);
    expect(
      await statusOf(
        core.createNamespacedPod({ namespace, body: { metadata: { name: uniqueName('pod') }, spec: { containers: [{ name: 'c', image: 'x' }] } } }),
      ),
    ).toBe(403);
  });

  it('lets dssuser create and delete only empty, labelled Secrets (token anchors), never read one', async () => {
    const core = tokenKubeConfig(dssuserToken()).makeApiClient(CoreV1Api);
    const plan = jobPlan();
    const labels = plan.tokenAnchor.metadata!.labels!;
    const anchor = plan.tokenAnchor.metadata!.name!;
    expect(await statusOf(core.createNamespacedSecret({ namespace, body: plan.tokenAnchor }))).toBe(200);
    expect(await statusOf(core.readNamespacedSecret({ namespace, name: anchor }))).toBe(403);
    expect(await statusOf(core.createNamespacedSecret({ namespace, body: { metadata: { name: uniqueName('x'), labels }, stringData: { a: 'b' } } }))).toBe(403);
    expect(await statusOf(core.createNamespacedSecret({ namespace, body: { metadata: { name: uniqueName('x') } } }))).toBe(403);
    await adminKubeConfig()
      .makeApiClient(CoreV1Api)
      .createNamespacedSecret({ namespace, body: { metadata: { name: 'someone-elses' }, stringData: { password: 'p' } } });
    expect(await statusOf(core.deleteNamespacedSecret({ namespace, name: 'someone-elses' }))).toBe(403);
    expect(await statusOf(core.deleteNamespacedSecret({ namespace, name: anchor }))).toBe(200);
  });

  it('issues a TokenRequest token that authenticates as the service account and gets 401 once it is deleted', async () => {
    const kube = dssuserKube();
    const plan = jobPlan();
    const name = plan.baseName;
    await kube.createServiceAccount(plan.serviceAccount);
    const anchor = await kube.createSecret(plan.tokenAnchor);
    const request = boundTokenRequest({ spec: { audiences: [], expirationSeconds: 600 } }, { name: anchor.metadata!.name!, uid: anchor.metadata!.uid! });
    const { token, expiresAt } = await kube.requestToken(namespace, name, request);
    expect(expiresAt.getTime()).toBeGreaterThan(Date.now() + 500_000);

    const asJob = tokenKubeConfig(token).makeApiClient(AuthenticationV1Api);
    const review = await asJob.createSelfSubjectReview({ body: {} });
    expect(review.status?.userInfo?.username).toBe(`system:serviceaccount:${namespace}:${name}`);

    await kube.deleteNamespaced('serviceaccounts', namespace, name);
    expect(await statusEventually(() => asJob.createSelfSubjectReview({ body: {} }), 401)).toBe(401);
  });
});

function dssuserToken(): string {
  const kc = new KubeConfig();
  kc.loadFromFile(inject('cluster').dssuserKubeconfig);
  return kc.getCurrentUser()!.token!;
}
