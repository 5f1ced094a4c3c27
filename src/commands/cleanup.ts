// `dss-spark-k8s cleanup --orphans`: lists (and with --yes deletes) what crashed jobs left behind, in the
// namespaces given (-n, repeatable) or in all namespaces, and stale per-job temp directories on this host.
// Data on stdout (a table, or JSON with -o json), logs on stderr.
//
// A job is what only dssuser can write: its ServiceAccounts, RoleBinding and Lease, with the managed-by and
// owner labels (src/cleanup/model.ts). Pods and PVCs, which a job's token (or a controller for it) labels as it
// likes, only count as objects of such a job. A job is live while its Lease is renewed; orphaned when its
// Lease has not been renewed for the Lease's duration, or when it has no Lease and its expires-at annotation
// has passed, or when it has neither and was created longer ago than the grace period (--older-than when
// given, else 1 hour). A job with no Lease that has not expired is pending: a starting job creates its
// accounts before its Lease. Only orphaned jobs are ever deleted, and each one's Lease is read again just
// before. Clocks must be in sync (NTP): a Lease's renew time is written by the host that runs the job.
//
// Pods and PVCs whose owner has no ServiceAccount, RoleBinding or Lease any more are the leftovers of a dead
// job (a process that kept its token made them after its teardown took its list): orphaned once the newest is
// older than the grace period.
//
// With --yes, each orphaned job is deleted by its owner label alone (one deletecollection per kind), in the
// order of teardown: its token anchor Secrets, RoleBinding and ServiceAccounts (its tokens die), then — after
// one short pause for all jobs, so that the revocation holds everywhere — its pods and PVCs, its Lease last
// (kept when anything else of the job failed, so that the next run finds the job again), then its temp
// directory. At most 16 requests are in flight.
//
// A temp directory is examined only if this Unix account owns it and it was made on this host; it is stale
// when its owner process is gone (dead, or its pid reused). It is removed with its job (the owner named in
// owner.json), or, when the cluster has no such job, from disk alone.
//
// A namespace whose lists fail is reported on stderr and left alone (with its temp directories); the others
// are cleaned all the same.
//
// Exit codes:
//   0   without --yes: the listing was made, whether or not it shows orphaned jobs (a listing changes
//       nothing; count them with -o json). With --yes: every orphaned job was deleted completely, or there
//       was none.
//   64  invalid flags (-n, --older-than, missing --orphans).
//   69  a list request failed or was denied (one stderr line each). A namespace whose ServiceAccounts,
//       RoleBindings or Leases could not be listed was left alone, the others were cleaned (a failed pod or
//       PVC list only leaves them out of OBJECTS: they are deleted all the same); across all namespaces
//       (no -n), such a failure means nothing was done. 69 wins over 75.
//   75  with --yes: some objects or temp directories of orphaned jobs could not be deleted; each failure is
//       one line on stderr, and running cleanup again retries them.
//   78  the configuration file or the kubeconfig is invalid.
import { existsSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { deleteJobs } from '../cleanup/delete.ts';
import { findStaleDirs } from '../cleanup/job-dirs.ts';
import { listJobs, type ListClient, type ListFailure } from '../cleanup/list.ts';
import { addStaleDirs, DEFAULT_GRACE_SECONDS, objectCount, selectJobs, type JobProcess, type JobReport } from '../cleanup/model.ts';
import { progressLine, renderJson, renderTable, type Output } from '../cleanup/render.ts';
import { CONFIG_ENV_VAR, loadConfig, parseDuration, resolveConfigPath, selectProfile } from '../config/load.ts';
import { KubernetesError, TeardownError, UsageError } from '../errors.ts';
import { isProcessAlive } from '../exec/process-identity.ts';
import { Kube, type KubeClient } from '../k8s/client.ts';
import { isDnsLabel } from '../plan/names.ts';

export interface CleanupOptions {
  orphans?: boolean;
  namespace?: string[];
  user?: string;
  olderThan?: string;
  yes?: boolean;
  output?: 'table' | 'json';
  profile?: string;
  config?: string;
  kubeconfig?: string;
  context?: string;
}

export type CleanupClient = ListClient & Pick<KubeClient, 'deleteCollection' | 'getLease' | 'getServiceAccount' | 'close'>;

export interface CleanupDeps {
  stdout: Output;
  stderr: Output;
  now: () => Date;
  env: NodeJS.ProcessEnv;
  /** A client to use instead of loading one from the kubeconfig (it is not closed). */
  kube?: CleanupClient;
  /** Objects per list request. */
  pageSize: number;
  /** Requests in flight at most. */
  concurrency: number;
  isAlive: (process: JobProcess) => boolean;
  /** The pause between revoking the jobs and deleting what their tokens made (default: a real timer). */
  sleep?: (ms: number) => Promise<void>;
}

/** What validate makes of the flags. */
interface Request {
  namespaces: string[];
  user?: string;
  olderThanSeconds?: number;
  graceSeconds: number;
  yes: boolean;
  output: 'table' | 'json';
}

/** What complete reads: dssuser's credentials and the temp directory. */
interface Settings {
  kubeconfig?: string;
  context?: string;
  timeoutSeconds: number;
  tempDir: string;
}

/**
 * Lists at a time. Each page of 500 objects is a few MB once deserialized: more lists at once make listing no
 * faster (measured with 10,000 jobs) but the heap larger.
 */
const LIST_CONCURRENCY = 2;

const defaultDeps: CleanupDeps = {
  stdout: process.stdout,
  stderr: process.stderr,
  now: () => new Date(),
  env: process.env,
  pageSize: 500,
  concurrency: 16,
  isAlive: isProcessAlive,
};

export async function cleanupCommand(options: CleanupOptions, overrides: Partial<CleanupDeps> = {}): Promise<number> {
  const deps = { ...defaultDeps, ...overrides };
  const request = validate(options);
  const settings = complete(options, deps.env);
  const kube = deps.kube ?? Kube.load({ kubeconfig: settings.kubeconfig, context: settings.context, timeoutSeconds: settings.timeoutSeconds });
  try {
    return await run(request, settings, { ...deps, kube });
  } finally {
    if (!deps.kube) await kube.close();
  }
}

function validate(options: CleanupOptions): Request {
  if (!options.orphans) throw new UsageError('cleanup needs --orphans (the only mode); see dss-spark-k8s cleanup --help');
  const namespaces = [...new Set(options.namespace ?? [])];
  for (const namespace of namespaces) {
    if (!isDnsLabel(namespace)) throw new UsageError(`-n "${namespace}": not a valid namespace name (lowercase letters, digits and '-')`);
  }
  if (options.user !== undefined && options.user.trim() === '') throw new UsageError('--user: expected a login, got an empty string');
  let olderThanSeconds: number | undefined;
  if (options.olderThan !== undefined) {
    try {
      olderThanSeconds = parseDuration(options.olderThan, '--older-than', 'command line');
    } catch {
      throw new UsageError(`--older-than "${options.olderThan}": expected a duration such as 90s, 30m, 2h, 1d or 1h30m`);
    }
  }
  return {
    namespaces,
    ...(options.user !== undefined ? { user: options.user } : {}),
    ...(olderThanSeconds !== undefined ? { olderThanSeconds } : {}),
    graceSeconds: olderThanSeconds ?? DEFAULT_GRACE_SECONDS,
    yes: options.yes === true,
    output: options.output ?? 'table',
  };
}

/**
 * --kubeconfig/--context, else the profile's. The configuration file is optional here: without --config,
 * --profile or $DSS_SPARK_K8S_CONFIG, a missing default file means the usual kubeconfig loading rules and the
 * OS temp directory.
 */
function complete(options: CleanupOptions, env: NodeJS.ProcessEnv): Settings {
  const path = resolveConfigPath(options.config, env);
  const explicit = Boolean(options.config || options.profile || env[CONFIG_ENV_VAR]);
  const profile = explicit || existsSync(path) ? selectProfile(loadConfig(path), options.profile) : undefined;
  return {
    kubeconfig: options.kubeconfig ?? profile?.kubeconfig,
    context: options.context ?? profile?.context,
    timeoutSeconds: profile?.apiTimeoutSeconds ?? 30,
    tempDir: profile?.tempDir ?? tmpdir(),
  };
}

async function run(request: Request, settings: Settings, deps: CleanupDeps & { kube: CleanupClient }): Promise<number> {
  const { kube } = deps;
  const log = (message: string) => deps.stderr.write(`dss-spark-k8s: ${message}\n`);
  const progress = progressLine(deps.stderr);
  try {
    const now = deps.now();
    const listing = await listJobs(kube, {
      namespaces: request.namespaces,
      pageSize: deps.pageSize,
      concurrency: LIST_CONCURRENCY,
      onProgress: (objects) => progress.update(`listing: ${objects} objects`),
      warn: (message) => {
        progress.done();
        log(message);
      },
    }).catch((error: unknown) => {
      // With the team-namespace rights, dssuser may list only inside the team namespaces.
      if (error instanceof KubernetesError && error.status === 403 && request.namespaces.length === 0) {
        throw new KubernetesError(`${error.message}; to search only some namespaces, pass -n <namespace> for each`, 403);
      }
      throw error;
    });
    const jobs = listing.jobs;
    const inScope = (namespace: string) => (request.namespaces.length === 0 || request.namespaces.includes(namespace)) && !listing.unknown.has(namespace);
    addStaleDirs(jobs, await findStaleDirs(settings.tempDir, deps.isAlive, log), inScope, log);
    progress.done();
    const reports = selectJobs(jobs, request, now, { host: hostname(), isAlive: deps.isAlive });

    const orphans = reports.filter((r) => r.decision.state === 'orphaned');
    if (request.yes && orphans.length > 0) {
      let done = 0;
      await deleteJobs(kube, orphans, {
        concurrency: deps.concurrency,
        now: deps.now,
        graceSeconds: request.graceSeconds,
        isAlive: deps.isAlive,
        ...(deps.sleep ? { sleep: deps.sleep } : {}),
        onDone: () => progress.update(`deleting: ${++done}/${orphans.length} jobs`),
      });
      progress.done();
    }

    deps.stdout.write(request.output === 'json' ? renderJson(reports, now) : renderTable(reports, now, request.yes));
    return finish(reports, request.yes, listing.failures, log);
  } finally {
    progress.done();
  }
}

/** The summary on stderr; throws for exit 69 (a list failed) or 75 (a delete failed). */
function finish(reports: JobReport[], yes: boolean, listFailures: readonly ListFailure[], log: (message: string) => void): number {
  const count = (state: string) => reports.filter((r) => r.decision.state === state).length;
  const orphaned = count('orphaned');
  log(`${reports.length} job(s): ${orphaned} orphaned, ${count('live')} live, ${count('pending')} pending`);
  const results = (result: JobReport['result']) => reports.filter((r) => r.result === result);
  const failed = results('failed');
  if (!yes) {
    if (orphaned > 0) log(`nothing deleted; run again with --yes to delete the ${orphaned} orphaned job(s)`);
  } else {
    const deleted = results('deleted');
    const skipped = results('skipped');
    const objects = deleted.reduce((sum, r) => sum + objectCount(r.job), 0);
    const dirs = deleted.filter((r) => r.job.tempDir).length;
    if (deleted.length > 0) log(`deleted ${deleted.length} orphaned job(s): ${objects} object(s), ${dirs} temp dir(s)`);
    if (skipped.length > 0) log(`left ${skipped.length} job(s) alone: their Lease was renewed while cleanup ran`);
    for (const report of failed) for (const error of report.errors ?? []) log(`job ${report.job.jobId} in ${report.job.namespace}: ${error}`);
  }
  if (listFailures.length > 0) {
    const where = [...new Set(listFailures.map((f) => f.namespace ?? 'all namespaces'))];
    throw new KubernetesError(
      `could not list everything in ${where.join(', ')} (reasons above); what could not be seen was left alone; run cleanup --orphans again`,
    );
  }
  if (failed.length > 0) {
    throw new TeardownError(
      `could not delete everything of ${failed.length} orphaned job(s) (reasons above); run cleanup --orphans --yes again or delete them by hand`,
    );
  }
  return 0;
}
