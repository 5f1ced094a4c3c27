// `dss-spark-k8s policy apply | show` (administrators): the job policies, ValidatingAdmissionPolicies with their
// bindings: job isolation (src/plan/policy.ts) and job attribution (src/plan/attribution-policy.ts). `apply`
// creates or replaces each policy and its binding; `show` prints them on stdout and says on stderr whether the
// cluster has them, as printed.
import { dump } from 'js-yaml';
import { CliError, KubernetesError } from '../errors.ts';
import { Kube, type ClusterKind } from '../k8s/client.ts';
import { sameData } from '../k8s/same-data.ts';
import { jobPolicies, WITHOUT_JOB_POLICY } from '../plan/attribution-policy.ts';
import type { PolicyManifest } from '../plan/policy.ts';
import { MANAGED_NAMESPACE_LABEL } from '../plan/types.ts';

export interface PolicyOptions {
  kubeconfig?: string;
  context?: string;
  output: 'yaml' | 'json';
}

export interface PolicyIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

const processIo: PolicyIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

const TIMEOUT_SECONDS = 30;

export async function policyCommand(action: 'apply' | 'show', options: PolicyOptions, io: PolicyIo = processIo): Promise<number> {
  const load = () => Kube.load({ kubeconfig: options.kubeconfig, context: options.context, timeoutSeconds: TIMEOUT_SECONDS });
  if (action === 'apply') {
    const kube = load();
    try {
      for (const manifest of jobPolicies()) {
        const outcome = await applyPolicy(kube, manifest);
        io.stderr(
          `dss-spark-k8s: policy ${manifest.policy.metadata!.name} and its binding ${outcome}; it applies to namespaces labelled ${MANAGED_NAMESPACE_LABEL}=true within a few seconds\n`,
        );
      }
    } finally {
      await kube.close();
    }
    return 0;
  }
  // show: the manifest is printed even when the cluster cannot be asked (e.g. to hand it to GitOps).
  io.stdout(renderManifest(options.output));
  let kube: Kube;
  try {
    kube = load();
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    io.stderr(`dss-spark-k8s: cannot tell whether the policy is installed: ${error.message}\n`);
    return 0;
  }
  try {
    for (const manifest of jobPolicies()) io.stderr(`dss-spark-k8s: ${await describeInstalled(kube, manifest)}\n`);
  } finally {
    await kube.close();
  }
  return 0;
}

/** The policies and their bindings as one YAML stream, or a JSON List: both are input for `kubectl apply -f`. */
export function renderManifest(output: 'yaml' | 'json'): string {
  const items = jobPolicies().flatMap(({ policy, binding }) => [policy, binding]);
  if (output === 'json') return `${JSON.stringify({ apiVersion: 'v1', kind: 'List', items }, null, 2)}\n`;
  return items.map((item) => dump(item, { skipInvalid: true })).join('---\n');
}

type Outcome = 'created' | 'updated' | 'unchanged';

/** Creates or replaces the policy, then its binding; says what it did. */
export async function applyPolicy(kube: Kube, { policy, binding }: PolicyManifest): Promise<string> {
  const policyOutcome = await upsert(kube, 'validatingadmissionpolicies', policy);
  const bindingOutcome = await upsert(kube, 'validatingadmissionpolicybindings', binding);
  return policyOutcome === bindingOutcome ? `were ${policyOutcome}` : `were ${policyOutcome} and ${bindingOutcome}`;
}

interface Installable {
  metadata?: { name?: string; resourceVersion?: string; labels?: Record<string, string> };
  spec?: object;
}

async function upsert(kube: Kube, kind: ClusterKind, desired: Installable): Promise<Outcome> {
  const live = await kube.getClusterObject<Installable>(kind, desired.metadata?.name ?? '');
  if (live === undefined) {
    await kube.createClusterObject(kind, desired);
    return 'created';
  }
  if (sameSpec(live, desired) && sameLabels(live, desired)) return 'unchanged';
  await kube.replaceClusterObject(kind, withVersion(desired, live.metadata?.resourceVersion ?? ''));
  return 'updated';
}

/** Whether the cluster has the policy and binding as this version builds them, in one line. */
export async function describeInstalled(kube: Kube, { policy, binding }: PolicyManifest): Promise<string> {
  const name = policy.metadata!.name!;
  let live: [Installable | undefined, Installable | undefined];
  try {
    live = await Promise.all([
      kube.getClusterObject<Installable>('validatingadmissionpolicies', name),
      kube.getClusterObject<Installable>('validatingadmissionpolicybindings', name),
    ]);
  } catch (error) {
    if (!(error instanceof KubernetesError)) throw error;
    return `cannot tell whether the policy is installed: ${error.message}`;
  }
  const [livePolicy, liveBinding] = live;
  const fix = 'run dss-spark-k8s policy apply';
  if (!livePolicy && !liveBinding) return `policy ${name} is not installed: ${WITHOUT_JOB_POLICY[name]}; ${fix}`;
  const problems = [
    !livePolicy ? 'the policy is missing' : !sameSpec(livePolicy, policy) ? 'the policy differs from the one printed' : undefined,
    !liveBinding
      ? 'the binding is missing (the policy is not enforced)'
      : !sameSpec(liveBinding, binding)
        ? 'the binding differs from the one printed'
        : undefined,
  ].filter(Boolean);
  if (problems.length > 0) return `policy ${name} is installed but ${problems.join(' and ')}; ${fix}`;
  return `policy ${name} is installed and matches the one printed`;
}

function withVersion<T extends Installable>(object: T, resourceVersion: string): T {
  return { ...object, metadata: { ...object.metadata, resourceVersion } };
}

function sameSpec(live: Installable, desired: Installable): boolean {
  return sameData(live.spec, desired.spec);
}

function sameLabels(live: Installable, desired: Installable): boolean {
  const labels = live.metadata?.labels ?? {};
  return Object.entries(desired.metadata?.labels ?? {}).every(([key, value]) => labels[key] === value);
}
