// `run` end to end as DSS does it: the CLI runs as the dssuser Unix account with the restricted Kubernetes
// identity, and a fake spark-submit runs through the documented sudoers rule as the end user, making real
// API calls with the job's kubeconfig.
//
// The tests run at the same time, each with a config (and so a temp directory) of its own; the server dry run
// comes after them, once the namespace they share exists (with it, the server checks every object, not only the
// namespace).
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuthenticationV1Api } from '@kubernetes/client-node';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { dirEntries, dssuserDir, jobObjects, runCli, startCli, uniqueJobId, writeConfig } from '../support/cli.ts';
import { createIdentity, documentedRules, withoutVerb } from '../support/identities.ts';
import { adminCore, statusEventually, tokenKubeConfig } from '../support/kube.ts';

const unix = inject('unix');
const alice = unix.endUsers[0]!;
const bob = unix.endUsers[1]!;

/** A directory the end user can write a file into and root can read it back from. */
function endUserDropDir(): string {
  const dir = dssuserDir('dss-spark-k8s-test-drop-');
  chownSync(dir, alice.uid, alice.gid);
  return dir;
}

function canRead(user: string, path: string): boolean {
  try {
    execFileSync('runuser', ['-u', user, '--', 'cat', path], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function tokenStatus(token: string) {
  return statusEventually(() => tokenKubeConfig(token).makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: {} }), 401, 15_000);
}

describe.concurrent('run: the job lifecycle', () => {
  beforeAll(() => {
    // A decoy: the end user's own kubeconfig must never be used by the job.
    mkdirSync(join(alice.home, '.kube'), { recursive: true });
    writeFileSync(join(alice.home, '.kube/config'), readFileSync(inject('cluster').adminKubeconfig, 'utf8').replace(/token: "[^"]+"/, 'token: "decoy"'));
    execFileSync('chown', ['-R', `${alice.uid}:${alice.gid}`, join(alice.home, '.kube')]);
  });

  // The longest (a 25 s job): first, so that it starts at once.
  it('rotates the token of a long job: the job keeps working and every superseded token gets 401', async () => {
    const rotating = writeConfig({ tokenRotation: '10s', leaseRenewSeconds: '1s' });
    const jobId = uniqueJobId('rot');
    const drop = endUserDropDir();
    const tokensFile = join(drop, 'tokens');
    const result = await runCli(['run', '--user', alice.name, '--config', rotating.path, '--job-id', jobId, '--', 'app', 'rotation', '25', tokensFile]);
    expect(result.exitCode, result.stderr).toBe(0);
    const rotation = JSON.parse(result.stdout.split('\n').find((l) => l.includes('"event":"rotation"'))!);
    expect(rotation.tokens).toBeGreaterThanOrEqual(3); // the first token and at least two rotations
    expect(rotation.failures).toBe(0);
    expect(result.stderr).toContain('rotated the token (generation 2');
    expect(result.stderr).not.toContain('warning');
    const tokens = readFileSync(tokensFile, 'utf8').trim().split('\n');
    for (const token of tokens) expect(await tokenStatus(token)).toBe(401);
    expect(await jobObjects(jobId)).toEqual([]);
  });

  it('gives the end user only its namespace corner, through a kubeconfig nobody else can read', async () => {
    const config = writeConfig({});
    const jobId = uniqueJobId();
    const drop = endUserDropDir();
    const cli = startCli([
      'run',
      '--user',
      alice.name,
      '--config',
      config.path,
      '--job-id',
      jobId,
      '--',
      'app',
      'probe',
      'scan-argv',
      'save-token',
      join(drop, 'token'),
      'marker',
      'probed',
      'sleep',
      '3',
    ]);
    const started = await cli.waitForEvent('started');
    const probe = await cli.waitForEvent('probe');
    const scan = await cli.waitForEvent('argv-scan');
    await cli.waitForEvent('marker');
    const kubeconfig = String(probe.kubeconfigEnv);
    const readers = { alice: canRead(alice.name, kubeconfig), bob: canRead(bob.name, kubeconfig), mallory: canRead(unix.outsider.name, kubeconfig) };
    const result = await cli.result;
    const token = readFileSync(join(drop, 'token'), 'utf8');

    expect(result.exitCode, result.stderr).toBe(0);
    expect(started.user).toBe(alice.name);
    expect(started.uid).toBe(alice.uid);
    const namespace = (started.args as string[]).find((a) => a.startsWith('spark.kubernetes.namespace='))!.split('=')[1]!;
    expect(namespace).toMatch(/^dss-ns-dsst[a-z0-9]{4}-alice$/);
    expect(probe).toMatchObject({
      username: expect.stringMatching(new RegExp(`^system:serviceaccount:${namespace}:dss-spark-`)),
      createPod: 200,
      listPodsOtherNamespace: 403,
      listSecrets: 403,
      createRoleBinding: 403,
      podExec: 403,
      tokenForOtherSa: 403,
      createNamespace: 403,
      kubeconfigReadable: true,
    });
    expect(readers).toEqual({ alice: true, bob: false, mallory: false });
    expect(scan.processesWithToken).toEqual([]);
    expect(token.length).toBeGreaterThan(100);
    expect(result.stdout + result.stderr).not.toContain(token);
    expect(result.stderr).not.toContain(token);

    expect(await tokenStatus(token)).toBe(401);
    expect(await jobObjects(jobId)).toEqual([]);
    expect(existsSync(kubeconfig)).toBe(false);
    expect(dirEntries(config.tempDir)).toEqual([]);
  });

  it("exits with spark-submit's own code after tearing down", async () => {
    const config = writeConfig({});
    const jobId = uniqueJobId();
    const result = await runCli(['run', '--user', alice.name, '--config', config.path, '--job-id', jobId, '--', 'app', 'probe', 'exit', '3']);
    expect(result.exitCode).toBe(3);
    expect(result.stdout).toContain('"createPod":200');
    expect(await jobObjects(jobId)).toEqual([]);
    expect(dirEntries(config.tempDir)).toEqual([]);
  });

  for (const [signal, code] of [
    ['SIGTERM', 143],
    ['SIGINT', 130],
    ['SIGHUP', 129],
  ] as const) {
    it(`forwards ${signal} to spark-submit, tears down and exits ${code}`, async () => {
      const config = writeConfig({});
      const jobId = uniqueJobId();
      const cli = startCli(['run', '--user', alice.name, '--config', config.path, '--job-id', jobId, '--', 'app', 'probe', 'sleep', '60']);
      await cli.waitForEvent('probe');
      cli.child.kill(signal);
      const result = await cli.result;
      expect(result.exitCode).toBe(code);
      expect(result.stdout).toContain(`"event":"signalled","signal":"${signal}"`);
      expect(result.stderr).toContain(`interrupted by ${signal}`);
      expect(await jobObjects(jobId)).toEqual([]);
      expect(dirEntries(config.tempDir)).toEqual([]);
    });
  }

  it('writes one JSON line per phase to --events, apart from the driver output', async () => {
    const config = writeConfig({});
    const jobId = uniqueJobId();
    const events = join(dssuserDir(), 'events.jsonl');
    const result = await runCli(['run', '--user', alice.name, '--config', config.path, '--job-id', jobId, '--events', events, '--', 'app', 'marker', 'hello']);
    expect(result.exitCode).toBe(0);
    const lines = readFileSync(events, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.event)).toEqual(['planned', 'provisioned', 'started', 'exited', 'torn-down']);
    expect(lines.every((l) => l.jobId === jobId)).toBe(true);
    expect(lines.at(-1)).toMatchObject({ outcome: 'ok', left: [] });
    expect(result.stdout).not.toContain('"event":"planned"');
  });

  it('runs 20 jobs of one user at once: one namespace, created by the race, nothing left', async () => {
    const config = writeConfig({});
    const user = unix.endUsers[1]!;
    const jobIds = Array.from({ length: 20 }, () => uniqueJobId('par'));
    const results = await Promise.all(
      jobIds.map((jobId) => runCli(['run', '--user', user.name, '--config', config.path, '--job-id', jobId, '--quiet', '--', 'app', 'marker', jobId])),
    );
    expect(results.map((r) => r.exitCode)).toEqual(jobIds.map(() => 0));
    const namespaces = await adminCore().listNamespace();
    expect(namespaces.items.filter((n) => n.metadata?.name?.endsWith(`${user.name}`)).length).toBe(1);
    for (const jobId of jobIds) expect(await jobObjects(jobId)).toEqual([]);
    expect(dirEntries(config.tempDir)).toEqual([]);
  });

  it('gives an auto-created namespace the Pod Security labels, quota and limits of the profile', async () => {
    const quotas = writeConfig({
      targetNamespace: 'dss-quota-${dssUserLogin}',
      resourceQuota: { hard: { pods: '50' } },
      limitRange: { limits: [{ type: 'Container', default: { cpu: '1' } }] },
    });
    const jobId = uniqueJobId('quota');
    const result = await runCli(['run', '--user', alice.name, '--config', quotas.path, '--job-id', jobId, '--', 'app', 'probe']);
    expect(result.exitCode, result.stderr).toBe(0);
    const namespace = `dss-quota-${alice.name}`;
    const core = adminCore();
    const ns = await core.readNamespace({ name: namespace });
    expect(ns.metadata?.labels).toMatchObject({
      'dss-spark-k8s.dataiku.io/managed': 'true',
      'pod-security.kubernetes.io/enforce': 'restricted',
      'pod-security.kubernetes.io/enforce-version': 'latest',
      'pod-security.kubernetes.io/warn': 'restricted',
      'pod-security.kubernetes.io/audit': 'restricted',
    });
    expect((await core.readNamespacedResourceQuota({ namespace, name: 'dss-spark-k8s' })).spec?.hard).toEqual({ pods: '50' });
    expect((await core.readNamespacedLimitRange({ namespace, name: 'dss-spark-k8s' })).spec?.limits[0]?._default).toEqual({ cpu: '1' });
    expect(await jobObjects(jobId)).toEqual([]);
  });

  it('prints the plan with --dry-run=client without creating anything or showing a token', async () => {
    const config = writeConfig({});
    const jobId = uniqueJobId();
    const result = await runCli(['run', '--user', alice.name, '--config', config.path, '--job-id', jobId, '--dry-run=client', '-o', 'json', '--', 'app']);
    expect(result.exitCode, result.stderr).toBe(0);
    const plan = JSON.parse(result.stdout);
    expect(plan.objects.map((o: { kind: string }) => o.kind)).toEqual([
      'Namespace',
      'NetworkPolicy',
      'ServiceAccount',
      'ServiceAccount',
      'RoleBinding',
      'Lease',
      'Secret',
      'TokenRequest',
    ]);
    expect(plan.kubeconfig.users[0].user.token).toBe('<redacted>');
    // The managed executor pod template: compliant with Pod Security restricted, no token, the executor account.
    expect(plan.executorPodTemplate.spec).toMatchObject({
      automountServiceAccountToken: false,
      securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [{ name: 'spark-kubernetes-executor', securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } } }],
    });
    expect(plan.command.slice(0, 5)).toEqual(['sudo', '-n', '-u', alice.name, '--']);
    expect(await jobObjects(jobId)).toEqual([]);
  });

  it('sends every write with dryRun=All for --dry-run=server', { concurrent: false }, async () => {
    const config = writeConfig({});
    const jobId = uniqueJobId();
    const result = await runCli(['run', '--user', alice.name, '--config', config.path, '--job-id', jobId, '--dry-run=server', '--', 'app']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toContain('the server accepted every object');
    expect(await jobObjects(jobId)).toEqual([]);
  });
});

describe.concurrent('run: bad input', () => {
  const badInputConfig = () =>
    writeConfig({ allowedNamespaces: '^dss-ns-' }, { strict: { targetNamespace: '${dssUserLogin}' }, nospark: { sparkSubmit: '/nonexistent/spark-submit' } });

  // [what, flags, spark-submit arguments, exit code, message]
  const cases: [string, () => string[], string[], number, RegExp][] = [
    ['an unknown user', () => ['--user', 'no-such-user-xyz'], ['app'], 65, /does not exist/],
    ['root', () => ['--user', 'root'], ['app'], 65, /is root/],
    ['an empty login', () => ['--user', ''], ['app'], 65, /not a valid login/],
    ['the invoking user itself', () => ['--user', unix.dssuser.name], ['app'], 65, /account running dss-spark-k8s/],
    ['a login whose namespace is not allowed', () => ['--user', alice.name, '--profile', 'strict'], ['app'], 65, /allowedNamespaces|does not match/],
    ['an unknown profile', () => ['--user', alice.name, '--profile', 'nope'], ['app'], 78, /unknown profile/],
    ['a missing spark-submit', () => ['--user', alice.name, '--profile', 'nospark'], ['app'], 71, /does not exist or is not executable/],
    ['a user sudo does not allow', () => ['--user', unix.outsider.name], ['app'], 71, /sudo refuses/],
    ['a managed spark-submit option', () => ['--user', alice.name], ['--master', 'local', 'app'], 64, /--master/],
    [
      'a spark-submit conf carrying credentials',
      () => ['--user', alice.name],
      ['--conf', 'spark.kubernetes.authenticate.oauthToken=x', 'app'],
      64,
      /spark.kubernetes.authenticate/,
    ],
    ['an unknown option', () => ['--user', alice.name, '--colour'], ['app'], 64, /unknown option/],
  ];
  for (const [what, flags, sparkArgs, code, message] of cases) {
    it(`refuses ${what} with one line, exit ${code}, nothing created`, async () => {
      const config = badInputConfig();
      const jobId = uniqueJobId('bad');
      const result = await runCli(['run', '--config', config.path, '--job-id', jobId, ...flags(), '--', ...sparkArgs]);
      expect(result.exitCode, result.stderr).toBe(code);
      expect(result.stderr.trim().split('\n'), result.stderr).toHaveLength(1);
      expect(result.stderr).toMatch(message);
      expect(result.stdout).toBe('');
      expect(await jobObjects(jobId)).toEqual([]);
      expect(dirEntries(config.tempDir)).toEqual([]);
    });
  }

  it('refuses a malformed job id with one line, exit 64', async () => {
    const config = badInputConfig();
    const result = await runCli(['run', '--config', config.path, '--job-id', 'Bad_Id', '--user', alice.name, '--', 'app']);
    expect(result.exitCode).toBe(64);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain('--job-id');
  });

  it('rolls back what it created when dssuser lacks a right (here: create RoleBindings)', async () => {
    const config = badInputConfig();
    const identity = await createIdentity(withoutVerb(documentedRules(), 'rolebindings', 'create'));
    const jobId = uniqueJobId('rollback');
    const result = await runCli(['run', '--config', config.path, '--kubeconfig', identity.kubeconfig, '--job-id', jobId, '--user', alice.name, '--', 'app']);
    expect(result.exitCode).toBe(69);
    expect(result.stderr.trim().split('\n'), result.stderr).toHaveLength(1);
    expect(result.stderr).toMatch(/create RoleBinding .* failed \(403 Forbidden\)/);
    expect(result.stderr).toContain('doctor');
    expect(await jobObjects(jobId)).toEqual([]);
    expect(dirEntries(config.tempDir)).toEqual([]);
  });

  it('refuses a malformed config file with one line naming the file', async () => {
    const dir = dssuserDir();
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, 'profiles:\n  default:\n    sparkSubmit: /x\n    minUid: lots\n');
    const result = await runCli(['run', '--config', path, '--user', alice.name, '--', 'app']);
    expect(result.exitCode).toBe(78);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain(path);
    expect(result.stderr).toContain('minUid');
  });
});
