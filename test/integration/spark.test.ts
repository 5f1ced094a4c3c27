// A real spark-submit (pyspark from PyPI, client mode) run through `dss-spark-k8s run` as DSS does it: the CLI
// as the dssuser Unix account, spark-submit through sudo as the end user, the driver talking to the real
// apiserver with the job's kubeconfig. Its executors use an image the node does not have, so they never run
// (node-spark.test.ts runs real executors); that is enough here: the driver has created them with the job token. One Spark job costs ~15 s on an idle 2-core machine (JVM,
// SparkContext; up to ~50 s when the machine is busy), so the file runs four, at the same time: each has its own
// config (temp directory) and checks only its own job's objects; the rotation job, which reads every pod create
// of its namespace, has a namespace of its own.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AuthenticationV1Api, CoordinationV1Api, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { auditLines, auditMark } from '../support/audit-log.ts';
import { dirEntries, dssuserDir, jobObjects, startCli, uniqueJobId, writeConfig, type RunningCli } from '../support/cli.ts';
import { adminCore, adminKubeConfig, statusEventually, statusOf, tokenKubeConfig } from '../support/kube.ts';

const root = resolve(import.meta.dirname, '../..');
const cluster = inject('cluster');
const unix = inject('unix');
const alice = unix.endUsers[0]!;
const JOB_LABEL = 'dss-spark-k8s.dataiku.io/job-id';

/** The profile's Spark confs, as a DSS admin would write them. Only the image is required. */
const SPARK_CONF = {
  // Required (Spark refuses to request executors without it); never pulled: the node has no such image.
  'spark.kubernetes.container.image': 'dss-spark-k8s-test/spark:never-pulled',
  'spark.executor.instances': '1',
  // Without it, getOrCreate() waits spark.scheduler.maxRegisteredResourcesWaitingTime (30 s) for executors
  // that never register.
  'spark.scheduler.minRegisteredResourcesRatio': '0',
  // Not needed here, but keeps the driver off the host's name resolution (CI machines vary).
  'spark.driver.host': '127.0.0.1',
  'spark.driver.bindAddress': '127.0.0.1',
  // Other test files may run Spark at the same time: no UI port to fight over.
  'spark.ui.enabled': 'false',
  // The driver JVM's start-up is most of a job's CPU, and four jobs share two cores: the JIT's first tier only
  // (C1) cuts it by a third (a local SparkSession: 14.7 s of CPU, 9.8 s with it) and changes nothing Spark does.
  'spark.driver.defaultJavaOptions': '-XX:TieredStopAtLevel=1',
};

function sparkSubmitPath(): string {
  // The same executable the global set-up put into the sudoers rule (cached: prints the path at once).
  return execFileSync('bash', [join(root, 'scripts/install-pyspark.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

interface SparkRun {
  cli: RunningCli;
  jobId: string;
  work: string;
  events: string;
  startedAt: number;
  stdout: () => string;
  /** Once the CLI has exited: the end of its output (for messages), else undefined. */
  closed: () => string | undefined;
  /** Resolves with the time (ms since start) at which a stdout line matched. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<number>;
}

let sparkSubmit: string;
let appFile: string;
/** The audit log before this file's first job: every write of its jobs comes after. */
let auditFrom = 0;
const scratch: string[] = [];
const started: SparkRun[] = [];

/** A job's own config (and so its own temp directory), with the profile's Spark confs. */
function sparkProfile(profile: Record<string, unknown> = {}): { path: string; tempDir: string } {
  const config = writeConfig({ sparkSubmit, sparkConf: SPARK_CONF, ...profile });
  scratch.push(resolve(config.path, '..'));
  return config;
}

/** Starts one job: a work directory the end user owns (token copy, release file, Spark's local dirs). */
function startSparkJob(mode: 'ok' | 'fail' | 'more', marker: string, profile: { path: string }): SparkRun {
  const jobId = uniqueJobId('spark');
  const work = dssuserDir('dss-spark-k8s-test-spark-');
  scratch.push(work);
  mkdirSync(join(work, 'tmp'));
  execFileSync('chown', ['-R', `${alice.uid}:${alice.gid}`, work]);
  const events = join(dssuserDir('dss-spark-k8s-test-events-'), 'events.jsonl');
  scratch.push(resolve(events, '..'));
  const cli = startCli([
    'run',
    '--user',
    alice.name,
    '--config',
    profile.path,
    '--job-id',
    jobId,
    '--events',
    events,
    '--',
    // The caller's own option: Spark's scratch files (spark.local.dir defaults to it) in the work directory.
    '--driver-java-options',
    `-Djava.io.tmpdir=${join(work, 'tmp')}`,
    appFile,
    work,
    marker,
    mode,
  ]);
  const startedAt = Date.now();
  let stdout = '';
  let stderr = '';
  let closed = false;
  cli.child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  cli.child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  void cli.result.then(() => (closed = true));
  const run: SparkRun = {
    cli,
    jobId,
    work,
    events,
    startedAt,
    stdout: () => stdout,
    closed: () => (closed ? `\n${tail(stdout + stderr)}` : undefined),
    waitForLine: (pattern, timeoutMs = 120_000) =>
      until(`stdout line ${pattern}`, timeoutMs, () => (pattern.test(stdout) ? Date.now() - startedAt : undefined), run.closed),
  };
  started.push(run);
  return run;
}

/** Polls `probe` until it returns a value; fails early once `ended()` says why (e.g. the CLI has exited). */
async function until<T>(
  what: string,
  timeoutMs: number,
  probe: () => T | undefined | Promise<T | undefined>,
  ended: () => string | undefined = () => undefined,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    const why = ended();
    if (why !== undefined) throw new Error(`gave up waiting for ${what}: the CLI has exited; its output ends with:${why}`);
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function readEvents(path: string): Record<string, unknown>[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line));
}

/** The job's namespace and service account, from the CLI's own "provisioned" event. */
function provisioned(run: SparkRun): Promise<{ namespace: string; serviceAccount: string }> {
  return until(
    '"provisioned" event',
    60_000,
    () => readEvents(run.events).find((e) => e.event === 'provisioned') as { namespace: string; serviceAccount: string } | undefined,
    run.closed,
  );
}

async function jobPods(namespace: string, jobId: string): Promise<V1Pod[]> {
  return (await adminCore().listNamespacedPod({ namespace, labelSelector: `${JOB_LABEL}=${jobId}` })).items;
}

function release(run: SparkRun) {
  writeFileSync(join(run.work, 'release'), '');
}

function savedToken(run: SparkRun): string {
  return readFileSync(join(run.work, 'token'), 'utf8').trim();
}

function tokenStatus(token: string) {
  // The apiserver caches token authentications for 10 s.
  return statusEventually(() => tokenKubeConfig(token).makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: {} }), 401, 15_000);
}

interface AuditWrite {
  verb: string;
  resource: string;
  name?: string;
  code: number;
  userAgent: string;
  username: string;
  time: number;
}

/** Writes recorded by the apiserver's audit log (Metadata level) in one namespace, since this file began. */
async function auditWrites(namespace: string): Promise<AuditWrite[]> {
  if (!cluster.auditLog) throw new Error('these tests read the apiserver audit log of the local control plane (scripts/cluster.sh); TEST_KUBECONFIG has none');
  return (
    (await auditLines(cluster.auditLog, auditFrom, `"namespace":"${namespace}"`))
      .map((line) => JSON.parse(line))
      // Writes to subresources are not the job's objects: the scheduler's pods/binding, the kubelet's pods/status.
      .filter((e) => e.objectRef?.namespace === namespace && !e.objectRef.subresource)
      .map((e) => ({
        verb: e.verb,
        resource: e.objectRef.resource,
        name: e.objectRef.name,
        code: e.responseStatus?.code,
        userAgent: e.userAgent,
        username: e.user.username,
        time: Date.parse(e.requestReceivedTimestamp),
      }))
  );
}

/** Every object the job's service account created, which must all be gone after the job ("kind/name"). */
async function leftByDriver(namespace: string, jobSa: string): Promise<string[]> {
  const core = adminCore();
  const created = (await auditWrites(namespace)).filter(
    (w) => w.username === `system:serviceaccount:${namespace}:${jobSa}` && w.verb === 'create' && w.code === 201,
  );
  const left: string[] = [];
  for (const { resource, name } of created) {
    const read = {
      pods: () => core.readNamespacedPod({ namespace, name: name! }),
      configmaps: () => core.readNamespacedConfigMap({ namespace, name: name! }),
      services: () => core.readNamespacedService({ namespace, name: name! }),
      persistentvolumeclaims: () => core.readNamespacedPersistentVolumeClaim({ namespace, name: name! }),
    }[resource];
    if (!read) throw new Error(`the driver created a ${resource}, which this test does not know how to check`);
    if ((await statusOf(read())) !== 404) left.push(`${resource}/${name}`);
  }
  return left;
}

function statusLines(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line.startsWith('dss-spark-k8s '));
}

/** A Lease's MicroTime as the client returns it (a string or a Date). */
function millis(time: unknown): number {
  return time instanceof Date ? time.getTime() : Date.parse(String(time));
}

function tail(text: string, lines = 40): string {
  return text.split('\n').slice(-lines).join('\n');
}

describe.concurrent('run with a real spark-submit (client mode)', () => {
  beforeAll(() => {
    auditFrom = auditMark(cluster.auditLog);
    sparkSubmit = sparkSubmitPath();
    const appDir = dssuserDir('dss-spark-k8s-test-app-');
    scratch.push(appDir);
    appFile = join(appDir, 'spark-app.py');
    copyFileSync(join(root, 'test/fixtures/spark-app.py'), appFile);
    chmodSync(appFile, 0o644);
    chownSync(appFile, unix.dssuser.uid, unix.dssuser.gid);
  });

  afterAll(async () => {
    // A test that failed half-way leaves its job waiting for the release file: end it the way DSS would.
    for (const run of started.filter((r) => r.closed() === undefined)) {
      run.cli.child.kill('SIGTERM');
      await run.cli.result;
    }
    for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
    // The JVM's perf-data directory, always in /tmp, named after the end user.
    rmSync(`/tmp/hsperfdata_${alice.name}`, { recursive: true, force: true });
  });

  it('runs a PySpark job as the end user: executors created with the job token, output streamed, nothing left', async () => {
    const config = sparkProfile({ leaseRenewSeconds: 2 });
    const run = startSparkJob('ok', 'MARKER-streamed-while-running', config);
    const markerAt = await run.waitForLine(/^spark-app: MARKER-streamed-while-running$/m);
    // The application is blocked until we release it: the CLI cannot have exited yet.
    const runningAtMarker = run.closed() === undefined;

    const { namespace, serviceAccount } = await provisioned(run);
    const pods = await until(
      'executor pod',
      120_000,
      async () => {
        const found = await jobPods(namespace, run.jobId);
        return found.length > 0 ? found : undefined;
      },
      run.closed,
    );
    const podAt = Date.now() - run.startedAt;
    // Renewed every 2 s (leaseRenewSeconds) while the job runs.
    const lease = await adminKubeConfig().makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace, name: serviceAccount });
    await run.waitForLine(/^spark-app: waiting for executor pods/m);
    release(run);
    const result = await run.cli.result;
    const exitAt = Date.now() - run.startedAt;
    console.log(`spark job timings: marker ${markerAt} ms, first executor pod ${podAt} ms, exit ${exitAt} ms (released at ~${podAt} ms)`);

    expect(result.exitCode, tail(result.stderr)).toBe(0);
    expect(runningAtMarker).toBe(true);
    expect(markerAt).toBeLessThan(exitAt);
    expect(result.stdout).toContain(`spark-app: running as user=${alice.name} uid=${alice.uid}\n`);
    expect(result.stdout).not.toContain(unix.dssuser.name);
    expect(result.stdout).toMatch(new RegExp(`^spark-app: SparkSession up: master=k8s://https://\\S+ namespace=${namespace}$`, 'm'));
    expect(result.stdout).toContain('spark-app: SparkSession stopped, exiting 0');

    // The executor pods: in the job namespace, labelled with the job, running as the executor account
    // (no rights, no token mounted).
    for (const pod of pods) {
      expect(pod.metadata?.name).toMatch(new RegExp(`^${serviceAccount}-exec-\\d+$`));
      expect(pod.metadata?.labels).toMatchObject({ [JOB_LABEL]: run.jobId, 'app.kubernetes.io/managed-by': 'dss-spark-k8s', 'spark-role': 'executor' });
      expect(pod.spec?.serviceAccountName).toBe(`${serviceAccount}-exec`);
      expect(pod.spec?.volumes ?? []).not.toContainEqual(
        expect.objectContaining({
          projected: expect.objectContaining({ sources: expect.arrayContaining([expect.objectContaining({ serviceAccountToken: expect.anything() })]) }),
        }),
      );
    }

    // Who created them: the apiserver's audit log names the job's service account, through Spark's client.
    const podCreates = (await auditWrites(namespace)).filter(
      (w) => w.verb === 'create' && w.resource === 'pods' && pods.some((p) => p.metadata?.name === w.name),
    );
    expect(podCreates.length).toBeGreaterThanOrEqual(pods.length);
    for (const create of podCreates) {
      expect(create).toMatchObject({ username: `system:serviceaccount:${namespace}:${serviceAccount}`, code: 201 });
      expect(create.userAgent).toMatch(/^fabric8-kubernetes-client\//);
    }

    expect(millis(lease.spec?.renewTime)).toBeGreaterThan(millis(lease.spec?.acquireTime));
    expect(result.stderr).not.toContain('dss-spark-k8s warning');
    expect(statusLines(result.stderr)).toEqual([
      expect.stringMatching(
        new RegExp(`^dss-spark-k8s [\\d.]+s provisioned service account ${serviceAccount} in namespace ${namespace}( \\(namespace created\\))?$`),
      ),
      expect.stringMatching(new RegExp(`^dss-spark-k8s [\\d.]+s started spark-submit as ${alice.name}$`)),
      expect.stringMatching(/^dss-spark-k8s [\d.]+s spark-submit exited with code 0$/),
      expect.stringMatching(new RegExp(`^dss-spark-k8s [\\d.]+s torn down job ${run.jobId}: nothing left$`)),
    ]);

    expect(await tokenStatus(savedToken(run))).toBe(401);
    expect(await jobObjects(run.jobId)).toEqual([]);
    expect(await leftByDriver(namespace, serviceAccount)).toEqual([]);
    expect(dirEntries(config.tempDir)).toEqual([]);
  });

  it("exits with spark-submit's code when the application raises, after tearing down", async () => {
    const config = sparkProfile({ leaseRenewSeconds: 2 });
    const run = startSparkJob('fail', 'MARKER-fail', config);
    const { namespace, serviceAccount } = await provisioned(run);
    await run.waitForLine(/^spark-app: waiting for executor pods/m);
    release(run);
    const result = await run.cli.result;

    expect(result.exitCode, tail(result.stderr)).toBe(1);
    // PySpark merges the Python process's stderr into the driver's stdout.
    expect(result.stdout).toContain('RuntimeError: spark-app: failing on purpose');
    expect(statusLines(result.stderr).slice(-2)).toEqual([
      expect.stringMatching(/^dss-spark-k8s [\d.]+s spark-submit exited with code 1$/),
      expect.stringMatching(new RegExp(`^dss-spark-k8s [\\d.]+s torn down job ${run.jobId}: nothing left$`)),
    ]);
    expect(await tokenStatus(savedToken(run))).toBe(401);
    expect(await jobObjects(run.jobId)).toEqual([]);
    expect(await leftByDriver(namespace, serviceAccount)).toEqual([]);
    expect(dirEntries(config.tempDir)).toEqual([]);
  });

  it('keeps a driver working across token rotations: fabric8 re-reads the rotated kubeconfig token', async () => {
    // A new token every 10 s; each superseded token is revoked at once (its anchor Secret is deleted).
    // Its own namespace: the checks below read every pod create in it after the second rotation.
    const rotating = sparkProfile({ tokenRotation: '10s', targetNamespace: 'dss-rot-${dssUserLogin}' });
    const run = startSparkJob('more', 'MARKER-rotation', rotating);
    const { namespace, serviceAccount } = await provisioned(run);
    await run.waitForLine(/^spark-app: waiting for executor pods/m);
    // 30 s more with the session up: three rotations or more (ten-second ones) while the driver holds its session,
    // five or more in all, when the checks below need three, the second one before the last pod creates.
    writeFileSync(join(run.work, 'release'), '30');
    execFileSync('chown', [`${alice.uid}:${alice.gid}`, join(run.work, 'release')]);
    const result = await run.cli.result;

    expect(result.exitCode, tail(result.stderr)).toBe(0);
    expect(result.stdout).toContain('spark-app: requested 2 more executors');
    expect(result.stderr).not.toContain('dss-spark-k8s warning');
    const rotations = readEvents(run.events).filter((e) => e.event === 'rotated');
    expect(rotations.length).toBeGreaterThanOrEqual(3);
    // Pods the driver created after the second rotation: by then its first two tokens were revoked, so only a
    // client that re-read the kubeconfig could create them.
    const afterSecondRotation = Date.parse(String(rotations[1]!.time));
    const lateCreates = (await auditWrites(namespace)).filter((w) => w.verb === 'create' && w.resource === 'pods' && w.time > afterSecondRotation);
    const jobSa = `system:serviceaccount:${namespace}:${serviceAccount}`;
    const created = lateCreates.filter((w) => w.code === 201);
    expect(created.length, JSON.stringify(lateCreates)).toBeGreaterThanOrEqual(1);
    for (const create of created) expect(create.username).toBe(jobSa);
    // A request with a revoked token gets 401 (unauthenticated, so no user name), and fabric8 retries it at
    // once with the token it re-reads from the kubeconfig: measured 25 ms later.
    for (const refused of lateCreates.filter((w) => w.code === 401)) {
      expect(
        created.some((w) => w.time >= refused.time && w.time - refused.time < 5_000),
        JSON.stringify(lateCreates),
      ).toBe(true);
    }
    // And at stop, the driver deletes its executor pods itself, with the current token.
    const driverDeletes = (await auditWrites(namespace)).filter(
      (w) => w.verb === 'deletecollection' && w.resource === 'pods' && w.username === jobSa && w.time > afterSecondRotation,
    );
    expect(driverDeletes.map((w) => w.code)).toContain(200);
    expect(await tokenStatus(savedToken(run))).toBe(401); // the first token
    expect(await jobObjects(run.jobId)).toEqual([]);
  });

  it('leaves nothing behind when the driver JVM is killed (SIGKILL) with executors pending', async () => {
    const config = sparkProfile({ leaseRenewSeconds: 2 });
    const run = startSparkJob('ok', 'MARKER-kill', config);
    const { namespace, serviceAccount } = await provisioned(run);
    await until('executor pod', 120_000, async () => ((await jobPods(namespace, run.jobId)).length > 0 ? true : undefined), run.closed);
    // The driver is the JVM that sudo runs for the end user; its command line names the job's work dir.
    const driver = execFileSync('pgrep', ['-u', String(alice.uid), '-f', `java .*${run.work}`], { encoding: 'utf8' })
      .trim()
      .split('\n');
    expect(driver).toHaveLength(1);
    process.kill(Number(driver[0]), 'SIGKILL');
    const result = await run.cli.result;

    expect(result.exitCode, tail(result.stderr)).toBe(137);
    expect(result.stderr).toContain('spark-submit exited with SIGKILL');
    expect(await tokenStatus(savedToken(run))).toBe(401);
    expect(await jobObjects(run.jobId)).toEqual([]);
    // Spark's executor ConfigMap carries only Spark's labels (spark-app-selector, spark-role), not the job's.
    expect(await leftByDriver(namespace, serviceAccount)).toEqual([]);
    expect(dirEntries(config.tempDir)).toEqual([]);
  });
});
