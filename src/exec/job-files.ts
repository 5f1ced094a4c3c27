// The per-job directory: a kubeconfig (and the cluster CA) that only the end user (and root) can read,
// besides dssuser who writes it. Directory 0700 and files 0600 owned by dssuser, plus POSIX ACL entries
// for the end user alone (dssuser cannot chown a file to another user): read and enter the directory, read
// the kubeconfig and the CA — owner.json stays dssuser's.
import { execFile } from 'node:child_process';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CliError, ExitCode } from '../errors.ts';
import type { ClusterEndpoint } from '../k8s/client.ts';

const run = promisify(execFile);

export const JOB_DIR_PREFIX = 'dss-spark-k8s-';
export const OWNER_FILE = 'owner.json';

export interface JobFiles {
  dir: string;
  kubeconfig: string;
  caFile?: string;
  /** The managed executor pod template, read by the driver (as the end user) for every executor. */
  podTemplate: string;
}

export interface JobOwner {
  jobId: string;
  host: string;
  pid: number;
  processStart: string;
  namespace: string;
  /** The job's account (base name), which names the job in the cluster; absent in directories of older versions. */
  serviceAccount?: string;
}

/** The directory is shared with the end user when its kubeconfig is written (one setfacl for all). */
export async function createJobDir(tempDir: string | undefined, owner: JobOwner, hasCa: boolean): Promise<JobFiles> {
  let dir: string;
  try {
    dir = await mkdtemp(join(tempDir ?? tmpdir(), `${JOB_DIR_PREFIX}${owner.jobId}-`));
  } catch (error) {
    throw new CliError(`cannot create the job directory in ${tempDir ?? tmpdir()}: ${(error as Error).message}; set tempDir in the profile to a writable directory`, ExitCode.internal);
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
export async function writeJobKubeconfig(files: JobFiles, endUserUid: number, endpoint: ClusterEndpoint, namespace: string, token: string, podTemplate?: object): Promise<void> {
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
  try {
    await run('setfacl', args);
  } catch (error) {
    const reason = (error as { code?: string; stderr?: string }).code === 'ENOENT' ? 'setfacl is not installed (Debian package acl)' : String((error as { stderr?: string }).stderr ?? error).trim().split('\n')[0];
    throw new CliError(`cannot ${what}: ${reason}; the temp directory's filesystem must support POSIX ACLs`, ExitCode.internal);
  }
}
