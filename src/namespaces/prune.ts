// `namespaces prune`: which per-user namespaces the tool made have held no job for a while, and which of them may
// go. Pure: the command (src/commands/namespaces-prune.ts) lists, reads and deletes.
//
// What a namespace is decided from: its labels (managed-by, managed=true and a user, written only when dssuser
// created it: its admission policy lets it change nothing of a namespace but the last-used annotation), its
// last-used annotation (written by `run` at each job start) or its creation time, whichever is later, and what it
// holds: Leases and job ServiceAccounts (only dssuser writes them: a job, live or crashed), pods, claims.

import type { V1Namespace } from '@kubernetes/client-node';
import { formatColumns } from '../columns.ts';
import { durationSeconds } from '../config/schema.ts';
import { UsageError } from '../errors.ts';
import { Annotation, MANAGED_BY_LABEL, MANAGED_BY_VALUE, MANAGED_NAMESPACE_LABEL, USER_LABEL } from '../plan/types.ts';

/** The namespaces prune looks at (a label selector): per-user namespaces dssuser created. */
export const PRUNE_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE},${MANAGED_NAMESPACE_LABEL}=true,${USER_LABEL}`;

/** --idle's minimum: below it, namespaces would go between the jobs of one session. */
export const MIN_IDLE_SECONDS = 3600;

const WEEK = 7 * 86400;

/** --idle: "90s", "30m", "12h", "7d", "2w" (and combinations such as "1d12h"), at least an hour. */
export function parseIdle(text: string | undefined): number {
  if (text === undefined) throw new UsageError('--idle <duration> is required: how long a namespace must have held no job, e.g. --idle 7d');
  const [, weeks, rest = ''] = /^\s*(?:(\d+)w)?(.*?)\s*$/.exec(text)!;
  const restSeconds = rest === '' ? (weeks === undefined ? undefined : 0) : durationSeconds(rest);
  const seconds = restSeconds === undefined ? Number.NaN : Number(weeks ?? 0) * WEEK + restSeconds;
  if (!Number.isSafeInteger(seconds)) throw new UsageError(`--idle "${text}": expected a duration such as 90s, 30m, 12h, 7d or 2w`);
  if (seconds < MIN_IDLE_SECONDS) {
    throw new UsageError(
      `--idle "${text}": at least 1h (a shorter time deletes namespaces between the jobs of one session and leaves no margin for the hosts' clock skew)`,
    );
  }
  return seconds;
}

/** The time `run` writes: RFC 3339 UTC, seconds precision (what dssuser's admission policy admits). */
export function lastUsedValue(now: Date): string {
  return now.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The annotations of `run`'s merge patch of a job's per-user namespace (the only change the policy admits). */
export function lastUsedAnnotations(now: Date): Record<string, string> {
  return { [Annotation.lastUsed]: lastUsedValue(now) };
}

/** A per-user namespace the tool made: the labels only dssuser's create wrote (and it may not change). */
export function isToolPerUserNamespace(namespace: V1Namespace): boolean {
  const labels = namespace.metadata?.labels ?? {};
  return labels[MANAGED_BY_LABEL] === MANAGED_BY_VALUE && labels[MANAGED_NAMESPACE_LABEL] === 'true' && (labels[USER_LABEL] ?? '') !== '';
}

/** Deleted and not yet gone (namespaces prune, or an administrator). */
export function isBeingDeleted(namespace: V1Namespace): boolean {
  return Boolean(namespace.metadata?.deletionTimestamp) || namespace.status?.phase === 'Terminating';
}

/** The one line `run` fails with when its namespace is being deleted. */
export function beingDeletedMessage(namespace: string): string {
  return `namespace ${namespace} is being deleted (namespaces prune); run the job again in a minute`;
}

/** How far ahead of prune's clock a job host's may be: a last-used further in the future is not believed. */
export const CLOCK_SKEW_MS = 3600_000;

/**
 * When the namespace last held a job start: its last-used annotation or its creation, whichever is later. A last-used
 * more than CLOCK_SKEW_MS after `now` is ignored: it would keep the namespace forever (a wrong clock, or a
 * compromised dssuser writing 9999-12-31).
 */
export function idleSince(namespace: V1Namespace, now: Date): Date {
  const created = toDate(namespace.metadata?.creationTimestamp);
  const raw = namespace.metadata?.annotations?.[Annotation.lastUsed];
  const parsed = raw !== undefined && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/.test(raw) ? toDate(raw) : undefined;
  const used = parsed !== undefined && parsed.getTime() <= now.getTime() + CLOCK_SKEW_MS ? parsed : undefined;
  const times = [created, used].filter((time): time is Date => time !== undefined);
  // No time at all is not idle: nothing the apiserver sends, but never a reason to delete.
  return times.length === 0 ? new Date(8.64e15) : new Date(Math.max(...times.map((time) => time.getTime())));
}

function toDate(value: Date | string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** A namespace idle for at least --idle, as read: its uid and resourceVersion are the delete's preconditions. */
export interface Candidate {
  name: string;
  uid: string;
  resourceVersion: string;
  idleSince: Date;
  idleSeconds: number;
}

/** The profile's per-user namespaces (by `pattern`) idle for at least `idleSeconds` at `now`, oldest first. */
export function candidates(namespaces: readonly V1Namespace[], pattern: RegExp, now: Date, idleSeconds: number): Candidate[] {
  return namespaces
    .filter((namespace) => isToolPerUserNamespace(namespace) && !isBeingDeleted(namespace) && pattern.test(namespace.metadata?.name ?? ''))
    .map((namespace) => {
      const since = idleSince(namespace, now);
      return {
        name: namespace.metadata!.name!,
        uid: namespace.metadata?.uid ?? '',
        resourceVersion: namespace.metadata?.resourceVersion ?? '',
        idleSince: since,
        idleSeconds: Math.floor((now.getTime() - since.getTime()) / 1000),
      };
    })
    .filter((candidate) => candidate.idleSeconds >= idleSeconds && candidate.uid !== '' && candidate.resourceVersion !== '')
    .sort((a, b) => a.idleSince.getTime() - b.idleSince.getTime() || a.name.localeCompare(b.name));
}

/** What a candidate holds (names; the lists are one page each, `more` when there was another). */
export interface NamespaceContents {
  leases: string[];
  /** ServiceAccounts named dss-spark-… (a job's account or its executor account). */
  jobAccounts: string[];
  pods: string[];
  claims: string[];
}

export type PruneState = 'would delete' | 'deleted' | 'has a job' | 'has pods' | 'has volumes' | 'in use again' | 'failed';

export interface PruneRow {
  namespace: string;
  /** RFC 3339: the later of last-used and the creation time. */
  idleSince: string;
  idleSeconds: number;
  state: PruneState;
  detail?: string;
}

/**
 * Whether a candidate may go. A Lease or a job account is a job (running, or a crashed one's left-overs that
 * cleanup --orphans removes); a pod is someone's work; a claim is data (--include-volumes lets it go). Nothing
 * of these: "would delete" (the command deletes it with --yes).
 */
export function decide(candidate: Candidate, contents: NamespaceContents, includeVolumes: boolean): PruneRow {
  const row = { namespace: candidate.name, idleSince: candidate.idleSince.toISOString(), idleSeconds: candidate.idleSeconds };
  const jobObjects = [...contents.leases.map((name) => `Lease ${name}`), ...contents.jobAccounts.map((name) => `ServiceAccount ${name}`)];
  if (jobObjects.length > 0) {
    return { ...row, state: 'has a job', detail: `${listed(jobObjects)}: a running job, or a crashed one's (cleanup --orphans removes those)` };
  }
  if (contents.pods.length > 0) return { ...row, state: 'has pods', detail: listed(contents.pods.map((name) => `Pod ${name}`)) };
  const claims = listed(contents.claims.map((name) => `PersistentVolumeClaim ${name}`));
  if (contents.claims.length > 0 && !includeVolumes) {
    return { ...row, state: 'has volumes', detail: `${claims}; --include-volumes deletes them with the namespace` };
  }
  return { ...row, state: 'would delete', ...(contents.claims.length > 0 ? { detail: `with ${claims}` } : {}) };
}

function listed(names: readonly string[]): string {
  const shown = names.slice(0, 3).join(', ');
  return names.length > 3 ? `${shown} and ${names.length - 3} more` : shown;
}

/** "8d3h", "5h12m", "45m". */
export function formatIdle(seconds: number): string {
  const days = Math.floor(seconds / 86400);
  const hours = Math.floor((seconds % 86400) / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  if (days > 0) return `${days}d${hours}h`;
  if (hours > 0) return `${hours}h${minutes}m`;
  return `${minutes}m`;
}

export function renderRows(rows: readonly PruneRow[], yes: boolean, idleText: string): string {
  if (rows.length === 0) return `no per-user namespace idle for ${idleText} or more\n`;
  const table = formatColumns([
    ['NAMESPACE', 'IDLE FOR', 'STATE', 'DETAIL'],
    ...rows.map((row) => [row.namespace, formatIdle(row.idleSeconds), row.state, row.detail ?? '']),
  ]);
  const pending = rows.filter((row) => row.state === 'would delete').length;
  const footer = !yes && pending > 0 ? [`${pending} would be deleted; run again with --yes to delete ${pending === 1 ? 'it' : 'them'}`] : [];
  return `${[...table, ...footer].join('\n')}\n`;
}
