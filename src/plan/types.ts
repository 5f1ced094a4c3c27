import type {
  AuthenticationV1TokenRequest,
  V1LimitRange,
  V1ObjectMeta,
  V1ResourceQuota,
  V1Namespace,
  V1Pod,
  V1RoleBinding,
  V1Secret,
  V1ServiceAccount,
} from '@kubernetes/client-node';
import type { NetworkPolicy } from './network-policy.ts';

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'dss-spark-k8s';
export const JOB_LABEL = 'dss-spark-k8s.dataiku.io/job-id';
export const USER_LABEL = 'dss-spark-k8s.dataiku.io/user';
/**
 * The job's account (= base name) on everything of the job: the isolation policy compares it with the
 * requester's user name (it cannot look up the job id), and teardown selects by it with the job id.
 */
export const OWNER_LABEL = 'dss-spark-k8s.dataiku.io/owner-sa';
/** On namespaces the tool manages (auto-created or prepared by an admin for team mode). */
export const MANAGED_NAMESPACE_LABEL = 'dss-spark-k8s.dataiku.io/managed';

/**
 * Namespace annotations read by the isolation policy (set by an administrator, or from the profile when the
 * namespace is auto-created): comma-separated names of the image pull secrets and PersistentVolumes jobs may use.
 */
export const ALLOWED_PULL_SECRETS_ANNOTATION = 'dss-spark-k8s.dataiku.io/allowed-image-pull-secrets';
export const ALLOWED_VOLUMES_ANNOTATION = 'dss-spark-k8s.dataiku.io/allowed-persistent-volumes';

export const ANNOTATION_PREFIX = 'dss-spark-k8s.dataiku.io/';
/** Label keys under this prefix, and MANAGED_BY_LABEL, are the tool's alone (never the caller's --label). */
export const TOOL_LABEL_PREFIX = 'dss-spark-k8s.dataiku.io/';
export const Annotation = {
  login: `${ANNOTATION_PREFIX}login`,
  host: `${ANNOTATION_PREFIX}host`,
  pid: `${ANNOTATION_PREFIX}pid`,
  processStart: `${ANNOTATION_PREFIX}process-start`,
  createdAt: `${ANNOTATION_PREFIX}created-at`,
  expiresAt: `${ANNOTATION_PREFIX}expires-at`,
  /**
   * The jti of every token of the job, comma-separated, oldest first: what the audit log records as
   * authentication.kubernetes.io/credential-id. The only thing dssuser may change on a job ServiceAccount.
   */
  credentialIds: `${ANNOTATION_PREFIX}credential-ids`,
  /**
   * On a per-user namespace the tool made: when its last job started (RFC 3339 UTC, seconds). `namespaces prune`
   * reads it; the only change dssuser may make to a namespace.
   */
  lastUsed: `${ANNOTATION_PREFIX}last-used`,
} as const;

/** The most credential ids a job ServiceAccount holds (the newest): dssuser's policy admits no more (deploy/rbac). */
export const MAX_CREDENTIAL_IDS = 32;

/** A Lease as the API takes and returns it: MicroTime fields are strings with microseconds. */
export interface JobLease {
  apiVersion?: string;
  kind?: string;
  metadata?: V1ObjectMeta;
  spec?: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string };
}

/** Who runs this job, where and when: everything the plan needs that is not in the profile. */
export interface JobContext {
  jobId: string;
  login: string;
  uid: number;
  /** Admin properties of the user, for `${adminProperty:NAME}`. */
  adminProperties: Record<string, string>;
  host: string;
  pid: number;
  /** Start time of this process (ISO 8601): with host and pid it tells a live job from a reused pid. */
  processStart: string;
  now: Date;
}

/** Everything one job creates, and the spark-submit command line; built by a pure function. */
export interface JobPlan {
  jobId: string;
  login: string;
  userSlug: string;
  namespace: string;
  /** Shared by the job ServiceAccount, RoleBinding and Lease. */
  baseName: string;
  labels: Record<string, string>;
  /** Present only when the profile auto-creates the namespace (with its quota and limits, if configured). */
  namespaceObject?: V1Namespace;
  namespaceQuota?: V1ResourceQuota;
  namespaceLimitRange?: V1LimitRange;
  /** With an auto-created namespace when networkPolicy.enabled: its NetworkPolicy (network-policy.ts). */
  namespaceNetworkPolicy?: NetworkPolicy;
  serviceAccount: V1ServiceAccount;
  executorServiceAccount: V1ServiceAccount;
  roleBinding: V1RoleBinding;
  lease: JobLease;
  /** Written to the job directory for spark.kubernetes.executor.podTemplateFile. */
  executorPodTemplate: V1Pod;
  /** The empty Secret the first token is bound to (rotation binds each new token to a new one). */
  tokenAnchor: V1Secret;
  tokenRequest: AuthenticationV1TokenRequest;
  /** The spark-submit arguments after the executable, managed ones included (no secret in them). */
  sparkSubmitArgs: string[];
}
