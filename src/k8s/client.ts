// The one thin client of the Kubernetes API: JSON over one HTTP/2 connection (transport.ts), one method per
// call the tool makes. Deletes treat NotFound as success; every failure becomes a KubernetesError
// with one line naming what failed (never a header, a body or a token).
//
// Why not @kubernetes/client-node's generated API here: loading it costs every job ~100 ms of start-up and
// ~100 ms of CPU (BENCHMARKS.md), for the 14 calls a job makes. client-node still parses what we do not
// (credential plugins, see kubeconfig.ts), and its types describe every object.
import type {
  AuthenticationV1TokenRequest,
  V1LimitRange,
  V1Namespace,
  V1ObjectMeta,
  V1PolicyRule,
  V1ResourceQuota,
  V1RoleBinding,
  V1Secret,
  V1ServiceAccount,
} from '@kubernetes/client-node';
import { firstLine, KubernetesError } from '../errors.ts';
import { API_PREFIX, KIND_NAME, type ClusterKind, type LabelledKind, type ListableKind, type NamespacedKind } from '../plan/kinds.ts';
import type { JobLease } from '../plan/types.ts';
import { loadCredentials, type ClusterEndpoint, type Credentials, type KubeconfigOptions } from './kubeconfig.ts';
import { rootCode, Transport, type Answer } from './transport.ts';

export type { ClusterEndpoint } from './kubeconfig.ts';

const PARTIAL_METADATA_LIST = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1';
export type DryRun = 'server' | undefined;

// doctor reads the driver's kinds from here until it imports them from the plan.
export { DRIVER_CREATED_KINDS } from '../plan/kinds.ts';
export type { ClusterKind } from '../plan/kinds.ts';

export interface ObjectWithMeta {
  metadata?: V1ObjectMeta;
}

export interface ListPage<T> {
  items: T[];
  continueToken?: string;
}

export interface KubeOptions extends KubeconfigOptions {
  timeoutSeconds: number;
}

/**
 * The calls the tool makes, one method each. Code that talks to the cluster takes the part it needs
 * (`Pick<KubeClient, ...>`), so that a unit test's fake implements just that part, without casts.
 */
export interface KubeClient {
  readonly endpoint: ClusterEndpoint;
  close(): Promise<void>;
  serverVersion(): Promise<string>;
  getNamespace(name: string): Promise<V1Namespace | undefined>;
  createNamespace(body: V1Namespace, dryRun?: DryRun): Promise<V1Namespace>;
  /** Every namespace with the label selector (one request). */
  listNamespaces(labelSelector: string): Promise<V1Namespace[]>;
  /** A JSON merge patch of a namespace's annotations (only these keys are sent). */
  annotateNamespace(name: string, annotations: Record<string, string>): Promise<V1Namespace>;
  /**
   * Deletes a namespace only if it is still the one read (uid and resourceVersion preconditions: any change since,
   * a job's last-used patch included, answers 409). NotFound is an error here: the caller says what it means.
   */
  deleteNamespace(name: string, preconditions: { uid: string; resourceVersion: string }, dryRun?: DryRun): Promise<void>;
  createResourceQuota(body: V1ResourceQuota, dryRun?: DryRun): Promise<V1ResourceQuota>;
  createLimitRange(body: V1LimitRange, dryRun?: DryRun): Promise<V1LimitRange>;
  createNetworkPolicy<T extends ObjectWithMeta>(body: T, dryRun?: DryRun): Promise<T>;
  createServiceAccount(body: V1ServiceAccount, dryRun?: DryRun): Promise<V1ServiceAccount>;
  createRoleBinding(body: V1RoleBinding, dryRun?: DryRun): Promise<V1RoleBinding>;
  createSecret(body: V1Secret, dryRun?: DryRun): Promise<V1Secret>;
  createLease<T extends ObjectWithMeta>(body: T, dryRun?: DryRun): Promise<T>;
  dryRunPod<T extends ObjectWithMeta>(body: T): Promise<T>;
  replaceLease<T extends ObjectWithMeta>(body: T): Promise<T>;
  requestToken(namespace: string, serviceAccount: string, body: AuthenticationV1TokenRequest, dryRun?: DryRun): Promise<IssuedToken>;
  deleteNamespaced(kind: LabelledKind, namespace: string, name: string): Promise<void>;
  deleteCollection(kind: LabelledKind, namespace: string, labelSelector: string): Promise<void>;
  list(
    kind: ListableKind,
    namespace: string | undefined,
    labelSelector: string,
    limit?: number,
    continueToken?: string,
    metadataOnly?: boolean,
  ): Promise<ListPage<ObjectWithMeta & { spec?: unknown }>>;
  getLease(namespace: string, name: string): Promise<JobLease | undefined>;
  getServiceAccount(namespace: string, name: string): Promise<V1ServiceAccount | undefined>;
  /** A JSON merge patch of a ServiceAccount's annotations (only these keys are sent). */
  annotateServiceAccount(namespace: string, name: string, annotations: Record<string, string>): Promise<V1ServiceAccount>;
  getClusterObject<T>(kind: ClusterKind, name: string): Promise<T | undefined>;
  createClusterObject<T extends ObjectWithMeta>(kind: ClusterKind, body: T): Promise<T>;
  replaceClusterObject<T extends ObjectWithMeta>(kind: ClusterKind, body: T): Promise<T>;
  getClusterRoleRules(name: string): Promise<V1PolicyRule[] | undefined>;
  canI(attributes: AccessAttributes): Promise<boolean>;
  whoAmI(): Promise<{ username: string; groups: string[] }>;
}

export interface IssuedToken {
  token: string;
  expiresAt: Date;
}

export interface AccessAttributes {
  verb: string;
  group?: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

type Query = Record<string, string | number | undefined>;

export class Kube implements KubeClient {
  readonly endpoint: ClusterEndpoint;
  private readonly credentials: Credentials;
  private readonly transport: Transport;
  private readonly timeoutMs: number;

  constructor(credentials: Credentials, timeoutSeconds: number) {
    this.credentials = credentials;
    this.endpoint = credentials.endpoint;
    this.timeoutMs = timeoutSeconds * 1000;
    this.transport = new Transport(credentials.endpoint.server, {
      ca: credentials.endpoint.caPem,
      cert: credentials.clientCert,
      key: credentials.clientKey,
      servername: credentials.tlsServerName,
      rejectUnauthorized: !credentials.endpoint.skipTlsVerify,
    });
  }

  /** dssuser's credentials: --kubeconfig/--context, else the profile's, else the usual loading rules. */
  static load(options: KubeOptions): Kube {
    return new Kube(loadCredentials(options), options.timeoutSeconds);
  }

  /** HTTP/2, unless the server does not offer it. */
  get protocol(): 'h2' | 'http/1.1' {
    return this.transport.protocol;
  }

  /** Opens the connection now, ahead of the first request (which reports any failure). */
  connect(): void {
    this.transport.connect();
  }

  close(): Promise<void> {
    return this.transport.close();
  }

  /**
   * One API request. `action` names it in errors ("create ServiceAccount ns/name"). Resolves with the parsed
   * JSON body of a 2xx answer; anything else rejects with a KubernetesError.
   */
  async request<T>(
    action: string,
    method: string,
    path: string,
    options: { query?: Query; body?: unknown; accept?: string; contentType?: string } = {},
  ): Promise<T> {
    const credentials = await this.credentials.headers().catch((error: Error) => {
      throw new KubernetesError(`${action} failed: cannot get credentials from the kubeconfig's plugin: ${firstLine(error)}`);
    });
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    const headers = {
      ...credentials,
      accept: options.accept ?? 'application/json',
      'user-agent': 'dss-spark-k8s',
      ...(payload === undefined ? {} : { 'content-type': options.contentType ?? 'application/json', 'content-length': Buffer.byteLength(payload) }),
    };
    let answer: Answer;
    try {
      answer = await this.transport.send(method, `${path}${queryString(options.query)}`, headers, payload, this.timeoutMs);
    } catch (error) {
      throw networkError(action, error as Error);
    }
    if (answer.status < 200 || answer.status >= 300) throw statusError(action, answer);
    try {
      return (answer.body ? JSON.parse(answer.body) : {}) as T;
    } catch {
      throw new KubernetesError(`${action} failed: the apiserver's answer is not JSON`);
    }
  }

  private async readOrUndefined<T>(action: string, path: string): Promise<T | undefined> {
    try {
      return await this.request<T>(action, 'GET', path);
    } catch (error) {
      if (error instanceof KubernetesError && error.status === 404) return undefined;
      throw error;
    }
  }

  private async deleteIgnoringNotFound(action: string, path: string, query: Query): Promise<void> {
    try {
      await this.request(action, 'DELETE', path, { query });
    } catch (error) {
      if (error instanceof KubernetesError && error.status === 404) return;
      throw error;
    }
  }

  private create<T extends ObjectWithMeta>(kind: NamespacedKind, body: T, dryRun?: DryRun): Promise<T> {
    const { namespace, name } = meta(body);
    return this.request(`create ${KIND_NAME[kind]} ${namespace}/${name}`, 'POST', collectionPath(kind, namespace), {
      body,
      query: { dryRun: dryRunParam(dryRun) },
    });
  }

  async serverVersion(): Promise<string> {
    return (await this.request<{ gitVersion: string }>('get server version', 'GET', '/version')).gitVersion;
  }

  getNamespace(name: string): Promise<V1Namespace | undefined> {
    return this.readOrUndefined(`get Namespace ${name}`, clusterObjectPath('namespaces', name));
  }

  createNamespace(body: V1Namespace, dryRun?: DryRun): Promise<V1Namespace> {
    return this.request(`create Namespace ${body.metadata?.name}`, 'POST', clusterObjectPath('namespaces'), { body, query: { dryRun: dryRunParam(dryRun) } });
  }

  async listNamespaces(labelSelector: string): Promise<V1Namespace[]> {
    const list = await this.request<{ items?: V1Namespace[] }>(`list namespaces with ${labelSelector}`, 'GET', clusterObjectPath('namespaces'), {
      query: { labelSelector },
    });
    return list.items ?? [];
  }

  annotateNamespace(name: string, annotations: Record<string, string>): Promise<V1Namespace> {
    return this.request(`annotate Namespace ${name}`, 'PATCH', clusterObjectPath('namespaces', name), {
      body: { metadata: { annotations } },
      contentType: 'application/merge-patch+json',
    });
  }

  async deleteNamespace(name: string, preconditions: { uid: string; resourceVersion: string }, dryRun?: DryRun): Promise<void> {
    await this.request(`delete Namespace ${name}`, 'DELETE', clusterObjectPath('namespaces', name), {
      body: { apiVersion: 'v1', kind: 'DeleteOptions', propagationPolicy: 'Background', preconditions },
      query: { dryRun: dryRunParam(dryRun) },
    });
  }

  createResourceQuota(body: V1ResourceQuota, dryRun?: DryRun): Promise<V1ResourceQuota> {
    return this.create('resourcequotas', body, dryRun);
  }

  createLimitRange(body: V1LimitRange, dryRun?: DryRun): Promise<V1LimitRange> {
    return this.create('limitranges', body, dryRun);
  }

  createNetworkPolicy<T extends ObjectWithMeta>(body: T, dryRun?: DryRun): Promise<T> {
    return this.create('networkpolicies', body, dryRun);
  }

  createServiceAccount(body: V1ServiceAccount, dryRun?: DryRun): Promise<V1ServiceAccount> {
    return this.create('serviceaccounts', body, dryRun);
  }

  createRoleBinding(body: V1RoleBinding, dryRun?: DryRun): Promise<V1RoleBinding> {
    return this.create('rolebindings', body, dryRun);
  }

  createSecret(body: V1Secret, dryRun?: DryRun): Promise<V1Secret> {
    return this.create('secrets', body, dryRun);
  }

  createLease<T extends ObjectWithMeta>(body: T, dryRun?: DryRun): Promise<T> {
    return this.create('leases', body, dryRun);
  }

  /** A server-side dry run of a pod (nothing is created): what the isolation check asks with a job's token. */
  dryRunPod<T extends ObjectWithMeta>(body: T): Promise<T> {
    const { namespace } = meta(body);
    return this.request(`dry-run a pod in ${namespace}`, 'POST', collectionPath('pods', namespace), { body, query: { dryRun: 'All' } });
  }

  replaceLease<T extends ObjectWithMeta>(body: T): Promise<T> {
    const { namespace, name } = meta(body);
    return this.request(`renew Lease ${namespace}/${name}`, 'PUT', objectPath('leases', namespace, name), { body });
  }

  annotateServiceAccount(namespace: string, name: string, annotations: Record<string, string>): Promise<V1ServiceAccount> {
    return this.request(`annotate ServiceAccount ${namespace}/${name}`, 'PATCH', objectPath('serviceaccounts', namespace, name), {
      body: { metadata: { annotations } },
      contentType: 'application/merge-patch+json',
    });
  }

  /** A TokenRequest for a service account; the token is returned, never logged. */
  async requestToken(namespace: string, serviceAccount: string, body: AuthenticationV1TokenRequest, dryRun?: DryRun): Promise<IssuedToken> {
    const response = await this.request<AuthenticationV1TokenRequest>(
      `request a token for ServiceAccount ${namespace}/${serviceAccount}`,
      'POST',
      `${objectPath('serviceaccounts', namespace, serviceAccount)}/token`,
      { body, query: { dryRun: dryRunParam(dryRun) } },
    );
    return { token: response.status?.token ?? '', expiresAt: new Date(response.status?.expirationTimestamp ?? Date.now()) };
  }

  deleteNamespaced(kind: LabelledKind, namespace: string, name: string): Promise<void> {
    return this.deleteIgnoringNotFound(`delete ${kind} ${namespace}/${name}`, objectPath(kind, namespace, name), {
      propagationPolicy: 'Background',
      gracePeriodSeconds: kind === 'pods' ? 0 : undefined,
    });
  }

  /** Deletes every object of a kind with the label selector in a namespace (one request). */
  deleteCollection(kind: LabelledKind, namespace: string, labelSelector: string): Promise<void> {
    return this.deleteIgnoringNotFound(`delete ${kind} with ${labelSelector} in ${namespace}`, collectionPath(kind, namespace), {
      labelSelector,
      propagationPolicy: 'Background',
      gracePeriodSeconds: kind === 'pods' ? 0 : undefined,
    });
  }

  /**
   * One page of objects of a kind with a label selector, in a namespace or (namespace undefined) everywhere.
   * `metadataOnly` asks for a PartialObjectMetadataList: names, labels and annotations, never a spec or data
   * (an object a job made large costs the listing nothing).
   */
  async list(
    kind: ListableKind,
    namespace: string | undefined,
    labelSelector: string,
    limit = 500,
    continueToken?: string,
    metadataOnly = false,
  ): Promise<ListPage<ObjectWithMeta & { spec?: unknown }>> {
    const page = await this.request<{ items?: (ObjectWithMeta & { spec?: unknown })[]; metadata?: { continue?: string } }>(
      `list ${kind} with ${labelSelector}${namespace ? ` in ${namespace}` : ''}`,
      'GET',
      namespace === undefined ? `${API_PREFIX[kind]}/${kind}` : collectionPath(kind, namespace),
      { query: { labelSelector, limit, continue: continueToken }, ...(metadataOnly ? { accept: PARTIAL_METADATA_LIST } : {}) },
    );
    return { items: page.items ?? [], continueToken: page.metadata?.continue || undefined };
  }

  /** A Lease as stored (with its resourceVersion), or undefined when it is gone. */
  getLease(namespace: string, name: string): Promise<JobLease | undefined> {
    return this.readOrUndefined(`get Lease ${namespace}/${name}`, objectPath('leases', namespace, name));
  }

  /** A ServiceAccount, or undefined when it is gone. */
  getServiceAccount(namespace: string, name: string): Promise<V1ServiceAccount | undefined> {
    return this.readOrUndefined(`get ServiceAccount ${namespace}/${name}`, objectPath('serviceaccounts', namespace, name));
  }

  /** A cluster-scoped object, or undefined when there is none of that name. */
  getClusterObject<T>(kind: ClusterKind, name: string): Promise<T | undefined> {
    return this.readOrUndefined(`get ${KIND_NAME[kind]} ${name}`, clusterObjectPath(kind, name));
  }

  createClusterObject<T extends ObjectWithMeta>(kind: ClusterKind, body: T): Promise<T> {
    return this.request(`create ${KIND_NAME[kind]} ${body.metadata?.name}`, 'POST', clusterObjectPath(kind), { body });
  }

  replaceClusterObject<T extends ObjectWithMeta>(kind: ClusterKind, body: T): Promise<T> {
    const name = body.metadata?.name ?? '';
    return this.request(`replace ${KIND_NAME[kind]} ${name}`, 'PUT', clusterObjectPath(kind, name), { body });
  }

  /** The rules of a ClusterRole, or undefined when there is none of that name. */
  async getClusterRoleRules(name: string): Promise<V1PolicyRule[] | undefined> {
    const role = await this.getClusterObject<{ rules?: V1PolicyRule[] }>('clusterroles', name);
    return role && (role.rules ?? []);
  }

  /** Whether dssuser may do something (SelfSubjectAccessReview). */
  async canI(attributes: AccessAttributes): Promise<boolean> {
    const review = await this.request<{ status?: { allowed?: boolean } }>(
      `check access ${attributes.verb} ${attributes.resource}`,
      'POST',
      '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews',
      { body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: { resourceAttributes: attributes } } },
    );
    return review.status?.allowed === true;
  }

  /** Who the apiserver takes the caller for (SelfSubjectReview). */
  async whoAmI(): Promise<{ username: string; groups: string[] }> {
    const review = await this.request<{ status?: { userInfo?: { username?: string; groups?: string[] } } }>(
      'review own identity',
      'POST',
      '/apis/authentication.k8s.io/v1/selfsubjectreviews',
      { body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } },
    );
    return { username: review.status?.userInfo?.username ?? '', groups: review.status?.userInfo?.groups ?? [] };
  }
}

function collectionPath(kind: NamespacedKind, namespace: string): string {
  return `${API_PREFIX[kind]}/namespaces/${encodeURIComponent(namespace)}/${kind}`;
}

function objectPath(kind: NamespacedKind, namespace: string, name: string): string {
  return `${collectionPath(kind, namespace)}/${encodeURIComponent(name)}`;
}

function clusterObjectPath(kind: ClusterKind, name?: string): string {
  return `${API_PREFIX[kind]}/${kind}${name === undefined ? '' : `/${encodeURIComponent(name)}`}`;
}

function queryString(query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined && value !== '') params.set(key, String(value));
  const text = params.toString();
  return text ? `?${text}` : '';
}

function meta(object: ObjectWithMeta): { namespace: string; name: string } {
  return { namespace: object.metadata?.namespace ?? '', name: object.metadata?.name ?? '' };
}

function dryRunParam(dryRun: DryRun): string | undefined {
  return dryRun === 'server' ? 'All' : undefined;
}

/** The apiserver's Status message, in one line; never the raw body of something that is not a Status. */
function statusError(action: string, { status, body: text, retryAfter }: Answer): KubernetesError {
  let body: { kind?: string; message?: string; reason?: string } | undefined;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const message = body?.kind === 'Status' && typeof body.message === 'string' ? oneLine(body.message) : `HTTP ${status}`;
  const reason = body?.kind === 'Status' && typeof body.reason === 'string' && body.reason ? ` ${body.reason}` : '';
  const seconds = retryAfter === undefined ? undefined : Number(retryAfter);
  const retryAfterSeconds = seconds !== undefined && Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined;
  return new KubernetesError(`${action} failed (${status}${reason}): ${message}`, status, retryAfterSeconds);
}

function networkError(action: string, error: Error): KubernetesError {
  if (error.name === 'TimeoutError' || error.name === 'AbortError') return new KubernetesError(`${action} failed: the request timed out`);
  return new KubernetesError(`${action} failed: ${oneLine(rootCode(error) ?? error.message)}`);
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
