// Real Spark on the local cluster's node: a PySpark job in client mode through `dss-spark-k8s run` (the CLI as
// the dssuser Unix account, spark-submit through sudo as the end user), whose two executor pods run on the node
// from the locally built executor image and compute the result. What runs inside an executor, what the job's
// teardown and `cleanup --orphans` do to running executors, and token rotation under running executors.
//
// The jobs run at the same time (each suite is concurrent; the held job's three steps run in order): each has
// its own config and work directory and looks only at its own pods; the job that `cleanup --orphans` ends has a
// namespace of its own, so that the clean-up of a namespace meets no other test's job.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { auditLines, auditMark } from '../support/audit-log.ts';
import { dssuserDir, jobObjects, runCli, startCli, uniqueJobId, writeConfig, type CliResult, type RunningCli } from '../support/cli.ts';
import { adminCore } from '../support/kube.ts';
import { nodeSparkConf } from '../support/spark.ts';

const root = resolve(import.meta.dirname, '../..');
const cluster = inject('cluster');
const unix = inject('unix');
const alice = unix.endUsers[0]!;
const JOB_LABEL = 'dss-spark-k8s.dataiku.io/job-id';
const EXPECTED_SUM = 500000500000; // 1 + … + 1 000 000, summed by the executors over 8 partitions

/** The end user's application: two computations on the executors, held in between by a release file. */
const APP = `
import os, socket, sys, time
from pyspark.sql import SparkSession

work, mode = sys.argv[1], sys.argv[2]

def say(text):
    print(f"node-app: {text}", flush=True)

spark = SparkSession.builder.appName("dss-spark-k8s-node-test").getOrCreate()
sc = spark.sparkContext

def compute(tag):
    total = sc.parallelize(range(1, 1000001), 8).sum()
    hosts = sorted(set(sc.parallelize(range(400), 40).map(lambda _: socket.gethostname()).collect()))
    say(f"{tag} sum={total} executor-hosts={len(hosts)} {' '.join(hosts)}")

compute("first")
if mode == "hold":
    say("holding")
    driver = os.getppid()
    deadline = time.monotonic() + 600
    while not os.path.exists(os.path.join(work, "release")) and time.monotonic() < deadline:
        if os.getppid() != driver:  # the driver JVM was killed: do not linger
            os._exit(3)
        time.sleep(0.2)
    compute("after-hold")
spark.stop()
say("done")
`;

let appFile: string;
/** The audit log before this file's first job: every write of its jobs comes after. */
let auditFrom = 0;
const scratch: string[] = [];
const running: RunningCli[] = [];

function sparkConf(): Record<string, string> {
  if (!cluster.node) throw new Error("these tests need the local cluster's node (scripts/cluster.sh up without --no-node) or TEST_EXECUTOR_IMAGE");
  return {
    ...nodeSparkConf(cluster.node.executorImage),
    // Four jobs' JVMs (drivers and executors) share two cores: the JIT's first tier only (C1) cuts a JVM's
    // start-up CPU by a third (spark.test.ts) and changes nothing Spark does.
    'spark.driver.defaultJavaOptions': '-XX:TieredStopAtLevel=1',
    'spark.executor.defaultJavaOptions': '-XX:TieredStopAtLevel=1',
  };
}

function sparkSubmitPath(): string {
  return execFileSync('bash', [join(root, 'scripts/install-pyspark.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

interface Job {
  cli: RunningCli;
  jobId: string;
  work: string;
  events: string;
  stdout: () => string;
  result: Promise<CliResult>;
  release(): void;
}

function startJob(mode: 'ok' | 'hold', profile: { path: string }): Job {
  const jobId = uniqueJobId('node');
  const work = dssuserDir('dss-spark-k8s-test-node-');
  scratch.push(work);
  mkdirSync(join(work, 'tmp'));
  execFileSync('chown', ['-R', `${alice.uid}:${alice.gid}`, work]);
  const eventsDir = dssuserDir('dss-spark-k8s-test-events-');
  scratch.push(eventsDir);
  const events = join(eventsDir, 'events.jsonl');
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
    '--driver-java-options',
    `-Djava.io.tmpdir=${join(work, 'tmp')}`,
    appFile,
    work,
    mode,
  ]);
  running.push(cli);
  let stdout = '';
  cli.child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  return {
    cli,
    jobId,
    work,
    events,
    stdout: () => stdout,
    result: cli.result,
    release: () => writeFileSync(join(work, 'release'), ''),
  };
}

async function until<T>(what: string, timeoutMs: number, probe: () => T | undefined | Promise<T | undefined>, job?: Job): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void job?.result.then(() => (exited = true));
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (exited) {
      const { stderr } = await job!.result;
      throw new Error(`gave up waiting for ${what}: the CLI has exited; stdout ends with:\n${tail(job!.stdout())}\nstderr ends with:\n${tail(stderr)}`);
    }
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function events(job: Job): Record<string, unknown>[] {
  if (!existsSync(job.events)) return [];
  return readFileSync(job.events, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line));
}

function provisioned(job: Job): Promise<{ namespace: string; serviceAccount: string }> {
  return until(
    '"provisioned" event',
    60_000,
    () => events(job).find((e) => e.event === 'provisioned') as { namespace: string; serviceAccount: string } | undefined,
    job,
  );
}

function waitForLine(job: Job, pattern: RegExp, timeoutMs = 240_000): Promise<RegExpMatchArray> {
  return until(`stdout line ${pattern}`, timeoutMs, () => job.stdout().match(pattern) ?? undefined, job);
}

async function jobPods(namespace: string, jobId: string): Promise<V1Pod[]> {
  return (await adminCore().listNamespacedPod({ namespace, labelSelector: `${JOB_LABEL}=${jobId}` })).items;
}

/** A command in a running executor container, as an administrator (kubectl exec through the kubelet). */
function execInExecutor(namespace: string, pod: string, script: string): string {
  return execFileSync(
    cluster.kubectl,
    ['--kubeconfig', cluster.adminKubeconfig, 'exec', '-n', namespace, pod, '-c', 'spark-kubernetes-executor', '--', 'sh', '-c', script],
    {
      encoding: 'utf8',
      timeout: 30_000,
    },
  );
}

/** The driver: the JVM that sudo runs for the end user, found by its work directory. */
function driverPid(job: Job): number {
  const pids = execFileSync('pgrep', ['-u', String(alice.uid), '-f', `java .*${job.work}`], { encoding: 'utf8' })
    .trim()
    .split('\n');
  expect(pids).toHaveLength(1);
  return Number(pids[0]);
}

/** The PodSecurity admission's verdict on a pod's creation, from the apiserver's audit log. */
async function podSecurityVerdict(namespace: string, pod: string): Promise<string | undefined> {
  const line = (await auditLines(cluster.auditLog, auditFrom, `"name":"${pod}"`))
    .filter((l) => l.includes(`"namespace":"${namespace}"`))
    .map((l) => JSON.parse(l))
    .find((e) => e.verb === 'create' && e.objectRef?.resource === 'pods' && !e.objectRef?.subresource && e.responseStatus?.code === 201);
  return line?.annotations?.['pod-security.kubernetes.io/enforce-policy'];
}

function hostsOf(line: RegExpMatchArray): string[] {
  return line[2]!.split(' ');
}

function tail(text: string, lines = 30): string {
  return text.split('\n').slice(-lines).join('\n');
}

beforeAll(() => {
  sparkConf(); // fails at once without a node
  auditFrom = auditMark(cluster.auditLog);
  const appDir = dssuserDir('dss-spark-k8s-test-app-');
  scratch.push(appDir);
  appFile = join(appDir, 'node-app.py');
  writeFileSync(appFile, APP);
  chmodSync(appFile, 0o644);
  chownSync(appFile, unix.dssuser.uid, unix.dssuser.gid);
});

afterAll(async () => {
  for (const cli of running.filter((c) => c.child.exitCode === null && c.child.signalCode === null)) {
    cli.child.kill('SIGTERM');
    await cli.result;
  }
  // A killed driver's Python process notices within 0.2 s and exits: the global teardown deletes the user.
  await until(`no process of ${alice.name} left`, 15_000, () => (spawnSync('pgrep', ['-u', String(alice.uid)]).status === 1 ? true : undefined));
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
  rmSync(`/tmp/hsperfdata_${alice.name}`, { recursive: true, force: true });
});

describe.concurrent('a PySpark job on the node through dss-spark-k8s run', () => {
  it('computes its result on 2 executors, streamed to stdout, and leaves no pod when run returns', async () => {
    const job = startJob('ok', writeConfig({ sparkSubmit: sparkSubmitPath(), sparkConf: sparkConf() }));
    const { serviceAccount } = await provisioned(job);
    const line = await waitForLine(job, /^node-app: first sum=(\d+) executor-hosts=2 (\S+ \S+)$/m);
    // Streamed: the line is there before the job has ended.
    const streamedWhileRunning = job.cli.child.exitCode === null;
    const result = await job.result;
    const left = await jobObjects(job.jobId);

    expect(result.exitCode, tail(result.stderr)).toBe(0);
    expect(streamedWhileRunning).toBe(true);
    expect(Number(line[1])).toBe(EXPECTED_SUM);
    // The Python workers ran in the executor pods: their host names are the pods' names.
    for (const host of hostsOf(line)) expect(host).toMatch(new RegExp(`^${serviceAccount}-exec-\\d+$`));
    expect(result.stdout).toContain('node-app: done');
    expect(left).toEqual([]);
  });
});

/** The administrator's executor pod template (DSS's "Executor pod YAML"), as YAML text: scheduling and a limit. */
const ADMIN_TEMPLATE = [
  'metadata:',
  '  labels: { dss-project: TEST_PROJECT }',
  'spec:',
  `  nodeSelector: { kubernetes.io/hostname: ${cluster.node?.name} }`,
  '  tolerations: [{ key: dss-spark-k8s.test/dedicated, operator: Exists, effect: NoSchedule }]',
  '  containers:',
  '    - resources: { limits: { ephemeral-storage: 2Gi } }',
  '',
].join('\n');

// Beside the other suites; its three steps in order (the last one releases the job).
describe.concurrent('a job holding its executors Running, with a token rotated every 10 s', () => {
  let job: Job;
  let namespace: string;
  let serviceAccount: string;
  let first: RegExpMatchArray;
  let executors: V1Pod[];
  let holdingAt: number;

  beforeAll(async () => {
    job = startJob('hold', writeConfig({ sparkSubmit: sparkSubmitPath(), sparkConf: sparkConf(), tokenRotation: '10s', executorPodTemplate: ADMIN_TEMPLATE }));
    ({ namespace, serviceAccount } = await provisioned(job));
    first = await waitForLine(job, /^node-app: first sum=(\d+) executor-hosts=2 (\S+ \S+)$/m);
    await waitForLine(job, /^node-app: holding$/m);
    holdingAt = Date.now();
    executors = await jobPods(namespace, job.jobId);
  });

  it('runs them as the executor account, without a service-account token, admitted under Pod Security restricted', { concurrent: false }, async () => {
    expect(Number(first[1])).toBe(EXPECTED_SUM);
    expect(executors.map((p) => p.metadata!.name).sort()).toEqual(hostsOf(first));
    const ns = await adminCore().readNamespace({ name: namespace });
    expect(ns.metadata?.labels?.['pod-security.kubernetes.io/enforce']).toBe('restricted');
    for (const pod of executors) {
      const name = pod.metadata!.name!;
      console.log(`executor ${name}: phase ${pod.status?.phase}, node ${pod.spec?.nodeName}, IP ${pod.status?.podIP}`);
      expect(pod.status?.phase).toBe('Running');
      expect(pod.spec?.nodeName).toBe(cluster.node!.name || pod.spec?.nodeName);
      expect(pod.spec?.serviceAccountName).toBe(`${serviceAccount}-exec`);
      expect(await podSecurityVerdict(namespace, name)).toBe('restricted:latest');
      const inside = execInExecutor(
        namespace,
        name,
        [
          'id -u; id -un',
          'if [ -e /var/run/secrets/kubernetes.io ]; then echo token-dir-present; else echo no-token-dir; fi',
          // The JVM under tini: Spark's executor backend, started by the image's entrypoint.
          "tr '\\0' ' ' </proc/1/cmdline; echo",
          "ps -o args= -u 185 | grep -c '[K]ubernetesExecutorBackend'",
        ].join('; '),
      );
      expect(inside.split('\n').slice(0, 5)).toEqual(['185', 'spark', 'no-token-dir', '/usr/bin/tini -s -- /opt/entrypoint.sh executor ', '1']);
    }
  });

  it("carries the administrator's template: node selector, toleration, limit and label reach the running executors", { concurrent: false }, () => {
    for (const pod of executors) {
      expect(pod.spec?.nodeSelector).toEqual({ 'kubernetes.io/hostname': cluster.node!.name });
      expect(pod.spec?.tolerations).toContainEqual({ key: 'dss-spark-k8s.test/dedicated', operator: 'Exists', effect: 'NoSchedule' });
      const container = pod.spec!.containers.find((c) => c.name === 'spark-kubernetes-executor')!;
      expect(container.resources?.limits?.['ephemeral-storage']).toBe('2Gi');
      expect(pod.metadata?.labels?.['dss-project']).toBe('TEST_PROJECT');
      // The managed part won: still the executor account, restricted, no token (asserted above for the same pods).
      expect(pod.spec?.automountServiceAccountToken).toBe(false);
    }
  });

  it('keeps the same executors across two token rotations, and computes with them again', { concurrent: false }, async () => {
    const rotationsSince = () => events(job).filter((e) => e.event === 'rotated' && Date.parse(String(e.time)) > holdingAt);
    await until('two token rotations', 60_000, () => (rotationsSince().length >= 2 ? true : undefined), job);
    const afterRotations = await jobPods(namespace, job.jobId);
    job.release();
    const again = await waitForLine(job, /^node-app: after-hold sum=(\d+) executor-hosts=(?:\d+) (.+)$/m);
    const result = await job.result;

    expect(result.exitCode, tail(result.stderr)).toBe(0);
    expect(afterRotations.map((p) => [p.metadata!.uid, p.status?.phase, p.status?.containerStatuses?.[0]?.restartCount])).toEqual(
      executors.map((p) => [p.metadata!.uid, 'Running', 0]),
    );
    expect(Number(again[1])).toBe(EXPECTED_SUM);
    expect(hostsOf(again)).toEqual(hostsOf(first));
    expect(result.stderr).not.toContain('dss-spark-k8s warning');
    expect(await jobObjects(job.jobId)).toEqual([]);
  });
});

describe.concurrent('running executors die with their job', () => {
  it('a SIGKILLed driver: run tears down and no pod is left when it returns', async () => {
    const job = startJob('hold', writeConfig({ sparkSubmit: sparkSubmitPath(), sparkConf: sparkConf() }));
    const { namespace } = await provisioned(job);
    await waitForLine(job, /^node-app: holding$/m);
    const before = await jobPods(namespace, job.jobId);
    process.kill(driverPid(job), 'SIGKILL');
    const result = await job.result;

    expect(before.map((p) => p.status?.phase)).toEqual(['Running', 'Running']);
    expect(result.exitCode, tail(result.stderr)).toBe(137);
    expect(await jobObjects(job.jobId)).toEqual([]);
  });

  it('a SIGKILLed run whose driver hangs: cleanup --orphans --yes deletes the running executors', async () => {
    // Renewed every second, the Lease expires a few seconds after the CLI is gone. A namespace of its own: the
    // clean-up below is of the whole namespace.
    const profile = writeConfig({
      sparkSubmit: sparkSubmitPath(),
      sparkConf: sparkConf(),
      leaseRenewSeconds: 1,
      targetNamespace: 'dss-orphan-${dssUserLogin}',
    });
    const job = startJob('hold', profile);
    const { namespace } = await provisioned(job);
    await waitForLine(job, /^node-app: holding$/m);
    // A frozen driver neither stops its executors nor makes new ones; they go on running without it.
    const driver = driverPid(job);
    // sudo, which stops itself when its command stops, and must be continued to see it die.
    const sudo = Number(readFileSync(`/proc/${driver}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
    process.kill(driver, 'SIGSTOP');
    try {
      // Its exit, not its pipes' end: the frozen driver holds them open.
      const exited = new Promise((r) => job.cli.child.once('exit', r));
      job.cli.child.kill('SIGKILL');
      await exited;
      await new Promise((r) => setTimeout(r, 3000));
      const stillRunning = (await jobPods(namespace, job.jobId)).map((p) => p.status?.phase);
      let last = '';
      const cleanup = await until('the job found orphaned by cleanup', 60_000, async () => {
        const attempt = await runCli(['cleanup', '--orphans', '--yes', '-n', namespace, '--config', profile.path, '-o', 'json']);
        last = `exit ${attempt.exitCode}: ${attempt.stdout} ${attempt.stderr}`;
        const jobs = attempt.exitCode === 0 || attempt.stdout.startsWith('[') ? (JSON.parse(attempt.stdout) as { jobId: string; state: string }[]) : [];
        return jobs.some((j) => j.jobId === job.jobId && j.state === 'orphaned') ? attempt : undefined;
      }).catch((error: Error) => Promise.reject(new Error(`${error.message}; the last cleanup: ${last}`)));

      expect(stillRunning).toEqual(['Running', 'Running']);
      expect(cleanup.exitCode, cleanup.stderr).toBe(0);
      // A deleted pod is gone once the kubelet has stopped its containers.
      await until('no job pod', 60_000, async () => ((await jobPods(namespace, job.jobId)).length === 0 ? true : undefined));
      expect(await jobObjects(job.jobId)).toEqual([]);
    } finally {
      process.kill(driver, 'SIGKILL');
      process.kill(sudo, 'SIGCONT');
    }
  });
});

describe.concurrent('an executor pod template that would weaken the managed part', () => {
  it.each([
    ['privileged', 'spec: { containers: [{ securityContext: { privileged: true } }] }', 'spec.containers[0].securityContext.privileged: refused'],
    ['hostPath', 'spec: { volumes: [{ name: root, hostPath: { path: / } }] }', 'spec.volumes[0].hostPath: refused'],
    ['another account', 'spec: { serviceAccountName: default }', 'spec.serviceAccountName: refused'],
  ])('%s: run refuses it in one line (exit 78) and creates nothing', async (_, template, expected) => {
    const jobId = uniqueJobId('tpl');
    const profile = writeConfig({ sparkSubmit: sparkSubmitPath(), executorPodTemplate: template });
    const result = await runCli(['run', '--user', alice.name, '--config', profile.path, '--job-id', jobId, '--', appFile, '/tmp', 'ok']);
    expect(result.exitCode).toBe(78);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain(`profiles.default.executorPodTemplate.${expected}`);
    expect(await jobObjects(jobId)).toEqual([]);
  });
});
