// B6 the standalone executable against today's bundle: `--version` and `run --dry-run=client` (B2's measures)
// and a real `run` (B1's: existing namespace, spark-submit = /bin/true through sudo), each pair interleaved,
// as the dssuser Unix account with the restricted identity, on a control plane of its own.
//
//   sh scripts/with-node.sh node bench/b6-executable.ts [--write]     (as root; B6_RUNS=N rounds, default 20)
//
// Prints the section; with --write it replaces the section "The standalone executable (B6)" of BENCHMARKS.md
// (inserted before "## Machine" the first time). The executable is built from the current sources by
// packaging/build-executable.mjs, as `npm run package` builds it; sizes of the artifacts in dist/pkg are
// reported when `npm run package` made them.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, root, setUp, type BenchEnv } from './lib/env.ts';
import { expectExit, stopRunningChildren, timed } from './lib/proc.ts';
import { formatMs, formatRatio, rotated, summarize, type Summary } from './lib/stats.ts';

const HEADING = '## The standalone executable (B6)';
const log = (line: string) => process.stderr.write(`${line}\n`);

type Key =
  | 'node'
  | 'versionBundle'
  | 'versionExe'
  | 'dryBundle'
  | 'dryExe'
  | 'runBundle'
  | 'runExe'
  | 'runCpuBundle'
  | 'runCpuExe'
  | 'dryColdBundle'
  | 'dryColdExe';

interface B6Result {
  rounds: number;
  s: Record<Key, Summary>;
  executableBytes: number;
  debBytes?: number;
  blobBytes: number;
  buildMs: number;
}

async function benchB6(env: BenchEnv, rounds: number): Promise<B6Result> {
  const pkgDir = join(env.workDir, 'pkg');
  const exe = join(pkgDir, 'dss-spark-k8s-linux-x64');
  log('B6: building the standalone executable from the current sources');
  const buildStart = performance.now();
  execFileSync(process.execPath, [join(root, 'packaging/build-executable.mjs'), exe], { stdio: ['ignore', 'ignore', 'inherit'] });
  const buildMs = performance.now() - buildStart;
  execFileSync('chmod', ['-R', 'a+rX', pkgDir]);
  chmodSync(exe, 0o755);

  const as = env.dssuser;
  const rusage = join(env.scratch, 'rusage');
  const compileCache = join(as.home, '.cache', 'dss-spark-k8s');
  const dryArgs = ['run', '--user', env.user.name, '--config', env.config, '--job-id', 'b6-dry', '--dry-run=client', '-o', 'json'];
  const samples = Object.fromEntries(
    (
      ['node', 'versionBundle', 'versionExe', 'dryBundle', 'dryExe', 'runBundle', 'runExe', 'runCpuBundle', 'runCpuExe', 'dryColdBundle', 'dryColdExe'] as Key[]
    ).map((k) => [k, [] as number[]]),
  ) as Record<Key, number[]>;
  let job = 0;
  const once = async (key: Key, file: string, args: string[], record: boolean) => {
    const r = await timed(file, args, { as });
    expectExit(r, `${file} ${args.join(' ')}`);
    if (record) samples[key].push(r.ms);
  };
  const runOnce = async (which: 'Bundle' | 'Exe', file: string, record: boolean) => {
    const jobId = `b6-${which.toLowerCase()}-${job++}`;
    const r = await timed(file, ['run', '--user', env.user.name, '--config', env.config, '--job-id', jobId, '--quiet'], { as, rusageFile: rusage });
    expectExit(r, `${file} run (job ${jobId})`);
    if (!record) return;
    samples[`run${which}`].push(r.ms);
    if (r.cpuMs !== undefined) samples[`runCpu${which}`].push(r.cpuMs);
  };
  const variants = (record: boolean) => [
    () => once('node', process.execPath, ['-e', '0'], record),
    () => once('versionBundle', env.cli, ['--version'], record),
    () => once('versionExe', exe, ['--version'], record),
    () => once('dryBundle', env.cli, dryArgs, record),
    () => once('dryExe', exe, dryArgs, record),
    () => runOnce('Bundle', env.cli, record),
    () => runOnce('Exe', exe, record),
  ];
  log('B6: warm-up (the first run creates the namespace)');
  for (const variant of variants(false)) await variant();
  for (let i = 0; i < rounds; i++) for (const variant of rotated(variants(true), i)) await variant();
  log(`B6: ${rounds} rounds done; 5 with the compile cache removed`);
  for (let i = 0; i < 5; i++) {
    rmSync(compileCache, { recursive: true, force: true });
    await once('dryColdBundle', env.cli, dryArgs, true);
    rmSync(compileCache, { recursive: true, force: true });
    await once('dryColdExe', exe, dryArgs, true);
  }
  const deb = join(root, 'dist/pkg', `dss-spark-k8s_${JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version}_amd64.deb`);
  return {
    rounds,
    s: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v)])) as Record<Key, Summary>,
    executableBytes: statSync(exe).size,
    ...(existsSync(deb) ? { debBytes: statSync(deb).size } : {}),
    blobBytes: statSync(join(pkgDir, 'sea/sea-prep.blob')).size,
    buildMs,
  };
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

function render(r: B6Result, env: BenchEnv, started: Date): string {
  const { s } = r;
  const row = (measure: string, summary: Summary, ratio = '') =>
    `| ${measure} | ${summary.n} | ${formatMs(summary.median)} | ${formatMs(summary.p95)} | ${ratio} |`;
  const vs = (a: Summary, b: Summary) => `exe / bundle = ${formatRatio(a.median / b.median)}`;
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  return [
    HEADING,
    '',
    `Generated by \`bench/b6-executable.ts\` on ${started.toISOString().slice(0, 10)} (${r.rounds} interleaved rounds; Node.js ${env.versions.node},`,
    `kube-apiserver ${env.versions.apiserver}; load average at the end ${load}). "bundle" is today's install: the bin shim`,
    'running `node dist/dss-spark-k8s.mjs` with its chunks and the V8 compile cache in dssuser\'s home; "exe" is',
    '`dist/pkg/dss-spark-k8s-linux-x64` from `npm run package`: Node.js with the CLI as one CommonJS file and its V8 code',
    'cache injected (single executable application), symbols stripped.',
    '',
    '| measure | n | median | p95 | ratio (medians) |',
    '| --- | --- | --- | --- | --- |',
    row('`node -e 0`', s.node),
    row('`--version`, bundle (B2)', s.versionBundle, `vs node = ${formatRatio(s.versionBundle.median / s.node.median)}`),
    row('`--version`, exe', s.versionExe, `${vs(s.versionExe, s.versionBundle)}; vs node = ${formatRatio(s.versionExe.median / s.node.median)}`),
    row('`run --dry-run=client -o json`, bundle (B2)', s.dryBundle),
    row('`run --dry-run=client -o json`, exe', s.dryExe, vs(s.dryExe, s.dryBundle)),
    row('`run --dry-run=client`, compile cache removed, bundle', s.dryColdBundle),
    row('`run --dry-run=client`, compile cache removed, exe', s.dryColdExe, vs(s.dryColdExe, s.dryColdBundle)),
    row('`run` (existing namespace, spark-submit = /bin/true via sudo), bundle (B1)', s.runBundle),
    row('`run`, exe', s.runExe, vs(s.runExe, s.runBundle)),
    row('CPU (user+sys, with children) per `run`, bundle', s.runCpuBundle),
    row('CPU per `run`, exe', s.runCpuExe, vs(s.runCpuExe, s.runCpuBundle)),
    '',
    '| artifact | size |',
    '| --- | --- |',
    `| \`dss-spark-k8s-linux-x64\` (Node.js ${env.versions.node} stripped + the SEA blob) | ${mb(r.executableBytes)} |`,
    `|   of which the SEA blob (4.5 MB script + V8 code cache) | ${mb(r.blobBytes)} |`,
    r.debBytes === undefined ? '| `.deb` | (run `npm run package` first) |' : `| \`dss-spark-k8s_<version>_amd64.deb\` (xz) | ${mb(r.debBytes)} |`,
    `| building the executable (esbuild, blob, postject, strip) | ${(r.buildMs / 1000).toFixed(1)} s |`,
    '',
  ].join('\n');
}

function writeSection(section: string) {
  const file = join(root, 'BENCHMARKS.md');
  const text = readFileSync(file, 'utf8');
  const start = text.indexOf(HEADING);
  let updated: string;
  if (start >= 0) {
    const next = text.indexOf('\n## ', start + HEADING.length);
    updated = text.slice(0, start) + section + (next >= 0 ? text.slice(next + 1) : '');
  } else {
    const machine = text.indexOf('\n## Machine');
    updated = machine >= 0 ? `${text.slice(0, machine + 1)}${section}\n${text.slice(machine + 1)}` : `${text.trimEnd()}\n\n${section}`;
  }
  writeFileSync(file, updated);
}

async function main() {
  const write = process.argv.includes('--write');
  const rounds = Number(process.env.B6_RUNS ?? 20);
  if (!Number.isInteger(rounds) || rounds <= 0) throw new Error(`B6_RUNS=${process.env.B6_RUNS}: expected a positive integer`);
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ] as const) {
    process.on(signal, () => {
      void stopRunningChildren('SIGTERM').finally(() => {
        cleanupAll(log);
        process.exit(code);
      });
    });
  }
  const started = new Date();
  let section: string;
  try {
    const env = await setUp(log, { node: false });
    section = render(await benchB6(env, rounds), env, started);
  } finally {
    log('B6: removing the control plane, bench users, sudoers rule and files');
    cleanupAll(log);
  }
  process.stdout.write(`\n${section}\n`);
  if (write) writeSection(section);
}

await main();
