// The per-job directory: a kubeconfig (and the cluster CA) that only the end user (and root) can read,
// besides dssuser who writes it, and owner.json, which tells cleanup --orphans whose it is. Directory 0700 and files 0600 owned by dssuser, plus POSIX ACL entries
// for the end user alone (dssuser cannot chown a file to another user): read and enter the directory, read
// the kubeconfig and the CA — owner.json stays dssuser's.
import { lstat, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { CliError, ExitCode } from '../errors.ts';
import type { ClusterEndpoint } from '../k8s/client.ts';
import { type JobOwner, jobOwnerSchema, parseWith } from '../config/schema.ts';
import { runCommand } from './process.ts';

/** Where setfacl is looked for (nothing of the caller's PATH). */
const SETFACL_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };
const SETFACL_TIMEOUT_MS = 10_000;

export const JOB_DIR_PREFIX = 'dss-spark-k8s-';
export const OWNER_FILE = 'owner.json';

export interface JobFiles {
  dir: string;
  kubeconfig: string;
  caFile?: string;
  /** The managed executor pod template, read by the driver (as the end user) for every executor. */
  podTemplate: string;
}

export type { JobOwner };

/** The directory is shared with the end user when its kubeconfig is written (one setfacl for all). */
export async function createJobDir(tempDir: string | undefined, owner: JobOwner, hasCa: boolean): Promise<JobFiles> {
  let dir: string;
  try {
    dir = await mkdtemp(join(tempDir ?? tmpdir(), `${JOB_DIR_PREFIX}${owner.jobId}-`));
  } catch (error) {
    throw new CliError(
      `cannot create the job directory in ${tempDir ?? tmpdir()}: ${(error as Error).message}; set tempDir in the profile to a writable directory`,
      ExitCode.internal,
    );
  }
  try {
    // A tempDir with a default ACL would hand its entries to the directory and to every file in it (and the
    // end user's grant below would make them effective): strip them before anything is written.
    await stripAcl(dir);
    await writeFile(join(dir, OWNER_FILE), `${JSON.stringify(owner)}\n`, { mode: 0o600 });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return { dir, kubeconfig: join(dir, 'kubeconfig'), podTemplate: join(dir, 'executor-pod.json'), ...(hasCa ? { caFile: join(dir, 'ca.crt') } : {}) };
}

/**
 * Writes (or atomically replaces, for token rotation) the job's kubeconfig and CA file, and the first time
 * the executor pod template.
 */
export async function writeJobKubeconfig(
  files: JobFiles,
  endUserUid: number,
  endpoint: ClusterEndpoint,
  namespace: string,
  token: string,
  podTemplate?: object,
): Promise<void> {
  const contents = [{ path: files.kubeconfig, content: renderKubeconfig(endpoint, namespace, token) }];
  if (files.caFile && endpoint.caPem) contents.push({ path: files.caFile, content: endpoint.caPem });
  if (podTemplate) contents.push({ path: files.podTemplate, content: `${JSON.stringify(podTemplate, null, 2)}\n` });
  await writePrivate(files.dir, contents, endUserUid);
}

export function renderKubeconfig(endpoint: ClusterEndpoint, namespace: string, token: string): string {
  const cluster: Record<string, unknown> = { server: endpoint.server };
  if (endpoint.caPem) cluster['certificate-authority-data'] = Buffer.from(endpoint.caPem).toString('base64');
  if (endpoint.tlsServerName) cluster['tls-server-name'] = endpoint.tlsServerName;
  if (endpoint.skipTlsVerify) cluster['insecure-skip-tls-verify'] = true;
  // JSON is valid YAML, and no value can break out of a quoted JSON string.
  return `${JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'cluster', cluster }],
      users: [{ name: 'job', user: { token } }],
      contexts: [{ name: 'job', context: { cluster: 'cluster', user: 'job', namespace } }],
      'current-context': 'job',
    },
    null,
    2,
  )}\n`;
}

export async function removeJobDir(files: JobFiles): Promise<void> {
  await rm(files.dir, { recursive: true, force: true });
}

/** mkdtemp names a job directory `<prefix><jobId>-XXXXXX`. */
export function isJobDirName(name: string): boolean {
  return name.startsWith(JOB_DIR_PREFIX);
}

const OWNER_FILE_MAX_BYTES = 4096;

/**
 * The owner of a job directory made by this Unix account: undefined when `path` is not one (not a directory of
 * ours, no regular owner.json of ours); throws when owner.json is malformed or names another job than the
 * directory's name.
 */
export async function readJobOwner(path: string): Promise<{ owner: JobOwner; writtenAt: Date } | undefined> {
  const dirStat = await lstat(path).catch(() => undefined);
  if (!dirStat?.isDirectory() || dirStat.uid !== process.getuid?.()) return undefined;
  const ownerPath = join(path, OWNER_FILE);
  const ownerStat = await lstat(ownerPath).catch(() => undefined);
  if (!ownerStat?.isFile() || ownerStat.uid !== dirStat.uid) return undefined;
  if (ownerStat.size > OWNER_FILE_MAX_BYTES) throw new Error(`${OWNER_FILE} is larger than 4 KiB`);
  const owner = parseOwner(await readFile(ownerPath, 'utf8'));
  const expected = `${JOB_DIR_PREFIX}${owner.jobId}-`;
  const base = basename(path);
  if (!base.startsWith(expected) || !/^[A-Za-z0-9]+$/.test(base.slice(expected.length))) {
    throw new Error(`${OWNER_FILE} names job "${owner.jobId}", not the job of the directory name`);
  }
  return { owner, writtenAt: ownerStat.mtime };
}

/** owner.json's content (its schema: src/config/schema.ts); a plain Error names the key that is wrong. */
export function parseOwner(text: string): JobOwner {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`${OWNER_FILE} is not JSON`);
  }
  return parseWith(jobOwnerSchema, value, (where, message) => new Error(`${OWNER_FILE}: ${where === '' ? '' : `${where}: `}${message}`));
}

// The file is complete and already restricted before it takes its final name: the end user never
// sees a partial kubeconfig, and nobody else ever sees one at all.
async function writePrivate(dir: string, files: { path: string; content: string }[], endUserUid: number) {
  const staged = files.map(({ path }) => `${path}.${process.pid}.tmp`);
  await Promise.all(files.map(({ content }, i) => writeFile(staged[i]!, content, { mode: 0o600 })));
  // rX: read and enter the directory, read the files (X adds execute to directories only).
  await grant(endUserUid, 'rX', dir, ...staged);
  await Promise.all(files.map(({ path }, i) => rename(staged[i]!, path)));
}

async function stripAcl(dir: string) {
  await setfacl(['-b', '-k', dir], `make the job directory ${dir} private`);
}

async function grant(uid: number, permissions: string, ...paths: string[]) {
  await setfacl(['-m', `u:${uid}:${permissions}`, ...paths], `share ${paths.join(', ')} with the end user`);
}

async function setfacl(args: string[], what: string) {
  const ran = await runCommand('setfacl', args, { env: SETFACL_ENV, timeoutMs: SETFACL_TIMEOUT_MS });
  if (ran.code === 0) return;
  const reason =
    ran.failure === 'ENOENT' ? 'setfacl is not installed (Debian package acl)' : (ran.failure ?? ran.stderr.trim().split('\n')[0]) || `exit ${ran.code}`;
  throw new CliError(`cannot ${what}: ${reason}; the temp directory's filesystem must support POSIX ACLs`, ExitCode.internal);
}
