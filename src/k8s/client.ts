// The one thin wrapper around @kubernetes/client-node: one create and one delete per kind, deletes treat
// NotFound as success, every failure becomes a KubernetesError with one line naming what failed.
import { readFileSync } from 'node:fs';
import {
  AuthenticationV1Api,
  AuthorizationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
  RbacAuthorizationV1Api,
  ServerConfiguration,
  VersionApi,
  createConfiguration,
  type AuthenticationV1TokenRequest,
  type Configuration,
  type RequestContext,
  type V1Lease,
  type V1LimitRange,
  type V1ResourceQuota,
  type V1Namespace,
  type V1ObjectMeta,
  type V1PolicyRule,
  type V1RoleBinding,
  type V1Secret,
  type V1ServiceAccount,
} from '@kubernetes/client-node';
import { Agent } from 'undici';
import { ConfigError, KubernetesError } from '../errors.ts';
import { apiFailure, isNotFound } from './errors.ts';

export type DryRun = 'server' | undefined;

/** Where the cluster is and how to trust it: what a job's kubeconfig needs, without dssuser's credentials. */
export interface ClusterEndpoint {
  server: string;
  /** PEM of the CA that signs the apiserver's certificate, when the kubeconfig names one. */
  caPem?: string;
  skipTlsVerify: boolean;
}

/** Kinds Spark's driver creates in the job namespace; teardown deletes them by the job label. */
export const DRIVER_CREATED_KINDS = ['pods', 'services', 'configmaps', 'persistentvolumeclaims'] as const;
export type DriverCreatedKind = (typeof DRIVER_CREATED_KINDS)[number];

/** Kinds the tool creates itself and can list (dssuser may not list or read secrets). */
export const JOB_KINDS = ['leases', 'rolebindings', 'serviceaccounts'] as const;
/**
 * Empty Secrets that anchor the job's tokens (TokenRequest boundObjectRef): deleting one revokes its token
 * at once, which is how a rotated token dies. dssuser may create and delete them, never read or list.
 */
export const TOKEN_ANCHOR_KIND = 'secrets';
export type JobKind = (typeof JOB_KINDS)[number] | typeof TOKEN_ANCHOR_KIND;
export type ListableKind = DriverCreatedKind | (typeof JOB_KINDS)[number];
export type LabelledKind = DriverCreatedKind | JobKind;

export interface ListPage<T> {
  items: T[];
  continueToken?: string;
}

export interface KubeOptions {
  kubeconfig?: string;
  context?: string;
  timeoutSeconds: number;
}

export class Kube {
  readonly endpoint: ClusterEndpoint;
  private readonly core: CoreV1Api;
  private readonly rbac: RbacAuthorizationV1Api;
  private readonly coordination: CoordinationV1Api;
  private readonly authn: AuthenticationV1Api;
  private readonly authz: AuthorizationV1Api;
  private readonly version: VersionApi;
  private readonly dispatcher: Agent;
  private readonly kc: KubeConfig;
  private readonly config: Configuration;

  constructor(kc: KubeConfig, timeoutSeconds: number) {
    this.kc = kc;
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new ConfigError('the kubeconfig has no current cluster; set current-context or pass --context');
    this.endpoint = {
      server: cluster.server,
      caPem: cluster.caData ? Buffer.from(cluster.caData, 'base64').toString() : cluster.caFile ? readFile(cluster.caFile) : undefined,
      skipTlsVerify: cluster.skipTLSVerify === true,
    };
    // One keep-alive connection pool for all requests (client-node would open a new one per request).
    this.dispatcher = new Agent({ connect: { ...tlsOptions(kc), keepAlive: true }, keepAliveTimeout: 30_000 });
    const config = (this.config = createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: { getName: () => 'dss-spark-k8s', applySecurityAuthentication: (ctx) => this.authenticate(ctx) } },
      promiseMiddleware: [
        {
          pre: async (ctx: RequestContext) => {
            ctx.setSignal(AbortSignal.timeout(timeoutSeconds * 1000));
            return ctx;
          },
          post: async (response) => response,
        },
      ],
    }));
    this.core = new CoreV1Api(config);
    this.rbac = new RbacAuthorizationV1Api(config);
    this.coordination = new CoordinationV1Api(config);
    this.authn = new AuthenticationV1Api(config);
    this.authz = new AuthorizationV1Api(config);
    this.version = new VersionApi(config);
  }

  /** dssuser's credentials: --kubeconfig/--context, else the profile's, else the usual loading rules. */
  static load(options: KubeOptions): Kube {
    const kc = new KubeConfig();
    try {
      if (options.kubeconfig) kc.loadFromFile(options.kubeconfig);
      else kc.loadFromDefault();
    } catch (error) {
      throw new ConfigError(`cannot load the kubeconfig ${options.kubeconfig ?? '(default loading rules)'}: ${firstLine(error)}`);
    }
    if (options.context) {
      if (!kc.getContextObject(options.context)) {
        throw new ConfigError(`context "${options.context}" is not in the kubeconfig; pick one of: ${kc.getContexts().map((c) => c.name).join(', ')}`);
      }
      kc.setCurrentContext(options.context);
    }
    return new Kube(kc, options.timeoutSeconds);
  }

  close(): Promise<void> {
    return this.dispatcher.close();
  }

  private async authenticate(ctx: RequestContext) {
    const opts: { headers?: Record<string, string> } = {};
    await this.kc.applyToHTTPSOptions(opts);
    for (const [key, value] of Object.entries(opts.headers ?? {})) ctx.setHeaderParam(key, String(value));
    ctx.setDispatcher(this.dispatcher);
  }

  /** Another API group's client, sharing this one's connection pool, credentials and timeout. */
  api<T>(apiClass: new (config: Configuration) => T): T {
    return new apiClass(this.config);
  }

  /** Runs one API call; a failure becomes a KubernetesError whose message starts with `action`. */
  async call<T>(action: string, request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (error) {
      throw toKubernetesError(action, error);
    }
  }

  private async deleteIgnoringNotFound(action: string, request: () => Promise<unknown>): Promise<void> {
    try {
      await request();
    } catch (error) {
      if (isNotFound(error)) return;
      throw toKubernetesError(action, error);
    }
  }

  serverVersion(): Promise<string> {
    return this.call('get server version', async () => (await this.version.getCode()).gitVersion);
  }

  async getNamespace(name: string): Promise<V1Namespace | undefined> {
    try {
      return await this.core.readNamespace({ name });
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw toKubernetesError(`get Namespace ${name}`, error);
    }
  }

  createNamespace(body: V1Namespace, dryRun?: DryRun): Promise<V1Namespace> {
    return this.call(`create Namespace ${body.metadata?.name}`, () => this.core.createNamespace({ body, dryRun: dryRunParam(dryRun) }));
  }

  createResourceQuota(body: V1ResourceQuota, dryRun?: DryRun): Promise<V1ResourceQuota> {
    const { namespace, name } = meta(body);
    return this.call(`create ResourceQuota ${namespace}/${name}`, () => this.core.createNamespacedResourceQuota({ namespace, body, dryRun: dryRunParam(dryRun) }));
  }

  createLimitRange(body: V1LimitRange, dryRun?: DryRun): Promise<V1LimitRange> {
    const { namespace, name } = meta(body);
    return this.call(`create LimitRange ${namespace}/${name}`, () => this.core.createNamespacedLimitRange({ namespace, body, dryRun: dryRunParam(dryRun) }));
  }

  createServiceAccount(body: V1ServiceAccount, dryRun?: DryRun): Promise<V1ServiceAccount> {
    const { namespace, name } = meta(body);
    return this.call(`create ServiceAccount ${namespace}/${name}`, () =>
      this.core.createNamespacedServiceAccount({ namespace, body, dryRun: dryRunParam(dryRun) }),
    );
  }

  createRoleBinding(body: V1RoleBinding, dryRun?: DryRun): Promise<V1RoleBinding> {
    const { namespace, name } = meta(body);
    return this.call(`create RoleBinding ${namespace}/${name}`, () =>
      this.rbac.createNamespacedRoleBinding({ namespace, body, dryRun: dryRunParam(dryRun) }),
    );
  }

  createSecret(body: V1Secret, dryRun?: DryRun): Promise<V1Secret> {
    const { namespace, name } = meta(body);
    return this.call(`create Secret ${namespace}/${name}`, () => this.core.createNamespacedSecret({ namespace, body, dryRun: dryRunParam(dryRun) }));
  }

  createLease(body: V1Lease, dryRun?: DryRun): Promise<V1Lease> {
    const { namespace, name } = meta(body);
    return this.call(`create Lease ${namespace}/${name}`, () =>
      this.coordination.createNamespacedLease({ namespace, body, dryRun: dryRunParam(dryRun) }),
    );
  }

  replaceLease(body: V1Lease): Promise<V1Lease> {
    const { namespace, name } = meta(body);
    return this.call(`renew Lease ${namespace}/${name}`, () => this.coordination.replaceNamespacedLease({ namespace, name, body }));
  }

  /** A TokenRequest for a service account; the token is returned, never logged. */
  async requestToken(namespace: string, serviceAccount: string, body: AuthenticationV1TokenRequest, dryRun?: DryRun) {
    const response = await this.call(`request a token for ServiceAccount ${namespace}/${serviceAccount}`, () =>
      this.core.createNamespacedServiceAccountToken({ name: serviceAccount, namespace, body, dryRun: dryRunParam(dryRun) }),
    );
    return { token: response.status?.token ?? '', expiresAt: new Date(response.status?.expirationTimestamp ?? Date.now()) };
  }

  deleteNamespaced(kind: LabelledKind, namespace: string, name: string): Promise<void> {
    const action = `delete ${kind} ${namespace}/${name}`;
    const params = { namespace, name, propagationPolicy: 'Background' };
    switch (kind) {
      case 'pods':
        return this.deleteIgnoringNotFound(action, () => this.core.deleteNamespacedPod({ ...params, gracePeriodSeconds: 0 }));
      case 'services':
        return this.deleteIgnoringNotFound(action, () => this.core.deleteNamespacedService(params));
      case 'configmaps':
        return this.deleteIgnoringNotFound(action, () => this.core.deleteNamespacedConfigMap(params));
      case 'persistentvolumeclaims':
        return this.deleteIgnoringNotFound(action, () => this.core.deleteNamespacedPersistentVolumeClaim(params));
      case 'leases':
        return this.deleteIgnoringNotFound(action, () => this.coordination.deleteNamespacedLease(params));
      case 'rolebindings':
        return this.deleteIgnoringNotFound(action, () => this.rbac.deleteNamespacedRoleBinding(params));
      case 'serviceaccounts':
        return this.deleteIgnoringNotFound(action, () => this.core.deleteNamespacedServiceAccount(params));
      case 'secrets':
        return this.deleteIgnoringNotFound(action, () => this.core.deleteNamespacedSecret(params));
    }
  }

  /** Deletes every object of a kind with the label selector in a namespace (one request). */
  deleteCollection(kind: DriverCreatedKind | typeof TOKEN_ANCHOR_KIND, namespace: string, labelSelector: string): Promise<void> {
    const action = `delete ${kind} with ${labelSelector} in ${namespace}`;
    const params = { namespace, labelSelector };
    switch (kind) {
      case 'pods':
        return this.deleteIgnoringNotFound(action, () => this.core.deleteCollectionNamespacedPod({ ...params, gracePeriodSeconds: 0 }));
      case 'services':
        return this.deleteIgnoringNotFound(action, () => this.core.deleteCollectionNamespacedService(params));
      case 'configmaps':
        return this.deleteIgnoringNotFound(action, () => this.core.deleteCollectionNamespacedConfigMap(params));
      case 'persistentvolumeclaims':
        return this.deleteIgnoringNotFound(action, () => this.core.deleteCollectionNamespacedPersistentVolumeClaim(params));
      case 'secrets':
        return this.deleteIgnoringNotFound(action, () => this.core.deleteCollectionNamespacedSecret(params));
    }
  }

  /** One page of objects of a kind with a label selector, in a namespace or (namespace undefined) everywhere. */
  async list(kind: ListableKind, namespace: string | undefined, labelSelector: string, limit = 500, continueToken?: string): Promise<ListPage<{ metadata?: V1ObjectMeta; spec?: unknown }>> {
    const action = `list ${kind} with ${labelSelector}${namespace ? ` in ${namespace}` : ''}`;
    const page = { labelSelector, limit, _continue: continueToken };
    const response = await this.call(action, (): Promise<{ items: { metadata?: V1ObjectMeta }[]; metadata?: { _continue?: string } }> => {
      if (namespace === undefined) {
        switch (kind) {
          case 'pods': return this.core.listPodForAllNamespaces(page);
          case 'services': return this.core.listServiceForAllNamespaces(page);
          case 'configmaps': return this.core.listConfigMapForAllNamespaces(page);
          case 'persistentvolumeclaims': return this.core.listPersistentVolumeClaimForAllNamespaces(page);
          case 'leases': return this.coordination.listLeaseForAllNamespaces(page);
          case 'rolebindings': return this.rbac.listRoleBindingForAllNamespaces(page);
          case 'serviceaccounts': return this.core.listServiceAccountForAllNamespaces(page);
        }
      }
      const inNamespace = { ...page, namespace };
      switch (kind) {
        case 'pods': return this.core.listNamespacedPod(inNamespace);
        case 'services': return this.core.listNamespacedService(inNamespace);
        case 'configmaps': return this.core.listNamespacedConfigMap(inNamespace);
        case 'persistentvolumeclaims': return this.core.listNamespacedPersistentVolumeClaim(inNamespace);
        case 'leases': return this.coordination.listNamespacedLease(inNamespace);
        case 'rolebindings': return this.rbac.listNamespacedRoleBinding(inNamespace);
        case 'serviceaccounts': return this.core.listNamespacedServiceAccount(inNamespace);
      }
    });
    return { items: response.items, continueToken: response.metadata?._continue || undefined };
  }

  /** The rules of a ClusterRole, or undefined when there is none of that name. */
  async getClusterRoleRules(name: string): Promise<V1PolicyRule[] | undefined> {
    try {
      return (await this.rbac.readClusterRole({ name })).rules ?? [];
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw toKubernetesError(`get ClusterRole ${name}`, error);
    }
  }

  /** Whether dssuser may do something (SelfSubjectAccessReview). */
  async canI(attributes: { verb: string; group?: string; resource: string; subresource?: string; namespace?: string; name?: string }): Promise<boolean> {
    const review = await this.call(`check access ${attributes.verb} ${attributes.resource}`, () =>
      this.authz.createSelfSubjectAccessReview({ body: { spec: { resourceAttributes: attributes } } }),
    );
    return review.status?.allowed === true;
  }

  /** Who the apiserver takes the caller for (SelfSubjectReview). */
  async whoAmI(): Promise<{ username: string; groups: string[] }> {
    const review = await this.call('review own identity', () => this.authn.createSelfSubjectReview({ body: {} }));
    return { username: review.status?.userInfo?.username ?? '', groups: review.status?.userInfo?.groups ?? [] };
  }
}

export function toKubernetesError(action: string, error: unknown): KubernetesError {
  if (error instanceof KubernetesError) return error;
  const failure = apiFailure(error);
  const status = failure.status ? ` (${failure.status}${failure.reason ? ` ${failure.reason}` : ''})` : '';
  return new KubernetesError(`${action} failed${status}: ${failure.message}`, failure.status);
}

function meta(object: { metadata?: V1ObjectMeta }): { namespace: string; name: string } {
  return { namespace: object.metadata?.namespace ?? '', name: object.metadata?.name ?? '' };
}

function dryRunParam(dryRun: DryRun): string | undefined {
  return dryRun === 'server' ? 'All' : undefined;
}

function tlsOptions(kc: KubeConfig) {
  const cluster = kc.getCurrentCluster()!;
  const user = kc.getCurrentUser();
  const fromFileOrData = (data?: string, file?: string) => (data ? Buffer.from(data, 'base64') : file ? readFileSync(file) : undefined);
  return {
    ca: fromFileOrData(cluster.caData, cluster.caFile),
    cert: fromFileOrData(user?.certData, user?.certFile),
    key: fromFileOrData(user?.keyData, user?.keyFile),
    rejectUnauthorized: cluster.skipTLSVerify !== true,
  };
}

function readFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read the cluster CA file ${path}: ${firstLine(error)}`);
  }
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0]!;
}
