// B2 start-up: `dss-spark-k8s --version` and `run --dry-run=client` against `node -e 0`, as the dssuser
// Unix account (whose home holds the V8 compile cache), interleaved. The bin shim (/bin/sh + exec node) is
// measured too, by running the bundle with node directly; and the first run after the compile cache is
// removed (cold cache: the first job after an upgrade).
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchEnv } from './lib/env.ts';
import { expectExit, timed } from './lib/proc.ts';
import { rotated, summarize, type Summary } from './lib/stats.ts';

export interface B2Result {
  iterations: number;
  node: Summary;
  version: Summary;
  versionNoShim: Summary;
  dryRun: Summary;
  versionCold: Summary;
  dryRunCold: Summary;
}

export async function benchB2(env: BenchEnv, iterations: number, coldIterations: number, log: (line: string) => void): Promise<B2Result> {
  const as = env.dssuser;
  const compileCache = join(as.home, '.cache', 'dss-spark-k8s');
  const dryRunArgs = ['run', '--user', env.user.name, '--config', env.config, '--job-id', 'b2-dry', '--dry-run=client', '-o', 'json'];
  const samples: Record<'node' | 'version' | 'versionNoShim' | 'dryRun' | 'versionCold' | 'dryRunCold', number[]> = {
    node: [],
    version: [],
    versionNoShim: [],
    dryRun: [],
    versionCold: [],
    dryRunCold: [],
  };
  const measure = async (key: keyof typeof samples, file: string, args: string[], record = true) => {
    const r = await timed(file, args, { as });
    expectExit(r, `${file} ${args.join(' ')}`);
    if (record) samples[key].push(r.ms);
  };
  const variants = [
    () => measure('node', process.execPath, ['-e', '0']),
    () => measure('version', env.cli, ['--version']),
    () => measure('versionNoShim', process.execPath, [env.bundle, '--version']),
    () => measure('dryRun', env.cli, dryRunArgs),
  ];
  log('B2: warm-up');
  for (const variant of variants) await variant();
  for (const key of Object.keys(samples) as (keyof typeof samples)[]) samples[key] = [];

  for (let i = 0; i < iterations; i++) for (const variant of rotated(variants, i)) await variant();
  log(`B2: ${iterations} warm rounds done; ${coldIterations} with the compile cache removed`);
  for (let i = 0; i < coldIterations; i++) {
    rmSync(compileCache, { recursive: true, force: true });
    await measure('versionCold', env.cli, ['--version']);
    rmSync(compileCache, { recursive: true, force: true });
    await measure('dryRunCold', env.cli, dryRunArgs);
    await measure('node', process.execPath, ['-e', '0'], false);
  }
  // Leave the cache warm for the benchmarks that follow.
  await measure('dryRun', env.cli, dryRunArgs, false);
  const s = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v)])) as Record<keyof typeof samples, Summary>;
  return { iterations, ...s };
}
