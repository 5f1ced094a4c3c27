// B4 concurrency: 50 `dss-spark-k8s run` at once for one user whose namespace does not exist yet (the race
// creates it: one create wins, the others get 409 and go on), against single runs of the same command.
// Counts successes, the namespaces made for the user, and every object and temp directory left.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { labelledObjects } from './lib/api.ts';
import type { BenchEnv } from './lib/env.ts';
import { expectExit, timed, type TimedResult } from './lib/proc.ts';
import { summarize, type Summary } from './lib/stats.ts';

export interface B4Result {
  concurrency: number;
  single: Summary;
  singleCpu: Summary;
  concurrent: Summary;
  concurrentCpu: Summary;
  /** First spawn to last exit. */
  makespanMs: number;
  /** The floor of a job on this machine (node start + sudo true, in one process), single and as many at once. */
  floorSingle: Summary;
  floorConcurrent: Summary;
  floorMakespanMs: number;
  successes: number;
  failures: string[];
  namespacesForUser: number;
  objectsLeft: string[];
  tempDirsLeft: number;
}

export async function benchB4(env: BenchEnv, concurrency: number, singles: number, log: (line: string) => void): Promise<B4Result> {
  const run = (user: string, jobId: string, rusage: boolean): Promise<TimedResult> =>
    timed(env.cli, ['run', '--user', user, '--config', env.config, '--job-id', jobId, '--quiet'], {
      as: env.dssuser,
      ...(rusage ? { rusageFile: join(env.scratch, `rusage-${jobId}`) } : {}),
      timeoutMs: 10 * 60_000,
    });

  // The single-run reference: the same command, one at a time (existing namespace of the B1 user).
  log(`B4: ${singles} single runs for reference`);
  await run(env.user.name, 'b4-warm', false).then((r) => expectExit(r, 'dss-spark-k8s run (warm-up)'));
  const single: TimedResult[] = [];
  for (let i = 0; i < singles; i++) {
    const r = await run(env.user.name, `b4-single-${i}`, true);
    expectExit(r, 'dss-spark-k8s run (single)');
    single.push(r);
  }

  log(`B4: ${concurrency} concurrent runs for ${env.freshUser.name} (namespace created by the race)`);
  const jobIds = Array.from({ length: concurrency }, (_, i) => `b4-${i}`);
  const started = Date.now();
  const results = await Promise.all(jobIds.map((jobId) => run(env.freshUser.name, jobId, true)));
  const makespanMs = Date.now() - started;

  // What the machine itself allows: the same number of floor jobs (start Node, sudo true) at once.
  const floorScript = `require('node:child_process').execFileSync('sudo', ['-n', '-u', ${JSON.stringify(env.user.name)}, '/bin/true'])`;
  const floor = () => timed(process.execPath, ['-e', floorScript], { as: env.dssuser, timeoutMs: 5 * 60_000 });
  const floorSingle: TimedResult[] = [];
  for (let i = 0; i < singles; i++) floorSingle.push(await floor());
  const floorStarted = Date.now();
  const floorConcurrent = await Promise.all(jobIds.map(() => floor()));
  const floorMakespanMs = Date.now() - floorStarted;
  for (const r of [...floorSingle, ...floorConcurrent]) expectExit(r, 'node -e <sudo true>');

  const ok = results.filter((r) => r.exitCode === 0);
  const failures = results.filter((r) => r.exitCode !== 0).map((r) => `exit ${r.exitCode ?? r.signal}: ${r.stderr.trim().split('\n').at(-1) ?? ''}`);
  const namespaces = (await env.admin.must('GET', '/api/v1/namespaces')) as { items: { metadata: { name: string } }[] };
  const freshNamespace = `dss-ns-${env.freshUser.name}`;
  const objectsLeft = (await labelledObjects(env.admin, `dss-spark-k8s.dataiku.io/job-id in (${jobIds.join(',')})`)).filter(
    (o) => o.split('/')[1] === freshNamespace,
  );
  return {
    concurrency,
    single: summarize(single.map((r) => r.ms)),
    singleCpu: summarize(single.flatMap((r) => (r.cpuMs === undefined ? [] : [r.cpuMs]))),
    concurrent: summarize(results.map((r) => r.ms)),
    concurrentCpu: summarize(results.flatMap((r) => (r.cpuMs === undefined ? [] : [r.cpuMs]))),
    makespanMs,
    floorSingle: summarize(floorSingle.map((r) => r.ms)),
    floorConcurrent: summarize(floorConcurrent.map((r) => r.ms)),
    floorMakespanMs,
    successes: ok.length,
    failures,
    namespacesForUser: namespaces.items.filter((n) => n.metadata.name === freshNamespace).length,
    objectsLeft,
    tempDirsLeft: readdirSync(env.tempDir).length,
  };
}
