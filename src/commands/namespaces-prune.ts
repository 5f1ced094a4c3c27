// `dss-spark-k8s namespaces prune --idle <duration> [--yes] [--include-volumes]` (dssuser or an administrator):
// deletes the per-user namespaces the tool created for the profile (its per-user template, labelled managed-by,
// managed=true and with a user) that held no job start for that long (src/namespaces/prune.ts decides). Never a
// team namespace, never one holding a Lease or a job ServiceAccount (a job, or a crashed one's left-overs), never
// one with pods, never one with PersistentVolumeClaims unless --include-volumes. Without --yes it only lists.
//
// Race-free against a job that starts meanwhile: each namespace is deleted with the uid and resourceVersion it was
// read with as preconditions. `run` patches the namespace's last-used annotation before it creates the job's
// objects, which changes the resourceVersion: the delete then answers 409 and the namespace is kept ("in use
// again"). A job that finds its namespace being deleted fails in one line (exit 69) before it creates anything.
//
// Exit codes: 0 done (also when nothing was idle, and without --yes whatever it lists); 1 with --yes, some delete
// failed; 64 invalid flags, a team profile, or a profile that does not auto-create its namespaces; 69 the cluster
// refused or failed a list; 78 the configuration.
import { loadConfig, resolveConfigPath, selectProfile } from '../config/load.ts';
import type { Profile } from '../config/types.ts';
import { KubernetesError, UsageError } from '../errors.ts';
import { Kube, type KubeClient } from '../k8s/client.ts';
import {
  candidates,
  decide,
  formatIdle,
  parseIdle,
  PRUNE_SELECTOR,
  renderRows,
  type Candidate,
  type NamespaceContents,
  type PruneRow,
} from '../namespaces/prune.ts';
import { isPerUserTemplate, perUserNamespacePattern } from '../plan/names.ts';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../plan/types.ts';

export interface NamespacesPruneOptions {
  idle?: string;
  yes?: boolean;
  includeVolumes?: boolean;
  output?: 'table' | 'json';
  profile?: string;
  config?: string;
}

export type PruneClient = Pick<KubeClient, 'listNamespaces' | 'list' | 'deleteNamespace'>;

export interface NamespacesPruneDeps {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  env: NodeJS.ProcessEnv;
  now: () => Date;
  /** A client to use instead of loading one from the profile's kubeconfig (it is not closed). */
  kube?: PruneClient;
}

const defaultDeps: NamespacesPruneDeps = { stdout: process.stdout, stderr: process.stderr, env: process.env, now: () => new Date() };

export async function namespacesPruneCommand(options: NamespacesPruneOptions, overrides: Partial<NamespacesPruneDeps> = {}): Promise<number> {
  const deps = { ...defaultDeps, ...overrides };
  const request = validate(options);
  const { profile, pattern } = complete(options, deps.env);
  const owned = deps.kube ? undefined : Kube.load({ kubeconfig: profile.kubeconfig, context: profile.context, timeoutSeconds: profile.apiTimeoutSeconds });
  const kube = deps.kube ?? owned!;
  try {
    const rows = await run(request, pattern, kube, deps);
    deps.stdout.write(request.output === 'json' ? `${JSON.stringify(rows, null, 2)}\n` : renderRows(rows, request.yes, request.idleText));
    return rows.some((row) => row.state === 'failed') ? 1 : 0;
  } finally {
    await owned?.close();
  }
}

interface Request {
  idleSeconds: number;
  idleText: string;
  yes: boolean;
  includeVolumes: boolean;
  output: 'table' | 'json';
}

function validate(options: NamespacesPruneOptions): Request {
  const idleSeconds = parseIdle(options.idle);
  return {
    idleSeconds,
    idleText: formatIdle(idleSeconds).replace(/0[hm]$/, ''),
    yes: options.yes === true,
    includeVolumes: options.includeVolumes === true,
    output: options.output ?? 'table',
  };
}

/** The profile, and the names its per-user template gives: only those namespaces are ever looked at. */
function complete(options: NamespacesPruneOptions, env: NodeJS.ProcessEnv): { profile: Profile; pattern: RegExp } {
  const profile = selectProfile(loadConfig(resolveConfigPath(options.config, env)), options.profile);
  if (!isPerUserTemplate(profile.targetNamespace)) {
    throw new UsageError(
      `profile "${profile.name}" uses team namespaces (${profile.targetNamespace}): namespaces prune deletes only per-user namespaces; name a per-user profile with --profile`,
    );
  }
  if (!profile.autoCreateNamespace) {
    // Its jobs could not re-create a pruned namespace, and they do not record last-used (run reads the namespace only to create it).
    throw new UsageError(
      `profile "${profile.name}" does not create its namespaces (autoCreateNamespace: false): namespaces prune deletes only namespaces the profile's jobs re-create`,
    );
  }
  return { profile, pattern: perUserNamespacePattern(profile.targetNamespace) };
}

async function run(request: Request, pattern: RegExp, kube: PruneClient, deps: NamespacesPruneDeps): Promise<PruneRow[]> {
  const listed = await kube.listNamespaces(PRUNE_SELECTOR);
  const rows: PruneRow[] = [];
  for (const candidate of candidates(listed, pattern, deps.now(), request.idleSeconds)) {
    const row = decide(candidate, await contents(kube, candidate.name), request.includeVolumes);
    rows.push(row.state === 'would delete' && request.yes ? await prune(kube, candidate, row, deps) : row);
  }
  return rows;
}

/** One page of each kind (a namespace with more than 100 of anything is not idle anyway). */
async function contents(kube: PruneClient, namespace: string): Promise<NamespaceContents> {
  const names = async (kind: 'leases' | 'serviceaccounts' | 'pods' | 'persistentvolumeclaims', labelSelector = '') =>
    (await kube.list(kind, namespace, labelSelector, 100, undefined, true)).items.map((item) => item.metadata?.name ?? '');
  const [leases, accounts, pods, claims] = await Promise.all([
    names('leases'),
    // Only dssuser creates ServiceAccounts in a managed namespace, and only labelled: the label narrows the list.
    names('serviceaccounts', `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`),
    names('pods'),
    names('persistentvolumeclaims'),
  ]);
  return { leases, jobAccounts: accounts.filter((name) => name.startsWith('dss-spark-')), pods, claims };
}

async function prune(kube: PruneClient, candidate: Candidate, row: PruneRow, deps: NamespacesPruneDeps): Promise<PruneRow> {
  try {
    await kube.deleteNamespace(candidate.name, { uid: candidate.uid, resourceVersion: candidate.resourceVersion });
    deps.stderr.write(`dss-spark-k8s: deleting namespace ${candidate.name} (idle for ${formatIdle(candidate.idleSeconds)})\n`);
    return { ...row, state: 'deleted' };
  } catch (error) {
    if (!(error instanceof KubernetesError)) throw error;
    if (error.status === 409) {
      return { ...row, state: 'in use again', detail: 'it changed since it was read (a job started meanwhile); kept' };
    }
    if (error.status === 404) return { ...row, state: 'deleted', detail: 'already gone' };
    return { ...row, state: 'failed', detail: error.message };
  }
}
