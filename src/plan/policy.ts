// The job-isolation policy: a ValidatingAdmissionPolicy and its binding, built by pure functions, for every
// namespace the tool manages (labelled dss-spark-k8s.dataiku.io/managed=true: per-user namespaces it creates and
// team namespaces an administrator prepares). Both manifests of deploy/rbac carry it (a test keeps them equal to
// this builder); `dss-spark-k8s policy apply` installs it on its own, `policy show` prints it.
//
// RBAC cannot bound what a job does with the rights Spark's driver needs: "permission to create workloads
// implicitly grants the API access of any service account in that namespace", and every field of a pod is a way
// out (volumes, host namespaces, other accounts, pull secrets). So, for every request made with a job's token
// (user `system:serviceaccount:<ns>:dss-spark-…`), the policy requires:
//   - every object it creates or changes carries app.kubernetes.io/managed-by=dss-spark-k8s and OWNER_LABEL = its
//     own account name, so that teardown and cleanup find all of it by that label, and it changes or deletes only
//     objects already carrying its own OWNER_LABEL (never another job's, nor an administrator's);
//   - names starting with "dss-spark-" are reserved to their job (Spark names executor pods and their claims
//     "<base>-exec-…");
//   - its pods run as its own executor account without a token, in no host namespace, unprivileged, on no chosen
//     node, with no image pull secret or bound volume the namespace does not list (annotations below), and
//     with none of the other ways out of a container that Pod Security `baseline` closes (added capabilities
//     beyond its list, seccomp or AppArmor Unconfined, SELinux options, an unmasked /proc, sysctls): a team
//     namespace may enforce no Pod Security level at all, and this policy must hold there too;
//   - volumes: emptyDir, configMap, downwardAPI, projected configMap/downwardAPI, its own claims, and ephemeral
//     claims whose template carries none of the tool's labels (the ephemeral-volume controller creates that claim
//     as itself, so nothing of the job's request would check it), clones or binds nothing, and whose claim name
//     ("<pod>-<volume>") is not one reserved to another job (pod "dss" + volume "spark-…" would be);
//   - no secret through env, no claim from a data source or choosing its volume by selector, no finalizer (what a
//     job makes must not outlive its teardown), no system priority class (it would preempt other tenants' pods).
// What stays open: reads (get/list/watch are not admission-controlled), and the network between pods.
//
// Why a label holding the account name: CEL can look nothing up, so the policy can only compare an object with
// the requester's user name. The account name (jobBaseName) is unique per (login, job id) and a valid label
// value. Spark puts the configured executor labels on executor pods and, through managed confs, on OnDemand
// claims; with spark.kubernetes.executor.disableConfigMap=true a client-mode driver creates nothing else.

import type { V1AuditAnnotation, V1ValidatingAdmissionPolicy, V1ValidatingAdmissionPolicyBinding, V1Validation } from '@kubernetes/client-node';
import { DRIVER_RULES } from './objects.ts';
import {
  ALLOWED_PULL_SECRETS_ANNOTATION,
  ALLOWED_VOLUMES_ANNOTATION,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  MANAGED_NAMESPACE_LABEL,
  OWNER_LABEL,
  TOOL_LABEL_PREFIX,
} from './types.ts';

export const ISOLATION_POLICY_NAME = 'dss-spark-k8s-job-isolation';
/** On every object a job creates: the name of the job's ServiceAccount (its base name). */
export { OWNER_LABEL };
/** Every job ServiceAccount name starts with this (jobBaseName); executor accounts add "-exec". */
export const JOB_ACCOUNT_PREFIX = 'dss-spark-';

/** The kinds a job's RoleBinding lets it write. */
const GUARDED_RESOURCES = [...new Set(DRIVER_RULES.flatMap((rule) => rule.resources))];

const label = (object: 'object' | 'oldObject', key: string) => `${object}.metadata.?labels[?'${key}'].orValue('')`;
const namespaceList = (annotation: string) => `namespaceObject.metadata.?annotations[?'${annotation}'].orValue('').split(',')`;

/**
 * Whether the requesting job may use a name: names starting with "dss-spark-" belong to jobs, and Spark names a
 * job's executor pods and their OnDemand claims "<podNamePrefix>-exec-…", the prefix being the job's base name.
 */
const mayUseName = (name: string) => `(!${name}.startsWith('${JOB_ACCOUNT_PREFIX}') || ${name}.startsWith(variables.account + '-exec-'))`;

/**
 * An ephemeral volume whose claim the controller may make: no tool label, no clone, no binding by name or selector, and a claim
 * name ("<pod>-<volume>", made by the controller) that the job could use itself.
 */
const SAFE_EPHEMERAL =
  `(has(v.ephemeral) && v.ephemeral.?volumeClaimTemplate.?metadata.?labels.orValue({}).all(k, !k.startsWith('${TOOL_LABEL_PREFIX}') && k != '${MANAGED_BY_LABEL}')` +
  ` && !v.ephemeral.?volumeClaimTemplate.?spec.?dataSource.hasValue() && !v.ephemeral.?volumeClaimTemplate.?spec.?dataSourceRef.hasValue()` +
  ` && v.ephemeral.?volumeClaimTemplate.?spec.?volumeName.orValue('') == '' && !v.ephemeral.?volumeClaimTemplate.?spec.?selector.hasValue()` +
  ` && ${mayUseName(`(object.metadata.name + '-' + v.name)`)})`;

/** What Pod Security `baseline` lets a container add; anything else (SYS_ADMIN, NET_RAW, ALL…) reaches the node. */
const BASELINE_CAPABILITIES = [
  'AUDIT_WRITE',
  'CHOWN',
  'DAC_OVERRIDE',
  'FOWNER',
  'FSETID',
  'KILL',
  'MKNOD',
  'NET_BIND_SERVICE',
  'SETFCAP',
  'SETGID',
  'SETPCAP',
  'SETUID',
  'SYS_CHROOT',
];
/** The SELinux types Pod Security `baseline` allows (spc_t and others run unconfined). */
const BASELINE_SELINUX_TYPES = ['', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t'];
const celStrings = (items: readonly string[]) => `[${items.map((item) => `'${item}'`).join(', ')}]`;

/** Checks of a pod's or a container's securityContext (`context` is an optional-chained CEL path to it). */
const unconfined = (context: string, profile: 'seccompProfile' | 'appArmorProfile') => `${context}.?${profile}.?type.orValue('') == 'Unconfined'`;
const seLinuxChanged = (context: string) =>
  `(!(${context}.?seLinuxOptions.?type.orValue('') in ${celStrings(BASELINE_SELINUX_TYPES)}) || ${context}.?seLinuxOptions.?user.orValue('') != ''` +
  ` || ${context}.?seLinuxOptions.?role.orValue('') != '')`;
const POD_CONTEXT = 'object.spec.?securityContext';
const CONTAINER_CONTEXT = 'c.?securityContext';
const APPARMOR_ANNOTATION_PREFIX = 'container.apparmor.security.beta.kubernetes.io/';

/**
 * Each way a pod reaches its node (or runs less confined than Pod Security `baseline` allows), or other tenants'
 * pods (a system priority class preempts any pod, system ones included), by name.
 */
/** Where a container names a host for the kubelet to reach: probes and lifecycle hooks. */
const HANDLER_HOSTS = ['livenessProbe', 'readinessProbe', 'startupProbe', 'lifecycle.?postStart', 'lifecycle.?preStop'].flatMap((handler) =>
  ['httpGet', 'tcpSocket'].map((action) => `${handler}.?${action}.?host`),
);

const NODE_ACCESS: [string, string][] = [
  ['hostNetwork', `object.spec.?hostNetwork.orValue(false)`],
  ['hostPID', `object.spec.?hostPID.orValue(false)`],
  ['hostIPC', `object.spec.?hostIPC.orValue(false)`],
  ['nodeName', `object.spec.?nodeName.orValue('') != ''`],
  ['privileged', `variables.containers.exists(c, ${CONTAINER_CONTEXT}.?privileged.orValue(false))`],
  ['hostPort', `variables.containers.exists(c, c.?ports.orValue([]).exists(p, p.?hostPort.orValue(0) != 0))`],
  [
    'capabilities beyond the baseline ones',
    `variables.containers.exists(c, ${CONTAINER_CONTEXT}.?capabilities.?add.orValue([]).exists(x, !(x in ${celStrings(BASELINE_CAPABILITIES)})))`,
  ],
  ['seccomp Unconfined', `${unconfined(POD_CONTEXT, 'seccompProfile')} || variables.containers.exists(c, ${unconfined(CONTAINER_CONTEXT, 'seccompProfile')})`],
  [
    'AppArmor Unconfined',
    `${unconfined(POD_CONTEXT, 'appArmorProfile')} || variables.containers.exists(c, ${unconfined(CONTAINER_CONTEXT, 'appArmorProfile')})` +
      ` || object.metadata.?annotations.orValue({}).exists(k, k.startsWith('${APPARMOR_ANNOTATION_PREFIX}') && object.metadata.annotations[k] == 'unconfined')`,
  ],
  ['SELinux options', `${seLinuxChanged(POD_CONTEXT)} || variables.containers.exists(c, ${seLinuxChanged(CONTAINER_CONTEXT)})`],
  ['an unmasked /proc', `variables.containers.exists(c, ${CONTAINER_CONTEXT}.?procMount.orValue('Default') != 'Default')`],
  ['sysctls', `size(${POD_CONTEXT}.?sysctls.orValue([])) != 0`],
  ['a system priority class', `object.spec.?priorityClassName.orValue('').startsWith('system-')`],
  // The kubelet, on the node's network, would send these requests to any host (the cloud metadata address...).
  ['a probe or lifecycle host', `variables.containers.exists(c, ${HANDLER_HOSTS.map((path) => `c.?${path}.orValue('') != ''`).join(' || ')})`],
  // Dynamic resource allocation: a device claimed by someone else of the namespace. Spark needs none.
  ['resource claims', `size(object.spec.?resourceClaims.orValue([])) != 0`],
];

/**
 * The finalizers a job's object may carry: the one the apiserver itself adds to claims (StorageObjectInUseProtection).
 * Any other would keep the object after teardown deleted it, and nothing of the job may outlive the job.
 */
const ALLOWED_FINALIZERS = ['kubernetes.io/pvc-protection'];

/** A pod volume a job may use: no secret, service-account token, hostPath, nfs, other job's claim or unsafe template. */
const ALLOWED_VOLUME = [
  'has(v.emptyDir)',
  'has(v.configMap)',
  'has(v.downwardAPI)',
  SAFE_EPHEMERAL,
  `(has(v.persistentVolumeClaim) && ${mayUseName('v.persistentVolumeClaim.claimName')})`,
  `(has(v.projected) && v.projected.?sources.orValue([]).all(s, has(s.configMap) || has(s.downwardAPI)))`,
].join(' || ');

/**
 * Written into the audit event of every request this policy evaluates (a job token's writes of pods and claims,
 * admitted or denied) as `dss-spark-k8s-job-isolation/job-account`: the account of the authenticated token. The
 * job id, user and login it belongs to come from the attribution policy (attribution-policy.ts).
 */
export const AUDIT_ANNOTATIONS: readonly V1AuditAnnotation[] = Object.freeze([{ key: 'job-account', valueExpression: 'variables.account' }]);

/** The job account making the request (the matchCondition below admits only `system:serviceaccount:<ns>:dss-spark-…`). */
export const ACCOUNT_VARIABLE = Object.freeze({ name: 'account', expression: `request.userInfo.username.split(':')[3]` });

/** The requests both job policies hold: a job token's writes of what the driver role lets it write, in managed namespaces. */
export function jobRequests(): Pick<NonNullable<V1ValidatingAdmissionPolicy['spec']>, 'matchConstraints' | 'matchConditions'> {
  return {
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
  };
}

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
      ...jobRequests(),
      variables: [
        { ...ACCOUNT_VARIABLE },
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
        {
          name: 'nodeAccess',
          expression: `variables.podCreate ? [${NODE_ACCESS.map(([what, test]) => `(${test}) ? '${what}' : ''`).join(', ')}].filter(x, x != '') : []`,
        },
        {
          name: 'unlistedPullSecrets',
          expression:
            `variables.podCreate ? object.spec.?imagePullSecrets.orValue([]).map(s, s.?name.orValue(''))` +
            `.filter(n, !(n in ${namespaceList(ALLOWED_PULL_SECRETS_ANNOTATION)})) : []`,
        },
      ],
      auditAnnotations: AUDIT_ANNOTATIONS.map((annotation) => ({ ...annotation })),
      validations: [
        validation(
          `variables.isCreate || ${label('oldObject', OWNER_LABEL)} == variables.account`,
          `variables.account + ' may not ' + (request.operation == 'DELETE' ? 'delete ' : 'change ') + variables.target` +
            ` + ': it is not labelled ${OWNER_LABEL}=' + variables.account + ' (it belongs to another job or to no job)'`,
        ),
        validation(
          `request.operation == 'DELETE' || (${label('object', OWNER_LABEL)} == variables.account && ${label('object', MANAGED_BY_LABEL)} == '${MANAGED_BY_VALUE}')`,
          `variables.target + ' must carry the labels ${OWNER_LABEL}=' + variables.account + ' and ${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}'`,
        ),
        validation(
          `!variables.isCreate || ${mayUseName('object.metadata.name')}`,
          `variables.target + ': names starting with ${JOB_ACCOUNT_PREFIX} are reserved to their job; ' + variables.account` +
            ` + ' may only create such names starting with ' + variables.account + '-exec-'`,
        ),
        validation(
          `!variables.podCreate || (object.spec.?serviceAccountName.orValue('') == variables.executorAccount && !object.spec.?automountServiceAccountToken.orValue(false))`,
          `variables.target + ' must run as the service account ' + variables.executorAccount + ' with no token mounted, not as "'` +
            ` + object.spec.?serviceAccountName.orValue('') + '"'`,
        ),
        validation(
          `request.operation == 'DELETE' || object.metadata.?finalizers.orValue([]).all(f, f in ${celStrings(ALLOWED_FINALIZERS)}` +
            ` || (!variables.isCreate && f in oldObject.metadata.?finalizers.orValue([])))`,
          `variables.target + ': a job may not add finalizers (its objects must not outlive its teardown)'`,
        ),
        validation(`size(variables.nodeAccess) == 0`, `variables.target + ': ' + variables.nodeAccess.join(', ') + ' not allowed for a job pod'`),
        validation(
          `size(variables.forbiddenVolumes) == 0`,
          `variables.target + ': volume(s) ' + variables.forbiddenVolumes.join(', ') + ' not allowed; a job may mount emptyDir,` +
            ` configMap, downwardAPI, projected configMap/downwardAPI, its own claims and ephemeral claims whose template carries` +
            ` no ${TOOL_LABEL_PREFIX}* or ${MANAGED_BY_LABEL} label and no dataSource, dataSourceRef, volumeName or selector, and whose claim` +
            ` name (<pod>-<volume>) is not reserved to another job;` +
            ` never a secret, a service-account token, a hostPath or nfs'`,
        ),
        validation(
          `size(variables.secretEnvContainers) == 0`,
          `variables.target + ': container(s) ' + variables.secretEnvContainers.join(', ') + ' may not read secrets through env or envFrom'`,
        ),
        validation(
          `size(variables.unlistedPullSecrets) == 0`,
          `variables.target + ': image pull secret(s) ' + variables.unlistedPullSecrets.join(', ') + ' not allowed; an administrator` +
            ` lists the ones jobs may use in the namespace annotation ${ALLOWED_PULL_SECRETS_ANNOTATION}'`,
        ),
        validation(
          `!variables.isCreate || request.resource.resource != 'persistentvolumeclaims'` +
            ` || (!has(object.spec.dataSource) && !has(object.spec.dataSourceRef) && !has(object.spec.selector)` +
            ` && (object.spec.?volumeName.orValue('') == '' || object.spec.volumeName in ${namespaceList(ALLOWED_VOLUMES_ANNOTATION)}))`,
          `variables.target + ': a job may not create a claim from a data source (it could clone the volume of another job), nor` +
            ` choose its PersistentVolume by selector, nor bind it to one that the namespace annotation ${ALLOWED_VOLUMES_ANNOTATION} does not list'`,
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
