// Issue 13, findings 1 and 14, replayed on the real control plane through the real CLI as dssuser.
//
// Finding 1: in a team namespace under the isolation policy, a hostile job cannot label a claim as the tool's
// itself, but the ephemeral-volume controller (not a job account: the policy does not match it) creates
// whatever claim a pod's volumeClaimTemplate describes. There is no kube-controller-manager here, so the
// admin creates those claims, as the controller would: managed-by and a live victim's job id with no owner or
// a made-up one, a pod of a made-up owner, and a claim with the victim's own owner label. `cleanup --orphans
// --yes` must then delete only the really orphaned neighbour: the victim (a real `run`, its driver still
// running) keeps its accounts, RoleBinding, Lease and token anchor, and its token keeps working.
//
// Finding 14: a namespace whose lists fail (here: one where dssuser's team-namespace Role is not installed)
// is reported and left alone; the other namespaces are cleaned all the same; the exit code is 69.
import { chownSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoordinationV1Api, CoreV1Api, loadAllYaml, RbacAuthorizationV1Api, type V1ObjectMeta, type V1Role } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Profile } from '../../src/config/types.ts';
import { thisProcess } from '../../src/exec/process-identity.ts';
import { boundTokenRequest, tokenAnchorName } from '../../src/plan/objects.ts';
import { planJob } from '../../src/plan/plan.ts';
import { JOB_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_LABEL, USER_LABEL, type JobPlan } from '../../src/plan/types.ts';
import { dssuserDir, runCli, startCli, uniqueJobId, writeConfig, type RunningCli } from '../support/cli.ts';
import { writeTokenKubeconfig } from '../support/cluster.ts';
import { adminCore, adminKubeConfig, createManagedNamespace, dssuserKube, statusEventually, tokenKube, tokenKubeConfig, uniqueName } from '../support/kube.ts';
import { profileWith } from '../support/profile.ts';

const MINUTE = 60_000;
const ISOLATION_POLICY = 'dss-spark-k8s-job-isolation';

function plan(jobId: string, login: string, namespace: string, startedAgoMs: number, overrides: Partial<Profile> = {}): JobPlan {
  return planJob(
    profileWith({ targetNamespace: namespace, sparkSubmit: '/bin/true', ...overrides }),
    { jobId, login, uid: 1001, adminProperties: {}, ...thisProcess(), now: new Date(Date.now() - startedAgoMs) },
    { apiServer: 'https://127.0.0.1:6443', callerArgs: [] },
  );
}

/** A job provisioned as `run` does it, as dssuser: accounts, RoleBinding, anchor, Lease; and its token. */
async function provision(p: JobPlan): Promise<string> {
  const kube = dssuserKube();
  try {
    await kube.createServiceAccount(p.serviceAccount);
    await kube.createServiceAccount(p.executorServiceAccount);
    await kube.createRoleBinding(p.roleBinding);
    const anchor = await kube.createSecret(p.tokenAnchor);
    await kube.createLease(p.lease);
    return (await kube.requestToken(p.namespace, p.baseName, boundTokenRequest(p.tokenRequest, { name: anchor.metadata!.name!, uid: anchor.metadata!.uid! })))
      .token;
  } finally {
    await kube.close();
  }
}

function claim(name: string, labels: Record<string, string>) {
  return { metadata: { name, labels }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } };
}

function pod(name: string, labels: Record<string, string>, serviceAccountName: string) {
  return {
    metadata: { name, labels },
    spec: { serviceAccountName, automountServiceAccountToken: false, containers: [{ name: 'executor', image: 'spark:4.0.0' }] },
  };
}

/**
 * Every object of a namespace that cleanup could touch, as admin sees them: "<kind> <name>". An object being
 * deleted is gone: a PVC keeps its pvc-protection finalizer until kube-controller-manager, which this
 * cluster does not run, removes it.
 */
async function everything(namespace: string): Promise<string[]> {
  const kc = adminKubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const names = (kind: string, items: { metadata?: V1ObjectMeta }[]) =>
    items.filter((o) => !o.metadata?.deletionTimestamp).map((o) => `${kind} ${o.metadata!.name}`);
  return [
    ...names('pods', (await core.listNamespacedPod({ namespace })).items),
    ...names('persistentvolumeclaims', (await core.listNamespacedPersistentVolumeClaim({ namespace })).items),
    ...names('serviceaccounts', (await core.listNamespacedServiceAccount({ namespace })).items),
    ...names('secrets', (await core.listNamespacedSecret({ namespace })).items),
    ...names('rolebindings', (await kc.makeApiClient(RbacAuthorizationV1Api).listNamespacedRoleBinding({ namespace })).items),
    ...names('leases', (await kc.makeApiClient(CoordinationV1Api).listNamespacedLease({ namespace })).items),
  ].sort();
}

/** The objects dssuser makes for a job whose base name is `base`. */
function jobObjects(base: string, anchors = [tokenAnchorName(base, 0)]): string[] {
  return [`serviceaccounts ${base}`, `serviceaccounts ${base}-exec`, `rolebindings ${base}`, `leases ${base}`, ...anchors.map((name) => `secrets ${name}`)];
}

interface JsonJob {
  jobId: string;
  user: string | null;
  state: string;
  objects: { kind: string; name: string }[];
  result?: string;
}

describe('cleanup --orphans --yes against forged labels (finding 1)', () => {
  const team = uniqueName('dss-team-forgery');
  const alice = inject('unix').endUsers[0]!;
  const victimId = uniqueJobId('victim');
  let victim: RunningCli;
  let victimBase: string;
  let victimToken: string;
  let attacker: JobPlan;
  let dead: JobPlan;
  let forged: string[];
  let ghostLeftovers: string[];
  let ownedByVictim: string;
  let config: { path: string };

  beforeAll(async () => {
    await createManagedNamespace(team);
    config = writeConfig({ targetNamespace: '${adminProperty:k8sNS}', autoCreateNamespace: false });

    // The victim: a real job, its driver still running.
    const dropDir = dssuserDir('dss-spark-k8s-test-drop-');
    chownSync(dropDir, alice.uid, alice.gid);
    victim = startCli([
      'run',
      '--user',
      alice.name,
      '--config',
      config.path,
      '--job-id',
      victimId,
      '--admin-property',
      `k8sNS=${team}`,
      '--',
      'app',
      'save-token',
      join(dropDir, 'token'),
      'marker',
      'ready',
      'sleep',
      '150',
    ]);
    await victim.waitForEvent('marker');
    const accounts = await adminCore().listNamespacedServiceAccount({ namespace: team, labelSelector: `${JOB_LABEL}=${victimId}` });
    victimBase = accounts.items[0]!.metadata!.labels![OWNER_LABEL]!;
    victimToken = readFileSync(join(dropDir, 'token'), 'utf8');

    // A hostile job and a really orphaned one (its Lease expired 10 minutes ago), sharing the namespace.
    attacker = plan(uniqueJobId('attacker'), 'mallory', team, MINUTE, { leaseRenewSeconds: 600 });
    dead = plan(uniqueJobId('dead'), 'bob', team, 10 * MINUTE, { leaseRenewSeconds: 1 });
    const attackerToken = await provision(attacker);
    await provision(dead);
    const core = adminCore();
    const deadLabels = { ...dead.labels, [OWNER_LABEL]: dead.baseName };
    await core.createNamespacedPod({ namespace: team, body: pod(`${dead.baseName}-exec-1`, deadLabels, `${dead.baseName}-exec`) });
    await core.createNamespacedPersistentVolumeClaim({ namespace: team, body: claim(`${dead.baseName}-exec-1-spark-local`, deadLabels) });

    // With the policy on, the hostile job cannot ask for such a claim itself (the policy takes effect a moment
    // after it is applied).
    const asAttacker = tokenKubeConfig(attackerToken).makeApiClient(CoreV1Api);
    const hostilePod = pod(`${attacker.baseName}-exec-1`, { ...attacker.labels, [OWNER_LABEL]: attacker.baseName }, `${attacker.baseName}-exec`);
    const template = { metadata: { labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [JOB_LABEL]: victimId } }, spec: claim('x', {}).spec };
    const withTemplate = { ...hostilePod, spec: { ...hostilePod.spec, volumes: [{ name: 'spark-local', ephemeral: { volumeClaimTemplate: template } }] } };
    let refusal = '';
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
      refusal = await asAttacker.createNamespacedPod({ namespace: team, body: withTemplate, dryRun: 'All' }).then(
        () => 'admitted',
        (error: { code?: number; body?: string }) => `${error.code} ${error.body}`,
      );
      if (refusal.startsWith('403') && refusal.includes(ISOLATION_POLICY)) break;
    }
    expect(refusal).toMatch(new RegExp(`^403 .*${ISOLATION_POLICY}`));

    // What the ephemeral-volume controller makes for such a pod, made here by the admin.
    const volume = `${attacker.baseName}-exec-1-spark-local`;
    const ghost = plan(uniqueJobId('ghost'), 'alice', team, 0).baseName;
    const victimLabels = { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [JOB_LABEL]: victimId, [USER_LABEL]: 'alice' };
    await core.createNamespacedPersistentVolumeClaim({ namespace: team, body: claim(`${volume}-0`, victimLabels) });
    await core.createNamespacedPersistentVolumeClaim({ namespace: team, body: claim(`${volume}-1`, { ...victimLabels, [OWNER_LABEL]: ghost }) });
    await core.createNamespacedPod({
      namespace: team,
      body: pod(`${attacker.baseName}-exec-2`, { ...victimLabels, [OWNER_LABEL]: ghost }, `${attacker.baseName}-exec`),
    });
    ownedByVictim = `${volume}-2`;
    await core.createNamespacedPersistentVolumeClaim({ namespace: team, body: claim(ownedByVictim, { ...victimLabels, [OWNER_LABEL]: victimBase }) });
    forged = [
      `persistentvolumeclaims ${volume}-0`,
      `persistentvolumeclaims ${volume}-1`,
      `pods ${attacker.baseName}-exec-2`,
      `persistentvolumeclaims ${ownedByVictim}`,
    ];
    // Labelled as the ghost's own (an owner with no account): leftovers, deleted for what they say they are.
    ghostLeftovers = [`persistentvolumeclaims ${volume}-1`, `pods ${attacker.baseName}-exec-2`];
    // Cron runs cleanup long after such objects were made: --older-than 1s stands in for the grace hour.
    await new Promise((r) => setTimeout(r, 1500));
  });

  afterAll(async () => {
    victim?.child.kill('SIGTERM');
    await victim?.result;
    await adminCore().deleteNamespace({ name: team });
  });

  it('deletes the orphaned neighbour only; the live victim keeps its accounts, binding, Lease and anchor, and its token works', async () => {
    const before = await everything(team);
    const victimObjects = jobObjects(victimBase);
    for (const o of [...victimObjects, ...forged, ...jobObjects(attacker.baseName), ...jobObjects(dead.baseName)]) expect(before).toContain(o);

    const result = await runCli(['cleanup', '--orphans', '--yes', '-n', team, '--older-than', '1s', '-o', 'json', '--config', config.path]);

    // Soft: each property is reported on its own, so that a failure shows all the damage.
    const deadObjects = [
      ...jobObjects(dead.baseName),
      `pods ${dead.baseName}-exec-1`,
      `persistentvolumeclaims ${dead.baseName}-exec-1-spark-local`,
      ...ghostLeftovers,
    ];
    expect.soft(await everything(team), 'what is left after cleanup').toEqual(before.filter((o) => !deadObjects.includes(o)));
    // The apiserver caches a token authentication for up to 10 s: the victim's token must work past that.
    const asVictim = tokenKube(victimToken);
    try {
      expect.soft(await statusEventually(() => asVictim.list('pods', team, ''), 401, 12_000), "the victim's token").toBe(200);
    } finally {
      await asVictim.close();
    }

    expect(result.exitCode, result.stderr).toBe(0);
    const jobs = JSON.parse(result.stdout) as JsonJob[];
    expect(jobs.map((j) => [j.jobId, j.state, j.result ?? '-']).sort()).toEqual(
      [
        [dead.jobId, 'orphaned', 'deleted'],
        [victimId, 'live', '-'],
        [attacker.jobId, 'live', '-'],
        // The ghost's leftovers: no job id taken from what its token wrote.
        ['', 'orphaned', 'deleted'],
      ].sort(),
    );
    expect(
      jobs
        .filter((j) => j.jobId !== '')
        .map((j) => [j.jobId, j.user])
        .sort(),
    ).toEqual(
      [
        [dead.jobId, 'bob'],
        [victimId, alice.name],
        [attacker.jobId, 'mallory'],
      ].sort(),
    );
    // The claim with the victim's owner label counts as the victim's; the others belong to no job.
    expect(jobs.find((j) => j.jobId === victimId)!.objects).toContainEqual({ kind: 'persistentvolumeclaims', name: ownedByVictim });
  });

  it('lists the live jobs and no job for the forged objects', async () => {
    const result = await runCli(['cleanup', '--orphans', '-n', team, '--older-than', '1s', '-o', 'json', '--config', config.path]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect((JSON.parse(result.stdout) as JsonJob[]).map((j) => [j.jobId, j.state]).sort()).toEqual(
      [
        [victimId, 'live'],
        [attacker.jobId, 'live'],
      ].sort(),
    );
    const left = await everything(team);
    for (const o of forged.filter((f) => !ghostLeftovers.includes(f))) expect(left).toContain(o);
  });
});

describe('cleanup --orphans --yes with a namespace whose lists fail (finding 14)', () => {
  // dssuser with the rights of deploy/rbac/team-namespaces.yaml: its Role in `open` only, none in `closed`.
  const open = uniqueName('dss-team-open');
  const closed = uniqueName('dss-team-closed');
  const home = uniqueName('dss-identity');
  let inOpen: JobPlan;
  let inClosed: JobPlan;
  let config: { path: string };

  beforeAll(async () => {
    await Promise.all([createManagedNamespace(open), createManagedNamespace(closed)]);
    inOpen = plan(uniqueJobId('open'), 'alice', open, 10 * MINUTE, { leaseRenewSeconds: 1 });
    inClosed = plan(uniqueJobId('closed'), 'alice', closed, 10 * MINUTE, { leaseRenewSeconds: 1 });
    await provision(inOpen);
    await provision(inClosed);

    const core = adminCore();
    const rbac = adminKubeConfig().makeApiClient(RbacAuthorizationV1Api);
    const account = 'team-dssuser';
    await core.createNamespace({ body: { metadata: { name: home } } });
    await core.createNamespacedServiceAccount({ namespace: home, body: { metadata: { name: account } } });
    const manifest = readFileSync(join(import.meta.dirname, '../../deploy/rbac/team-namespaces.yaml'), 'utf8');
    const role = (loadAllYaml(manifest) as V1Role[]).find((d) => d.kind === 'Role' && d.metadata?.name === 'dss-spark-k8s')!;
    await rbac.createNamespacedRole({ namespace: open, body: { ...role, metadata: { name: 'dss-spark-k8s' } } });
    await rbac.createNamespacedRoleBinding({
      namespace: open,
      body: {
        metadata: { name: 'dss-spark-k8s' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'dss-spark-k8s' },
        subjects: [{ kind: 'ServiceAccount', name: account, namespace: home }],
      },
    });
    const { status } = await core.createNamespacedServiceAccountToken({
      name: account,
      namespace: home,
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    });
    const staged = join(dssuserDir('dss-spark-k8s-test-identity-'), 'staged');
    writeFileSync(staged, tokenKubeConfig(status!.token!).exportConfig(), { mode: 0o600 });
    const kubeconfig = join(inject('unix').dssuser.home, `${home}.kubeconfig`);
    writeTokenKubeconfig(staged, kubeconfig, inject('unix').dssuser);
    config = writeConfig({ kubeconfig });
  });

  afterAll(async () => {
    const core = adminCore();
    await Promise.all([open, closed, home].map((name) => core.deleteNamespace({ name })));
  });

  it('reports the namespace it cannot list, leaves it alone, cleans the other and exits 69', async () => {
    const before = { open: await everything(open), closed: await everything(closed) };
    for (const o of jobObjects(inOpen.baseName)) expect(before.open).toContain(o);
    for (const o of jobObjects(inClosed.baseName)) expect(before.closed).toContain(o);

    const result = await runCli(['cleanup', '--orphans', '--yes', '-n', closed, '-n', open, '-o', 'json', '--config', config.path]);
    expect(result.exitCode, result.stderr).toBe(69);
    expect((JSON.parse(result.stdout) as JsonJob[]).map((j) => [j.jobId, j.state, j.result])).toEqual([[inOpen.jobId, 'orphaned', 'deleted']]);
    const lines = result.stderr.trimEnd().split('\n');
    expect(lines).toContainEqual(
      expect.stringMatching(new RegExp(`^dss-spark-k8s: list \\w+ with .* in ${closed} failed \\(403 Forbidden\\): .*; the jobs in ${closed} are left alone$`)),
    );
    expect(lines.at(-1)).toBe(
      `dss-spark-k8s: could not list everything in ${closed} (reasons above); what could not be seen was left alone; run cleanup --orphans again`,
    );

    expect(await everything(open)).toEqual(before.open.filter((o) => !jobObjects(inOpen.baseName).includes(o)));
    expect(await everything(closed)).toEqual(before.closed);
  });
});

describe('cleanup --orphans --yes and what a token made after its job was torn down (red team 2, H1)', () => {
  const ns = uniqueName('dss-team-leftover');
  let config: { path: string };

  beforeAll(async () => {
    await createManagedNamespace(ns);
    config = writeConfig({ targetNamespace: '${adminProperty:k8sNS}', autoCreateNamespace: false });
  });
  afterAll(() => adminCore().deleteNamespace({ name: ns }));

  it('deletes the pods of an owner whose account, binding and Lease are gone, and nothing of a live job', async () => {
    const gone = plan(uniqueJobId('gone'), 'alice', ns, MINUTE, { leaseRenewSeconds: 600 });
    const live = plan(uniqueJobId('live'), 'bob', ns, MINUTE, { leaseRenewSeconds: 600 });
    const goneToken = await provision(gone);
    const liveToken = await provision(live);
    // Each job's token makes a pod, as a driver (or a child that kept the token) would.
    for (const [p, token] of [
      [gone, goneToken],
      [live, liveToken],
    ] as const) {
      const core = tokenKubeConfig(token).makeApiClient(CoreV1Api);
      await core.createNamespacedPod({
        namespace: ns,
        body: {
          metadata: { name: `${p.baseName}-exec-1`, labels: { ...p.labels } },
          spec: { ...p.executorPodTemplate.spec!, containers: [{ ...p.executorPodTemplate.spec!.containers[0]!, image: 'spark:4.0.0' }] },
        },
      });
    }
    // The gone job's teardown took its account, binding, anchor and Lease, but not that pod.
    const dssuser = dssuserKube();
    try {
      for (const kind of ['rolebindings', 'secrets', 'serviceaccounts', 'leases'] as const)
        await dssuser.deleteCollection(kind, ns, `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE},${OWNER_LABEL}=${gone.baseName}`);
    } finally {
      await dssuser.close();
    }
    await new Promise((r) => setTimeout(r, 1500));

    const result = await runCli(['cleanup', '--orphans', '--yes', '-n', ns, '--older-than', '1s', '-o', 'json', '--config', config.path]);
    expect(result.exitCode, result.stderr).toBe(0);
    const jobs = JSON.parse(result.stdout) as JsonJob[];
    expect(jobs.map((j) => [j.jobId, j.state, j.result ?? '-']).sort()).toEqual(
      [
        ['', 'orphaned', 'deleted'],
        [live.jobId, 'live', '-'],
      ].sort(),
    );
    const left = (await everything(ns)).filter((o) => o.startsWith('pods '));
    expect(left).toEqual([`pods ${live.baseName}-exec-1`]);
  });
});
