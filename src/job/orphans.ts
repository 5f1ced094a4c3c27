// What crashed jobs leave behind: find every object with the managed-by and job labels, group the objects
// by job (namespace + job id), decide each job's state from its Lease, and delete the orphaned ones.
//
// A job's state is decided only from what no job token can write: the Lease and the annotations of the
// ServiceAccounts, Role and RoleBinding (only dssuser may write those kinds). The annotations of pods,
// services, configmaps and PVCs (which Spark's driver creates with the job's own token) are ignored; those
// objects only count as members of their job.
//
// Pure functions first (grouping, state, filters, deletion order), then the ones that do I/O.
import { lstat, readdir, readFile, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import type { V1ObjectMeta } from '@kubernetes/client-node';
import { isProcessAlive } from '../exec/process-identity.ts';
import { JOB_DIR_PREFIX, OWNER_FILE, type JobOwner } from '../exec/job-files.ts';
import { DRIVER_CREATED_KINDS, JOB_KINDS, type Kube, type LabelledKind } from '../k8s/client.ts';
import { loginToSlug } from '../plan/names.ts';
import { Annotation, JOB_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, USER_LABEL } from '../plan/types.ts';
import { withRetry } from './retry.ts';

/** Every kind cleanup looks at. */
export const CLEANUP_KINDS: readonly LabelledKind[] = [...DRIVER_CREATED_KINDS, ...JOB_KINDS];

/** Objects of any job: the managed-by label and a job label, whatever its value. */
export const ORPHAN_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE},${JOB_LABEL}`;

export function jobSelector(jobId: string): string {
  return `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE},${JOB_LABEL}=${jobId}`;
}

/** Jobs without a Lease and without an expires-at annotation are left alone for this long after creation. */
export const DEFAULT_GRACE_SECONDS = 3600;

/** The kinds only dssuser writes: their annotations (login, created-at, expires-at) are trusted. */
const TRUSTED_KINDS: ReadonlySet<LabelledKind> = new Set(JOB_KINDS);

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
  /** Names of the objects found, per kind. */
  objects: Partial<Record<LabelledKind, string[]>>;
  /** The login annotation of a ServiceAccount, Role, RoleBinding or Lease. */
  login?: string;
  /** The user label (a slug of the login). */
  userSlug?: string;
  /** The earliest of the created-at annotations (trusted kinds) and the objects' creation timestamps. */
  createdAt?: Date;
  /** The latest expires-at annotation (trusted kinds). */
  expiresAt?: Date;
  lease?: LeaseInfo;
  tempDir?: StaleDir;
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

export function jobKey(namespace: string, jobId: string): string {
  return `${namespace}/${jobId}`;
}

/** Adds one listed object to its job, creating the job on first sight. Objects without both labels are ignored. */
export function addObject(jobs: Map<string, Job>, kind: LabelledKind, object: ListedObject): void {
  const metadata = object.metadata;
  const labels = metadata?.labels ?? {};
  const jobId = labels[JOB_LABEL];
  const namespace = metadata?.namespace;
  const name = metadata?.name;
  // The server already selected on both labels; this guards against anything else ever reaching deletion.
  if (labels[MANAGED_BY_LABEL] !== MANAGED_BY_VALUE || !jobId || !namespace || !name) return;

  const key = jobKey(namespace, jobId);
  let job = jobs.get(key);
  if (!job) jobs.set(key, (job = { jobId, namespace, objects: {} }));
  (job.objects[kind] ??= []).push(name);
  job.userSlug ??= labels[USER_LABEL];
  job.createdAt = earliest(job.createdAt, toDate(metadata.creationTimestamp));

  if (!TRUSTED_KINDS.has(kind)) return;
  const annotations = metadata.annotations ?? {};
  job.login ??= annotations[Annotation.login];
  job.createdAt = earliest(job.createdAt, toDate(annotations[Annotation.createdAt]));
  job.expiresAt = latest(job.expiresAt, toDate(annotations[Annotation.expiresAt]));
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

/** Attaches stale temp directories to their jobs; a directory whose job has no objects left is a job of its own. */
export function addStaleDirs(jobs: Map<string, Job>, dirs: StaleDir[], namespaces: readonly string[]): void {
  for (const dir of dirs) {
    if (namespaces.length > 0 && !namespaces.includes(dir.owner.namespace)) continue;
    const key = jobKey(dir.owner.namespace, dir.owner.jobId);
    const job = jobs.get(key);
    if (job) job.tempDir = dir;
    else jobs.set(key, { jobId: dir.owner.jobId, namespace: dir.owner.namespace, objects: {}, createdAt: dir.createdAt, tempDir: dir });
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
 * - pending: no Lease (yet) and not expired. A starting job creates its accounts, Role and RoleBinding before
 *   its Lease, and they carry expires-at, so a starting job is pending, never orphaned.
 */
export function decideState(job: Job, now: Date, graceSeconds = DEFAULT_GRACE_SECONDS): Decision {
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

const DELETE_BY_NAME_ORDER = ['rolebindings', 'roles', 'serviceaccounts', 'leases'] as const satisfies readonly (typeof JOB_KINDS)[number][];

export type DeleteStep =
  /** Every object of a driver-created kind with the job's labels, in one request. */
  | { kind: (typeof DRIVER_CREATED_KINDS)[number]; collection: true }
  | { kind: LabelledKind; name: string };

/**
 * Pods, services, configmaps and PVCs by the job's labels, then the RoleBinding, Role and ServiceAccounts
 * by name (the token dies with its ServiceAccount). The Lease goes last, and only when everything else is
 * gone (see deleteJob): it is what marks the job as orphaned, so a failed cleanup is found again next time
 * instead of turning into a job without a Lease that waits for its expires-at.
 */
export function deletionSteps(job: Job): DeleteStep[] {
  const steps: DeleteStep[] = [];
  for (const kind of DRIVER_CREATED_KINDS) if (job.objects[kind]?.length) steps.push({ kind, collection: true });
  for (const kind of DELETE_BY_NAME_ORDER) for (const name of job.objects[kind] ?? []) steps.push({ kind, name });
  return steps;
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

/** The job's Lease as the server has it now (undefined when it has none): read again just before deleting. */
export async function currentLease(kube: Kube, job: Job): Promise<LeaseInfo | undefined> {
  const probe = new Map<string, Job>();
  const page = await kube.list('leases', job.namespace, jobSelector(job.jobId), 10);
  for (const object of page.items) addObject(probe, 'leases', object);
  return probe.get(jobKey(job.namespace, job.jobId))?.lease;
}

/**
 * Deletes a job's objects in the order of deletionSteps, then its temp directory. NotFound counts as
 * deleted, transient failures are retried, every failure is returned (one line each) and none stops the
 * later steps (the ServiceAccounts, and with them the token, go even when a pod could not be deleted),
 * except the Lease, which is kept when anything else failed.
 */
export async function deleteJob(kube: Kube, job: Job, isAlive: (owner: JobOwner) => boolean = isProcessAlive): Promise<string[]> {
  const failures: string[] = [];
  for (const step of deletionSteps(job)) {
    if (step.kind === 'leases' && failures.length > 0) continue;
    try {
      if ('collection' in step) await withRetry(() => kube.deleteCollection(step.kind, job.namespace, jobSelector(job.jobId)));
      else await withRetry(() => kube.deleteNamespaced(step.kind, job.namespace, step.name));
    } catch (error) {
      failures.push((error as Error).message);
    }
  }
  if (job.tempDir) {
    try {
      // Read the owner again: the directory is removed only if it is still one of a dead process.
      const still = await readStaleDir(job.tempDir.path, isAlive);
      if (still) await rm(job.tempDir.path, { recursive: true, force: true });
    } catch (error) {
      failures.push(`remove ${job.tempDir.path} failed: ${(error as Error).message}`);
    }
  }
  return failures;
}

/**
 * Per-job temp directories in `tempDir` whose owner process is gone (dead, or its pid now belongs to another
 * process). Only directories owned by this Unix account and made on this host are considered: a directory
 * of another account could be a trap, and the liveness of a process on another host cannot be checked.
 */
export async function findStaleDirs(tempDir: string, isAlive: (owner: JobOwner) => boolean = isProcessAlive, warn: (message: string) => void = () => {}): Promise<StaleDir[]> {
  let names: string[];
  try {
    names = await readdir(tempDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
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
async function readStaleDir(path: string, isAlive: (owner: JobOwner) => boolean): Promise<StaleDir | undefined> {
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
