// What crashed jobs leave behind: find the jobs, decide each one's state from its Lease, and delete the
// orphaned ones.
//
// A job exists only through the objects only dssuser can write: its ServiceAccounts (`<owner>` and
// `<owner>-exec`), its RoleBinding and its Lease (`<owner>`), each labelled managed-by and with the owner
// label `<owner>` (the job ServiceAccount's name, unique per login and job id). Jobs are keyed by namespace
// and owner; the job id, login, user, times and process come from those objects alone. Pods and PVCs are made
// with the job's own token, or by a controller acting for it (the ephemeral-volume controller turns a pod's
// volumeClaimTemplate into a PVC with any labels the pod asked for): they never make a job, and only count
// as objects of a job already known by its namespace and owner label. Pods and PVCs whose owner has none of
// those objects any more are leftovers of a dead job (only that job's token could label them so, and its
// account is gone, so no live job can be concerned): they are deleted once the newest is older than the
// grace period, after checking again that the owner has no account or Lease. A temp directory is attached to
// the job of its owner; alone, it is only removed from disk. Every delete is one kind of one job:
// ownerSelector(owner), the managed-by label and that job's owner label, nothing else, in the order of
// TEARDOWN_PHASES (revoke first, then what the token made, then the Lease).
//
// Pure functions first (grouping, state, filters, deletion order), then the ones that do I/O.
import { setTimeout as delay } from 'node:timers/promises';
import { lstat, readdir, readFile, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import type { V1ObjectMeta } from '@kubernetes/client-node';
import { ConfigError } from '../errors.ts';
import { isProcessAlive } from '../exec/process-identity.ts';
import { JOB_DIR_PREFIX, OWNER_FILE, type JobOwner } from '../exec/job-files.ts';
import { DRIVER_CREATED_KINDS, JOB_KINDS, TOKEN_ANCHOR_KIND, type DriverCreatedKind, type Kube, type LabelledKind } from '../k8s/client.ts';
import { executorServiceAccountName, loginToSlug } from '../plan/names.ts';
import { Annotation, JOB_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_LABEL, USER_LABEL } from '../plan/types.ts';
import { withRetry } from './retry.ts';
import { ownerSelector, TEARDOWN_PHASES } from './teardown.ts';

/** The kinds only dssuser writes: they alone make a job, and their labels and annotations are trusted. */
export type TrustedKind = (typeof JOB_KINDS)[number];
/** The kinds cleanup lists: the trusted ones, and what Spark's driver creates (only counted). */
export type CleanupKind = DriverCreatedKind | TrustedKind;
export const CLEANUP_KINDS: readonly CleanupKind[] = [...JOB_KINDS, ...DRIVER_CREATED_KINDS];

/** Objects of any job: the managed-by label and an owner label, whatever its value. */
export const ORPHAN_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE},${OWNER_LABEL}`;

/** Jobs without a Lease and without an expires-at annotation are left alone for this long after creation. */
export const DEFAULT_GRACE_SECONDS = 3600;

const TRUSTED_KINDS: ReadonlySet<CleanupKind> = new Set(JOB_KINDS);

export function isTrustedKind(kind: CleanupKind): kind is TrustedKind {
  return TRUSTED_KINDS.has(kind);
}

export type JobState = 'live' | 'pending' | 'orphaned';

export interface LeaseInfo {
  name: string;
  holder?: string;
  /** Last renewal (else acquisition, else creation) time. */
  renewTime?: Date;
  durationSeconds: number;
}

/** owner.json; `serviceAccount` (the job's base name) is absent in the files of older versions. */
export type DirOwner = JobOwner & { serviceAccount?: string };

/** A per-job temp directory on this host whose owner process is gone. */
export interface StaleDir {
  path: string;
  owner: DirOwner;
  /** When owner.json was written. */
  createdAt: Date;
}

/** One job as found: a compact record (names only), small enough for tens of thousands of jobs. */
export interface Job {
  jobId: string;
  namespace: string;
  /**
   * The owner label of its ServiceAccounts, RoleBinding and Lease (the job ServiceAccount's name). Set when
   * the job is known from those objects, or for leftovers; absent for a temp directory alone, which no request
   * to the cluster ever concerns.
   */
  owner?: string;
  /** Only pods or PVCs of this owner were found, none of its ServiceAccounts, RoleBinding or Lease. */
  leftover?: boolean;
  /** For a leftover: when its newest object was made (the grace period counts from it). */
  newestAt?: Date;
  /** Names of the objects found, per kind. */
  objects: Partial<Record<CleanupKind, string[]>>;
  /** Driver kinds whose list failed: the objects counted leave them out. */
  uncounted?: DriverCreatedKind[];
  /** The login annotation of a ServiceAccount, RoleBinding or Lease. */
  login?: string;
  /** The user label (a slug of the login) of a ServiceAccount, RoleBinding or Lease. */
  userSlug?: string;
  /** The earliest of the created-at annotations and creation timestamps of the trusted objects. */
  createdAt?: Date;
  /** The latest expires-at annotation of the trusted objects. */
  expiresAt?: Date;
  lease?: LeaseInfo;
  /** The process that runs (or ran) the job, from the annotations of the trusted objects. */
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

export function jobKey(namespace: string, owner: string): string {
  return `${namespace}/${owner}`;
}

/** The names the tool gives the objects of a kind of the job `owner`. */
function expectedNames(kind: TrustedKind, owner: string): string[] {
  return kind === 'serviceaccounts' ? [owner, executorServiceAccountName(owner)] : [owner];
}

/**
 * Adds one listed object to the jobs. A ServiceAccount, RoleBinding or Lease makes its job on first sight;
 * a pod or PVC is only counted, and only for a job already known with its namespace and owner label (list
 * the trusted kinds first). Anything else is ignored: objects without the managed-by and owner labels,
 * and trusted objects whose name is not the one the tool gives them (with a warning).
 */
export function addObject(jobs: Map<string, Job>, kind: CleanupKind, object: ListedObject, warn: (message: string) => void = () => {}): void {
  const metadata = object.metadata;
  const labels = metadata?.labels ?? {};
  const owner = labels[OWNER_LABEL];
  const namespace = metadata?.namespace;
  const name = metadata?.name;
  // The server already selected on both labels; this guards against anything else ever reaching deletion.
  if (labels[MANAGED_BY_LABEL] !== MANAGED_BY_VALUE || !owner || !namespace || !name) return;
  const key = jobKey(namespace, owner);
  let job = jobs.get(key);

  if (!isTrustedKind(kind)) {
    const created = toDate(metadata.creationTimestamp);
    if (!job) {
      // List the trusted kinds first: a job without any of them here is a leftover. Its job id and user labels
      // were written by its token, so they are not taken (--user never selects a leftover).
      jobs.set(key, (job = { jobId: '', namespace, owner, objects: {}, leftover: true }));
    }
    if (job.leftover) {
      job.createdAt = earliest(job.createdAt, created);
      job.newestAt = latest(job.newestAt, created);
    }
    (job.objects[kind] ??= []).push(name);
    return;
  }

  const jobId = labels[JOB_LABEL];
  const ignore = (why: string) => warn(`ignoring ${kind} ${namespace}/${name}: ${why}`);
  if (!expectedNames(kind, owner).includes(name)) return ignore(`its owner label is "${owner}", so its name should be ${expectedNames(kind, owner).map((n) => `"${n}"`).join(' or ')}`);
  if (!jobId) return ignore('it has no job id label');
  if (job?.leftover) {
    // Its pods were listed first (listJobs lists the trusted kinds first; a caller may not): it is a job after all.
    const { leftover: _leftover, newestAt: _newest, ...rest } = job;
    jobs.set(key, (job = { ...rest, jobId }));
  }
  if (!job) jobs.set(key, (job = { jobId, namespace, owner, objects: {} }));
  else if (job.jobId !== jobId) return ignore(`its job id "${jobId}" is not the job id "${job.jobId}" of the other objects of ${owner}`);

  (job.objects[kind] ??= []).push(name);
  job.userSlug ??= labels[USER_LABEL];
  job.createdAt = earliest(job.createdAt, toDate(metadata.creationTimestamp));
  const annotations = metadata.annotations ?? {};
  job.login ??= annotations[Annotation.login];
  job.createdAt = earliest(job.createdAt, toDate(annotations[Annotation.createdAt]));
  job.expiresAt = latest(job.expiresAt, toDate(annotations[Annotation.expiresAt]));
  const [host, processStart, pid] = [annotations[Annotation.host], annotations[Annotation.processStart], Number(annotations[Annotation.pid])];
  if (!job.process && host && processStart && Number.isSafeInteger(pid) && pid > 0) job.process = { host, pid, processStart };
  if (kind === 'leases') job.lease = leaseInfo(name, object.spec, toDate(metadata.creationTimestamp));
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
 * Attaches stale temp directories to their jobs: by namespace and owner when owner.json names the job's
 * ServiceAccount, else (directories of older versions) by namespace and job id; only jobs known from their
 * ServiceAccounts, RoleBinding or Lease are candidates, and a directory never changes a job's state. A
 * directory whose job is not in the cluster (any more) is a job of its own, without an owner: it only
 * removes the directory, never sends a request. A directory without a ServiceAccount that could belong
 * to several jobs (two users' jobs sharing a job id) is left out: it is not clear which job's state should
 * decide. `inScope` tells the namespaces cleanup looked at.
 */
export function addStaleDirs(jobs: Map<string, Job>, dirs: StaleDir[], inScope: (namespace: string) => boolean, warn: (message: string) => void = () => {}): void {
  const byId = new Map<string, Job[]>();
  for (const job of jobs.values()) {
    const id = `${job.namespace}/${job.jobId}`;
    byId.set(id, [...(byId.get(id) ?? []), job]);
  }
  for (const dir of dirs) {
    const { namespace, jobId, serviceAccount } = dir.owner;
    if (!inScope(namespace)) continue;
    const matches =
      serviceAccount !== undefined ? [jobs.get(jobKey(namespace, serviceAccount))].filter((job) => job !== undefined && job.jobId === jobId) : (byId.get(`${namespace}/${jobId}`) ?? []);
    if (matches.length === 1) matches[0]!.tempDir = dir;
    // Keyed by path: never the key of a job of the cluster.
    else if (matches.length === 0) jobs.set(`${namespace}//${dir.path}`, { jobId, namespace, objects: {}, createdAt: dir.createdAt, tempDir: dir });
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
  if (job.owner === undefined) {
    return { state: 'orphaned', reason: `no objects left; temp dir of dead process ${job.tempDir?.owner.pid ?? '?'}` };
  }
  if (job.leftover) {
    const since = job.newestAt ? now.getTime() - job.newestAt.getTime() : 0;
    if (since >= graceSeconds * 1000) return { state: 'orphaned', reason: 'its account is gone; pods or claims its token made are left' };
    return { state: 'pending', reason: `its account is gone; what its token made is deleted ${formatAge(graceSeconds * 1000)} after the newest` };
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

/**
 * The kinds to delete for one orphaned job, phase by phase, in the order of TEARDOWN_PHASES: the kinds of a
 * phase are deleted at once, a phase starts when the one before is done. Each kind is one deletecollection by
 * ownerSelector(owner): it reaches this job's objects and no other's. A temp directory alone (no owner) sends
 * no request.
 * 1. The token anchor Secrets (dssuser may not list Secrets: always), the RoleBinding and the ServiceAccounts:
 *    every token of the job loses its rights and dies.
 * 2. Every driver kind (a count may be unknown or out of date): nothing can add to them any more.
 * 3. The Lease, last; deleteJob sends it only when nothing before failed: the Lease is what marks the job as
 *    orphaned, so a failed cleanup finds the job again next time instead of leaving a job without a Lease
 *    that waits for its expires-at.
 * Always three phases (some empty); a leftover (no trusted object) has only phase 2.
 */
export function deletionPhases(job: Job): LabelledKind[][] {
  if (job.owner === undefined) return [[], [], []];
  const [revoking, driverKinds] = TEARDOWN_PHASES as [LabelledKind[], LabelledKind[]];
  if (job.leftover) return [[], [...driverKinds], []];
  const found = (kind: LabelledKind) => kind === TOKEN_ANCHOR_KIND || Boolean(job.objects[kind as TrustedKind]?.length);
  return [revoking.filter(found), [...driverKinds], job.lease ? ['leases'] : []];
}

const LABEL_VALUE = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/** The one selector a delete of this job uses; there is none for a job without an owner. */
export function deleteSelector(job: Pick<Job, 'owner'>): string {
  if (job.owner === undefined || !LABEL_VALUE.test(job.owner)) throw new Error(`internal: a delete selector needs the job's owner label, got ${JSON.stringify(job.owner)}`);
  return ownerSelector(job.owner);
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
  warn?: (message: string) => void;
}

/** A list request that failed, after its retries. */
export interface ListFailure {
  /** Undefined: the list across all namespaces. */
  namespace?: string;
  kind: CleanupKind;
  message: string;
}

export interface Listing {
  jobs: Map<string, Job>;
  /** Every list that failed. The jobs of a namespace whose ServiceAccounts, RoleBindings or Leases could not be listed are not in `jobs`. */
  failures: ListFailure[];
  /** The namespaces whose jobs are not known (a ServiceAccount, RoleBinding or Lease list failed): nothing there may be touched. */
  unknown: ReadonlySet<string>;
}

/**
 * The jobs of the namespaces (or of all), page by page. Every list is metadata only (a
 * PartialObjectMetadataList: what a job stores in its objects costs the listing nothing), except the Leases,
 * whose renew time is in their spec and which only dssuser writes. First the trusted kinds, which make the
 * jobs; then the driver kinds, counted for the jobs already known.
 * Each namespace given stands alone: one whose trusted lists fail is left out (`unknown`; a live job there
 * could look orphaned without its Lease), the others go on. Across all namespaces, a failed trusted list
 * throws: nothing is known. A failed driver-kind list leaves the jobs it concerns `uncounted` (deletion does
 * not depend on the counts). Every failure is in `failures` and is warned about.
 */
export async function listJobs(kube: Kube, options: ListOptions): Promise<Listing> {
  const jobs = new Map<string, Job>();
  const failures: ListFailure[] = [];
  const unknown = new Set<string>();
  const warn = options.warn ?? (() => {});
  const scopes = options.namespaces.length > 0 ? options.namespaces : [undefined];
  let seen = 0;
  const listAll = async (kind: CleanupKind, namespace: string | undefined) => {
    let continueToken: string | undefined;
    do {
      const token = continueToken;
      const page = await withRetry(() => kube.list(kind, namespace, ORPHAN_SELECTOR, options.pageSize, token, kind !== 'leases'));
      for (const object of page.items) addObject(jobs, kind, object, warn);
      seen += page.items.length;
      options.onProgress?.(seen);
      continueToken = page.continueToken;
    } while (continueToken);
  };

  const trusted = JOB_KINDS.flatMap((kind) => scopes.map((namespace) => ({ kind, namespace })));
  await forEachLimited(trusted, options.concurrency, async ({ kind, namespace }) => {
    if (namespace !== undefined && unknown.has(namespace)) return;
    try {
      await listAll(kind, namespace);
    } catch (error) {
      if (namespace === undefined) throw error;
      if (unknown.has(namespace)) return;
      unknown.add(namespace);
      failures.push({ namespace, kind, message: (error as Error).message });
      warn(`${(error as Error).message}; the jobs in ${namespace} are left alone`);
    }
  });
  for (const [key, job] of jobs) if (unknown.has(job.namespace)) jobs.delete(key);

  const driver = DRIVER_CREATED_KINDS.flatMap((kind) => scopes.filter((namespace) => namespace === undefined || !unknown.has(namespace)).map((namespace) => ({ kind, namespace })));
  await forEachLimited(driver, options.concurrency, async ({ kind, namespace }) => {
    try {
      await listAll(kind, namespace);
    } catch (error) {
      failures.push({ ...(namespace !== undefined ? { namespace } : {}), kind, message: (error as Error).message });
      warn(`${(error as Error).message}; the OBJECTS of the jobs${namespace ? ` in ${namespace}` : ''} leave out ${kind} (they are deleted all the same)`);
      for (const job of jobs.values()) if (namespace === undefined || job.namespace === namespace) (job.uncounted ??= []).push(kind);
    }
  });
  return { jobs, failures, unknown };
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

/** A job as cleanup reports it; deleteJob fills in the result. */
export interface JobReport {
  job: Job;
  decision: Decision;
  /** With --yes, for orphaned jobs; skipped: the Lease was renewed (or appeared) since the listing. */
  result?: 'deleted' | 'failed' | 'skipped';
  errors?: string[];
}

export interface DeleteContext {
  /** Shared by all jobs: bounds the requests in flight. */
  limit: <T>(call: () => Promise<T>) => Promise<T>;
  now: () => Date;
  graceSeconds: number;
  isAlive: (process: JobProcess) => boolean;
  /** Waits between revoking a job and deleting what its token made (default: a real timer). */
  sleep?: (ms: number) => Promise<void>;
}

/** Time for every apiserver to stop authorizing a revoked token (RBAC and token caches) before the pod deletes. */
export const REVOCATION_SETTLE_MS = 2000;

/**
 * Deletes orphaned jobs. Each one's Lease is read again first (a leftover's owner is checked for an account or
 * Lease again) and a job that is no longer orphaned is skipped; then, for all jobs together, the phases of
 * deletionPhases — with one pause after the revoking phase, before what the tokens made — then the temp
 * directories. NotFound counts as deleted, transient failures are retried, every failure is recorded and none
 * stops the later phases (the ServiceAccounts, and with them the token, go even when a pod could not be
 * deleted), except that a job with a failure keeps its Lease. Never throws.
 */
export async function deleteJobs(kube: Kube, reports: JobReport[], ctx: DeleteContext & { jobsAtOnce?: number; onDone?: () => void }): Promise<void> {
  const jobsAtOnce = ctx.jobsAtOnce ?? 16;
  const sleep = ctx.sleep ?? delay;
  const going: { report: JobReport; job: Job; phases: LabelledKind[][] }[] = [];
  await forEachLimited(reports, jobsAtOnce, async (report) => {
    const job = await lookAgain(kube, report, ctx);
    if (job) going.push({ report, job, phases: deletionPhases(job) });
  });
  for (let phase = 0; phase < 3; phase++) {
    const now = going.filter((g) => g.phases[phase]!.length > 0);
    // What the tokens made goes only once the revocation holds (a process that kept a token could add to it).
    if (phase === 1 && now.length > 0 && going.some((g) => g.phases[0]!.length > 0)) await sleep(REVOCATION_SETTLE_MS);
    await forEachLimited(now, jobsAtOnce, async ({ report, job, phases }) => {
      const selector = deleteSelector(job);
      const kinds = phases[phase]!.filter((kind) => kind !== 'leases' || !report.errors?.length);
      await Promise.all(kinds.map((kind) => ctx.limit(() => withRetry(() => kube.deleteCollection(kind, job.namespace, selector))).catch((error) => fail(report, error))));
    });
  }
  await forEachLimited(
    reports.filter((r) => r.result === undefined),
    jobsAtOnce,
    async (report) => {
      const dir = report.job.tempDir;
      if (dir) {
        try {
          // Read the owner again: the directory is removed only if it still belongs to a dead process.
          if (await readStaleDir(dir.path, ctx.isAlive)) await rm(dir.path, { recursive: true, force: true });
        } catch (error) {
          fail(report, new Error(`remove ${dir.path} failed: ${(error as Error).message}`));
        }
      }
      report.result = report.errors?.length ? 'failed' : 'deleted';
      ctx.onDone?.();
    },
  );
}

/** Deletes one orphaned job (see deleteJobs). */
export function deleteJob(kube: Kube, report: JobReport, ctx: DeleteContext): Promise<void> {
  return deleteJobs(kube, [report], ctx);
}

function fail(report: JobReport, error: unknown) {
  (report.errors ??= []).push((error as Error).message);
}

/** The job as it is now if it is still orphaned; else the report says why not (skipped, or failed to look). */
async function lookAgain(kube: Kube, report: JobReport, ctx: DeleteContext): Promise<Job | undefined> {
  const listed = report.job;
  const owner = listed.owner;
  if (owner === undefined) return undefined; // a temp directory alone: nothing to ask the cluster
  try {
    if (listed.leftover) {
      if (!(await ctx.limit(() => withRetry(() => ownerExists(kube, listed.namespace, owner))))) return listed;
      // A job of that name is being made: the next run decides with its account and Lease in view.
      report.decision = { state: 'pending', reason: 'its account or Lease exists again' };
      report.result = 'skipped';
      return undefined;
    }
    const job = await ctx.limit(() => withRetry(() => withFreshLease(kube, listed, owner)));
    const decision = decideState(job, ctx.now(), ctx.graceSeconds, { host: hostname(), isAlive: ctx.isAlive });
    if (decision.state === 'orphaned') return job;
    report.decision = decision;
    report.result = 'skipped';
  } catch (error) {
    // Without a fresh look at its Lease, the job is not touched.
    fail(report, error);
    report.result = 'failed';
  }
  return undefined;
}

/** Whether the owner of a leftover has a ServiceAccount or a Lease again. */
async function ownerExists(kube: Kube, namespace: string, owner: string): Promise<boolean> {
  const [account, lease] = await Promise.all([kube.getServiceAccount(namespace, owner), kube.getLease(namespace, owner)]);
  return Boolean(account || lease);
}

/** The job with its Lease as the server has it now (none if it is gone or no longer the job's). */
async function withFreshLease(kube: Kube, job: Job, owner: string): Promise<Job> {
  const { lease: _listed, ...rest } = job;
  const object = await kube.getLease<ListedObject>(job.namespace, owner);
  if (!object) return rest;
  const probe = new Map<string, Job>();
  addObject(probe, 'leases', object);
  const fresh = probe.get(jobKey(job.namespace, owner));
  return fresh?.lease && fresh.jobId === job.jobId ? { ...rest, lease: fresh.lease } : rest;
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

export function parseOwner(text: string): DirOwner {
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`${OWNER_FILE} is not JSON`);
  }
  const { jobId, host, pid, processStart, namespace, serviceAccount } = value ?? {};
  if (typeof jobId !== 'string' || jobId === '' || typeof host !== 'string' || typeof processStart !== 'string' || typeof namespace !== 'string' || !Number.isSafeInteger(pid)) {
    throw new Error(`${OWNER_FILE} lacks jobId, host, pid, processStart or namespace`);
  }
  if (serviceAccount !== undefined && (typeof serviceAccount !== 'string' || !LABEL_VALUE.test(serviceAccount))) {
    throw new Error(`${OWNER_FILE} has a serviceAccount that is not a ServiceAccount name`);
  }
  return { jobId, host, pid: pid as number, processStart, namespace, ...(serviceAccount !== undefined ? { serviceAccount } : {}) };
}
