// The pure model of cleanup --orphans: which jobs the listed objects make, each one's state, the filters and
// what to delete. The listing is in list.ts, the deletes in delete.ts, the temp directories in job-dirs.ts, the
// output in render.ts.
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
// ownerSelector(owner), the managed-by label and that job's owner label, nothing else.
import type { V1ObjectMeta } from '@kubernetes/client-node';
import type { JobOwner } from '../exec/job-dir.ts';
import {
  DRIVER_CREATED_KINDS,
  JOB_KINDS,
  TEARDOWN_PHASES,
  TOKEN_ANCHOR_KIND,
  type DriverCreatedKind,
  type LabelledKind,
  type TrustedKind,
} from '../plan/kinds.ts';
import { executorServiceAccountName, isDnsLabel, loginToSlug } from '../plan/names.ts';
import { Annotation, JOB_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_LABEL, USER_LABEL } from '../plan/types.ts';
import { ownerSelector } from '../teardown/order.ts';

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
      job = { jobId: '', namespace, owner, objects: {}, leftover: true };
      jobs.set(key, job);
    }
    if (job.leftover) {
      job.createdAt = earliest(job.createdAt, created);
      job.newestAt = latest(job.newestAt, created);
    }
    addName(job, kind, name);
    return;
  }

  const jobId = labels[JOB_LABEL];
  const ignore = (why: string) => warn(`ignoring ${kind} ${namespace}/${name}: ${why}`);
  if (!expectedNames(kind, owner).includes(name)) {
    ignore(
      `its owner label is "${owner}", so its name should be ${expectedNames(kind, owner)
        .map((n) => `"${n}"`)
        .join(' or ')}`,
    );
    return;
  }
  if (!jobId) {
    ignore('it has no job id label');
    return;
  }
  if (job?.leftover) {
    // Its pods were listed first (listJobs lists the trusted kinds first; a caller may not): it is a job after all.
    const { leftover: _leftover, newestAt: _newest, ...rest } = job;
    job = { ...rest, jobId };
    jobs.set(key, job);
  }
  if (!job) {
    job = { jobId, namespace, owner, objects: {} };
    jobs.set(key, job);
  } else if (job.jobId !== jobId) {
    ignore(`its job id "${jobId}" is not the job id "${job.jobId}" of the other objects of ${owner}`);
    return;
  }

  addName(job, kind, name);
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

function addName(job: Job, kind: CleanupKind, name: string) {
  job.objects[kind] = [...(job.objects[kind] ?? []), name];
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
export function addStaleDirs(
  jobs: Map<string, Job>,
  dirs: StaleDir[],
  inScope: (namespace: string) => boolean,
  warn: (message: string) => void = () => {},
): void {
  const byId = new Map<string, Job[]>();
  for (const job of jobs.values()) {
    const id = `${job.namespace}/${job.jobId}`;
    byId.set(id, [...(byId.get(id) ?? []), job]);
  }
  for (const dir of dirs) {
    const { namespace, jobId, serviceAccount } = dir.owner;
    if (!inScope(namespace)) continue;
    const matches =
      serviceAccount !== undefined
        ? [jobs.get(jobKey(namespace, serviceAccount))].filter((job) => job !== undefined && job.jobId === jobId)
        : (byId.get(`${namespace}/${jobId}`) ?? []);
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
 * The kinds to delete for one orphaned job, in the order of TEARDOWN_PHASES (teardown/order.ts). Each kind is
 * one deletecollection by ownerSelector(owner): it reaches this job's objects and no other's.
 * - revoke: the token anchor Secrets (dssuser may not list Secrets: always) and the RoleBinding and
 *   ServiceAccounts found: every token of the job loses its rights and dies;
 * - tokenMade: every driver kind (a count may be unknown or out of date): nothing can add to them any more;
 * - last: the Lease, which is what marks the job as orphaned: kept when anything before failed, so that the
 *   next run finds the job again instead of a job without a Lease that waits for its expires-at.
 * A leftover (no trusted object) has only what its token made; a temp directory alone (no owner) nothing.
 */
export function deletionPhases(job: Job): DeletionPhases {
  if (job.owner === undefined) return { revoke: [], tokenMade: [], last: [] };
  if (job.leftover) return { revoke: [], tokenMade: [...TEARDOWN_PHASES.tokenMade], last: [] };
  const found = (kind: LabelledKind) => kind === TOKEN_ANCHOR_KIND || Boolean(job.objects[kind as TrustedKind]?.length);
  return { revoke: TEARDOWN_PHASES.revoke.filter(found), tokenMade: [...TEARDOWN_PHASES.tokenMade], last: job.lease ? ['leases'] : [] };
}

export interface DeletionPhases {
  revoke: LabelledKind[];
  tokenMade: LabelledKind[];
  last: LabelledKind[];
}

/** The one selector a delete of this job uses; there is none for a job without an owner. */
export function deleteSelector(job: Pick<Job, 'owner'>): string {
  if (job.owner === undefined || !isDnsLabel(job.owner))
    throw new Error(`internal: a delete selector needs the job's owner label, got ${JSON.stringify(job.owner)}`);
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

export function toDate(value: unknown): Date | undefined {
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

/** A job as cleanup reports it; deleteJobs fills in the result. */
export interface JobReport {
  job: Job;
  decision: Decision;
  /** With --yes, for orphaned jobs; skipped: the Lease was renewed (or appeared) since the listing. */
  result?: 'deleted' | 'failed' | 'skipped';
  errors?: string[];
}

/** The jobs the filters keep, with their state, sorted by namespace and job id. */
export function selectJobs(jobs: Map<string, Job>, request: Filters & { graceSeconds: number }, now: Date, liveness?: Liveness): JobReport[] {
  const reports: JobReport[] = [];
  for (const job of jobs.values()) {
    // A temp directory alone names no user: it cannot match --user.
    if (request.user !== undefined && job.owner === undefined) continue;
    if (!matchesFilters(job, request, now)) continue;
    reports.push({ job, decision: decideState(job, now, request.graceSeconds, liveness) });
  }
  return reports.sort((a, b) => compare(a.job.namespace, b.job.namespace) || compare(a.job.jobId, b.job.jobId));
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
