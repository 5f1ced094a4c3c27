// The isolation policy for namespaces shared by several jobs (team namespaces): a ValidatingAdmissionPolicy and
// its binding, built by pure functions. `dss-spark-k8s policy apply` installs them; `policy show` prints them.
//
// RBAC alone cannot keep two jobs of one namespace apart: a job may create pods, and "permission to create
// workloads implicitly grants the API access of any service account in that namespace". So, for every request
// made with a job's token (user `system:serviceaccount:<ns>:dss-spark-…`) in a namespace labelled
// dss-spark-k8s.dataiku.io/managed=true, the policy requires:
//   - every pod, service, configmap and PVC it creates or changes carries OWNER_LABEL = its own account name;
//   - it changes or deletes only objects that already carry that label with that value (never another job's
//     objects, nor unlabelled ones such as an administrator's);
//   - names starting with "dss-spark-" (where jobs' executor pods and claims live) are reserved to their job;
//   - its pods run as its own executor account, mount no secret, service-account token or hostPath volume,
//     no other job's claim, and read no secret through environment variables;
//   - its claims clone nothing (no dataSource).
// What stays open: reads (get/list/watch are not admission-controlled), and the network between pods.
//
// Why a label holding the account name, and not the job-id label: CEL can look nothing up, so the policy can
// only compare the object with the requester's user name. Job ids cannot be derived from the account name
// (jobBaseName truncates the user part and hashes long ids, and "-" appears in both parts), so the account name
// itself must be on every object: OWNER_LABEL = the job's base name (a DNS label of at most 47 characters, a
// valid label value). Spark puts the configured executor labels on executor pods only: the executor ConfigMap
// gets just spark-app-selector and spark-role (KubernetesClusterSchedulerBackend.setUpExecutorConfigMap, Spark
// 4.3), so jobs must run with spark.kubernetes.executor.disableConfigMap=true; OnDemand PVCs get
// spark-app-selector plus spark.kubernetes.executor.volumes.persistentVolumeClaim.<volume>.label.* only. In
// client mode the driver creates no service.

import type { V1ValidatingAdmissionPolicy, V1ValidatingAdmissionPolicyBinding, V1Validation } from '@kubernetes/client-node';
import { DRIVER_RULES } from './objects.ts';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, MANAGED_NAMESPACE_LABEL, OWNER_LABEL } from './types.ts';

export const ISOLATION_POLICY_NAME = 'dss-spark-k8s-job-isolation';
/** On every object a job creates: the name of the job's ServiceAccount (its base name). */
export { OWNER_LABEL };
/** Every job ServiceAccount name starts with this (jobBaseName); executor accounts add "-exec". */
export const JOB_ACCOUNT_PREFIX = 'dss-spark-';

/** The kinds a job's RoleBinding lets it write. */
const GUARDED_RESOURCES = DRIVER_RULES.flatMap((rule) => rule.resources);

const ownerOf = (object: 'object' | 'oldObject') => `${object}.metadata.?labels[?'${OWNER_LABEL}'].orValue('')`;

/**
 * Whether the requesting job may use a name: names starting with "dss-spark-" belong to jobs, and Spark names a
 * job's executor pods and their OnDemand claims "<podNamePrefix>-exec-…", the prefix being the job's base name.
 */
const mayUseName = (name: string) => `(!${name}.startsWith('${JOB_ACCOUNT_PREFIX}') || ${name}.startsWith(variables.account + '-exec-'))`;

/** A pod volume a job may use: no secret, no service-account token, no hostPath, no other job's claim. */
const ALLOWED_VOLUME = [
  'has(v.emptyDir)',
  'has(v.configMap)',
  'has(v.downwardAPI)',
  'has(v.ephemeral)',
  'has(v.nfs)',
  `(has(v.persistentVolumeClaim) && ${mayUseName('v.persistentVolumeClaim.claimName')})`,
  `(has(v.projected) && v.projected.?sources.orValue([]).all(s, has(s.configMap) || has(s.downwardAPI)))`,
].join(' || ');

function validation(expression: string, messageExpression: string): V1Validation {
  return { expression, messageExpression, reason: 'Forbidden' };
}

export function buildIsolationPolicy(): V1ValidatingAdmissionPolicy {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicy',
    metadata: { name: ISOLATION_POLICY_NAME, labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE } },
    spec: {
      failurePolicy: 'Fail',
      matchConstraints: {
        matchPolicy: 'Equivalent',
        namespaceSelector: { matchLabels: { [MANAGED_NAMESPACE_LABEL]: 'true' } },
        resourceRules: [
          { apiGroups: [''], apiVersions: ['*'], operations: ['CREATE', 'UPDATE', 'DELETE'], resources: [...GUARDED_RESOURCES], scope: 'Namespaced' },
        ],
      },
      matchConditions: [
        {
          name: 'is-job-account',
          expression: `request.userInfo.username.matches('^system:serviceaccount:[^:]+:${JOB_ACCOUNT_PREFIX}[^:]+$')`,
        },
      ],
      variables: [
        { name: 'account', expression: `request.userInfo.username.split(':')[3]` },
        { name: 'executorAccount', expression: `variables.account + '-exec'` },
        {
          name: 'target',
          expression: `request.resource.resource + ' "' + (object != null ? object.metadata.name : oldObject.metadata.name) + '"'`,
        },
        { name: 'isCreate', expression: `request.operation == 'CREATE'` },
        { name: 'podCreate', expression: `variables.isCreate && request.resource.resource == 'pods'` },
        {
          name: 'containers',
          expression: `variables.podCreate ? object.spec.containers + object.spec.?initContainers.orValue([]) : []`,
        },
        {
          name: 'forbiddenVolumes',
          expression: `variables.podCreate ? object.spec.?volumes.orValue([]).filter(v, !(${ALLOWED_VOLUME})).map(v, v.name) : []`,
        },
        {
          name: 'secretEnvContainers',
          expression:
            `variables.containers.filter(c, c.?envFrom.orValue([]).exists(e, has(e.secretRef))` +
            ` || c.?env.orValue([]).exists(e, e.?valueFrom.?secretKeyRef.hasValue())).map(c, c.name)`,
        },
      ],
      validations: [
        validation(
          `variables.isCreate || ${ownerOf('oldObject')} == variables.account`,
          `variables.account + ' may not ' + (request.operation == 'DELETE' ? 'delete ' : 'change ') + variables.target` +
            ` + ': it is not labelled ${OWNER_LABEL}=' + variables.account + ' (it belongs to another job or to no job)'`,
        ),
        validation(
          `request.operation == 'DELETE' || ${ownerOf('object')} == variables.account`,
          `variables.target + ' must carry the label ${OWNER_LABEL}=' + variables.account`,
        ),
        validation(
          `!variables.isCreate || ${mayUseName('object.metadata.name')}`,
          `variables.target + ': names starting with ${JOB_ACCOUNT_PREFIX} are reserved to their job; ' + variables.account` +
            ` + ' may only create such names starting with ' + variables.account + '-exec-'`,
        ),
        validation(
          `!variables.podCreate || object.spec.?serviceAccountName.orValue('') == variables.executorAccount`,
          `variables.target + ' must run as the service account ' + variables.executorAccount + ', not "'` +
            ` + object.spec.?serviceAccountName.orValue('') + '"'`,
        ),
        validation(
          `size(variables.forbiddenVolumes) == 0`,
          `variables.target + ': volume(s) ' + variables.forbiddenVolumes.join(', ') + ' not allowed; a job may mount emptyDir,` +
            ` configMap, downwardAPI, ephemeral, nfs, projected configMap/downwardAPI and its own or shared claims,` +
            ` never a secret, a service-account token or a hostPath'`,
        ),
        validation(
          `size(variables.secretEnvContainers) == 0`,
          `variables.target + ': container(s) ' + variables.secretEnvContainers.join(', ') + ' may not read secrets through env or envFrom'`,
        ),
        validation(
          `!variables.isCreate || request.resource.resource != 'persistentvolumeclaims'` +
            ` || (!has(object.spec.dataSource) && !has(object.spec.dataSourceRef))`,
          `variables.target + ': a job may not create a claim from a data source (it could clone the volume of another job)'`,
        ),
      ],
    },
  };
}

export function buildIsolationPolicyBinding(): V1ValidatingAdmissionPolicyBinding {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicyBinding',
    metadata: { name: ISOLATION_POLICY_NAME, labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE } },
    // Deny makes a failed validation (reason Forbidden) an HTTP 403 naming the policy.
    spec: { policyName: ISOLATION_POLICY_NAME, validationActions: ['Deny'] },
  };
}

export interface PolicyManifest {
  policy: V1ValidatingAdmissionPolicy;
  binding: V1ValidatingAdmissionPolicyBinding;
}

export function policyManifest(): PolicyManifest {
  return { policy: buildIsolationPolicy(), binding: buildIsolationPolicyBinding() };
}
