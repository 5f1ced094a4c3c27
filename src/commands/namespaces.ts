// `dss-spark-k8s namespaces reconcile [--yes]` (dssuser or an administrator): re-applies a profile's guardrails to
// the namespaces the tool created (labelled app.kubernetes.io/managed-by=dss-spark-k8s) that the profile's
// per-user template gives, or to those named with -n. Without --yes it shows
// the difference; with --yes it creates what is missing. src/namespaces/reconcile.ts says what dssuser can and
// cannot fix, and why.
//
// Exit codes: 0 nothing is missing (or all of it was created); 1 something is missing (without --yes) or
// differs in a way only an administrator can fix; 64 invalid flags; 69 the cluster refused a request;
// 78 the configuration.
import { CliError, ExitCode, KubernetesError, UsageError } from '../errors.ts';
import { loadConfig, resolveConfigPath, selectProfile } from '../config/load.ts';
import type { Profile } from '../config/types.ts';
import { Kube, type KubeClient } from '../k8s/client.ts';
import { desiredGuardrails, podSecurityDrift, renderRows, type Guardrail, type ReconcileRow } from '../namespaces/reconcile.ts';
import { isDnsLabel, isPerUserTemplate, perUserNamespacePattern } from '../plan/names.ts';
import { driverAddresses } from '../plan/network-policy.ts';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../plan/types.ts';
import type { V1Namespace } from '@kubernetes/client-node';

export interface NamespacesOptions {
  yes?: boolean;
  namespace?: string[];
  output?: 'table' | 'json';
  profile?: string;
  config?: string;
}

export type NamespacesClient = Pick<Kube, 'request'> & Pick<KubeClient, 'createResourceQuota' | 'createLimitRange' | 'createNetworkPolicy' | 'close'>;

export interface NamespacesDeps {
  stdout: { write(text: string): unknown };
  env: NodeJS.ProcessEnv;
  /** A client to use instead of loading one from the profile's kubeconfig (it is not closed). */
  kube?: NamespacesClient;
}

const defaultDeps: NamespacesDeps = { stdout: process.stdout, env: process.env };

export async function namespacesReconcileCommand(options: NamespacesOptions, overrides: Partial<NamespacesDeps> = {}): Promise<number> {
  const deps = { ...defaultDeps, ...overrides };
  const request = validate(options);
  const profile = complete(options, deps.env);
  const kube = deps.kube ?? Kube.load({ kubeconfig: profile.kubeconfig, context: profile.context, timeoutSeconds: profile.apiTimeoutSeconds });
  try {
    const rows = await run(request, profile, kube);
    deps.stdout.write(request.output === 'json' ? `${JSON.stringify(rows, null, 2)}\n` : renderRows(rows, request.yes));
    return rows.some((row) => row.state === 'missing' || row.state === 'differs' || row.state === 'failed') ? 1 : 0;
  } finally {
    if (!deps.kube) await kube.close();
  }
}

interface Request {
  yes: boolean;
  namespaces: string[];
  output: 'table' | 'json';
}

function validate(options: NamespacesOptions): Request {
  const namespaces = [...new Set(options.namespace ?? [])];
  for (const namespace of namespaces) {
    if (!isDnsLabel(namespace)) throw new UsageError(`-n "${namespace}": not a valid namespace name (lowercase letters, digits and '-')`);
  }
  return { yes: options.yes === true, namespaces, output: options.output ?? 'table' };
}

function complete(options: NamespacesOptions, env: NodeJS.ProcessEnv): Profile {
  return selectProfile(loadConfig(resolveConfigPath(options.config, env)), options.profile);
}

async function run(request: Request, profile: Profile, kube: NamespacesClient): Promise<ReconcileRow[]> {
  const selector = encodeURIComponent(`${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`);
  const list = await kube.request<{ items?: V1Namespace[] }>('list namespaces', 'GET', `/api/v1/namespaces?labelSelector=${selector}`);
  // The profile's namespaces: those its per-user template gives, or (a team template) those named with -n.
  const pattern = isPerUserTemplate(profile.targetNamespace) ? perUserNamespacePattern(profile.targetNamespace) : undefined;
  if (pattern === undefined && request.namespaces.length === 0) {
    throw new UsageError(`profile "${profile.name}" takes its namespaces from admin properties (${profile.targetNamespace}); name them with -n`);
  }
  const managed = (list.items ?? []).filter((ns) => {
    const name = ns.metadata?.name ?? '';
    return request.namespaces.length > 0 ? request.namespaces.includes(name) : pattern!.test(name);
  });
  const missingNamed = request.namespaces.filter((name) => !managed.some((ns) => ns.metadata?.name === name));
  if (missingNamed.length > 0) {
    throw new UsageError(`-n ${missingNamed.join(', ')}: not a namespace the tool created (no ${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE} label)`);
  }
  const rows: ReconcileRow[] = [];
  const addresses = profile.networkPolicy.enabled ? driverAddresses(profile) : [];
  for (const namespace of managed) {
    const name = namespace.metadata!.name!;
    for (const guardrail of desiredGuardrails(name, profile, addresses)) rows.push(await reconcileOne(kube, guardrail, name, request.yes));
    rows.push(...podSecurityDrift(namespace, profile));
  }
  return rows;
}

/**
 * dssuser may create guardrails but not read them: a server-side dry-run create tells whether one exists (409)
 * without a read right, and runs the same admission as the real create.
 */
async function reconcileOne(kube: NamespacesClient, guardrail: Guardrail, namespace: string, yes: boolean): Promise<ReconcileRow> {
  const object = `${guardrail.object.kind} ${guardrail.object.metadata?.name}`;
  const create = (dryRun?: 'server') => {
    if (guardrail.kind === 'resourcequotas') return kube.createResourceQuota(guardrail.object, dryRun);
    if (guardrail.kind === 'limitranges') return kube.createLimitRange(guardrail.object, dryRun);
    return kube.createNetworkPolicy(guardrail.object, dryRun);
  };
  try {
    await create('server');
  } catch (error) {
    if (error instanceof KubernetesError && error.status === 409) return { namespace, object, state: 'present' };
    if (error instanceof KubernetesError) return { namespace, object, state: 'failed', detail: error.message };
    throw error;
  }
  if (!yes) return { namespace, object, state: 'missing' };
  try {
    await create();
    return { namespace, object, state: 'created' };
  } catch (error) {
    if (error instanceof KubernetesError) return { namespace, object, state: 'failed', detail: error.message };
    throw new CliError(`create ${object} in ${namespace}: ${(error as Error).message}`, ExitCode.kubernetes);
  }
}
