// Issue 13's red-team replays that needed a controller, for real on the local cluster (kube-controller-manager
// and a node) instead of simulated: the namespace's `default` ServiceAccount made by the serviceaccount
// controller, a `kubernetes.io/service-account-token` Secret filled by the tokens controller, and an ephemeral
// volume claim made by the ephemeral-volume controller from a pod's template. Each shows first what the
// controller really does with what an attacker would ask for, then that the attacker's request is refused.
import type { V1Pod, V1Secret } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { JOB_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../../src/plan/types.ts';
import { uniqueName } from '../support/kube.ts';
import { profileWith } from '../support/profile.ts';
import { adminApi, dssuserApi, executorPod, planFor, provisionJob, REFUSED_BY, tokenApi, type Job, type Outcome } from '../support/redteam.ts';

const cluster = inject('cluster');
const admin = adminApi();
const profile = profileWith({ autoCreateNamespace: true });
const login = uniqueName('ctl');
let attacker: Job;
let victim: Job;

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  for (const deadline = Date.now() + timeoutMs; ; ) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** An executor pod of the job as Spark makes it, from the image the node has (so that it really runs). */
function runnablePod(job: Job, change: (pod: V1Pod) => void = () => {}): V1Pod {
  const pod = executorPod(job);
  const container = pod.spec!.containers[0]!;
  container.image = cluster.node!.executorImage;
  container.imagePullPolicy = 'Never';
  container.args = ['sleep', '600'];
  container.resources = { requests: { cpu: '10m', memory: '64Mi' } };
  change(pod);
  return pod;
}

function expectRefusedByIsolationPolicy(outcome: Outcome) {
  expect(outcome.status, outcome.message).toBe(403);
  expect(outcome.message).toMatch(REFUSED_BY.isolationPolicy);
}

async function deletePod(namespace: string, name: string) {
  await admin.send('DELETE', `/api/v1/namespaces/${namespace}/pods/${name}?gracePeriodSeconds=0`);
}

beforeAll(async () => {
  if (!cluster.node) throw new Error("these tests need the local cluster's node and controller-manager (scripts/cluster.sh up without --no-node)");
  // Two jobs of one user in the per-user namespace the tool creates.
  attacker = await provisionJob(profile, login);
  victim = await provisionJob(profile, login);
});

afterAll(async () => {
  if (attacker) await admin.delete('namespaces', undefined, attacker.namespace, { dryRun: false });
});

describe("a pod as the namespace's default ServiceAccount", () => {
  it('the controller made the account, with a token it would mount; a job token may not use it', async () => {
    // Made by kube-controller-manager's serviceaccount controller as soon as the tool created the namespace.
    const account = await until('the default ServiceAccount', 30_000, async () => {
      const got = await admin.get('serviceaccounts', attacker.namespace, 'default');
      return got.status === 200 ? got.body : undefined;
    });
    expect((account.metadata as { name: string }).name).toBe('default');
    // The root CA for mounted tokens is there too: a pod of that account would get a working token.
    expect((await admin.get('configmaps', attacker.namespace, 'kube-root-ca.crt')).status).toBe(200);

    const named = runnablePod(attacker, (pod) => {
      pod.spec!.serviceAccountName = 'default';
      pod.spec!.automountServiceAccountToken = true;
    });
    // Without a name, the ServiceAccount admission plugin fills in `default`.
    const unnamed = runnablePod(attacker, (pod) => {
      delete pod.spec!.serviceAccountName;
      delete pod.spec!.automountServiceAccountToken;
    });
    expectRefusedByIsolationPolicy(await attacker.api.create('pods', attacker.namespace, named, { dryRun: false }));
    expectRefusedByIsolationPolicy(await attacker.api.create('pods', attacker.namespace, unnamed, { dryRun: false }));
  });

  it('an administrator may run one, and the kubelet mounts the default token in it (what the refusal prevents)', async () => {
    const pod = runnablePod(attacker, (p) => {
      p.metadata!.name = uniqueName('as-default');
      p.metadata!.labels = {};
      p.spec!.serviceAccountName = 'default';
      p.spec!.automountServiceAccountToken = true;
    });
    const created = await admin.create('pods', attacker.namespace, pod, { dryRun: false });
    expect(created.status, created.message).toBe(201);
    try {
      const running = await until('the pod Running', 60_000, async () => {
        const got = await admin.get('pods', attacker.namespace, pod.metadata!.name!);
        return (got.body.status as { phase?: string })?.phase === 'Running' ? (got.body as V1Pod) : undefined;
      });
      const mounted = running.spec!.volumes!.find((v) => v.projected?.sources?.some((s) => s.serviceAccountToken));
      expect(mounted, JSON.stringify(running.spec!.volumes)).toBeDefined();
    } finally {
      await deletePod(attacker.namespace, pod.metadata!.name!);
    }
  });
});

describe('a kubernetes.io/service-account-token Secret', () => {
  /** The next job's anchor Secret turned into a legacy token request for the victim job's executor account. */
  function legacyTokenSecret(name: string): V1Secret {
    const planned = planFor(profile, login);
    const secret = structuredClone(planned.tokenAnchor);
    secret.metadata!.name = name;
    secret.type = 'kubernetes.io/service-account-token';
    secret.metadata!.annotations = { 'kubernetes.io/service-account.name': victim.executorAccount };
    delete secret.immutable;
    return secret;
  }

  it('is filled by the tokens controller with a never-expiring token that authenticates as the account', async () => {
    const name = uniqueName('legacy');
    const created = await admin.create('secrets', attacker.namespace, legacyTokenSecret(name), { dryRun: false });
    expect(created.status, created.message).toBe(201);
    try {
      const token = await until('the token filled in', 30_000, async () => {
        const data = (await admin.get('secrets', attacker.namespace, name)).body.data as Record<string, string> | undefined;
        return data?.token ? Buffer.from(data.token, 'base64').toString() : undefined;
      });
      const review = await tokenApi(token).create('selfsubjectreviews', undefined, { spec: {} }, { dryRun: false });
      expect(review.status, review.message).toBe(201);
      expect((review.body.status as { userInfo: { username: string } }).userInfo.username).toBe(
        `system:serviceaccount:${attacker.namespace}:${victim.executorAccount}`,
      );
    } finally {
      await admin.delete('secrets', attacker.namespace, name, { dryRun: false });
    }
  });

  it('cannot be created by dssuser', async () => {
    const outcome = await dssuserApi().create('secrets', attacker.namespace, legacyTokenSecret(uniqueName('legacy')), { dryRun: false });
    expect(outcome.status, outcome.message).toBe(403);
    expect(outcome.message).toMatch(REFUSED_BY.dssuserPolicy);
  });
});

describe("an ephemeral volume claim made by the controller from a job pod's template", () => {
  /** A job pod whose ephemeral claim template carries the tool's labels of the victim job. */
  function forgingPod(name: string): V1Pod {
    return runnablePod(attacker, (pod) => {
      pod.metadata!.name = name;
      pod.spec!.volumes!.push({
        name: 'scratch',
        ephemeral: {
          volumeClaimTemplate: {
            metadata: { labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [JOB_LABEL]: victim.labels[JOB_LABEL]! } },
            spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
          },
        },
      });
    });
  }

  it("copies the template's labels into the claim it makes (an administrator's pod, not subject to the policy)", async () => {
    const name = uniqueName('forger');
    const pod = forgingPod(name);
    pod.metadata!.labels = {};
    const created = await admin.create('pods', attacker.namespace, pod, { dryRun: false });
    expect(created.status, created.message).toBe(201);
    try {
      const claim = await until('the controller-made claim', 30_000, async () => {
        const got = await admin.get('persistentvolumeclaims', attacker.namespace, `${name}-scratch`);
        return got.status === 200 ? got.body : undefined;
      });
      expect((claim.metadata as { labels: Record<string, string> }).labels).toMatchObject({
        [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
        [JOB_LABEL]: victim.labels[JOB_LABEL],
      });
    } finally {
      await deletePod(attacker.namespace, name);
    }
  });

  it('is refused at the pod when a job token asks for it, and no claim is made', async () => {
    const name = uniqueName('forger');
    expectRefusedByIsolationPolicy(await attacker.api.create('pods', attacker.namespace, forgingPod(name), { dryRun: false }));
    await new Promise((r) => setTimeout(r, 2000)); // the controller would have acted by now
    expect((await admin.get('persistentvolumeclaims', attacker.namespace, `${name}-scratch`)).status).toBe(404);
  });
});
