// One pure builder per Kubernetes object a job creates. apiVersion and kind are always set: --dry-run prints them.

import type {
  AuthenticationV1TokenRequest,
  V1LimitRange,
  V1ResourceQuota,
  V1Namespace,
  V1Pod,
  V1RoleBinding,
  V1Secret,
  V1ServiceAccount,
} from '@kubernetes/client-node';
import type { Profile } from '../config/types.ts';
import {
  ALLOWED_PULL_SECRETS_ANNOTATION,
  Annotation,
  JOB_LABEL,
  type JobLease,
  type JobContext,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  MANAGED_NAMESPACE_LABEL,
  OWNER_LABEL,
  USER_LABEL,
} from './types.ts';

type StringMap = Record<string, string>;

/** The profile's labels, then the job runner's (run --label), then the tool's own, which always win. */
export function jobLabels(profile: Profile, jobId: string, userSlug: string, baseName: string, runLabels: StringMap = {}): StringMap {
  return {
    ...profile.labels,
    ...runLabels,
    [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
    [JOB_LABEL]: jobId,
    [USER_LABEL]: userSlug,
    [OWNER_LABEL]: baseName,
  };
}

/** The profile's annotations, then the tool's own. */
export function jobAnnotations(profile: Profile, ctx: JobContext, expiresAt: Date): StringMap {
  return { ...profile.annotations, ...toolAnnotations(ctx, expiresAt) };
}

/**
 * The tool's own annotations (dss-spark-k8s.dataiku.io/…), the only ones a ServiceAccount gets: an annotation of
 * the profile could be a cloud workload identity (eks.amazonaws.com/role-arn, iam.gke.io/…), and dssuser's
 * policy admits none but these on the accounts it creates.
 */
export function toolAnnotations(ctx: JobContext, expiresAt: Date): StringMap {
  return {
    [Annotation.login]: ctx.login,
    [Annotation.host]: ctx.host,
    [Annotation.pid]: String(ctx.pid),
    [Annotation.processStart]: ctx.processStart,
    [Annotation.createdAt]: ctx.now.toISOString(),
    [Annotation.expiresAt]: expiresAt.toISOString(),
  };
}

/**
 * A namespace outlives jobs: it carries no job label, only "managed", the Pod Security Admission levels, the
 * user it belongs to (per-user namespaces: dssuser's admission policy then admits only that user's jobs in it)
 * and the pull secrets and volumes its jobs may use (read by the isolation policy).
 */
export function buildNamespace(name: string, profile: Profile, userSlug?: string): V1Namespace {
  const podSecurity: StringMap = {};
  for (const mode of ['enforce', 'audit', 'warn'] as const) {
    const level = profile.podSecurity[mode];
    if (!level) continue;
    podSecurity[`pod-security.kubernetes.io/${mode}`] = level;
    podSecurity[`pod-security.kubernetes.io/${mode}-version`] = 'latest';
  }
  const allowed: StringMap = {};
  if (profile.allowedImagePullSecrets.length > 0) allowed[ALLOWED_PULL_SECRETS_ANNOTATION] = profile.allowedImagePullSecrets.join(',');
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name,
      labels: {
        ...profile.labels,
        ...podSecurity,
        ...(userSlug === undefined ? {} : { [USER_LABEL]: userSlug }),
        [MANAGED_NAMESPACE_LABEL]: 'true',
        [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
      },
      annotations: { ...profile.annotations, ...allowed },
    },
  };
}

/**
 * The executor pod template every job uses (spark.kubernetes.executor.podTemplateFile): what Pod Security
 * `restricted` requires, no service-account token, the executor account. Spark keeps a template's security
 * context and adds its own container settings; the first container becomes the executor container, and this
 * name is the one Spark's exit-code tracking looks for.
 */
export function buildExecutorPodTemplate(executorServiceAccount: string, labels: StringMap, runAsUser: number): V1Pod {
  const seccompProfile = { type: 'RuntimeDefault' };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { labels: { ...labels } },
    spec: {
      serviceAccountName: executorServiceAccount,
      automountServiceAccountToken: false,
      securityContext: { runAsNonRoot: true, runAsUser, seccompProfile },
      containers: [
        {
          name: EXECUTOR_CONTAINER,
          securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, runAsNonRoot: true, seccompProfile },
        },
      ],
    },
  };
}

export const EXECUTOR_CONTAINER = 'spark-kubernetes-executor';

/** No token is ever mounted from this account: the token is handed over through a TokenRequest only. */
export function buildServiceAccount(name: string, namespace: string, labels: StringMap, annotations: StringMap): V1ServiceAccount {
  return {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name, namespace, labels: { ...labels }, annotations: { ...annotations } },
    automountServiceAccountToken: false,
  };
}

/** The executors' account: bound to no role, and no token mounted into executor pods. */
export function buildExecutorServiceAccount(name: string, namespace: string, labels: StringMap, annotations: StringMap): V1ServiceAccount {
  return buildServiceAccount(name, namespace, labels, annotations);
}

export interface PolicyRule {
  readonly apiGroups: readonly string[];
  readonly resources: readonly string[];
  readonly verbs: readonly string[];
}

/**
 * The ClusterRole every job's RoleBinding refers to (deploy/rbac): the driver's rights, granted in the job's
 * namespace only. Binding a pre-made role rather than creating a Role per job spares two writes per job and
 * the apiserver's escalation check (dssuser may `bind` this one role without holding what it grants).
 */
export const DRIVER_CLUSTER_ROLE = 'dss-spark-k8s-driver';

/**
 * What Spark's client-mode driver does with the API, and nothing more: DRIVER_CLUSTER_ROLE's rules. Read from
 * Spark 3.5.6, 4.0.2, 4.1.1 and 4.2.0 (KubernetesClusterSchedulerBackend, ExecutorPodsAllocator, the snapshot
 * sources, ExecutorPodsLifecycleManager): executor pods are created, watched, listed every 30 s, read, patched
 * (the inactive and decommission labels) and deleted one by one or by label (fabric8 sends a labelled delete as
 * one deletecollection); OnDemand claims are created (garbage-collected with their executor pod). The managed
 * confs turn off what would need more: the executor ConfigMap (disableConfigMap), the service and claim deletes at
 * stop (driver.service.deleteOnTermination, driver.ownPersistentVolumeClaim). No Service, ConfigMap or anything
 * else: a client-mode driver creates none (Spark 4.2's NetworkPolicy step runs in cluster mode only).
 */
export const DRIVER_RULES: readonly PolicyRule[] = Object.freeze([
  Object.freeze({
    apiGroups: Object.freeze(['']),
    resources: Object.freeze(['pods']),
    verbs: Object.freeze(['get', 'list', 'watch', 'create', 'patch', 'delete', 'deletecollection']),
  }),
  Object.freeze({
    apiGroups: Object.freeze(['']),
    resources: Object.freeze(['persistentvolumeclaims']),
    verbs: Object.freeze(['create']),
  }),
]);

export function buildRoleBinding(name: string, namespace: string, serviceAccountName: string, labels: StringMap, annotations: StringMap): V1RoleBinding {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name, namespace, labels: { ...labels }, annotations: { ...annotations } },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: DRIVER_CLUSTER_ROLE },
    subjects: [{ kind: 'ServiceAccount', name: serviceAccountName, namespace }],
  };
}

/** The job's liveness record: renewed while the job runs, so cleanup can tell a live job from an orphan. */
export function buildLease(
  name: string,
  namespace: string,
  labels: StringMap,
  annotations: StringMap,
  holderIdentity: string,
  leaseDurationSeconds: number,
  now: Date,
): JobLease {
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name, namespace, labels: { ...labels }, annotations: { ...annotations } },
    spec: {
      holderIdentity,
      leaseDurationSeconds,
      acquireTime: microTime(now),
      renewTime: microTime(now),
    },
  };
}

/**
 * An empty Secret a token is bound to: deleting it revokes that token at once (rotation). Immutable and
 * without data: it holds nothing and can never be made to.
 */
export function buildTokenAnchor(name: string, namespace: string, labels: StringMap, annotations: StringMap): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    immutable: true,
    metadata: { name, namespace, labels: { ...labels }, annotations: { ...annotations } },
  };
}

export function tokenAnchorName(baseName: string, generation: number): string {
  return `${baseName}-t${generation}`;
}

/** The TokenRequest of a token bound to an anchor Secret (its uid comes from the create response). */
export function boundTokenRequest(request: AuthenticationV1TokenRequest, anchor: { name: string; uid: string }): AuthenticationV1TokenRequest {
  return { ...request, spec: { ...request.spec, boundObjectRef: { apiVersion: 'v1', kind: 'Secret', name: anchor.name, uid: anchor.uid } } };
}

export function buildTokenRequest(expirationSeconds: number, audiences?: string[]): AuthenticationV1TokenRequest {
  return {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: audiences ? { expirationSeconds, audiences: [...audiences] } : { expirationSeconds },
  };
}

/** The API's MicroTime format: RFC 3339 with exactly six fractional digits (milliseconds alone are refused). */
export function microTime(date: Date): string {
  return `${date.toISOString().slice(0, -1)}000Z`;
}

export function holderIdentity(ctx: Pick<JobContext, 'host' | 'pid' | 'processStart'>): string {
  return `${ctx.host}/${ctx.pid}/${ctx.processStart}`;
}

/** The quota an auto-created namespace gets from the profile; it outlives jobs, like the namespace. */
export function buildResourceQuota(namespace: string, spec: Record<string, unknown>): V1ResourceQuota {
  return { apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name: 'dss-spark-k8s', namespace, labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE } }, spec };
}

export function buildLimitRange(namespace: string, spec: Record<string, unknown>): V1LimitRange {
  return {
    apiVersion: 'v1',
    kind: 'LimitRange',
    metadata: { name: 'dss-spark-k8s', namespace, labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE } },
    spec: spec as unknown as V1LimitRange['spec'],
  };
}
