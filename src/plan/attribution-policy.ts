// The job-attribution policy: which job, user and login each request of a job token is for, from an object only
// dssuser writes. A ValidatingAdmissionPolicy and its binding, built by pure functions, beside the job-isolation
// policy (policy.ts), for the same requests: a job token's writes of pods and claims in managed namespaces.
//
// A process holding a job's token chooses the labels of the pods it makes; the isolation policy only ties them to
// the job by the owner label (the account name). The account name cannot be turned back into a job id or a user:
// it carries a hash, and its readable part may be cut. So this policy takes the job's ServiceAccount as its
// parameter: the binding selects the tool's accounts of the request's namespace, the apiserver evaluates the
// policy once for each, and the evaluation whose parameter is the requester's own account
//   - writes the account's job id, user and login into the request's audit event
//     (`dss-spark-k8s-job-attribution/<key>`), admitted or denied;
//   - denies a pod or claim whose job-id or user label, or login annotation when set, is not the account's.
// Only dssuser creates those accounts, and its own policy lets it change none of their labels nor that annotation
// afterwards: what they say is what dssuser said when the job started.
//
// Why a second policy: with parameters, the apiserver looks them up before it evaluates the match conditions, and
// a binding that finds none either denies every request of the namespace (teardown's deletes after the accounts
// are gone, an administrator's pods) or skips the policy. Isolation must never be skipped, so it takes no
// parameter; attribution may be: a namespace with no account of the tool has no job token to attribute.

import type { V1AuditAnnotation, V1ValidatingAdmissionPolicy, V1ValidatingAdmissionPolicyBinding } from '@kubernetes/client-node';
import { ACCOUNT_VARIABLE, ISOLATION_POLICY_NAME, jobRequests, type PolicyManifest, policyManifest } from './policy.ts';
import { Annotation, JOB_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, USER_LABEL } from './types.ts';

export const ATTRIBUTION_POLICY_NAME = 'dss-spark-k8s-job-attribution';

const OWN_ACCOUNT = 'variables.ownAccount';
const fromAccount = (field: 'labels' | 'annotations', key: string) => `params.metadata.?${field}[?'${key}'].orValue('')`;
const ofObject = (field: 'labels' | 'annotations', key: string) => `object.metadata.?${field}[?'${key}']`;

/** Empty (so left out by the apiserver) in the evaluations whose parameter is another account. */
export const ATTRIBUTION_AUDIT_ANNOTATIONS: readonly V1AuditAnnotation[] = Object.freeze([
  { key: 'job-id', valueExpression: `${OWN_ACCOUNT} ? ${fromAccount('labels', JOB_LABEL)} : ''` },
  { key: 'user', valueExpression: `${OWN_ACCOUNT} ? ${fromAccount('labels', USER_LABEL)} : ''` },
  { key: 'login', valueExpression: `${OWN_ACCOUNT} ? ${fromAccount('annotations', Annotation.login)} : ''` },
]);

export function buildAttributionPolicy(): V1ValidatingAdmissionPolicy {
  const { matchConstraints, matchConditions } = jobRequests();
  const login = fromAccount('annotations', Annotation.login);
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicy',
    metadata: { name: ATTRIBUTION_POLICY_NAME, labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE } },
    spec: {
      failurePolicy: 'Fail',
      paramKind: { apiVersion: 'v1', kind: 'ServiceAccount' },
      matchConstraints,
      matchConditions,
      variables: [{ ...ACCOUNT_VARIABLE }, { name: 'ownAccount', expression: `params.metadata.name == variables.account` }],
      auditAnnotations: ATTRIBUTION_AUDIT_ANNOTATIONS.map((annotation) => ({ ...annotation })),
      validations: [
        // A token outlives its account by the apiserver's authentication cache (~10 s): an account deleted and
        // made again under the same name must not lend its labels to the earlier account's token.
        {
          expression: `!${OWN_ACCOUNT} || params.metadata.uid == request.userInfo.uid`,
          messageExpression: `'the token of ' + variables.account + ' belongs to an earlier account of that name (uid ' + request.userInfo.uid + ', now ' + params.metadata.uid + ')'`,
          reason: 'Forbidden',
        },
        {
          expression:
            `!${OWN_ACCOUNT} || request.operation == 'DELETE'` +
            ` || (${ofObject('labels', JOB_LABEL)}.orValue('') == ${fromAccount('labels', JOB_LABEL)}` +
            ` && ${ofObject('labels', USER_LABEL)}.orValue('') == ${fromAccount('labels', USER_LABEL)}` +
            ` && ${ofObject('annotations', Annotation.login)}.orValue(${login}) == ${login})`,
          messageExpression:
            `request.resource.resource + ' "' + object.metadata.name + '" must carry the job id, user and login of ' + variables.account` +
            ` + ' (${JOB_LABEL}=' + ${fromAccount('labels', JOB_LABEL)} + ', ${USER_LABEL}=' + ${fromAccount('labels', USER_LABEL)}` +
            ` + ' and, when set, ${Annotation.login}=' + ${login} + '): a job may not claim to be another'`,
          reason: 'Forbidden',
        },
      ],
    },
  };
}

export function buildAttributionPolicyBinding(): V1ValidatingAdmissionPolicyBinding {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicyBinding',
    metadata: { name: ATTRIBUTION_POLICY_NAME, labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE } },
    spec: {
      policyName: ATTRIBUTION_POLICY_NAME,
      validationActions: ['Deny'],
      // The tool's accounts of the request's namespace (no namespace given: the request's own).
      paramRef: { selector: { matchLabels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE } }, parameterNotFoundAction: 'Allow' },
    },
  };
}

/** What a cluster without each job policy lacks (doctor and `policy show` say it). */
export const WITHOUT_JOB_POLICY: Readonly<Record<string, string>> = Object.freeze({
  [ISOLATION_POLICY_NAME]: 'jobs can act as other jobs and keep what they create after their teardown',
  [ATTRIBUTION_POLICY_NAME]: "audit events do not name a job token's job, user and login, and jobs can label their pods as other jobs'",
});

/** Every admission policy that holds job tokens, in the order they are installed: isolation, then attribution. */
export function jobPolicies(): PolicyManifest[] {
  return [policyManifest(), { policy: buildAttributionPolicy(), binding: buildAttributionPolicyBinding() }];
}
