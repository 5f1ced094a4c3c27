// The results as a Markdown table (printed) and as BENCHMARKS.md (the table, where the time of one run goes,
// the machine, the method and the targets).
import { existsSync, readFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import type { B1Result } from './b1-overhead.ts';
import { RUN_ROUND_TRIPS } from './b1-overhead.ts';
import type { B2Result } from './b2-startup.ts';
import { type B3Round, OBJECTS_PER_JOB } from './b3-cleanup.ts';
import type { B4Result } from './b4-concurrency.ts';
import type { B5Result } from './b5-job.ts';
import { trySh } from './lib/proc.ts';
import { formatMs, formatRatio, type Summary } from './lib/stats.ts';

export interface Machine {
  cpu: string;
  cores: number;
  memory: string;
  kernel: string;
  os: string;
  loadavg: string;
}

export interface Results {
  started: Date;
  finished?: Date;
  settings: {
    quick: boolean;
    b1Runs: number;
    b2Runs: number;
    b2Cold: number;
    orphanCounts: number[];
    concurrency: number;
    b4Singles: number;
    b5Rounds: number;
  };
  machineBefore: Machine;
  machineAfter?: Machine;
  versions?: { node: string; kubectl: string; apiserver: string };
  b1?: B1Result;
  b2?: B2Result;
  b3?: B3Round[];
  b4?: B4Result;
  b5?: B5Result;
}

export function machine(): Machine {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown';
  const mhz = /^cpu MHz\s*:\s*([\d.]+)$/m.exec(cpuinfo)?.[1];
  const free = trySh('free', ['-m'])
    ?.split('\n')
    .find((l) => l.startsWith('Mem:'))
    ?.trim()
    .split(/\s+/);
  const os = /^PRETTY_NAME="?([^"\n]+)"?$/m.exec(trySh('cat', ['/etc/os-release']) ?? '')?.[1] ?? 'Linux';
  return {
    cpu: `${model}${mhz ? ` @ ${Math.round(Number(mhz))} MHz` : ''}`,
    cores: (cpuinfo.match(/^processor\s*:/gm) ?? []).length,
    memory: free ? `${free[1]} MB total, ${free[6] ?? '?'} MB available (free -m)` : 'unknown',
    kernel: release(),
    os,
    loadavg: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
  };
}

type Row = [benchmark: string, measure: string, n: string, median: string, p95: string, ratio: string, target: string, met: string];

const met = (ok: boolean) => (ok ? 'met' : '**not met**');

function row(benchmark: string, measure: string, s: Summary | undefined, ratio = '', target = '', ok?: boolean): Row {
  return [benchmark, measure, s ? String(s.n) : '', s ? formatMs(s.median) : '', s ? formatMs(s.p95) : '', ratio, target, ok === undefined ? '' : met(ok)];
}

function table(rows: Row[]): string {
  const header: Row = ['Benchmark', 'Measure', 'n', 'median', 'p95', 'ratio (medians)', 'target', ''];
  const lines = [header, header.map(() => '---') as unknown as Row, ...rows];
  return lines.map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

function b1Rows(b1: B1Result): Row[] {
  const vsKubectl = b1.run.median / b1.kubectlSimple.median;
  const vsFloor = b1.run.median / b1.floor;
  const trips = RUN_ROUND_TRIPS.provisioning + RUN_ROUND_TRIPS.teardown;
  return [
    row('B1 per-job overhead', '`dss-spark-k8s run` (existing namespace, spark-submit = /bin/true via sudo)', b1.run),
    row('B1', 'kubectl script, simple (6 kubectl runs)', b1.kubectlSimple, `run / script = ${formatRatio(vsKubectl)}`, '≤ 0.25×', vsKubectl <= 0.25),
    row('B1', 'kubectl script, batched (3 kubectl runs)', b1.kubectlBatched, `run / script = ${formatRatio(b1.run.median / b1.kubectlBatched.median)}`),
    [
      'B1',
      `floor = node -e 0 + sudo true + ${trips} × keep-alive GET`,
      '',
      formatMs(b1.floor),
      '',
      `run / floor = ${formatRatio(vsFloor)}`,
      '≤ 2×',
      met(vsFloor <= 2),
    ],
    [
      'B1',
      `floor with writes = node + sudo + 1 GET + ${trips - 1} × write`,
      '',
      formatMs(b1.floorWrites),
      '',
      `run / floor = ${formatRatio(b1.run.median / b1.floorWrites)}`,
      '',
      '',
    ],
    row('B1', '  `node -e 0`', b1.node),
    row('B1', '  `sudo -n -u <user> /bin/true`', b1.sudo),
    row('B1', '  one keep-alive GET (namespace, as dssuser)', b1.rttGet),
    row('B1', '  one keep-alive write (create/delete a ServiceAccount)', b1.rttWrite),
    row('B1', 'CPU (user+sys, with children) per `run`', b1.runCpu),
    row('B1', 'CPU per kubectl script, simple', b1.kubectlSimpleCpu, `run / script = ${formatRatio(b1.runCpu.median / b1.kubectlSimpleCpu.median)}`),
    [
      'B1',
      'objects / temp dirs left after all runs',
      '',
      '',
      '',
      '',
      '0 / 0',
      met(b1.objectsLeft.length === 0 && b1.tempDirsLeft === 0) + ` (${b1.objectsLeft.length} / ${b1.tempDirsLeft})`,
    ],
  ];
}

function b2Rows(b2: B2Result): Row[] {
  const ratio = b2.version.median / b2.node.median;
  return [
    row('B2 start-up', '`node -e 0`', b2.node),
    row('B2', '`dss-spark-k8s --version`', b2.version, `vs node = ${formatRatio(ratio)}`, '≤ 1.5×', ratio <= 1.5),
    row(
      'B2',
      '  the same without the bin shim (`node dist/…mjs --version`)',
      b2.versionNoShim,
      `vs node = ${formatRatio(b2.versionNoShim.median / b2.node.median)}`,
    ),
    row('B2', '`run --dry-run=client -o json`', b2.dryRun, `vs node = ${formatRatio(b2.dryRun.median / b2.node.median)}`),
    row('B2', '`--version`, compile cache removed', b2.versionCold, `vs node = ${formatRatio(b2.versionCold.median / b2.node.median)}`),
    row('B2', '`run --dry-run=client`, compile cache removed', b2.dryRunCold, `vs node = ${formatRatio(b2.dryRunCold.median / b2.node.median)}`),
  ];
}

function b3Rows(rounds: B3Round[]): Row[] {
  const rows: Row[] = [];
  for (const r of rounds) {
    const left = Object.values(r.left).reduce((a, b) => a + b, 0);
    const at10k = r.jobs === 10_000;
    const rssMb = r.maxRssKb === undefined ? undefined : r.maxRssKb / 1024;
    rows.push(
      [
        `B3 orphan cleanup`,
        `${r.jobs.toLocaleString('en')} jobs (${r.objects.toLocaleString('en')} objects): \`cleanup --orphans --yes\``,
        '1',
        formatMs(r.cleanupMs),
        '',
        `${Math.round(r.objectsDeleted / (r.cleanupMs / 1000))} objects/s`,
        at10k ? '≤ 60 s' : '',
        at10k ? met(r.cleanupMs <= 60_000 && r.exitCode === 0) : '',
      ],
      [
        'B3',
        `  of which listing only (\`cleanup --orphans -o json\`, no --yes)`,
        '1',
        formatMs(r.listMs),
        '',
        r.listMaxRssKb === undefined ? '' : `peak RSS ${(r.listMaxRssKb / 1024).toFixed(0)} MB`,
        '',
        '',
      ],
      [
        'B3',
        `  peak RSS / CPU`,
        '',
        rssMb === undefined ? '-' : `${rssMb.toFixed(0)} MB`,
        '',
        r.cleanupCpuMs === undefined ? '' : `CPU ${formatMs(r.cleanupCpuMs)}`,
        at10k ? '≤ 256 MB' : '',
        at10k && rssMb !== undefined ? met(rssMb <= 256) : '',
      ],
      [
        'B3',
        `  exit code; jobs deleted; left after cleanup`,
        '',
        String(r.exitCode),
        '',
        `${r.jobsDeleted}/${r.jobs} jobs; left: ${
          left === 0
            ? 'nothing'
            : Object.entries(r.left)
                .map(([k, v]) => `${v} ${k}`)
                .join(', ')
        }`,
        'all / nothing',
        met(r.exitCode === 0 && r.jobsDeleted === r.jobs && left === 0),
      ],
      [
        'B3',
        `  set-up: creating them as admin (32 in flight)`,
        '',
        formatMs(r.createMs),
        '',
        `${Math.round(r.objects / (r.createMs / 1000))} objects/s`,
        '',
        '',
      ],
    );
  }
  if (rounds.length >= 2) {
    const small = rounds[0]!;
    const large = rounds.at(-1)!;
    const scale = large.jobs / small.jobs;
    const ratio = large.cleanupMs / small.cleanupMs;
    const limit = 1.2 * scale;
    rows.push([
      'B3',
      `time ratio ${large.jobs.toLocaleString('en')} / ${small.jobs.toLocaleString('en')} jobs`,
      '',
      '',
      '',
      formatRatio(ratio),
      `≤ ${limit.toFixed(0)} (1.2 × ${scale.toFixed(0)})`,
      met(ratio <= limit),
    ]);
  }
  return rows;
}

function b4Rows(b4: B4Result): Row[] {
  const p50 = b4.concurrent.median / b4.single.median;
  const p95 = b4.concurrent.p95 / b4.single.median;
  const cpuBound = (b4.concurrentCpu.median * b4.concurrency) / machine().cores;
  return [
    row('B4 concurrency', 'single `run` (reference)', b4.single),
    row(
      'B4',
      `${b4.concurrency} concurrent runs, one user, namespace made by the race`,
      b4.concurrent,
      `p50 ${formatRatio(p50)}, p95 ${formatRatio(p95)} of single`,
      'p95 ≤ 3×',
      p95 <= 3,
    ),
    ['B4', 'successes', '', '', '', `${b4.successes}/${b4.concurrency}`, `${b4.concurrency}/${b4.concurrency}`, met(b4.successes === b4.concurrency)],
    [
      'B4',
      'objects / temp dirs left; namespaces for the user',
      '',
      '',
      '',
      `${b4.objectsLeft.length} / ${b4.tempDirsLeft}; ${b4.namespacesForUser}`,
      '0 / 0; 1',
      met(b4.objectsLeft.length === 0 && b4.tempDirsLeft === 0 && b4.namespacesForUser === 1),
    ],
    ['B4', 'makespan (first start → last exit)', '', formatMs(b4.makespanMs), '', `CPU bound: ${formatMs(cpuBound)}`, '', ''],
    row('B4', 'floor job (`node -e` running `sudo -n -u U true`), single', b4.floorSingle),
    row(
      'B4',
      `${b4.concurrency} floor jobs at once`,
      b4.floorConcurrent,
      `p95 ${formatRatio(b4.floorConcurrent.p95 / b4.floorSingle.median)} of single; makespan ${formatMs(b4.floorMakespanMs)}`,
    ),
    ['B4', `${b4.concurrency} runs vs ${b4.concurrency} floor jobs at once (p95)`, '', '', '', formatRatio(b4.concurrent.p95 / b4.floorConcurrent.p95), '', ''],
    row('B4', 'CPU per run: single / concurrent', b4.concurrentCpu, `single ${formatMs(b4.singleCpu.median)}`),
  ];
}

function phaseTable(b1: B1Result): string {
  const total = b1.run.median;
  const lines = ['| phase of one `run` (from its --events timestamps) | median | p95 | share of the median run |', '| --- | --- | --- | --- |'];
  for (const [phase, s] of Object.entries(b1.phases))
    lines.push(`| ${phase} | ${formatMs(s.median)} | ${formatMs(s.p95)} | ${((100 * s.median) / total).toFixed(0)} % |`);
  lines.push('', '| each helper process `run` starts, timed alone as dssuser | median | p95 |', '| --- | --- | --- |');
  for (const [name, s] of Object.entries(b1.components)) lines.push(`| \`${name}\` | ${formatMs(s.median)} | ${formatMs(s.p95)} |`);
  return lines.join('\n');
}

function b5Rows(b5: B5Result): Row[] {
  return [
    row(
      'B5 a real job',
      'process start → result: `dss-spark-k8s run` (PySpark, 2 executors on the node)',
      b5.tool,
      `a/b = ${formatRatio(b5.ratio)}`,
      '≤ 1.05×',
      b5.ratio <= 1.05,
    ),
    row('B5', 'process start → result: plain `spark-submit`, static admin kubeconfig', b5.plain),
    ['B5', 'difference a − b (medians)', '', formatMs(b5.differenceMs), '', '', '', ''],
    row('B5', 'process start → exit: `run` (teardown included)', b5.toolExit, `vs plain exit = ${formatRatio(b5.toolExit.median / b5.plainExit.median)}`),
    row('B5', 'process start → exit: plain `spark-submit`', b5.plainExit),
  ];
}

export function render(results: Results): { table: string; document: string } {
  const rows: Row[] = [];
  if (results.b1) rows.push(...b1Rows(results.b1));
  if (results.b2) rows.push(...b2Rows(results.b2));
  if (results.b3) rows.push(...b3Rows(results.b3));
  if (results.b4) rows.push(...b4Rows(results.b4));
  if (results.b5) rows.push(...b5Rows(results.b5));
  const main = table(rows);
  const printed = results.b1 ? `${main}\n\n${phaseTable(results.b1)}` : main;
  const m = results.machineBefore;
  const s = results.settings;
  const doc = `# Benchmarks

Generated by \`npm run bench\` (bench/run.ts) on ${results.started.toISOString().slice(0, 10)}${s.quick ? ' — **quick run (BENCH_QUICK=1): fewer iterations, smaller B3 counts**' : ''}.
Figures are medians and 95th percentiles of wall time from process start to exit; ratios are of medians.
Targets are shown, not enforced.

## Results

${main}

${results.b1 ? `### Where the time of one \`run\` goes (B1)\n\n${phaseTable(results.b1)}\n` : ''}
## Machine

- CPU: ${m.cpu}, ${m.cores} cores; memory: ${m.memory}
- ${m.os}, Linux ${m.kernel}
- Load average (1/5/15 min) at the start: ${m.loadavg}; at the end: ${results.machineAfter?.loadavg ?? '?'} — other work on the machine adds noise
  to every figure; the compared commands are interleaved so that it hits all of them alike.
- Node.js ${results.versions?.node ?? '?'}; kubectl ${results.versions?.kubectl ?? '?'} (built from source by scripts/build-controlplane.sh);
  kube-apiserver ${results.versions?.apiserver ?? '?'} with etcd v3.6, on 127.0.0.1 (scripts/cluster.sh: RBAC, audit log, the admission policy of deploy/rbac).
- Run: ${results.started.toISOString()} → ${results.finished?.toISOString() ?? '?'}; B1 ${s.b1Runs} rounds, B2 ${s.b2Runs} rounds (+${s.b2Cold} cold),
  B3 ${s.orphanCounts.map((n) => n.toLocaleString('en')).join(' and ')} jobs, B4 ${s.concurrency} concurrent runs, B5 ${s.b5Rounds} rounds.

## Method

\`npm run bench\` starts its own control plane (\`scripts/cluster.sh up\` with its own directory and its own pid as owner),
creates bench Unix users (a dssuser account and two end users, with a random prefix), a sudoers rule letting the dssuser
account run \`/bin/true\` as the end users (keeping KUBECONFIG, as the README's rule does), bundles the CLI from the current
sources and stages it where the dssuser account can run it. Every command runs **as the dssuser Unix account**, with a
copy of the restricted identity's kubeconfig (exactly the rights of deploy/rbac/per-user-namespaces.yaml) and a profile
with \`sparkSubmit: /bin/true\`, \`autoCreateNamespace: true\`. At the end it removes the users, the sudoers file, the
control plane and its files, also on Ctrl-C. \`BENCH_QUICK=1\` runs fewer iterations; \`--only B1,B3\` runs a selection.

- **B1** — per round, in rotating order: \`dss-spark-k8s run --user U --quiet --events FILE\` (a new job id each time; the
  namespace exists: the warm-up run created it), \`bench/kubectl-job.sh simple\`, \`node -e 0\`,
  \`bench/kubectl-job.sh batched\`, \`sudo -n -u U /bin/true\`, 10 keep-alive GETs of the namespace and a ServiceAccount
  create + delete from the bench process (undici, one warm keep-alive connection, the dssuser token), and the subprocesses
  \`run\` starts, timed alone. The kubectl script does the same work as \`run\`: a job and an executor ServiceAccount, the
  RoleBinding to the driver ClusterRole, a Lease (all labelled), \`kubectl create token\`, a kubeconfig file in a 0700 directory shared
  through \`setfacl\`, \`sudo -n -u U /bin/true\` with KUBECONFIG, and the deletes (in a trap). *simple* makes one kubectl call
  per object (6 kubectl runs in all), *batched* one \`create -f -\` for all four objects (3 kubectl runs): the fastest a
  kubectl script gets. \`run\` and the scripts run under GNU time (for their CPU), which adds about a millisecond.
- **The floor** is what no implementation can avoid: starting Node (\`node -e 0\`), \`sudo -n -u U true\`, and the
  dependent API round trips, each costed as one keep-alive GET. For an existing namespace \`run\` needs
  ${RUN_ROUND_TRIPS.provisioning} provisioning + ${RUN_ROUND_TRIPS.teardown} teardown round trips, everything else being sent in parallel:
  1. GET the namespace (with \`autoCreateNamespace\` a job must know whether to create it);
  2. the job ServiceAccount, the executor ServiceAccount, the RoleBinding (to the pre-made ClusterRole
     \`dss-spark-k8s-driver\`), the Lease and the token's anchor Secret, together;
  3. the TokenRequest (it needs the ServiceAccount, and the anchor's uid to bind the token to);
  4. teardown: deletecollection of the job's pods, services, configmaps and PVCs, the RoleBinding, both ServiceAccounts and
     the anchor Secret, together;
  5. the Lease, last — only once everything else is gone, so that a failed teardown leaves an unrenewed Lease for
     \`cleanup --orphans\` to find.
  Writes cost more than a GET (etcd, admission, audit), so the table also shows the floor with the four write round
  trips timed as writes. Not in the floor: the TLS handshake of the first request, \`id\`, \`setfacl\`, the
  \`sudo -l\` pre-check and loading the client — those are the product's choices, shown in the phase table.
- **B2** — \`node -e 0\`, \`dss-spark-k8s --version\` (through the bin shim), the bundle run by node directly, and
  \`run --dry-run=client -o json\` (config, user lookup, plan; no API call), interleaved, with the V8 compile cache warm
  (in the dssuser account's home); then a few runs with the cache removed (the first job after an upgrade).
- **B3** — N orphaned jobs are created through the API as the administrator (32 requests in flight, keep-alive). One job
  is what a \`run\` killed with SIGKILL leaves, built by the product's own planJob two hours in the past: the job
  ServiceAccount, the executor ServiceAccount, the RoleBinding, an expired Lease (not renewed for 2 h, duration
  120 s) and the token's anchor Secret — ${OBJECTS_PER_JOB} objects, over 20 user namespaces and 50 users. Then, as the
  dssuser account under GNU time (wall time, CPU, peak RSS), \`dss-spark-k8s cleanup --orphans -o json\` (listing only)
  and \`cleanup --orphans --yes -o json\`; objects/s counts the objects of the jobs it reports deleted; what is left is listed by the administrator (every
  kind, secrets included). The counts are configurable (\`BENCH_ORPHANS=1000,10000\`); creating 10,000 jobs (50,000 objects)
  takes a few minutes on 2 cores and is timed in the table.
- **B4** — a few single runs for reference (one at a time), then ${s.concurrency} \`run\` processes started at once for one user
  whose namespace does not exist (every run GETs it, finds nothing, creates it; one create wins, the others get 409 and
  go on). Successes, each run's wall time against the single-run median, the makespan, and everything left (objects of
  the ${s.concurrency} jobs of every kind, temp directories). With ${m.cores} cores, ${s.concurrency} Node processes queue for CPU: the
  "CPU bound" is ${s.concurrency} × the median CPU of one run / cores, the least any makespan can be.
- **B5** — only B5 gives the bench cluster a node (\`cluster.sh up\` without \`--no-node\`: kube-controller-manager,
  kube-scheduler, containerd, the kubelet, the executor image of scripts/build-executor-image.sh). One PySpark job in client
  mode (a sum over 1,000,000 numbers in 8 partitions) with 2 executor pods (512 MB, 100m CPU requested), waiting for both
  executors before it computes: (a) \`dss-spark-k8s run --user U --quiet -- app.py\` as the dssuser account with the real
  spark-submit allowed by the sudoers rule; (b) the same spark-submit run directly as the end user with a copy of the
  administrator's kubeconfig, in the same namespace, with a pod template of the tool's shape (restricted, no token) and the
  namespace's default account: no provisioning, no teardown. Timed from spawn to the result line on stdout (and to exit),
  ${s.b5Rounds} rounds after one warm-up job each way, the order alternating (a b, b a, …). The target: a/b ≤ 1.05.
`;
  // Findings and recommendations written by people (bench/analysis.md), kept apart from the generated figures.
  const analysis = new URL('./analysis.md', import.meta.url);
  const withAnalysis = existsSync(analysis) ? `${doc}\n${readFileSync(analysis, 'utf8')}` : doc;
  return { table: printed, document: withAnalysis };
}
