// B5 a real job's start: the time from process start to the job's result (the application's result line on
// stdout) for one PySpark job whose 2 executor pods run on the bench cluster's node, (a) through
// `dss-spark-k8s run` as the dssuser account (provisioning, sudo, the managed executor template, teardown) and
// (b) plain `spark-submit` as the end user with a static administrator kubeconfig (no provisioning), with the
// same Spark settings, interleaved a b a b …. The ratio a/b of the medians and their difference.
import { chmodSync, chownSync, copyFileSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { BenchEnv } from './lib/env.ts';
import { accountEnv, type Account } from './lib/proc.ts';
import { summarize, type Summary } from './lib/stats.ts';
import { nodeSparkConf } from '../test/support/spark.ts';

export interface B5Result {
  rounds: number;
  /** Process start → result line. */
  tool: Summary;
  plain: Summary;
  /** Process start → exit (teardown included for the tool). */
  toolExit: Summary;
  plainExit: Summary;
  ratio: number;
  differenceMs: number;
}

const EXPECTED = 'b5-app: sum=500000500000';

const APP = `
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("dss-spark-k8s-b5").getOrCreate()
total = spark.sparkContext.parallelize(range(1, 1000001), 8).sum()
print(f"b5-app: sum={total}", flush=True)
spark.stop()
`;

interface Timing {
  resultMs: number;
  exitMs: number;
}

function timeToResult(file: string, args: string[], as: Account, env: Record<string, string>): Promise<Timing> {
  const start = performance.now();
  const child = spawn(file, args, { uid: as.uid, gid: as.gid, cwd: as.home, env: { ...accountEnv(as), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let resultMs: number | undefined;
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    if (resultMs === undefined && stdout.includes(EXPECTED)) resultMs = performance.now() - start;
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      const exitMs = performance.now() - start;
      if (code !== 0 || resultMs === undefined)
        reject(new Error(`B5: ${file} exited with ${code} without "${EXPECTED}"; stderr ends with: ${stderr.slice(-1500)}`));
      else resolve({ resultMs, exitMs });
    });
  });
}

export async function benchB5(env: BenchEnv, rounds: number, log: (line: string) => void): Promise<B5Result> {
  if (!env.node) throw new Error('B5 needs the bench cluster to have a node (another cluster on this machine has it: stop it first)');
  const conf = nodeSparkConf(env.node.executorImage);
  const app = join(env.scratch, 'b5-app.py');
  writeFileSync(app, APP);
  chmodSync(app, 0o644);

  // (a) a profile with the real spark-submit.
  const config = join(env.scratch, 'b5-config.yaml');
  writeFileSync(
    config,
    `${JSON.stringify({ profiles: { default: { sparkSubmit: env.sparkSubmit, kubeconfig: env.kubeconfig, autoCreateNamespace: true, tempDir: env.tempDir, sparkConf: conf } } }, null, 2)}\n`,
  );
  chownSync(config, env.dssuser.uid, env.dssuser.gid);
  const toolArgs = (i: number) => ['run', '--user', env.user.name, '--config', config, '--job-id', `b5-${i}`, '--quiet', '--', app];

  // (b) the end user with a static administrator kubeconfig, in the same namespace, with a pod template of
  // the same shape as the tool's (restricted, no token) and the namespace's default account.
  const adminKubeconfig = join(env.user.home, 'b5-admin.kubeconfig');
  copyFileSync(env.cluster.adminKubeconfig, adminKubeconfig);
  const ca = join(env.user.home, 'b5-ca.crt');
  copyFileSync(env.cluster.caFile, ca);
  const template = join(env.user.home, 'b5-executor-pod.json');
  const seccompProfile = { type: 'RuntimeDefault' };
  writeFileSync(
    template,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      spec: {
        automountServiceAccountToken: false,
        securityContext: { runAsNonRoot: true, runAsUser: 185, seccompProfile },
        containers: [
          {
            name: 'spark-kubernetes-executor',
            securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, runAsNonRoot: true, seccompProfile },
          },
        ],
      },
    }),
  );
  for (const file of [adminKubeconfig, ca, template]) chownSync(file, env.user.uid, env.user.gid);
  chmodSync(adminKubeconfig, 0o600);
  const plainArgs = [
    '--master',
    `k8s://${env.cluster.server}`,
    '--deploy-mode',
    'client',
    '--conf',
    `spark.kubernetes.namespace=${env.namespace}`,
    '--conf',
    `spark.kubernetes.authenticate.caCertFile=${ca}`,
    '--conf',
    `spark.kubernetes.executor.podTemplateFile=${template}`,
    '--conf',
    'spark.kubernetes.executor.podTemplateContainerName=spark-kubernetes-executor',
    '--conf',
    'spark.kubernetes.executor.disableConfigMap=true',
    ...Object.entries(conf).flatMap(([k, v]) => ['--conf', `${k}=${v}`]),
    app,
  ];

  const variants = {
    tool: (i: number) => timeToResult(env.cli, toolArgs(i), env.dssuser, {}),
    plain: () => timeToResult(env.sparkSubmit, plainArgs, env.user, { KUBECONFIG: adminKubeconfig }),
  };
  log('B5: warm-up (one job each way; the first makes the namespace)');
  await variants.tool(0);
  await variants.plain();
  const samples = { tool: [] as Timing[], plain: [] as Timing[] };
  for (let i = 1; i <= rounds; i++) {
    // a b, then b a: each goes first as often.
    const order = i % 2 === 1 ? (['tool', 'plain'] as const) : (['plain', 'tool'] as const);
    for (const name of order) samples[name].push(await variants[name](i));
    log(`B5: round ${i}/${rounds}: tool ${samples.tool.at(-1)!.resultMs.toFixed(0)} ms, plain ${samples.plain.at(-1)!.resultMs.toFixed(0)} ms to the result`);
  }
  const tool = summarize(samples.tool.map((t) => t.resultMs));
  const plain = summarize(samples.plain.map((t) => t.resultMs));
  return {
    rounds,
    tool,
    plain,
    toolExit: summarize(samples.tool.map((t) => t.exitMs)),
    plainExit: summarize(samples.plain.map((t) => t.exitMs)),
    ratio: tool.median / plain.median,
    differenceMs: tool.median - plain.median,
  };
}
