// 4. Admission policies (both modes): the job-isolation and job-attribution policies and the policy that keeps dssuser in its lane.
import type { V1ValidatingAdmissionPolicyBinding } from '@kubernetes/client-node';
import type { Profile } from '../config/types.ts';
import { KubernetesError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { sameData } from '../k8s/same-data.ts';
import { ATTRIBUTION_POLICY_NAME, jobPolicies, WITHOUT_JOB_POLICY } from '../plan/attribution-policy.ts';
import { ISOLATION_POLICY_NAME } from '../plan/policy.ts';
import { isTeamMode } from './config.ts';
import { result, type CheckResult } from './result.ts';

/** The paramRef of each binding that takes parameters, as this version builds it. */
const PARAM_REFS: Record<string, unknown> = Object.fromEntries(
  jobPolicies().flatMap(({ binding }) => (binding.spec?.paramRef ? [[binding.metadata!.name!, binding.spec.paramRef]] : [])),
);

export const DSSUSER_POLICY_NAME = 'dss-spark-k8s-dssuser-scope';

export async function checkPolicy(kube: Pick<KubeClient, 'getClusterObject'>, profile: Profile): Promise<CheckResult> {
  const title = 'admission policies';
  const manifest = isTeamMode(profile) ? 'team-namespaces.yaml' : 'per-user-namespaces.yaml';
  const fix = `kubectl apply -f deploy/rbac/${manifest}   # as a cluster administrator`;
  const missing: string[] = [];
  try {
    for (const [name, without] of [...Object.entries(WITHOUT_JOB_POLICY), [DSSUSER_POLICY_NAME, 'dssuser is bounded by its RBAC rights alone']] as const) {
      const [policy, binding] = await Promise.all([
        kube.getClusterObject('validatingadmissionpolicies', name),
        kube.getClusterObject<V1ValidatingAdmissionPolicyBinding>('validatingadmissionpolicybindings', name),
      ]);
      if (policy === undefined) missing.push(`${name} is not installed (${without})`);
      else if (binding?.spec?.policyName !== name || !binding.spec.validationActions.includes('Deny'))
        missing.push(`${name} is not bound with validationActions [Deny] (${without})`);
      else if (!sameData(binding.spec.paramRef, PARAM_REFS[name]))
        // A policy with parameters and a binding without the same paramRef denies every job write (failurePolicy Fail).
        missing.push(`${name}'s binding does not select the parameters this version expects (an older manifest?): jobs may be refused`);
    }
  } catch (error) {
    if (error instanceof KubernetesError && error.status === 403) {
      return result(
        'policy',
        title,
        'fail',
        `cannot read the ValidatingAdmissionPolicies ${ISOLATION_POLICY_NAME}, ${ATTRIBUTION_POLICY_NAME} and ${DSSUSER_POLICY_NAME}: the identity lacks the read rights of deploy/rbac/${manifest}`,
        fix,
      );
    }
    if (error instanceof KubernetesError) return result('policy', title, 'fail', error.message);
    throw error;
  }
  if (missing.length > 0) return result('policy', title, 'fail', `ValidatingAdmissionPolicy ${missing.join('; ')}`, fix);
  return result('policy', title, 'pass', `${ISOLATION_POLICY_NAME}, ${ATTRIBUTION_POLICY_NAME} and ${DSSUSER_POLICY_NAME} installed and bound (Deny)`);
}
