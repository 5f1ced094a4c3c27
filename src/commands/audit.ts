// `dss-spark-k8s audit --job ID --audit-log FILE` (administrators): every request of one job in a
// kube-apiserver audit log, as a table or JSON on stdout: time, who (the job's tokens, or dssuser about the
// job's objects), verb, resource, namespace, name, response code. The file is streamed line by line (audit
// logs are large); src/audit/log.ts says which requests are the job's.
//
// With --user the job's account names are computed exactly (src/plan/names.ts jobBaseName); without it, any
// job account whose name ends in -<job id> matches (job ids of different users may then mix: BY and
// NAMESPACE tell them apart). --credential-id (repeatable, the `credentialId` of the `provisioned` and
// `rotated` events) adds the requests of those tokens.
//
// Exit codes: 0 the listing was made (even empty); 64 invalid flags or an audit log that cannot be read.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { UsageError } from '../errors.ts';
import { auditCredentialId } from '../audit/credential-id.ts';
import { jobRequest, renderTable, type AuditedRequest, type JobMatcher } from '../audit/log.ts';
import { executorServiceAccountName, isDnsLabel, jobBaseName, loginToSlug } from '../plan/names.ts';

export interface AuditOptions {
  job: string;
  auditLog: string;
  user?: string;
  credentialId?: string[];
  output: 'table' | 'json';
}

export interface AuditIo {
  stdout(text: string): void;
}

const processIo: AuditIo = { stdout: (text) => process.stdout.write(text) };

export async function auditCommand(options: AuditOptions, io: AuditIo = processIo): Promise<number> {
  const matcher = validate(options);
  const requests = await run(options.auditLog, matcher);
  io.stdout(options.output === 'json' ? `${JSON.stringify(requests, null, 2)}\n` : renderTable(requests));
  return 0;
}

export function validate(options: AuditOptions): JobMatcher {
  if (!isDnsLabel(options.job)) throw new UsageError(`--job "${options.job}": must be lowercase letters, digits and '-', at most 63 characters`);
  const credentialIds = (options.credentialId ?? []).map((id) => {
    const jti = id.replace(/^JTI=/, '');
    if (!/^[A-Za-z0-9-]{1,64}$/.test(jti)) throw new UsageError(`--credential-id "${id}": must be the credentialId of a provisioned or rotated event`);
    return auditCredentialId(jti);
  });
  if (options.user === undefined) return { jobIdSuffix: options.job, credentialIds };
  const baseName = jobBaseName(loginToSlug(options.user), options.job);
  return { serviceAccountNames: [baseName, executorServiceAccountName(baseName)], baseName, credentialIds };
}

/** Streams the log; resolves with the job's requests in the log's order. */
export async function run(auditLog: string, matcher: JobMatcher): Promise<AuditedRequest[]> {
  const stream = createReadStream(auditLog, { encoding: 'utf8' });
  const opened = new Promise<void>((resolve, reject) => {
    stream.once('ready', () => resolve());
    stream.once('error', reject);
  });
  try {
    await opened;
  } catch (error) {
    throw new UsageError(`--audit-log ${auditLog}: cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const requests: AuditedRequest[] = [];
  for await (const line of createInterface({ input: stream, crlfDelay: Infinity })) {
    const request = jobRequest(line, matcher);
    if (request) requests.push(request);
  }
  return requests;
}
