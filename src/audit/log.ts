// The requests of one job in a kube-apiserver audit log (JSON lines, one audit.k8s.io/v1 Event a line).
// Pure: a line in, a request (or nothing) out; commands/audit.ts streams the file through it.
//
// A request is the job's when it was made with one of the job's tokens — its user is the job's
// ServiceAccount (system:serviceaccount:<ns>:<base>, or <base>-exec for the executors), or its credential id
// is one of the job's (from the `provisioned`/`rotated` events) — or when dssuser (any other user) made it
// about one of the job's objects (named <base>, <base>-exec or <base>-t<n>, or selected by a label whose value
// is <base>: teardown's deletecollection by the owner label). Only the final stage of a
// request is kept (ResponseComplete, or Panic), so each request appears once.

import { formatColumns } from '../columns.ts';

export interface AuditedRequest {
  time: string;
  /** `job` for the job's own tokens, else the user name (dssuser, the kubelet, ...). */
  by: string;
  verb: string;
  /** resource[/subresource], with its API group when not the core group. */
  resource: string;
  namespace: string;
  name: string;
  code: number | null;
  credentialId?: string;
  /** The job policies' audit annotations (account; job id, user, login), when they added them. */
  annotations?: Record<string, string>;
}

/** How the job's requests are recognised. */
export interface JobMatcher {
  /** The job's ServiceAccount names (<base>, <base>-exec: exact, in any namespace), when the user is known. */
  serviceAccountNames?: string[];
  /** Without the user: ServiceAccount names that end in `-<job id>` (the readable part of the base name). */
  jobIdSuffix?: string;
  /** The job's credential ids, as audit events write them ("JTI=<jti>"). */
  credentialIds?: string[];
  /** The job's base name, for dssuser's requests about the job's objects (exact prefix rules above). */
  baseName?: string;
}

interface AuditEvent {
  kind?: string;
  stage?: string;
  verb?: string;
  requestReceivedTimestamp?: string;
  requestURI?: string;
  user?: { username?: string; extra?: Record<string, string[]> };
  objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string; apiGroup?: string };
  responseStatus?: { code?: number };
  annotations?: Record<string, string>;
}

const CREDENTIAL_ID = 'authentication.kubernetes.io/credential-id';
const SERVICE_ACCOUNT_USER = /^system:serviceaccount:([^:]+):([^:]+)$/;
const POLICY_ANNOTATION = /^validation\.policy\.admission\.k8s\.io\/|^[^/]*dss-spark-k8s[^/]*\//;

/** The request of one audit log line if it belongs to the job, else undefined (also for lines that are not events). */
export function jobRequest(line: string, job: JobMatcher): AuditedRequest | undefined {
  if (!line.includes('"Event"')) return undefined;
  let event: AuditEvent;
  try {
    event = JSON.parse(line) as AuditEvent;
  } catch {
    return undefined;
  }
  if (event.kind !== 'Event' || (event.stage !== 'ResponseComplete' && event.stage !== 'Panic')) return undefined;
  const username = event.user?.username ?? '';
  const credentialId = event.user?.extra?.[CREDENTIAL_ID]?.[0];
  const byJob = isJobUser(username, job) || (credentialId !== undefined && (job.credentialIds ?? []).includes(credentialId));
  const ref = event.objectRef ?? {};
  if (!byJob && !(job.baseName && (ref.name ? isJobObjectName(ref.name, job.baseName) : selectsJob(event.requestURI ?? '', job.baseName)))) return undefined;
  const resource = [ref.resource ?? '', ref.subresource].filter(Boolean).join('/');
  const request: AuditedRequest = {
    time: event.requestReceivedTimestamp ?? '',
    by: byJob ? 'job' : username,
    verb: event.verb ?? '',
    resource: ref.apiGroup ? `${resource}.${ref.apiGroup}` : resource,
    namespace: ref.namespace ?? '',
    name: ref.name ?? '',
    code: event.responseStatus?.code ?? null,
  };
  if (credentialId !== undefined) request.credentialId = credentialId;
  const annotations = Object.entries(event.annotations ?? {}).filter(([key]) => POLICY_ANNOTATION.test(key) && !key.endsWith('/error'));
  if (annotations.length > 0) request.annotations = Object.fromEntries(annotations);
  return request;
}

function isJobUser(username: string, job: JobMatcher): boolean {
  const match = SERVICE_ACCOUNT_USER.exec(username);
  if (!match) return false;
  if ((job.serviceAccountNames ?? []).includes(match[2]!)) return true;
  if (!job.jobIdSuffix || !match[2]!.startsWith('dss-spark-')) return false;
  const account = match[2]!.replace(/-exec$/, '');
  return account.endsWith(`-${job.jobIdSuffix}`);
}

/** <base>, <base>-exec, <base>-t<n>: never the name of another job's object (see plan/names.ts jobBaseName). */
function isJobObjectName(name: string, baseName: string): boolean {
  return name === baseName || name === `${baseName}-exec` || new RegExp(`^${baseName}-t\\d+$`).test(name);
}

/** A deletecollection (or list) by the job's owner label: its label selector, in the request URI, ends in =<base>. */
function selectsJob(requestUri: string, baseName: string): boolean {
  const query = requestUri.split('?')[1] ?? '';
  const selector = new URLSearchParams(query).get('labelSelector') ?? '';
  return selector.split(',').some((term) => term.trim().endsWith(`=${baseName}`));
}

/** The requests as a table: one line each, columns aligned. */
export function renderTable(requests: AuditedRequest[]): string {
  const header = ['TIME', 'BY', 'VERB', 'RESOURCE', 'NAMESPACE', 'NAME', 'CODE'];
  // An audit log is written from what clients sent: no control character of it reaches the terminal.
  const cell = (text: string) => text.replace(/[\u0000-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1));
  const rows = requests.map((r) => [r.time, r.by, r.verb, r.resource, r.namespace, r.name, r.code === null ? '-' : String(r.code)].map(cell));
  return `${formatColumns([header, ...rows]).join('\n')}\n`;
}
