// Isolation of two jobs sharing one team namespace, on the real control plane: the job objects are made by the
// restricted dssuser identity exactly as `run` plans them; job A's token then attacks job B. The job-isolation
// policy is part of both manifests of deploy/rbac (the global set-up applies it): each attack is denied 403 by
// the policy, and what job A does with its own objects, and a real Spark driver, still work.
import { CoreV1Api, PatchStrategy, RbacAuthorizationV1Api, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { isolationEnforced } from '../../src/apply/isolation-check.ts';
import { policyCommand } from '../../src/commands/policy.ts';
import type { Profile } from '../../src/config/types.ts';
import { profileWith } from '../support/profile.ts';
import { Kube } from '../../src/k8s/client.ts';
import { provision } from '../../src/apply/provision.ts';
import { buildNamespace } from '../../src/plan/objects.ts';
import { planJob, POD_TEMPLATE_PLACEHOLDER } from '../../src/plan/plan.ts';
import { ATTRIBUTION_POLICY_NAME } from '../../src/plan/attribution-policy.ts';
import { ISOLATION_POLICY_NAME, OWNER_LABEL } from '../../src/plan/policy.ts';
import { JOB_LABEL, USER_LABEL } from '../../src/plan/types.ts';
import type { JobPlan } from '../../src/plan/types.ts';
import { jobObjects, runCli, uniqueJobId, writeConfig } from '../support/cli.ts';
import { applyManifest, EXTRA_IDENTITY_NAMESPACE_PREFIX, writeTokenKubeconfig } from '../support/cluster.ts';
import { adminCore, createManagedNamespace, dssuserKube, tokenKube, tokenKubeConfig, uniqueName } from '../support/kube.ts';

const teamNamespace = uniqueName('dss-team');

const profile: Profile = profileWith({ name: 'team', source: 'isolation.test.ts', targetNamespace: '${adminProperty:k8sNS}' });

interface Job {
  plan: JobPlan;
  token: string;
  /** The job's labels as every object it creates should carry them (OWNER_LABEL included). */
  labels: Record<string, string>;
  core: CoreV1Api;
  kube: Kube;
}

/** Provisions a job as dssuser, as `run` does, and returns clients that use the job's own token. */
async function startJob(
  login: string,
  cluster: { apiServer: string; caCertFile?: string } = { apiServer: 'https://unused' },
  namespace = teamNamespace,
): Promise<Job> {
  const plan = planJob(
    profile,
    {
      jobId: uniqueName('j').replace('-', ''),
      login,
      uid: 1000,
      adminProperties: { k8sNS: namespace },
      host: 'test',
      pid: process.pid,
      processStart: new Date().toISOString(),
      now: new Date(),
    },
    { ...cluster, callerArgs: [] },
  );
  const dssuser = dssuserKube();
  const { token } = await provision(dssuser, plan, []);
  await dssuser.close();
  const kc = tokenKubeConfig(token);
  return { plan, token, labels: { ...plan.labels, [OWNER_LABEL]: plan.baseName }, core: kc.makeApiClient(CoreV1Api), kube: tokenKube(token) };
}

const sparkApp = `
import sys, time
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
time.sleep(6)  # the allocator creates the executor pods meanwhile
spark.stop()
`;

/** Runs pyspark's spark-submit (client mode) with the job's kubeconfig and the arguments `run` plans. */
async function sparkSubmit(job: Job, extra: string[]): Promise<{ code: number | null; output: string }> {
  const dir = mkdtempSync('/tmp/dss-spark-k8s-isolation-');
  const kubeconfig = tokenKubeConfig(job.token, job.plan.namespace);
  writeFileSync(join(dir, 'kubeconfig'), kubeconfig.exportConfig(), { mode: 0o600 });
  writeFileSync(join(dir, 'app.py'), sparkApp);
  writeFileSync(join(dir, 'executor-pod.json'), JSON.stringify(job.plan.executorPodTemplate));
  const submit = execFileSync('bash', [join(import.meta.dirname, '../../scripts/install-pyspark.sh')], { encoding: 'utf8' }).trim();
  const args = [
    ...job.plan.sparkSubmitArgs.map((arg) => arg.replace(POD_TEMPLATE_PLACEHOLDER, join(dir, 'executor-pod.json'))),
    ...['--conf', 'spark.kubernetes.container.image=spark:4.3.0', '--conf', 'spark.scheduler.minRegisteredResourcesRatio=0'],
    ...extra,
    join(dir, 'app.py'),
  ];
  const child = spawn(submit, args, {
    // The virtual environment's python: <venv>/bin/spark-submit or <venv>/lib/python3.x/site-packages/pyspark/bin/spark-submit.
    env: {
      PATH: process.env.PATH!,
      HOME: dir,
      KUBECONFIG: join(dir, 'kubeconfig'),
      PYSPARK_PYTHON: submit.replace(/(\/lib\/python[^/]+\/site-packages\/pyspark)?\/bin\/spark-submit$/, '/bin/python'),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  rmSync(dir, { recursive: true, force: true });
  return { code, output };
}

let podCount = 0;
/** An executor pod of `job` as Spark makes it from the managed template, with `changes` applied. */
function executorPod(job: Job, changes: { labels?: Record<string, string>; name?: string; spec?: Partial<V1Pod['spec']> } = {}): V1Pod {
  const template = job.plan.executorPodTemplate;
  return {
    metadata: { name: changes.name ?? `${job.plan.baseName}-exec-${++podCount}`, labels: changes.labels ?? job.labels },
    spec: {
      ...template.spec!,
      serviceAccountName: job.plan.executorServiceAccount.metadata!.name,
      containers: [{ ...template.spec!.containers[0]!, image: 'spark:4.3.0' }],
      ...changes.spec,
    },
  };
}

/** The HTTP status of a request and the server's message. */
async function outcome(request: Promise<unknown>): Promise<{ status: number; message: string }> {
  try {
    await request;
    return { status: 200, message: '' };
  } catch (error) {
    const e = error as { code?: number; body?: string };
    if (typeof e.code !== 'number') throw error;
    return { status: e.code, message: String(JSON.parse(e.body ?? '{}').message ?? '') };
  }
}

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** Every attack of job A (the attacker) on job B (the victim) and on the namespace's other accounts. */
function attacks(a: Job, b: Job, victims: { pod: string }) {
  const ns = teamNamespace;
  const create = (pod: V1Pod) => a.core.createNamespacedPod({ namespace: ns, body: pod });
  const secretVolume = { name: 'stolen', secret: { secretName: 'team-secret' } };
  const tokenVolume = { name: 'token', projected: { sources: [{ serviceAccountToken: { path: 'token', expirationSeconds: 3600 } }] } };
  return {
    "pod as B's job account": () => create(executorPod(a, { spec: { serviceAccountName: b.plan.baseName } })),
    "pod as B's executor account": () => create(executorPod(a, { spec: { serviceAccountName: b.plan.executorServiceAccount.metadata!.name } })),
    "pod as the namespace's other account": () => create(executorPod(a, { spec: { serviceAccountName: 'team-runner' } })),
    'pod with a projected service-account token': () => create(executorPod(a, { spec: { volumes: [tokenVolume] } })),
    'pod with the token automounted': () => create(executorPod(a, { spec: { automountServiceAccountToken: true } })),
    'pod with a secret volume': () => create(executorPod(a, { spec: { volumes: [secretVolume] } })),
    'pod reading a secret through env': () =>
      create(
        executorPod(a, {
          spec: { containers: [{ name: 'c', image: 'x', env: [{ name: 'S', valueFrom: { secretKeyRef: { name: 'team-secret', key: 'k' } } }] }] },
        }),
      ),
    'pod with a hostPath volume': () => create(executorPod(a, { spec: { volumes: [{ name: 'node', hostPath: { path: '/var/lib/kubelet/pods' } }] } })),
    "pod mounting B's claim": () =>
      create(executorPod(a, { spec: { volumes: [{ name: 'spill', persistentVolumeClaim: { claimName: `${b.plan.baseName}-exec-1-pvc-0` } }] } })),
    "claim cloned from B's claim": () =>
      a.core.createNamespacedPersistentVolumeClaim({
        namespace: ns,
        body: {
          metadata: { name: uniqueName('clone'), labels: a.labels },
          spec: {
            accessModes: ['ReadWriteOnce'],
            resources: { requests: { storage: '1Gi' } },
            dataSource: { kind: 'PersistentVolumeClaim', name: `${b.plan.baseName}-exec-1-pvc-0` },
          },
        },
      }),
    // Only its job id and user: the attribution policy has nothing to refuse, the isolation policy answers.
    'pod without the owner labels': () => create(executorPod(a, { labels: { [JOB_LABEL]: a.plan.jobId, [USER_LABEL]: a.plan.userSlug } })),
    'unlabelled pod': () => create(executorPod(a, { labels: {} })),
    "pod with B's labels": () => create(executorPod(a, { labels: b.labels })),
    "pod named like B's executors": () => create(executorPod(a, { name: `${b.plan.baseName}-exec-99` })),
    "patch B's pod": () => a.core.patchNamespacedPod({ namespace: ns, name: victims.pod, body: { metadata: { labels: { x: 'y' } } } }, mergePatch),
    "ephemeral claim labelled as B's job": () =>
      create(
        executorPod(a, {
          spec: {
            volumes: [
              {
                name: 'e',
                ephemeral: {
                  volumeClaimTemplate: {
                    metadata: { labels: b.labels },
                    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
                  },
                },
              },
            ],
          },
        }),
      ),
    "ephemeral claim cloned from B's claim": () =>
      create(
        executorPod(a, {
          spec: {
            volumes: [
              {
                name: 'e',
                ephemeral: {
                  volumeClaimTemplate: {
                    spec: {
                      accessModes: ['ReadWriteOnce'],
                      resources: { requests: { storage: '1Gi' } },
                      dataSource: { kind: 'PersistentVolumeClaim', name: `${b.plan.baseName}-exec-1-pvc-0` },
                    },
                  },
                },
              },
            ],
          },
        }),
      ),
    // Deletes last: the patch above needs the object.
    "delete B's pod": () => a.core.deleteNamespacedPod({ namespace: ns, name: victims.pod }),
  };
}

/**
 * A dssuser identity with deploy/rbac/team-namespaces.yaml applied in each of `namespaces` and nothing else: a
 * ServiceAccount (made by the admin) put in place of "dssuser", with a kubeconfig the dssuser Unix account reads.
 */
async function teamIdentity(namespaces: string[]): Promise<{ name: string; kubeconfig: string; kube: Kube; core: CoreV1Api; rbac: RbacAuthorizationV1Api }> {
  const cluster = inject('cluster');
  const unix = inject('unix');
  const core = adminCore();
  const home = uniqueName(EXTRA_IDENTITY_NAMESPACE_PREFIX.slice(0, -1));
  const account = uniqueName('team-dssuser');
  await core.createNamespace({ body: { metadata: { name: home } } });
  await core.createNamespacedServiceAccount({ namespace: home, body: { metadata: { name: account } } });
  const name = `system:serviceaccount:${home}:${account}`;
  for (const namespace of namespaces) {
    applyManifest(cluster.kubectl, cluster.adminKubeconfig, join(import.meta.dirname, '../../deploy/rbac/team-namespaces.yaml'), name, namespace, {
      namespacedOnly: true,
    });
  }
  const { status } = await core.createNamespacedServiceAccountToken({
    name: account,
    namespace: home,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const staged = join(mkdtempSync('/tmp/dss-spark-k8s-identity-'), 'kubeconfig');
  writeFileSync(staged, tokenKubeConfig(status!.token!).exportConfig(), { mode: 0o600 });
  const kubeconfig = join(unix.dssuser.home, `${account}.kubeconfig`);
  writeTokenKubeconfig(staged, kubeconfig, unix.dssuser);
  rmSync(dirname(staged), { recursive: true });
  const asIdentity = tokenKubeConfig(status!.token!);
  return {
    name,
    kubeconfig,
    kube: Kube.load({ kubeconfig, timeoutSeconds: 30 }),
    core: asIdentity.makeApiClient(CoreV1Api),
    rbac: asIdentity.makeApiClient(RbacAuthorizationV1Api),
  };
}

describe("run in a team namespace with only the team manifest's rights", () => {
  const team = uniqueName('dss-team');
  const otherTeam = uniqueName('dss-team');
  const alice = inject('unix').endUsers[0]!;
  let identity: Awaited<ReturnType<typeof teamIdentity>>;
  let config: { path: string };

  beforeAll(async () => {
    await Promise.all([createManagedNamespace(team), createManagedNamespace(otherTeam)]);
    identity = await teamIdentity([team]);
    config = writeConfig({
      targetNamespace: '${adminProperty:k8sNS}',
      autoCreateNamespace: false,
      allowedNamespaces: '^dss-team-',
      kubeconfig: identity.kubeconfig,
    });
  });
  afterAll(() => identity?.kube.close());

  it('has no cluster-scoped right and no right outside its team namespace', async () => {
    const can = (verb: string, resource: string, namespace?: string) => identity.kube.canI({ verb, resource, namespace });
    expect(await can('get', 'namespaces')).toBe(false);
    expect(await can('create', 'namespaces')).toBe(false);
    expect(await can('list', 'pods')).toBe(false); // cluster-wide
    expect(await can('create', 'serviceaccounts', otherTeam)).toBe(false);
    expect(await can('create', 'serviceaccounts', team)).toBe(true);
    expect(await can('get', 'secrets', team)).toBe(false);
  });

  it("may create and delete only the tool's empty token-anchor Secrets, never the team's", async () => {
    const core = identity.core;
    const labels = { 'app.kubernetes.io/managed-by': 'dss-spark-k8s' };
    // The manifest's admission policy takes effect a moment after it is applied.
    const plant = (dryRun?: string) =>
      outcome(core.createNamespacedSecret({ namespace: team, dryRun, body: { metadata: { name: uniqueName('x'), labels }, stringData: { k: 'v' } } }));
    for (const deadline = Date.now() + 30_000; (await plant('All')).status !== 403 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 200));
    const teamSecret = await adminCore().createNamespacedSecret({ namespace: team, body: { metadata: { name: uniqueName('team') }, stringData: { k: 'v' } } });
    const planted = await plant();
    const deleted = await outcome(core.deleteNamespacedSecret({ namespace: team, name: teamSecret.metadata!.name! }));
    expect([planted.status, deleted.status]).toEqual([403, 403]);
    expect(planted.message).toContain("ValidatingAdmissionPolicy 'dss-spark-k8s-dssuser-scope'");
    const anchorLabels = { ...labels, [OWNER_LABEL]: 'dss-spark-x-y' };
    const anchor = await core.createNamespacedSecret({
      namespace: team,
      body: { metadata: { name: 'dss-spark-x-y-t1', labels: anchorLabels }, type: 'Opaque', immutable: true },
    });
    await core.deleteNamespacedSecret({ namespace: team, name: anchor.metadata!.name! });
  });

  it('may bind only the driver ClusterRole, only to ServiceAccounts of the team namespace', async () => {
    const binding = (roleName: string, subject: { kind: string; name: string; namespace?: string }, dryRun?: string) =>
      outcome(
        identity.rbac.createNamespacedRoleBinding({
          namespace: team,
          dryRun,
          body: {
            metadata: { name: uniqueName('rb') },
            roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: roleName },
            subjects: [subject],
          },
        }),
      );
    const mallory = { kind: 'User', name: 'mallory' };
    // The manifest's admission policy takes effect a moment after it is applied.
    for (const deadline = Date.now() + 30_000; (await binding('dss-spark-k8s-driver', mallory, 'All')).status !== 403 && Date.now() < deadline; )
      await new Promise((r) => setTimeout(r, 200));
    const toUser = await binding('dss-spark-k8s-driver', mallory);
    expect(toUser.status).toBe(403);
    expect(toUser.message).toContain("ValidatingAdmissionPolicy 'dss-spark-k8s-dssuser-scope'");
    expect((await binding('dss-spark-k8s-driver', { kind: 'ServiceAccount', name: 'default', namespace: otherTeam })).status).toBe(403);
    expect((await binding('edit', { kind: 'ServiceAccount', name: 'job', namespace: team })).status).toBe(403); // RBAC: no bind on it
    // Allowed only as the tool makes it: named, labelled and bound to the job account of the same name.
    const own = await outcome(
      identity.rbac.createNamespacedRoleBinding({
        namespace: team,
        dryRun: 'All',
        body: {
          metadata: { name: 'dss-spark-x-y', labels: { 'app.kubernetes.io/managed-by': 'dss-spark-k8s', [OWNER_LABEL]: 'dss-spark-x-y' } },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'dss-spark-k8s-driver' },
          subjects: [{ kind: 'ServiceAccount', name: 'dss-spark-x-y', namespace: team }],
        },
      }),
    );
    expect(own.status).toBe(200);
    expect((await binding('dss-spark-k8s-driver', { kind: 'ServiceAccount', name: 'job', namespace: team }, 'All')).status).toBe(403);
  });

  it('runs the whole job flow in the team namespace and leaves nothing', async () => {
    const jobId = uniqueJobId();
    const result = await runCli([
      'run',
      '--user',
      alice.name,
      '--config',
      config.path,
      '--job-id',
      jobId,
      '--admin-property',
      `k8sNS=${team}`,
      '--',
      'app',
      'probe',
    ]);
    expect(result.exitCode, result.stderr).toBe(0);
    const probe = JSON.parse(result.stdout.split('\n').find((line) => line.includes('"event":"probe"'))!);
    expect(probe).toMatchObject({
      username: expect.stringMatching(new RegExp(`^system:serviceaccount:${team}:dss-spark-`)),
      createPod: 200,
      listSecrets: 403,
      createNamespace: 403,
    });
    expect(await jobObjects(jobId)).toEqual([]);
  });

  it('refuses a property pointing at kube-system before creating anything', async () => {
    const jobId = uniqueJobId();
    const result = await runCli([
      'run',
      '--user',
      alice.name,
      '--config',
      config.path,
      '--job-id',
      jobId,
      '--admin-property',
      'k8sNS=kube-system',
      '--',
      'app',
    ]);
    expect(result.exitCode).toBe(65);
    expect(result.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^dss-spark-k8s: namespace "kube-system" .* is a system namespace/)]);
    expect(await jobObjects(jobId)).toEqual([]);
  });

  it("fails with one line, leaving nothing, when the property points at another team's namespace", async () => {
    const jobId = uniqueJobId();
    const result = await runCli([
      'run',
      '--user',
      alice.name,
      '--config',
      config.path,
      '--job-id',
      jobId,
      '--admin-property',
      `k8sNS=${otherTeam}`,
      '--',
      'app',
    ]);
    expect(result.exitCode).toBe(69);
    expect(result.stderr).toMatch(/\(403 Forbidden\)/);
    expect(
      result.stderr
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('dss-spark-k8s: ')),
    ).toHaveLength(1);
    expect(await jobObjects(jobId)).toEqual([]);
  });
});

describe('isolation of jobs sharing a team namespace', () => {
  let a: Job;
  let b: Job;
  const adminKubeconfig = inject('cluster').adminKubeconfig;

  beforeAll(async () => {
    await createManagedNamespace(teamNamespace);
    const admin = adminCore();
    await admin.createNamespacedServiceAccount({ namespace: teamNamespace, body: { metadata: { name: 'team-runner' } } });
    await admin.createNamespacedSecret({ namespace: teamNamespace, body: { metadata: { name: 'team-secret' }, stringData: { k: 'v' } } });
    [a, b] = await Promise.all([startJob('alice'), startJob('bob')]);
  });

  afterAll(async () => {
    await Promise.all([a?.kube.close(), b?.kube.close()]);
  });

  /** An object of B (made with B's token), for A to attack. */
  async function victims() {
    const pod = await b.core.createNamespacedPod({ namespace: teamNamespace, body: executorPod(b) });
    return { pod: pod.metadata!.name! };
  }

  it('is installed by the manifest, and policy apply and show agree with it', async () => {
    expect(await isolationEnforced(a.kube, a.plan.namespace, a.plan.executorServiceAccount.metadata!.name!, a.plan)).toBe(true);
    const io = { out: '', err: '' };
    const sink = { stdout: (t: string) => (io.out += t), stderr: (t: string) => (io.err += t) };
    expect(await policyCommand('apply', { kubeconfig: adminKubeconfig, output: 'yaml' }, sink)).toBe(0);
    expect(io.err).toMatch(/policy dss-spark-k8s-job-isolation and its binding were (created|updated|unchanged)/);
    expect(io.err).toMatch(/policy dss-spark-k8s-job-attribution and its binding were (created|updated|unchanged)/);
    io.err = '';
    expect(await policyCommand('apply', { kubeconfig: adminKubeconfig, output: 'yaml' }, sink)).toBe(0);
    expect(io.err).toContain('were unchanged');
    io.err = '';
    expect(await policyCommand('show', { kubeconfig: adminKubeconfig, output: 'json' }, sink)).toBe(0);
    expect(JSON.parse(io.out).items.map((i: { kind: string; metadata: { name: string } }) => `${i.kind} ${i.metadata.name}`)).toEqual([
      'ValidatingAdmissionPolicy dss-spark-k8s-job-isolation',
      'ValidatingAdmissionPolicyBinding dss-spark-k8s-job-isolation',
      'ValidatingAdmissionPolicy dss-spark-k8s-job-attribution',
      'ValidatingAdmissionPolicyBinding dss-spark-k8s-job-attribution',
    ]);
    expect(io.err).toBe(
      'dss-spark-k8s: policy dss-spark-k8s-job-isolation is installed and matches the one printed\n' +
        'dss-spark-k8s: policy dss-spark-k8s-job-attribution is installed and matches the one printed\n',
    );
  });

  it('denies each attack of job A on job B with 403, by the policy', async () => {
    const results: Record<string, { status: number; message: string }> = {};
    for (const [name, attack] of Object.entries(attacks(a, b, await victims()))) results[name] = await outcome(attack());
    for (const [name, result] of Object.entries(results)) {
      expect({ name, status: result.status }).toEqual({ name, status: 403 });
      // The two job policies judge the same requests; where both refuse, either may answer.
      expect(result.message, name).toMatch(new RegExp(`ValidatingAdmissionPolicy '(${ISOLATION_POLICY_NAME}|${ATTRIBUTION_POLICY_NAME})'`));
    }
    expect(results['pod without the owner labels']!.message).toContain(`ValidatingAdmissionPolicy '${ISOLATION_POLICY_NAME}'`);
    expect(results["pod as B's executor account"]!.message).toContain(`must run as the service account ${a.plan.baseName}-exec`);
    expect(results['pod without the owner labels']!.message).toContain(
      `must carry the labels ${OWNER_LABEL}=${a.plan.baseName} and app.kubernetes.io/managed-by=dss-spark-k8s`,
    );
  });

  it('lets job A do everything Spark needs with its own objects', async () => {
    const ns = teamNamespace;
    const pod = await a.core.createNamespacedPod({ namespace: ns, body: executorPod(a) });
    await a.core.patchNamespacedPod({ namespace: ns, name: pod.metadata!.name!, body: { metadata: { labels: { 'spark-exec-id': '1' } } } }, mergePatch);
    await a.core.deleteNamespacedPod({ namespace: ns, name: pod.metadata!.name! });
    // A pod with its own on-demand claim, a config map volume and an emptyDir, as Spark may mount them.
    await a.core.createNamespacedPod({
      namespace: ns,
      body: executorPod(a, {
        spec: {
          volumes: [
            { name: 'own', persistentVolumeClaim: { claimName: `${a.plan.baseName}-exec-1-pvc-0` } },
            { name: 'conf', configMap: { name: 'spark-conf' } },
            { name: 'spark-local-dir-1', emptyDir: {} },
          ],
        },
      }),
    });
  });

  it("deletecollection is admitted object by object: it deletes job A's pods and is denied on job B's", async () => {
    const ns = teamNamespace;
    const mine = await a.core.createNamespacedPod({ namespace: ns, body: executorPod(a, { labels: { ...a.labels, batch: 'x' } }) });
    await a.core.deleteCollectionNamespacedPod({ namespace: ns, labelSelector: `${OWNER_LABEL}=${a.plan.baseName},batch=x`, gracePeriodSeconds: 0 });
    expect((await outcome(adminCore().readNamespacedPod({ namespace: ns, name: mine.metadata!.name! }))).status).toBe(404);

    const theirs = await b.core.createNamespacedPod({ namespace: ns, body: executorPod(b, { labels: { ...b.labels, batch: 'y' } }) });
    const denied = await outcome(a.core.deleteCollectionNamespacedPod({ namespace: ns, labelSelector: 'batch=y' }));
    expect(denied.status).toBe(403);
    expect(denied.message).toContain(ISOLATION_POLICY_NAME);
    expect((await outcome(adminCore().readNamespacedPod({ namespace: ns, name: theirs.metadata!.name! }))).status).toBe(200);
  });

  it('lets a real Spark 4 driver run with the job token, its executor pods admitted under Pod Security restricted (finding 4)', async () => {
    // A namespace as the tool creates it by default: enforce restricted.
    const restrictedNamespace = uniqueName('dss-team-restricted');
    await adminCore().createNamespace({ body: buildNamespace(restrictedNamespace, profileWith({})) });
    expect((await adminCore().readNamespace({ name: restrictedNamespace })).metadata!.labels!['pod-security.kubernetes.io/enforce']).toBe('restricted');
    const job = await startJob('carol', { apiServer: inject('cluster').server, caCertFile: inject('cluster').caFile }, restrictedNamespace);

    // Spark's executor ConfigMap would need a right jobs do not have: the tool turns it off (a managed conf).
    expect(job.plan.sparkSubmitArgs).toContain('spark.kubernetes.executor.disableConfigMap=true');

    // The driver creates its executor pods (their image is not on the node: they never run) and deletes them at stop.
    const seen = new Set<string>();
    const watch = setInterval(async () => {
      const pods = await adminCore().listNamespacedPod({ namespace: restrictedNamespace, labelSelector: `${OWNER_LABEL}=${job.plan.baseName}` });
      for (const pod of pods.items) seen.add(`${pod.metadata!.name} ${pod.spec!.serviceAccountName} ${pod.spec!.securityContext?.runAsNonRoot}`);
    }, 200);
    const result = await sparkSubmit(job, ['--conf', 'spark.executor.instances=2']).finally(() => clearInterval(watch));
    expect(result.code, result.output).toBe(0);
    expect(result.output).not.toContain('Forbidden');
    expect(result.output).not.toContain('violates PodSecurity');
    expect([...seen].sort()).toEqual([1, 2].map((n) => `${job.plan.baseName}-exec-${n} ${job.plan.baseName}-exec true`));
    const left = await adminCore().listNamespacedPod({ namespace: restrictedNamespace, labelSelector: `${OWNER_LABEL}=${job.plan.baseName}` });
    expect(left.items.map((p) => p.metadata!.name)).toEqual([]);
    await job.kube.close();

    // Without the managed template the same executor pod is refused by Pod Security restricted.
    const bare = { ...executorPod(job, { spec: { securityContext: {}, containers: [{ name: 'spark-kubernetes-executor', image: 'spark:4.3.0' }] } }) };
    const refused = await outcome(job.core.createNamespacedPod({ namespace: restrictedNamespace, body: bare }));
    expect(refused.status).toBe(403);
    expect(refused.message).toContain('violates PodSecurity "restricted:latest"');
  });

  it('leaves dssuser (not a job account) free to tear down any job object', async () => {
    const dssuser = dssuserKube();
    const victim = await b.core.createNamespacedPod({ namespace: teamNamespace, body: executorPod(b) });
    await dssuser.deleteNamespaced('pods', teamNamespace, victim.metadata!.name!);
    await dssuser.close();
    expect((await outcome(adminCore().readNamespacedPod({ namespace: teamNamespace, name: victim.metadata!.name! }))).status).toBe(404);
  });

  it("does not stop reads: job A still lists job B's pods (not admission-controlled)", async () => {
    const pods = await a.core.listNamespacedPod({ namespace: teamNamespace, labelSelector: `${OWNER_LABEL}=${b.plan.baseName}` });
    expect(pods.items.length).toBeGreaterThan(0);
  });
});
