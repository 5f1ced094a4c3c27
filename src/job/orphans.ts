// What crashed jobs leave behind: find every object with the managed-by and job labels, group the objects
// by job (namespace, job id and owner: two users' jobs may share a job id in a team namespace), decide each
// job's state from its Lease, and delete the orphaned ones.
//
// A job's state is decided only from what no job token can write: the Lease and the annotations of the
// ServiceAccounts and RoleBinding (only dssuser may write those kinds). The annotations of pods,
// services, configmaps and PVCs (which Spark's driver creates with the job's own token) are ignored; those
// objects only count as members of their job.
//
// Pure functions first (grouping, state, filters, deletion order), then the ones that do I/O.
import { lstat, readdir, readFile, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import type { V1ObjectMeta } from '@kubernetes/client-node';
import { ConfigError } from '../errors.ts';
import { isProcessAlive } from '../exec/process-identity.ts';
import { JOB_DIR_PREFIX, OWNER_FILE, type JobOwner } from '../exec/job-files.ts';
import { DRIVER_CREATED_KINDS, JOB_KINDS, TOKEN_ANCHOR_KIND, type DriverCreatedKind, type Kube, type LabelledKind } from '../k8s/client.ts';
import { loginToSlug } from '../plan/names.ts';
import { Annotation, JOB_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_LABEL, USER_LABEL } from '../plan/types.ts';
import { withRetry } from './retry.ts';

/** The kinds cleanup lists: what Spark's driver creates and what the tool creates (and dssuser may list). */
export type CleanupKind = DriverCreatedKind | (typeof JOB_KINDS)[number];
export const CLEANUP_KINDS: readonly CleanupKind[] = [...DRIVER_CREATED_KINDS, ...JOB_KINDS];

/** Objects of any job: the managed-by label and a job label, whatever its value. */
export const ORPHAN_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE},${JOB_LABEL}`;

/** Jobs without a Lease and without an expires-at annotation are left alone for this long after creation. */
export const DEFAULT_GRACE_SECONDS = 3600;

/** The kinds only dssuser writes: their annotations (login, created-at, expires-at) are trusted. */
const TRUSTED_KINDS: ReadonlySet<CleanupKind> = new Set(JOB_KINDS);

export type JobState = 'live' | 'pending' | 'orphaned';

export interface LeaseInfo {
  name: string;
  holder?: string;
  /** Last renewal (else acquisition, else creation) time. */
  renewTime?: Date;
  durationSeconds: number;
}

/** A per-job temp directory on this host whose owner process is gone. */
export interface StaleDir {
  path: string;
  owner: JobOwner;
  /** When owner.json was written. */
  createdAt: Date;
}

/** One job as found: a compact record (names only), small enough for tens of thousands of jobs. */
export interface Job {
  jobId: string;
  namespace: string;
  /** The owner label: the job's account name (absent on a temp directory alone). */
  owner?: string;
  /** Names of the objects found, per kind. */
  objects: Partial<Record<CleanupKind, string[]>>;
  /** The login annotation of a ServiceAccount, RoleBinding or Lease. */
  login?: string;
  /** The user label (a slug of the login). */
  userSlug?: string;
  /** The earliest of the created-at annotations (trusted kinds) and the objects' creation timestamps. */
  createdAt?: Date;
  /** The latest expires-at annotation (trusted kinds). */
  expiresAt?: Date;
  lease?: LeaseInfo;
  /** The process that runs (or ran) the job, from the annotations of the trusted kinds. */
  process?: JobProcess;
  tempDir?: StaleDir;
}

export interface JobProcess {
  host: string;
  pid: number;
  processStart: string;
}

/** How to tell whether a job's process still runs: only on the host cleanup runs on. */
export interface Liveness {
  host: string;
  isAlive: (process: JobProcess) => boolean;
}

export interface Decision {
  state: JobState;
  reason: string;
}

export interface Filters {
  user?: string;
  olderThanSeconds?: number;
}

/** A listed object, as Kube.list returns it. */
export interface ListedObject {
  metadata?: V1ObjectMeta;
  spec?: unknown;
}

export function jobKey(job: { namespace: string; jobId: string; owner?: string }): string {
  return `${job.namespace}/${job.jobId}/${job.owner ?? ''}`;
}

/** Adds one listed object to its job, creating the job on first sight. Objects without both labels are ignored. */
export function addObject(jobs: Map<string, Job>, kind: CleanupKind, object: ListedObject): void {
  const metadata = object.metadata;
  const labels = metadata?.labels ?? {};
  const jobId = labels[JOB_LABEL];
  const namespace = metadata?.namespace;
  const name = metadata?.name;
  // The server already selected on both labels; this guards against anything else ever reaching deletion.
  if (labels[MANAGED_BY_LABEL] !== MANAGED_BY_VALUE || !jobId || !namespace || !name) return;

  const owner = labels[OWNER_LABEL];
  const key = jobKey({ namespace, jobId, owner });
  let job = jobs.get(key);
  if (!job) jobs.set(key, (job = { jobId, namespace, ...(owner ? { owner } : {}), objects: {} }));
  (job.objects[kind] ??= []).push(name);
  job.userSlug ??= labels[USER_LABEL];
  job.createdAt = earliest(job.createdAt, toDate(metadata.creationTimestamp));

  if (!TRUSTED_KINDS.has(kind)) return;
  const annotations = metadata.annotations ?? {};
  job.login ??= annotations[Annotation.login];
  job.createdAt = earliest(job.createdAt, toDate(annotations[Annotation.createdAt]));
  job.expiresAt = latest(job.expiresAt, toDate(annotations[Annotation.expiresAt]));
  const [host, processStart, pid] = [annotations[Annotation.host], annotations[Annotation.processStart], Number(annotations[Annotation.pid])];
  if (!job.process && host && processStart && Number.isSafeInteger(pid) && pid > 0) job.process = { host, pid, processStart };
  if (kind === 'leases') {
    const lease = leaseInfo(name, object.spec, toDate(metadata.creationTimestamp));
    // Two Leases for one job should not happen; if they do, the fresher one speaks for the job.
    if (!job.lease || leaseExpiry(lease) > leaseExpiry(job.lease)) job.lease = lease;
  }
}

function leaseInfo(name: string, spec: unknown, created: Date | undefined): LeaseInfo {
  const s = (spec ?? {}) as { holderIdentity?: string; leaseDurationSeconds?: number; renewTime?: unknown; acquireTime?: unknown };
  return {
    name,
    ...(s.holderIdentity ? { holder: s.holderIdentity } : {}),
    renewTime: toDate(s.renewTime) ?? toDate(s.acquireTime) ?? created,
    durationSeconds: typeof s.leaseDurationSeconds === 'number' ? s.leaseDurationSeconds : 0,
  };
}

function leaseExpiry(lease: LeaseInfo): number {
  return (lease.renewTime?.getTime() ?? 0) + lease.durationSeconds * 1000;
}

/**
 * Attaches stale temp directories to their jobs (same namespace and job id); a directory whose job has no
 * objects left is a job of its own. A directory that could belong to several jobs (two users' jobs sharing a
 * job id) is left out: it is not clear which job's state should decide.
 */
export function addStaleDirs(jobs: Map<string, Job>, dirs: StaleDir[], namespaces: readonly string[], warn: (message: string) => void = () => {}): void {
  const byId = new Map<string, Job[]>();
  for (const job of jobs.values()) {
    const id = `${job.namespace}/${job.jobId}`;
    byId.set(id, [...(byId.get(id) ?? []), job]);
  }
  for (const dir of dirs) {
    const { namespace, jobId } = dir.owner;
    if (namespaces.length > 0 && !namespaces.includes(namespace)) continue;
    const matches = byId.get(`${namespace}/${jobId}`) ?? [];
    if (matches.length === 1) matches[0]!.tempDir = dir;
    else if (matches.length === 0) jobs.set(jobKey({ namespace, jobId }), { jobId, namespace, objects: {}, createdAt: dir.createdAt, tempDir: dir });
    else warn(`leaving ${dir.path} alone: ${matches.length} jobs in ${namespace} have the job id ${jobId}`);
  }
}

export function objectCount(job: Job): number {
  let count = 0;
  for (const names of Object.values(job.objects)) count += names.length;
  return count;
}

/**
 * - live: the Lease was renewed within its duration.
 * - orphaned: the Lease was not renewed for its whole duration; or there is no Lease and the expires-at
 *   annotation has passed (the token has expired too); or there is neither, and the job is older than the
 *   grace period; or only a stale temp directory is left.
 *   Also: no Lease, and the job's process on this host is gone (`liveness`): it died while provisioning.
 * - pending: no Lease (yet) and not expired. A starting job creates its accounts and RoleBinding with its
 *   Lease, and they carry expires-at, so a starting job is pending, never orphaned.
 */
export function decideState(job: Job, now: Date, graceSeconds = DEFAULT_GRACE_SECONDS, liveness?: Liveness): Decision {
  const lease = job.lease;
  if (lease) {
    const renewed = lease.renewTime?.getTime() ?? 0;
    const expiry = leaseExpiry(lease);
    if (expiry > now.getTime()) return { state: 'live', reason: `lease renewed ${formatAge(now.getTime() - renewed)} ago` };
    return { state: 'orphaned', reason: `lease expired ${formatAge(now.getTime() - expiry)} ago` };
  }
  if (objectCount(job) === 0) {
    return { state: 'orphaned', reason: `no objects left; temp dir of dead process ${job.tempDir?.owner.pid ?? '?'}` };
  }
  if (job.process && liveness && job.process.host === liveness.host && !liveness.isAlive(job.process)) {
    return { state: 'orphaned', reason: `no lease, and its process ${job.process.pid} on this host is gone` };
  }
  if (job.expiresAt) {
    if (job.expiresAt.getTime() <= now.getTime()) return { state: 'orphaned', reason: `no lease, expired at ${formatTime(job.expiresAt)}` };
    return { state: 'pending', reason: `no lease yet, expires at ${formatTime(job.expiresAt)}` };
  }
  const age = job.createdAt ? now.getTime() - job.createdAt.getTime() : undefined;
  if (age !== undefined && age >= graceSeconds * 1000) return { state: 'orphaned', reason: 'no lease and no expiry' };
  return { state: 'pending', reason: `no lease and no expiry; orphaned ${formatAge(graceSeconds * 1000)} after creation` };
}

/** --user matches the login annotation or the user label (the slug of the login); --older-than the creation time. */
export function matchesFilters(job: Job, filters: Filters, now: Date): boolean {
  if (filters.user !== undefined) {
    const slug = loginToSlug(filters.user);
    if (job.login !== filters.user && job.userSlug !== slug) return false;
  }
  if (filters.olderThanSeconds !== undefined) {
    if (!job.createdAt || now.getTime() - job.createdAt.getTime() < filters.olderThanSeconds * 1000) return false;
  }
  return true;
}

/** Orphaned jobs of one namespace are deleted together, at most this many: one set-based selector names them all. */
export const BATCH_SIZE = 100;

/** Every object of a kind with these jobs' labels, in one deletecollection request. */
export interface DeleteRequest {
  kind: LabelledKind;
  jobs: Job[];
}

/**
 * The requests that delete a batch of jobs of one namespace, phase by phase: the requests of a phase run at
 * once, a phase starts when the one before is done. Each is one deletecollection by the jobs' labels: the
 * apiserver's cost per request, not per object, bounds a large cleanup (BENCHMARKS.md, B3).
 * 1. Pods, services, configmaps and PVCs (only the kinds the jobs have), the token anchor Secrets (always:
 *    dssuser may not list Secrets; every token bound to one dies at once) and the RoleBindings (the tokens
 *    lose their rights).
 * 2. The ServiceAccounts (every token of the job dies with its account).
 * 3. The Leases, last; deleteBatch sends them only for the jobs whose other requests succeeded: the Lease is
 *    what marks the job as orphaned, so a failed cleanup finds the job again next time instead of leaving a
 *    job without a Lease that waits for its expires-at.
 */
export function deletionPhases(jobs: readonly Job[]): DeleteRequest[][] {
  const inCluster = jobs.filter((job) => objectCount(job) > 0);
  const request = (kind: LabelledKind): DeleteRequest => ({ kind, jobs: kind === TOKEN_ANCHOR_KIND ? inCluster : jobs.filter((job) => job.objects[kind as CleanupKind]?.length) });
  const phase = (kinds: LabelledKind[]) => kinds.map(request).filter((r) => r.jobs.length > 0);
  return [phase([...DRIVER_CREATED_KINDS, TOKEN_ANCHOR_KIND, 'rolebindings']), phase(['serviceaccounts']), phase(['leases'])].filter((p) => p.length > 0);
}

/** The orphaned jobs in batches: one namespace per batch, at most `size` jobs. */
export function batches<T extends { job: Job }>(items: readonly T[], size = BATCH_SIZE): T[][] {
  const byNamespace = new Map<string, T[][]>();
  for (const item of items) {
    const chunks = byNamespace.get(item.job.namespace) ?? [];
    if (chunks.length === 0 || chunks.at(-1)!.length >= size) chunks.push([]);
    chunks.at(-1)!.push(item);
    byNamespace.set(item.job.namespace, chunks);
  }
  return [...byNamespace.values()].flat();
}

/**
 * Selects the objects of exactly these jobs: the managed-by label, one of their job ids, and one of their
 * owners (the owner label holds the job's account name, which contains the user and the job id).
 */
export function jobsSelector(jobs: readonly Job[]): string {
  const ids = [...new Set(jobs.map((job) => job.jobId))];
  const owners = [...new Set(jobs.map((job) => job.owner))];
  const selector = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE},${JOB_LABEL} in (${ids.join(',')})`;
  return owners.every((owner) => owner) ? `${selector},${OWNER_LABEL} in (${owners.join(',')})` : selector;
}

/** "45s", "12m", "5h", "3d": like kubectl's AGE. */
export function formatAge(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 120 * 60) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 48 * 3600) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

export function formatTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function toDate(value: unknown): Date | undefined {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? undefined : value;
  if (typeof value !== 'string' || value === '') return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

function earliest(a: Date | undefined, b: Date | undefined): Date | undefined {
  return !a || (b && b < a) ? b : a;
}

function latest(a: Date | undefined, b: Date | undefined): Date | undefined {
  return !a || (b && b > a) ? b : a;
}

// ---- I/O ----

/** Runs `fn` on every item with at most `limit` calls in flight; stops taking new items after a failure. */
export async function forEachLimited<T>(items: Iterable<T>, limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const iterator = items[Symbol.iterator]();
  let failed = false;
  const worker = async () => {
    for (let next = iterator.next(); !next.done && !failed; next = iterator.next()) {
      try {
        await fn(next.value);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, limit) }, worker));
}

export interface ListOptions {
  /** Empty: all namespaces, in one list per kind. */
  namespaces: readonly string[];
  pageSize: number;
  concurrency: number;
  /** Called after each page with the number of objects seen so far. */
  onProgress?: (objects: number) => void;
}

/** Every labelled object of every kind, page by page, grouped by job as the pages arrive. Any failure aborts. */
export async function listJobs(kube: Kube, options: ListOptions): Promise<Map<string, Job>> {
  const jobs = new Map<string, Job>();
  const scopes = options.namespaces.length > 0 ? options.namespaces : [undefined];
  const lists = CLEANUP_KINDS.flatMap((kind) => scopes.map((namespace) => ({ kind, namespace })));
  let seen = 0;
  await forEachLimited(lists, options.concurrency, async ({ kind, namespace }) => {
    let continueToken: string | undefined;
    do {
      const page = await kube.list(kind, namespace, ORPHAN_SELECTOR, options.pageSize, continueToken);
      for (const object of page.items) addObject(jobs, kind, object);
      seen += page.items.length;
      options.onProgress?.(seen);
      continueToken = page.continueToken;
    } while (continueToken);
  });
  return jobs;
}

/** Limits the calls in flight: `limit(() => request())` waits for a free slot. */
export function limiter(max: number): <T>(call: () => Promise<T>) => Promise<T> {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async (call) => {
    if (running >= max) await new Promise<void>((resolve) => waiting.push(resolve));
    running++;
    try {
      return await call();
    } finally {
      running--;
      waiting.shift()?.();
    }
  };
}

/** A job as cleanup reports it; deleteBatch fills in the result. */
export interface JobReport {
  job: Job;
  decision: Decision;
  /** With --yes, for orphaned jobs; skipped: the Lease was renewed (or appeared) since the listing. */
  result?: 'deleted' | 'failed' | 'skipped';
  errors?: string[];
}

export interface DeleteContext {
  /** Shared by all batches: bounds the requests in flight. */
  limit: <T>(call: () => Promise<T>) => Promise<T>;
  now: () => Date;
  graceSeconds: number;
  isAlive: (process: JobProcess) => boolean;
}

/**
 * Deletes a batch of orphaned jobs of one namespace. Their Leases are read again first (one request) and a
 * job that is no longer orphaned is skipped. Then the requests of deletionPhases, then the temp directories.
 * NotFound counts as deleted, transient failures are retried, every failure is recorded on each job it
 * concerns and none stops the later phases (the ServiceAccounts, and with them the token, go even when a pod
 * could not be deleted), except that a job with a failure keeps its Lease. Never throws.
 */
export async function deleteBatch(kube: Kube, batch: readonly JobReport[], ctx: DeleteContext): Promise<void> {
  const namespace = batch[0]?.job.namespace;
  if (namespace === undefined) return;
  const fail = (reports: readonly JobReport[], error: unknown) => {
    for (const report of reports) (report.errors ??= []).push((error as Error).message);
  };

  let doomed = batch;
  const inCluster = batch.filter((r) => objectCount(r.job) > 0);
  if (inCluster.length > 0) {
    try {
      const leases = await ctx.limit(() => withRetry(() => listLeases(kube, namespace, inCluster.map((r) => r.job))));
      const now = ctx.now();
      doomed = batch.filter((report) => {
        if (objectCount(report.job) === 0) return true;
        const { lease: _listed, ...job } = report.job;
        const lease = leases.get(jobKey(job));
        const decision = decideState(lease ? { ...job, lease } : job, now, ctx.graceSeconds, { host: hostname(), isAlive: ctx.isAlive });
        if (decision.state === 'orphaned') return true;
        report.decision = decision;
        report.result = 'skipped';
        return false;
      });
    } catch (error) {
      // Without a fresh look at their Leases, these jobs are not touched.
      fail(inCluster, error);
      for (const report of inCluster) report.result = 'failed';
      doomed = batch.filter((r) => objectCount(r.job) === 0);
    }
  }

  const reportOf = new Map(doomed.map((r) => [r.job, r]));
  for (const phase of deletionPhases(doomed.map((r) => r.job))) {
    await Promise.all(
      phase.map((request) => {
        const jobs = request.kind === 'leases' ? request.jobs.filter((job) => !reportOf.get(job)!.errors?.length) : request.jobs;
        if (jobs.length === 0) return undefined;
        const reports = jobs.map((job) => reportOf.get(job)!);
        return ctx.limit(() => withRetry(() => kube.deleteCollection(request.kind, namespace, jobsSelector(jobs)))).catch((error) => fail(reports, error));
      }),
    );
  }

  for (const report of doomed) {
    const dir = report.job.tempDir;
    if (dir) {
      try {
        // Read the owner again: the directory is removed only if it still belongs to a dead process.
        if (await readStaleDir(dir.path, ctx.isAlive)) await rm(dir.path, { recursive: true, force: true });
      } catch (error) {
        fail([report], new Error(`remove ${dir.path} failed: ${(error as Error).message}`));
      }
    }
    report.result = report.errors?.length ? 'failed' : 'deleted';
  }
}

/** The Leases of some jobs of a namespace as the server has them now, by job key. */
async function listLeases(kube: Kube, namespace: string, jobs: readonly Job[]): Promise<Map<string, LeaseInfo>> {
  const probe = new Map<string, Job>();
  let continueToken: string | undefined;
  do {
    const page = await kube.list('leases', namespace, jobsSelector(jobs), 500, continueToken);
    for (const object of page.items) addObject(probe, 'leases', object);
    continueToken = page.continueToken;
  } while (continueToken);
  const leases = new Map<string, LeaseInfo>();
  for (const [key, job] of probe) if (job.lease) leases.set(key, job.lease);
  return leases;
}

/**
 * Per-job temp directories in `tempDir` whose owner process is gone (dead, or its pid now belongs to another
 * process). Only directories owned by this Unix account and made on this host are considered: a directory
 * of another account could be a trap, and the liveness of a process on another host cannot be checked.
 */
export async function findStaleDirs(tempDir: string, isAlive: (process: JobProcess) => boolean = isProcessAlive, warn: (message: string) => void = () => {}): Promise<StaleDir[]> {
  let names: string[];
  try {
    names = await readdir(tempDir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return [];
    throw new ConfigError(`cannot read the temp directory ${tempDir} (${code ?? (error as Error).message}); run cleanup as the account that runs jobs, or fix the profile's tempDir`);
  }
  const stale: StaleDir[] = [];
  for (const name of names) {
    if (!name.startsWith(JOB_DIR_PREFIX)) continue;
    try {
      const dir = await readStaleDir(join(tempDir, name), isAlive);
      if (dir) stale.push(dir);
    } catch (error) {
      warn(`ignoring ${join(tempDir, name)}: ${(error as Error).message}`);
    }
  }
  return stale;
}

/** The directory if it is a stale job directory of ours; undefined if it is not one or its owner lives; throws if owner.json is malformed. */
async function readStaleDir(path: string, isAlive: (process: JobProcess) => boolean): Promise<StaleDir | undefined> {
  const dirStat = await lstat(path).catch(() => undefined);
  if (!dirStat?.isDirectory() || dirStat.uid !== process.getuid?.()) return undefined;
  const ownerPath = join(path, OWNER_FILE);
  const ownerStat = await lstat(ownerPath).catch(() => undefined);
  if (!ownerStat?.isFile() || ownerStat.uid !== dirStat.uid) return undefined;
  if (ownerStat.size > 4096) throw new Error(`${OWNER_FILE} is larger than 4 KiB`);
  const owner = parseOwner(await readFile(ownerPath, 'utf8'));
  // mkdtemp names it `<prefix><jobId>-XXXXXX`.
  const expected = `${JOB_DIR_PREFIX}${owner.jobId}-`;
  const base = basename(path);
  if (!base.startsWith(expected) || !/^[A-Za-z0-9]+$/.test(base.slice(expected.length))) {
    throw new Error(`${OWNER_FILE} names job "${owner.jobId}", not the job of the directory name`);
  }
  if (owner.host !== hostname() || isAlive(owner)) return undefined;
  return { path, owner, createdAt: ownerStat.mtime };
}

export function parseOwner(text: string): JobOwner {
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`${OWNER_FILE} is not JSON`);
  }
  const { jobId, host, pid, processStart, namespace } = value ?? {};
  if (typeof jobId !== 'string' || jobId === '' || typeof host !== 'string' || typeof processStart !== 'string' || typeof namespace !== 'string' || !Number.isSafeInteger(pid)) {
    throw new Error(`${OWNER_FILE} lacks jobId, host, pid, processStart or namespace`);
  }
  return { jobId, host, pid: pid as number, processStart, namespace };
}
