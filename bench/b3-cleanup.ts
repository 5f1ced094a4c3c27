// B3 orphan cleanup at scale: N orphaned jobs created straight through the API as the administrator
// (keep-alive, 32 requests in flight), then `dss-spark-k8s cleanup --orphans --yes -o json` as the dssuser
// Unix account with the restricted identity: wall time, CPU, peak RSS, objects per second, what is left.
//
// One orphaned job is what a `run` killed with SIGKILL leaves (the exact objects of src/plan, made by
// planJob two hours in the past): the job ServiceAccount, the executor ServiceAccount, the RoleBinding, the
// Lease (not renewed for 2 h, duration 120 s: expired) and the token's anchor Secret — 5 objects, spread over
// 20 user namespaces and 50 users.
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Profile } from '../src/config/types.ts';
import { profileWith } from '../test/support/profile.ts';
import { planJob } from '../src/plan/plan.ts';
import { forEachLimited, JOB_KIND_PATHS, labelledObjects } from './lib/api.ts';
import { type BenchEnv, createManagedNamespace } from './lib/env.ts';
import { GNU_TIME, timed, type TimedResult } from './lib/proc.ts';

export const OBJECTS_PER_JOB = 5;
const NAMESPACES = 20;
const USERS = 50;
const CREATE_CONCURRENCY = 32;

export interface B3Round {
  jobs: number;
  objects: number;
  createMs: number;
  /** `cleanup --orphans -o json` without --yes: listing and deciding only. */
  listMs: number;
  listMaxRssKb?: number;
  cleanupMs: number;
  cleanupCpuMs?: number;
  maxRssKb?: number;
  exitCode: number | null;
  jobsDeleted: number;
  objectsDeleted: number;
  stdoutBytes: number;
  stderrTail: string;
  /** Objects of these jobs still there after cleanup, per kind. */
  left: Record<string, number>;
}

function profile(namespace: string): Profile {
  return profileWith({ source: 'bench', targetNamespace: namespace, sparkSubmit: '/bin/true' });
}

export async function createOrphans(env: BenchEnv, prefix: string, count: number, log: (line: string) => void): Promise<number> {
  const namespaces = Array.from({ length: NAMESPACES }, (_, i) => `dss-bench-orphans-${i}`);
  for (const namespace of namespaces) await createManagedNamespace(env, namespace);
  const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
  const requests: { path: string; body: unknown }[] = [];
  for (let i = 0; i < count; i++) {
    const namespace = namespaces[i % NAMESPACES]!;
    const plan = planJob(
      profile(namespace),
      {
        jobId: `${prefix}-${i}`,
        login: `user${i % USERS}`,
        uid: 1001,
        adminProperties: {},
        host: hostname(),
        pid: 999_999,
        processStart: twoHoursAgo.toISOString(),
        now: twoHoursAgo,
      },
      { apiServer: env.cluster.server, callerArgs: [] },
    );
    const ns = `/namespaces/${namespace}`;
    requests.push(
      { path: `/api/v1${ns}/serviceaccounts`, body: plan.serviceAccount },
      { path: `/api/v1${ns}/serviceaccounts`, body: plan.executorServiceAccount },
      { path: `/apis/rbac.authorization.k8s.io/v1${ns}/rolebindings`, body: plan.roleBinding },
      { path: `/apis/coordination.k8s.io/v1${ns}/leases`, body: JSON.parse(JSON.stringify(plan.lease)) },
      { path: `/api/v1${ns}/secrets`, body: plan.tokenAnchor },
    );
  }
  const start = Date.now();
  let done = 0;
  await forEachLimited(requests, CREATE_CONCURRENCY, async (request) => {
    await env.admin.must('POST', request.path, request.body);
    if (++done % 5000 === 0) log(`B3: created ${done / OBJECTS_PER_JOB}/${count} orphaned jobs (${((Date.now() - start) / 1000).toFixed(0)} s)`);
  });
  return Date.now() - start;
}

/** Deletes what a round left (as the administrator), so that the next round starts from nothing. */
async function removeLeftovers(env: BenchEnv) {
  const selector = encodeURIComponent('app.kubernetes.io/managed-by=dss-spark-k8s');
  for (let i = 0; i < NAMESPACES; i++) {
    await Promise.all(
      Object.values(JOB_KIND_PATHS).map((path) => {
        const [api, kind] = [path.slice(0, path.lastIndexOf('/')), path.slice(path.lastIndexOf('/') + 1)];
        return env.admin.must('DELETE', `${api}/namespaces/dss-bench-orphans-${i}/${kind}?labelSelector=${selector}`, undefined, [404]);
      }),
    );
  }
}

async function cleanup(env: BenchEnv, count: number, yes: boolean): Promise<{ r: TimedResult; text: string }> {
  const out = join(env.scratch, `cleanup-${count}-${yes ? 'yes' : 'list'}.json`);
  const fd = openSync(out, 'w');
  try {
    const r = await timed(env.cli, ['cleanup', '--orphans', ...(yes ? ['--yes'] : []), '-o', 'json', '--config', env.config], {
      as: env.dssuser,
      stdout: fd,
      ...(existsSync(GNU_TIME) ? { rusageFile: join(env.scratch, 'rusage-b3') } : { pollRss: true }),
      timeoutMs: 30 * 60_000,
    });
    return { r, text: readFileSync(out, 'utf8') };
  } finally {
    closeSync(fd);
  }
}

export async function benchB3Round(env: BenchEnv, count: number, log: (line: string) => void): Promise<B3Round> {
  const prefix = `o${count}`;
  log(`B3: creating ${count} orphaned jobs (${count * OBJECTS_PER_JOB} objects) as the administrator`);
  const createMs = await createOrphans(env, prefix, count, log);
  log(`B3: created in ${(createMs / 1000).toFixed(1)} s; running cleanup --orphans --yes -o json as dssuser`);

  // First the listing alone (no --yes: it deletes nothing), then the real clean-up.
  const listing = await cleanup(env, count, false);
  log(`B3: listing took ${(listing.r.ms / 1000).toFixed(1)} s; now with --yes`);
  const { r, text } = await cleanup(env, count, true);
  let jobsDeleted = 0;
  let objectsDeleted = 0;
  try {
    for (const job of JSON.parse(text) as { jobId: string; result?: string; objects: unknown[] }[]) {
      if (!job.jobId.startsWith(`${prefix}-`) || job.result !== 'deleted') continue;
      jobsDeleted++;
      objectsDeleted += job.objects.length;
    }
  } catch {
    // reported through exitCode and stderr
  }
  const leftObjects = (await labelledObjects(env.admin, 'app.kubernetes.io/managed-by=dss-spark-k8s')).filter(
    (o) => o.includes(`/${prefix}-`) || o.includes(`-${prefix}-`),
  );
  const left: Record<string, number> = {};
  for (const o of leftObjects) left[o.split('/')[0]!] = (left[o.split('/')[0]!] ?? 0) + 1;
  await removeLeftovers(env);
  return {
    jobs: count,
    objects: count * OBJECTS_PER_JOB,
    createMs,
    listMs: listing.r.ms,
    ...(listing.r.maxRssKb !== undefined ? { listMaxRssKb: listing.r.maxRssKb } : {}),
    cleanupMs: r.ms,
    ...(r.cpuMs !== undefined ? { cleanupCpuMs: r.cpuMs } : {}),
    ...(r.maxRssKb !== undefined ? { maxRssKb: r.maxRssKb } : {}),
    exitCode: r.exitCode,
    jobsDeleted,
    objectsDeleted,
    stdoutBytes: text.length,
    stderrTail: r.stderr.trim().split('\n').slice(-3).join(' | ').slice(0, 600),
    left,
  };
}
