// npm run bench [-- --only B1,B2] [-- --write]
//
// Benchmarks of dss-spark-k8s against a baseline and the floor, on a control plane of their own, as the
// restricted dssuser identity and the dssuser Unix account, compared commands interleaved (A B A B …) so
// that machine noise hits all of them alike. Prints medians, p95 and ratios, and writes BENCHMARKS.md (a
// full run; a run with --only writes /tmp/dss-spark-k8s-bench-partial.md unless --write is given). Removes
// everything it made (users, sudoers file, control plane, files) at the end, also on Ctrl-C.
//
//   BENCH_QUICK=1          fewer iterations and 200/2,000 orphaned jobs (a smoke run, ~3 min)
//   BENCH_RUNS=N           B1 rounds (default 20; quick 6)
//   BENCH_ORPHANS=a,b      B3 orphaned-job counts (default 1000,10000)
//   BENCH_CONCURRENCY=N    B4 concurrent runs (default 50)
//   BENCH_B5_ROUNDS=N      B5 rounds of one job each way (default 6; quick 2)
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchB1 } from './b1-overhead.ts';
import { benchB2 } from './b2-startup.ts';
import { benchB3Round } from './b3-cleanup.ts';
import { benchB4 } from './b4-concurrency.ts';
import { benchB5 } from './b5-job.ts';
import { cleanupAll, root, setUp } from './lib/env.ts';
import { stopRunningChildren } from './lib/proc.ts';
import { machine, render, type Results } from './report.ts';

const ALL = ['B1', 'B2', 'B3', 'B4', 'B5'] as const;
type BenchName = (typeof ALL)[number];

function parseArgs(argv: string[]): { only: BenchName[]; write: boolean } {
  let only: BenchName[] = [...ALL];
  let write = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--write') write = true;
    else if (arg === '--only' || arg.startsWith('--only=')) {
      const value = arg === '--only' ? argv[++i] : arg.slice('--only='.length);
      const names = (value ?? '')
        .split(',')
        .map((s) => s.trim().toUpperCase())
        .filter(Boolean);
      const unknown = names.filter((n) => !(ALL as readonly string[]).includes(n));
      if (names.length === 0 || unknown.length > 0) usage(`--only ${value ?? ''}: expected a comma-separated list of ${ALL.join(', ')}`);
      only = ALL.filter((n) => names.includes(n));
    } else if (arg === '--help' || arg === '-h') usage();
    else usage(`unknown argument ${arg}`);
  }
  return { only, write: write || only.length === ALL.length };
}

function usage(error?: string): never {
  if (error) process.stderr.write(`bench: ${error}\n`);
  process.stderr.write(
    'usage: npm run bench [-- --only B1,B2,B3,B4,B5] [--write]   (env: BENCH_QUICK=1, BENCH_RUNS, BENCH_ORPHANS, BENCH_CONCURRENCY, BENCH_B5_ROUNDS)\n',
  );
  process.exit(error ? 64 : 0);
}

function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) usage(`${name}=${raw}: expected a positive integer`);
  return value;
}

const log = (line: string) => process.stderr.write(`${line}\n`);

async function main() {
  const { only, write } = parseArgs(process.argv.slice(2));
  const quick = process.env.BENCH_QUICK === '1';
  const settings = {
    quick,
    b1Runs: positiveInt('BENCH_RUNS', quick ? 6 : 20),
    b2Runs: quick ? 10 : 30,
    b2Cold: quick ? 2 : 5,
    orphanCounts: (process.env.BENCH_ORPHANS ?? (quick ? '200,2000' : '1000,10000')).split(',').map((s) => {
      const n = Number(s.trim());
      if (!Number.isInteger(n) || n <= 0) usage(`BENCH_ORPHANS=${process.env.BENCH_ORPHANS}: expected counts such as 1000,10000`);
      return n;
    }),
    concurrency: positiveInt('BENCH_CONCURRENCY', 50),
    b4Singles: quick ? 3 : 5,
    b5Rounds: positiveInt('BENCH_B5_ROUNDS', quick ? 2 : 6),
  };

  let interrupted = false;
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ] as const) {
    process.on(signal, () => {
      if (interrupted) return;
      interrupted = true;
      log(`bench: ${signal}: stopping the runs in flight and removing everything the bench made`);
      void stopRunningChildren('SIGTERM').finally(() => {
        cleanupAll(log);
        process.exit(code);
      });
    });
  }

  const started = new Date();
  const results: Results = { started, settings, machineBefore: machine() };
  try {
    const env = await setUp(log, { node: only.includes('B5') });
    results.versions = env.versions;
    // B3 last: tens of thousands of objects make etcd and the apiserver's caches bigger for what follows.
    if (only.includes('B2')) results.b2 = await benchB2(env, settings.b2Runs, settings.b2Cold, log);
    if (only.includes('B1')) results.b1 = await benchB1(env, settings.b1Runs, log);
    if (only.includes('B4')) results.b4 = await benchB4(env, settings.concurrency, settings.b4Singles, log);
    // Before B3: a real job on a cluster not yet loaded with tens of thousands of objects.
    if (only.includes('B5')) results.b5 = await benchB5(env, settings.b5Rounds, log);
    if (only.includes('B3')) {
      results.b3 = [];
      for (const count of settings.orphanCounts) results.b3.push(await benchB3Round(env, count, log));
    }
  } finally {
    if (!interrupted) {
      log('bench: removing the control plane, bench users, sudoers rule and files');
      cleanupAll(log);
    }
  }
  results.finished = new Date();
  results.machineAfter = machine();
  const markdown = render(results);
  process.stdout.write(`\n${markdown.table}\n`);
  const target = write ? join(root, 'BENCHMARKS.md') : '/tmp/dss-spark-k8s-bench-partial.md';
  writeFileSync(target, markdown.document);
  writeFileSync('/tmp/dss-spark-k8s-bench-last.json', `${JSON.stringify(results, null, 2)}\n`);
  log(`bench: wrote ${target} (raw results: /tmp/dss-spark-k8s-bench-last.json)`);
}

main().catch((error: unknown) => {
  log(`bench: failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
