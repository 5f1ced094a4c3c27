// `namespaces reconcile`: the guardrails a profile gives the namespaces the tool created, compared with what
// they hold. Pure: the command (src/commands/namespaces.ts) reads the cluster and creates what is missing.
//
// What dssuser may fix is what it may create in a namespace it created (its admission policy: the ResourceQuota,
// LimitRange and NetworkPolicy named dss-spark-k8s): a guardrail that is missing, e.g. after a first job whose
// quota create failed, or a namespace made before the profile turned networkPolicy on. What it may not, by design, is change a namespace (its Pod Security labels) or an existing guardrail:
// dssuser holds no update right on them, so a compromised dssuser cannot weaken them either. Those differences are
// reported with the administrator's command.

import type { KubernetesObject, V1Namespace } from '@kubernetes/client-node';
import type { Profile } from '../config/types.ts';
import { formatColumns } from '../columns.ts';
import { buildNetworkPolicy } from '../plan/network-policy.ts';
import { buildLimitRange, buildNamespace, buildResourceQuota } from '../plan/objects.ts';

export type GuardrailKind = 'resourcequotas' | 'limitranges' | 'networkpolicies';

export interface Guardrail {
  kind: GuardrailKind;
  object: KubernetesObject;
}

export type RowState = 'present' | 'missing' | 'created' | 'differs' | 'failed';

export interface ReconcileRow {
  namespace: string;
  /** "ResourceQuota dss-spark-k8s", "label pod-security.kubernetes.io/enforce". */
  object: string;
  state: RowState;
  /** What was found, what to do. */
  detail?: string;
}

/**
 * The ResourceQuota, LimitRange and NetworkPolicy the profile gives `namespace`, as `run` creates them with a new
 * namespace (`driverAddresses`: network-policy.ts driverAddresses of this host).
 */
export function desiredGuardrails(namespace: string, profile: Profile, driverAddresses: readonly string[]): Guardrail[] {
  const guardrails: Guardrail[] = [];
  if (profile.resourceQuota) guardrails.push({ kind: 'resourcequotas', object: buildResourceQuota(namespace, profile.resourceQuota) });
  if (profile.limitRange) guardrails.push({ kind: 'limitranges', object: buildLimitRange(namespace, profile.limitRange) });
  if (profile.networkPolicy.enabled) {
    guardrails.push({ kind: 'networkpolicies', object: buildNetworkPolicy(namespace, profile.networkPolicy, driverAddresses) });
  }
  return guardrails;
}

/** The Pod Security labels of `namespace` that differ from the profile's, with the command that sets them. */
export function podSecurityDrift(namespace: V1Namespace, profile: Profile): ReconcileRow[] {
  const name = namespace.metadata?.name ?? '';
  const wanted = buildNamespace(name, profile).metadata?.labels ?? {};
  const have = namespace.metadata?.labels ?? {};
  return Object.entries(wanted)
    .filter(([key, value]) => key.startsWith('pod-security.kubernetes.io/') && have[key] !== value)
    .map(([key, value]) => ({
      namespace: name,
      object: `label ${key}`,
      state: 'differs',
      detail: `${have[key] ?? 'unset'}, the profile says ${value}; an administrator fixes it: kubectl label --overwrite namespace ${name} ${key}=${value}`,
    }));
}

export function renderRows(rows: ReconcileRow[], applied: boolean): string {
  if (rows.length === 0) return 'no managed namespace found\n';
  const table = formatColumns([['NAMESPACE', 'OBJECT', 'STATE', 'DETAIL'], ...rows.map((row) => [row.namespace, row.object, row.state, row.detail ?? ''])]);
  const missing = rows.filter((row) => row.state === 'missing').length;
  const footer = !applied && missing > 0 ? [`${missing} missing; run again with --yes to create them`] : [];
  return `${[...table, ...footer].join('\n')}\n`;
}
