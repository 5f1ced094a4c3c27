// Token rotation on the real apiserver, as dssuser: one failed attempt must not stop rotation for good (before
// issue 13 every retry asked for the same anchor name: "already exists" until the token expired), and a failed
// attempt leaves no anchor, hence no live token, behind.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuthenticationV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { writeJobKubeconfig, type JobFiles } from '../../src/exec/job-dir.ts';
import { thisProcess } from '../../src/exec/process-identity.ts';
import type { CreatedObject } from '../../src/apply/provision.ts';
import { startTokenRotation } from '../../src/apply/rotation.ts';
import { Kube } from '../../src/k8s/client.ts';
import { loadCredentials } from '../../src/k8s/kubeconfig.ts';
import { boundTokenRequest, tokenAnchorName } from '../../src/plan/objects.ts';
import { planJob } from '../../src/plan/plan.ts';
import { OWNER_LABEL, type JobPlan } from '../../src/plan/types.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { adminCore, createManagedNamespace, dssuserKube, statusEventually, statusOf, tokenKubeConfig, uniqueName } from '../support/kube.ts';
import { profileWith } from '../support/profile.ts';

const namespace = uniqueName('dss-rot');
const scratch = mkdtempSync(join(tmpdir(), 'dss-spark-k8s-test-rotation-'));
let kube: Kube;

function plan(jobId: string): JobPlan {
  return planJob(
    profileWith({ targetNamespace: namespace, sparkSubmit: '/bin/true' }),
    { jobId, login: 'alice', uid: 1001, adminProperties: {}, ...thisProcess(), now: new Date() },
    { apiServer: 'https://127.0.0.1:6443', callerArgs: [] },
  );
}

interface Job {
  plan: JobPlan;
  files: JobFiles;
  created: CreatedObject[];
  firstToken: string;
}

/** What provisioning leaves, as dssuser: the job's account, its first anchor and the token bound to it. */
async function provisionJob(p: JobPlan): Promise<Job> {
  await kube.createServiceAccount(p.serviceAccount);
  const anchor = await kube.createSecret(p.tokenAnchor);
  const { token } = await kube.requestToken(
    namespace,
    p.baseName,
    boundTokenRequest(p.tokenRequest, { name: anchor.metadata!.name!, uid: anchor.metadata!.uid! }),
  );
  const dir = mkdtempSync(join(scratch, 'job-'));
  return {
    plan: p,
    files: { dir, kubeconfig: join(dir, 'kubeconfig'), podTemplate: join(dir, 'executor-pod.json') },
    created: [
      { kind: 'serviceaccounts', namespace, name: p.baseName },
      { kind: 'secrets', namespace, name: anchor.metadata!.name! },
    ],
    firstToken: token,
  };
}

/**
 * Rotates every second until the first successful rotation, then stops (so that the anchors are the ones
 * of that rotation); the failures on the way and the generation that succeeded.
 */
async function rotateUntilSuccess(job: Job, client: Kube): Promise<{ failures: string[]; generation: number }> {
  const failures: string[] = [];
  let rotated: ((generation: number) => void) | undefined;
  const success = new Promise<number>((resolve) => (rotated = resolve));
  let stopping: Promise<void> | undefined;
  const stop = startTokenRotation(
    {
      kube: client,
      plan: job.plan,
      writeToken: (token) => writeJobKubeconfig(job.files, process.getuid!(), kube.endpoint, job.plan.namespace, token),
      created: job.created,
    },
    1,
    new Date(Date.now() + 3600_000),
    {
      rotated: (generation) => {
        stopping = stop();
        rotated!(generation);
      },
      failed: (message) => failures.push(message),
    },
  );
  let timeout: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([success, new Promise<undefined>((resolve) => (timeout = setTimeout(() => resolve(undefined), 25_000)))]);
  clearTimeout(timeout);
  await (stopping ?? stop());
  if (outcome === undefined) throw new Error(`no rotation succeeded within 25 s; failures: ${failures.join(' | ')}`);
  return { failures, generation: outcome };
}

/** The job's anchor Secrets in the cluster (as admin: dssuser cannot list Secrets). */
async function anchorsInCluster(p: JobPlan): Promise<string[]> {
  const list = await adminCore().listNamespacedSecret({ namespace, labelSelector: `${OWNER_LABEL}=${p.baseName}` });
  return list.items.map((s) => s.metadata!.name!).sort();
}

const kubeconfigToken = (files: JobFiles) =>
  (JSON.parse(readFileSync(files.kubeconfig, 'utf8')) as { users: { user: { token: string } }[] }).users[0]!.user.token;
const selfReview = (token: string) => () => tokenKubeConfig(token).makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: {} });

beforeAll(async () => {
  await createManagedNamespace(namespace);
  kube = dssuserKube();
});

afterAll(async () => {
  await kube.close();
  await adminCore().deleteNamespace({ name: namespace });
  rmSync(scratch, { recursive: true, force: true });
});

describe('token rotation after a failed attempt, on the real apiserver', () => {
  it("takes the next generation when an attempt's anchor name is taken (409): the next attempt succeeds, one anchor remains", async () => {
    const job = await provisionJob(plan(uniqueName('taken')));
    const p = job.plan;
    // An object of the next generation's name, not the job's: the first attempt's create is refused.
    const squatter = await adminCore().createNamespacedSecret({ namespace, body: { metadata: { name: tokenAnchorName(p.baseName, 1) }, type: 'Opaque' } });

    const { failures, generation } = await rotateUntilSuccess(job, kube);

    const taken = tokenAnchorName(p.baseName, 1);
    expect(failures).toEqual([`create Secret ${namespace}/${taken} failed (409 AlreadyExists): secrets "${taken}" already exists`]);
    expect(generation).toBe(2);
    expect(await anchorsInCluster(p)).toEqual([tokenAnchorName(p.baseName, 2)]);
    expect(job.created.filter((o) => o.kind === 'secrets').map((o) => o.name)).toEqual([tokenAnchorName(p.baseName, 2)]);
    // The squatter is not the job's: left as it was.
    const after = await adminCore().readNamespacedSecret({ namespace, name: tokenAnchorName(p.baseName, 1) });
    expect(after.metadata!.uid).toBe(squatter.metadata!.uid);
    // The rotated token works; the first one was revoked with its anchor.
    expect(await statusOf(selfReview(kubeconfigToken(job.files))())).toBe(200);
    expect(await statusEventually(selfReview(job.firstToken), 401)).toBe(401);
  });

  it('recovers from a TokenRequest whose answer was lost: that attempt deletes its anchor (revoking the token it got), the next succeeds', async () => {
    const job = await provisionJob(plan(uniqueName('lost')));
    const p = job.plan;
    const cluster = inject('cluster');
    const proxy: FaultProxy = await startFaultProxy({
      server: cluster.server,
      caFile: cluster.caFile,
      certFile: join(cluster.dir, 'apiserver.crt'),
      keyFile: join(cluster.dir, 'apiserver.key'),
    });
    const proxied = await proxiedDssuser(proxy, 2);
    let loseNext = true;
    // The apiserver issues the token; the client hears of it only after 4 s, past its 2 s timeout.
    proxy.addRule({
      match: (r) => {
        if (!loseNext || r.method !== 'POST' || !r.path.split('?')[0]!.endsWith(`/serviceaccounts/${p.baseName}/token`)) return false;
        loseNext = false;
        return true;
      },
      delayResponseMs: 4000,
    });
    try {
      const { failures, generation } = await rotateUntilSuccess(job, proxied);

      expect(failures).toEqual([`request a token for ServiceAccount ${namespace}/${p.baseName} failed: the request timed out`]);
      expect(generation).toBe(2);
      expect(await anchorsInCluster(p)).toEqual([tokenAnchorName(p.baseName, 2)]);
      expect(job.created.filter((o) => o.kind === 'secrets').map((o) => o.name)).toEqual([tokenAnchorName(p.baseName, 2)]);
      // Two tokens went through the proxy: the lost one (bound to the failed attempt's anchor) and the rotated one.
      expect(proxy.tokens).toHaveLength(2);
      const [lostToken, rotatedToken] = proxy.tokens as [string, string];
      expect(rotatedToken).toBe(kubeconfigToken(job.files));
      expect(await statusOf(selfReview(rotatedToken)())).toBe(200);
      expect(await statusEventually(selfReview(lostToken), 401)).toBe(401);
      expect(await statusEventually(selfReview(job.firstToken), 401)).toBe(401);
    } finally {
      await proxied.close();
      await proxy.close();
    }
  });
});

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
