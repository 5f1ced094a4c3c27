// The NetworkPolicy of an auto-created namespace, enforced on the node (kube-router, scripts/network-policy.sh):
// one real PySpark job through `dss-spark-k8s run` computes its result under it (executors reach the driver on
// the managed ports), while it holds its executors a pod of another namespace cannot connect to one, a pod of
// the job's namespace can; and dssuser cannot create a broader policy, nor one outside a namespace it made.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildNetworkPolicy, driverAddresses } from '../../src/plan/network-policy.ts';
import { dssuserDir, runCli, startCli, uniqueJobId, writeConfig, type RunningCli } from '../support/cli.ts';
import { adminCore, uniqueName } from '../support/kube.ts';
import { adminApi, dssuserApi, REFUSED_BY } from '../support/redteam.ts';
import { nodeSparkConf } from '../support/spark.ts';

const root = resolve(import.meta.dirname, '../..');
const cluster = inject('cluster');
const unix = inject('unix');
const alice = unix.endUsers[0]!;
const JOB_LABEL = 'dss-spark-k8s.dataiku.io/job-id';
const EXPECTED_SUM = 500000500000;
const PORTS = { from: 40000, to: 40127 };
/** A fresh per-user namespace for this file, so that the job auto-creates it (and its policy). */
const prefix = uniqueName('dss-np');
const namespaceOf = (login: string) => `${prefix}-${login}`;
/** A namespace an administrator made, not managed: the client of the "another namespace" probe. */
const other = uniqueName('np-other');

const APP = `
import os, sys, time
from pyspark.sql import SparkSession
work = sys.argv[1]
spark = SparkSession.builder.appName("dss-spark-k8s-network-policy-test").getOrCreate()
sc = spark.sparkContext
pairs = sc.parallelize(range(1, 1000001), 8).map(lambda x: (x % 4, x)).reduceByKey(lambda a, b: a + b).collect()
print(f"np-app: sum={sum(v for _, v in pairs)}", flush=True)
deadline = time.monotonic() + 300
while not os.path.exists(os.path.join(work, "release")) and time.monotonic() < deadline:
    time.sleep(0.2)
spark.stop()
print("np-app: done", flush=True)
`;

let cli: RunningCli | undefined;
let stdout = '';
let work = '';
let jobId = '';
const scratch: string[] = [];

function sparkConf(): Record<string, string> {
  const node = cluster.node;
  if (!node) throw new Error("these tests need the local cluster's node (scripts/cluster.sh up without --no-node)");
  if (node.networkPolicy !== true) {
    throw new Error('these tests need NetworkPolicy enforcement on the node (cluster.json node.networkPolicy: bash scripts/network-policy.sh start)');
  }
  return nodeSparkConf(node.executorImage);
}

async function until<T>(what: string, timeoutMs: number, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms; stdout ends with:\n${stdout.split('\n').slice(-20).join('\n')}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A client pod from the executor image, as Pod Security restricted admits it. */
function clientPod(name: string): V1Pod {
  const seccompProfile = { type: 'RuntimeDefault' };
  return {
    metadata: { name },
    spec: {
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 0,
      securityContext: { runAsNonRoot: true, runAsUser: 185, seccompProfile },
      containers: [
        {
          name: 'c',
          image: cluster.node!.executorImage,
          imagePullPolicy: 'Never',
          command: ['sleep', '300'],
          securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, runAsNonRoot: true, seccompProfile },
        },
      ],
    },
  };
}

async function runningPod(namespace: string, name: string): Promise<V1Pod> {
  await adminCore().createNamespacedPod({ namespace, body: clientPod(name) });
  return until(`pod ${namespace}/${name} Running`, 60_000, async () => {
    const pod = await adminCore().readNamespacedPod({ namespace, name });
    return pod.status?.phase === 'Running' && pod.status.podIP ? pod : undefined;
  });
}

/** A 2 s TCP connect from inside a pod: OPEN, or BLOCKED (refused by the policy's REJECT, or timed out). */
function connectFrom(namespace: string, pod: string, ip: string, port: number): 'OPEN' | 'BLOCKED' {
  const script = `import socket\ns = socket.socket()\ns.settimeout(2)\ntry:\n    s.connect(("${ip}", ${port})); print("OPEN")\nexcept OSError:\n    print("BLOCKED")`;
  return execFileSync(cluster.kubectl, ['--kubeconfig', cluster.adminKubeconfig, 'exec', '-n', namespace, pod, '--', 'python3', '-c', script], {
    encoding: 'utf8',
    timeout: 30_000,
  }).trim() as 'OPEN' | 'BLOCKED';
}

/** The same connect from the host (the driver's side): kube-router never filters host → pod. */
function connectFromHost(ip: string, port: number): 'OPEN' | 'BLOCKED' {
  const script = `import socket\ns = socket.socket()\ns.settimeout(2)\ntry:\n    s.connect(("${ip}", ${port})); print("OPEN")\nexcept OSError:\n    print("BLOCKED")`;
  return execFileSync('python3', ['-c', script], { encoding: 'utf8' }).trim() as 'OPEN' | 'BLOCKED';
}

/** Kube-router syncs a new pod's rules within ~0.2 s: a probe that should open retries for a few seconds. */
async function eventually(probe: () => 'OPEN' | 'BLOCKED', expected: 'OPEN' | 'BLOCKED', timeoutMs = 6_000): Promise<'OPEN' | 'BLOCKED'> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = probe();
    if (got === expected || Date.now() > deadline) return got;
    await new Promise((r) => setTimeout(r, 500));
  }
}

beforeAll(async () => {
  sparkConf(); // fails at once without an enforcing node
  await adminCore().createNamespace({ body: { metadata: { name: other } } });
});

afterAll(async () => {
  if (work && !existsSync(join(work, 'release'))) writeFileSync(join(work, 'release'), '');
  if (cli && cli.child.exitCode === null && cli.child.signalCode === null) {
    const ended = await Promise.race([cli.result.then(() => true), new Promise((r) => setTimeout(() => r(false), 20_000))]);
    if (!ended) {
      cli.child.kill('SIGTERM');
      await cli.result;
    }
  }
  await until(`no process of ${alice.name} left`, 15_000, () => (spawnSync('pgrep', ['-u', String(alice.uid)]).status === 1 ? true : undefined));
  for (const namespace of [other, namespaceOf(alice.name)])
    await adminCore()
      .deleteNamespace({ name: namespace })
      .catch(() => {});
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
  rmSync(`/tmp/hsperfdata_${alice.name}`, { recursive: true, force: true });
});

describe('a job in an auto-created namespace, with NetworkPolicy enforced on the node', () => {
  const namespace = namespaceOf(alice.name);
  const profile = { targetNamespace: `${prefix}-\${dssUserLogin}`, networkPolicy: { driverPorts: `${PORTS.from}-${PORTS.to}` } };
  let executors: V1Pod[] = [];

  it('gives an auto-created namespace the NetworkPolicy of the profile', async () => {
    const sparkSubmit = execFileSync('bash', [join(root, 'scripts/install-pyspark.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
    const config = writeConfig({ ...profile, sparkSubmit, sparkConf: sparkConf() });
    work = dssuserDir('dss-spark-k8s-test-np-');
    scratch.push(work, config.path.replace(/\/config\.yaml$/, ''));
    mkdirSync(join(work, 'tmp'));
    const app = join(work, 'np-app.py');
    writeFileSync(app, APP);
    chmodSync(app, 0o644);
    execFileSync('chown', ['-R', `${alice.uid}:${alice.gid}`, work]);
    jobId = uniqueJobId('np');
    const eventsDir = dssuserDir('dss-spark-k8s-test-events-');
    scratch.push(eventsDir);
    const events = join(eventsDir, 'events.jsonl');
    cli = startCli([
      'run',
      '--user',
      alice.name,
      '--config',
      config.path,
      '--job-id',
      jobId,
      '--events',
      events,
      '--',
      '--driver-java-options',
      `-Djava.io.tmpdir=${join(work, 'tmp')}`,
      app,
      work,
    ]);
    cli.child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const provisioned = await until('"provisioned" event', 60_000, () =>
      existsSync(events)
        ? readFileSync(events, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((line) => JSON.parse(line) as Record<string, unknown>)
            .find((e) => e.event === 'provisioned')
        : undefined,
    );
    expect(provisioned.namespaceCreated).toBe(true);

    const read = await adminApi().get('networkpolicies', namespace, 'dss-spark-k8s');
    expect(read.status, read.message).toBe(200);
    const expected = buildNetworkPolicy(
      namespace,
      { enabled: true, driverPorts: PORTS, egress: [] },
      driverAddresses({ networkPolicy: { enabled: true, driverPorts: PORTS, egress: [] }, sparkConf: {} }),
    );
    const stored = read.body as { metadata: { labels: Record<string, string> }; spec: unknown };
    expect(stored.metadata.labels).toEqual(expected.metadata.labels);
    expect(stored.spec).toEqual(expected.spec);
    expect(JSON.stringify(stored.spec)).toContain('"endPort":40127');
    // The stored object goes through the server's validation again (a server-side dry run of a copy).
    const copy = await adminApi().create('networkpolicies', namespace, { ...expected, metadata: { ...expected.metadata, name: 'copy' } });
    expect(copy.status, copy.message).toBe(201);
  });

  it('prints, for a team namespace an administrator made, the same policy (policy network-policy), which the server admits there', async () => {
    const config = writeConfig(profile);
    scratch.push(config.path.replace(/\/config\.yaml$/, ''));
    const printed = await runCli(['policy', 'network-policy', '-n', other, '--config', config.path, '-o', 'json']);
    expect(printed.exitCode, printed.stderr).toBe(0);
    const policy = JSON.parse(printed.stdout) as ReturnType<typeof buildNetworkPolicy>;
    const stored = (await adminApi().get('networkpolicies', namespace, 'dss-spark-k8s')).body as { spec: unknown };
    expect(policy.metadata.namespace).toBe(other);
    expect(policy.spec).toEqual(stored.spec);
    const applied = await adminApi().create('networkpolicies', other, policy);
    expect(applied.status, applied.message).toBe(201);
    // dssuser may not put it there: the namespace is an administrator's.
    const byDssuser = await dssuserApi().create('networkpolicies', other, policy);
    expect(byDssuser.status, byDssuser.message).toBe(403);
  });

  it('computes its result on 2 executors, which reach the driver on the managed ports', async () => {
    const line = await until('the sum line', 240_000, () => stdout.match(/^np-app: sum=(\d+)$/m) ?? undefined);
    expect(Number(line[1])).toBe(EXPECTED_SUM);
    executors = (await adminCore().listNamespacedPod({ namespace, labelSelector: `${JOB_LABEL}=${jobId},spark-role=executor` })).items;
    expect(executors.map((p) => p.status?.phase)).toEqual(['Running', 'Running']);
  });

  it("keeps pods of other namespaces away from the executors, not the namespace's own pods", async () => {
    const executorIp = executors[0]?.status?.podIP;
    expect(executorIp).toBeDefined();
    // The executor's block manager listens on the first port of the range (spark.blockManager.port).
    expect(connectFromHost(executorIp!, PORTS.from)).toBe('OPEN');
    await Promise.all([runningPod(other, 'client'), runningPod(namespace, 'client')]);
    expect(await eventually(() => connectFrom(namespace, 'client', executorIp!, PORTS.from), 'OPEN')).toBe('OPEN');
    expect(connectFrom(other, 'client', executorIp!, PORTS.from)).toBe('BLOCKED');
    await new Promise((r) => setTimeout(r, 1_000));
    expect(connectFrom(other, 'client', executorIp!, PORTS.from)).toBe('BLOCKED');
  });

  it('ends with exit code 0 once released', async () => {
    writeFileSync(join(work, 'release'), '');
    const result = await cli!.result;
    expect(result.exitCode, result.stderr.split('\n').slice(-20).join('\n')).toBe(0);
    expect(stdout).toContain('np-app: done');
  });

  it('refuses dssuser a broader NetworkPolicy in the managed namespace, and any in another one (403)', async () => {
    const tool = buildNetworkPolicy(namespace, { enabled: true, driverPorts: PORTS, egress: [] }, ['192.0.2.2/32']);
    const allowAll = { ...tool, spec: { ...tool.spec, ingress: [{}], egress: [{}] } };
    const outcomes = await Promise.all([
      dssuserApi().create('networkpolicies', namespace, allowAll),
      dssuserApi().create('networkpolicies', namespace, { ...tool, metadata: { ...tool.metadata, name: 'allow-more' } }),
      dssuserApi().create('networkpolicies', other, { ...tool, metadata: { ...tool.metadata, namespace: other } }),
    ]);
    for (const outcome of outcomes) {
      expect(outcome.status, outcome.message).toBe(403);
      expect(outcome.message).toMatch(REFUSED_BY.dssuserPolicy);
    }
  });
});
