// A validated profile: what one "managed K8s configuration" of the platform says about a job.

export interface PodSecurityLevels {
  enforce: string;
  audit: string;
  warn: string;
}

export interface Profile {
  /** The profile's name in the configuration file. */
  name: string;
  /** Where the configuration came from, for error messages. */
  source: string;
  /** Namespace template: `${dssUserLogin}`, `${adminProperty:NAME}` and literal text. */
  targetNamespace: string;
  /** The namespaces the configuration's per-user templates can give: a team namespace may match none of them. */
  perUserNamespaces: RegExp[];
  autoCreateNamespace: boolean;
  /** Absolute path of spark-submit, run as the end user. */
  sparkSubmit: string;
  /** Default Spark confs (e.g. spark.kubernetes.container.image); the caller's --conf wins over these. */
  sparkConf: Record<string, string>;
  /** Requested TokenRequest lifetime in seconds (>= 600); the server may grant less. */
  tokenTtlSeconds: number;
  /** A namespace must match this pattern (default ^dss-). */
  allowedNamespaces: RegExp;
  /** When non-empty, the end user must belong to one of these Unix groups. */
  allowedUserGroups: string[];
  /** End users below this uid are refused (default 1000). */
  minUid: number;
  /** Extra labels and annotations on every object; the tool's own labels always win. */
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** dssuser's own cluster credentials; unset means the usual loading rules (KUBECONFIG, ~/.kube/config, in-cluster). */
  kubeconfig?: string;
  context?: string;
  /** Where per-job kubeconfig directories are made (default: the OS temp directory). */
  tempDir?: string;
  /** YAML file mapping each login to its admin properties, for `${adminProperty:NAME}` (team mode). */
  adminPropertiesFile?: string;
  /** Pod Security Admission labels put on auto-created namespaces (baseline or restricted, never privileged). */
  podSecurity: PodSecurityLevels;
  /**
   * Image pull secrets executor pods may name, written on auto-created namespaces as the annotation the isolation
   * policy reads (team namespaces: an administrator sets it). PersistentVolumes are cluster-wide, so only an
   * administrator may allow a namespace to bind one by name (its annotation); dssuser may not write it.
   */
  allowedImagePullSecrets: string[];
  /** The uid of the managed executor pod template (restricted Pod Security needs a numeric non-root user). */
  executorRunAsUser: number;
  /** ResourceQuota and LimitRange specs (as in Kubernetes) given to auto-created namespaces. */
  resourceQuota?: Record<string, unknown>;
  limitRange?: Record<string, unknown>;
  /** Liveness Lease renewal interval in seconds; a Lease not renewed for 4 intervals marks an orphan. */
  leaseRenewSeconds: number;
  /** Rotate the token after this many seconds (default: 80 % of the granted lifetime). Shorter only for tests. */
  tokenRotationSeconds?: number;
  /** Grace period between forwarding a signal to spark-submit and killing it. */
  killGraceSeconds: number;
  /** Timeout of each Kubernetes API request. */
  apiTimeoutSeconds: number;
}

export interface Config {
  source: string;
  defaultProfile: string;
  profiles: Record<string, Profile>;
}
