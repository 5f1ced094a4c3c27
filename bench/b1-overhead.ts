// B1 per-job overhead: `dss-spark-k8s run` for an existing namespace with a spark-submit that does nothing
// (/bin/true through the sudo rule), process start to exit, run as the dssuser Unix account with the
// restricted identity — interleaved with (a) the kubectl script doing the same work and (b) the parts of
// the floor: `node -e 0`, `sudo -n -u <user> true`, and keep-alive API round trips measured from Node.
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { labelledObjects } from './lib/api.ts';
import type { BenchEnv } from './lib/env.ts';
import { expectExit, timed, type TimedResult } from './lib/proc.ts';
import { rotated, summarize, type Summary } from './lib/stats.ts';

/**
 * Dependent round trips of `run` for an existing namespace (profile autoCreateNamespace: true):
 *   1. GET the namespace (it exists: nothing to create)
 *   2. job SA, executor SA, RoleBinding (to the pre-made driver ClusterRole), Lease, anchor Secret — 5 creates
 *      in parallel
 *   3. TokenRequest (needs the SA, and the anchor's uid to bind the token to)
 *   4. teardown: deletecollection of pods/services/configmaps/PVCs by job label, the RoleBinding, both SAs and
 *      the anchor Secret — in parallel
 *   5. the Lease, last (only when everything else is gone: an unrenewed Lease is how cleanup finds a failure)
 */
export const RUN_ROUND_TRIPS = { provisioning: 3, teardown: 2 };

export interface PhaseSamples {
  [phase: string]: number[];
}

export interface B1Result {
  iterations: number;
  run: Summary;
  runCpu: Summary;
  kubectlSimple: Summary;
  kubectlSimpleCpu: Summary;
  kubectlBatched: Summary;
  kubectlBatchedCpu: Summary;
  node: Summary;
  sudo: Summary;
  rttGet: Summary;
  rttWrite: Summary;
  /** node + sudo + 5 × GET round trip (the floor). */
  floor: number;
  /** The same with the 4 write round trips timed as writes (a create and a delete). */
  floorWrites: number;
  phases: Record<string, Summary>;
  components: Record<string, Summary>;
  objectsLeft: string[];
  tempDirsLeft: number;
}

const PHASES = ['start → planned', 'planned → provisioned', 'provisioned → started', 'started → exited', 'exited → torn-down', 'torn-down → exit'] as const;

export async function benchB1(env: BenchEnv, iterations: number, log: (line: string) => void): Promise<B1Result> {
  const u = env.user;
  const nsPath = `/api/v1/namespaces/${env.namespace}`;
  const kubectlEnv = {
    KUBECTL: env.cluster.kubectl,
    KUBECONFIG: env.kubeconfig,
    SERVER: env.cluster.server,
    CA_DATA: Buffer.from(env.caPem).toString('base64'),
  };
  const script = join(import.meta.dirname, 'kubectl-job.sh');
  const rusage = join(env.scratch, 'rusage');
  const events = join(env.scratch, 'events.jsonl');
  const aclProbe = join(env.scratch, 'acl-probe');

  const samples = {
    run: [] as number[],
    runCpu: [] as number[],
    kubectlSimple: [] as number[],
    kubectlSimpleCpu: [] as number[],
    kubectlBatched: [] as number[],
    kubectlBatchedCpu: [] as number[],
    node: [] as number[],
    sudo: [] as number[],
    rttGet: [] as number[],
    rttWrite: [] as number[],
  };
  const phases: PhaseSamples = Object.fromEntries(PHASES.map((p) => [p, []]));
  const components: PhaseSamples = { 'id (the user and its groups)': [], 'sudo -n -l (pre-check)': [], setfacl: [] };

  const runOnce = async (jobId: string, record: boolean) => {
    rmSync(events, { force: true });
    const r = await timed(env.cli, ['run', '--user', u.name, '--config', env.config, '--job-id', jobId, '--quiet', '--events', events], {
      as: env.dssuser,
      rusageFile: rusage,
    });
    expectExit(r, `dss-spark-k8s run (job ${jobId})`);
    if (!record) return;
    samples.run.push(r.ms);
    if (r.cpuMs !== undefined) samples.runCpu.push(r.cpuMs);
    addPhases(phases, r, readFileSync(events, 'utf8'));
  };
  const kubectlOnce = async (mode: 'simple' | 'batched', jobId: string, record: boolean) => {
    const r = await timed('bash', [script, mode, env.namespace, u.name, jobId, env.scratch], { as: env.dssuser, env: kubectlEnv, rusageFile: rusage });
    expectExit(r, `bench/kubectl-job.sh ${mode}`);
    if (!record) return;
    (mode === 'simple' ? samples.kubectlSimple : samples.kubectlBatched).push(r.ms);
    if (r.cpuMs !== undefined) (mode === 'simple' ? samples.kubectlSimpleCpu : samples.kubectlBatchedCpu).push(r.cpuMs);
  };
  const nodeOnce = async (record: boolean) => {
    const r = await timed(process.execPath, ['-e', '0'], { as: env.dssuser });
    expectExit(r, 'node -e 0');
    if (record) samples.node.push(r.ms);
  };
  const sudoOnce = async (record: boolean) => {
    const r = await timed('sudo', ['-n', '-u', u.name, '/bin/true'], { as: env.dssuser });
    expectExit(r, `sudo -n -u ${u.name} /bin/true`);
    if (record) samples.sudo.push(r.ms);
  };
  const rttOnce = async (i: number, record: boolean) => {
    for (let k = 0; k < 10; k++) {
      const ms = await env.dss.timedCall('GET', nsPath);
      if (record) samples.rttGet.push(ms);
    }
    // Writes: a labelled ServiceAccount created and deleted, as the restricted identity.
    const name = `b1-rtt-${i}`;
    const create = await env.dss.timedCall('POST', `${nsPath}/serviceaccounts`, {
      metadata: { name, labels: { 'app.kubernetes.io/managed-by': 'dss-spark-k8s', 'dss-spark-k8s.dataiku.io/job-id': name } },
    });
    const remove = await env.dss.timedCall('DELETE', `${nsPath}/serviceaccounts/${name}`);
    if (record) samples.rttWrite.push(create, remove);
  };
  const componentsOnce = async () => {
    const probes: [string, string, string[]][] = [
      ['id (the user and its groups)', 'id', ['--', u.name]],
      ['sudo -n -l (pre-check)', 'sudo', ['-n', '-l', '-u', u.name, '--', '/bin/true']],
      ['setfacl', 'setfacl', ['-m', `u:${u.uid}:r`, aclProbe]],
    ];
    for (const [label, file, args] of probes) {
      const r = await timed(file, args, { as: env.dssuser });
      expectExit(r, `${file} ${args.join(' ')}`);
      components[label]!.push(r.ms);
    }
  };

  log('B1: warm-up (the first run creates the namespace; compile cache, kubectl discovery cache, sudo)');
  await runOnce('b1-warm-0', false);
  await runOnce('b1-warm-1', false);
  await kubectlOnce('simple', 'warm-s', false);
  await kubectlOnce('batched', 'warm-b', false);
  await nodeOnce(false);
  await sudoOnce(false);
  await timed('sh', ['-c', `touch ${aclProbe}`], { as: env.dssuser });
  for (let k = 0; k < 3; k++) await rttOnce(1000 + k, false);

  const variants: ((i: number) => Promise<void>)[] = [
    (i) => runOnce(`b1-${i}`, true),
    (i) => kubectlOnce('simple', `s${i}`, true),
    () => nodeOnce(true),
    (i) => kubectlOnce('batched', `b${i}`, true),
    () => sudoOnce(true),
    (i) => rttOnce(i, true),
    () => componentsOnce(),
  ];
  for (let i = 0; i < iterations; i++) {
    for (const variant of rotated(variants, i)) await variant(i);
    if ((i + 1) % 5 === 0 || i + 1 === iterations) log(`B1: ${i + 1}/${iterations} rounds`);
  }

  const objectsLeft = await labelledObjects(env.admin, 'app.kubernetes.io/managed-by=dss-spark-k8s');
  const tempDirsLeft = readdirSync(env.tempDir).length;
  const s = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v)])) as Record<keyof typeof samples, Summary>;
  const { provisioning, teardown } = RUN_ROUND_TRIPS;
  return {
    iterations,
    ...s,
    floor: s.node.median + s.sudo.median + (provisioning + teardown) * s.rttGet.median,
    floorWrites: s.node.median + s.sudo.median + s.rttGet.median + (provisioning + teardown - 1) * s.rttWrite.median,
    phases: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, summarize(v)])),
    components: Object.fromEntries(Object.entries(components).map(([k, v]) => [k, summarize(v)])),
    objectsLeft,
    tempDirsLeft,
  };
}

/** Splits one run's wall time at its --events timestamps (absolute, ms) relative to its spawn. */
function addPhases(phases: PhaseSamples, r: TimedResult, eventsText: string) {
  const at: Record<string, number> = {};
  for (const line of eventsText.trim().split('\n')) {
    const event = JSON.parse(line) as { event: string; time: string };
    at[event.event] = Date.parse(event.time);
  }
  const marks = [r.spawnedAt, at.planned, at.provisioned, at.started, at.exited, at['torn-down'], r.spawnedAt + r.ms];
  if (marks.some((m) => m === undefined || Number.isNaN(m))) return;
  PHASES.forEach((phase, i) => {
    phases[phase]!.push(marks[i + 1]! - marks[i]!);
  });
}
