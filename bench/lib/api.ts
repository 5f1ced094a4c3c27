// A minimal Kubernetes API client for the bench itself: raw JSON over one undici keep-alive pool. Used to
// measure the floor (one keep-alive round trip), to create orphaned jobs quickly as the administrator, and
// to count what is left. Deliberately not the product's client: the floor must not include its costs.
import { performance } from 'node:perf_hooks';
import { Agent, request } from 'undici';

export interface ApiResponse {
  status: number;
  body: unknown;
}

export class Api {
  readonly server: string;
  private readonly token: string;
  private readonly agent: Agent;

  constructor(server: string, caPem: string, token: string, connections = 64) {
    this.server = server;
    this.token = token;
    this.agent = new Agent({ connect: { ca: caPem, keepAlive: true }, keepAliveTimeout: 60_000, connections, pipelining: 1 });
  }

  async call(method: string, path: string, body?: unknown): Promise<ApiResponse> {
    const response = await request(`${this.server}${path}`, {
      method: method as 'GET',
      dispatcher: this.agent,
      headers: { authorization: `Bearer ${this.token}`, accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.body.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: response.statusCode, body: parsed };
  }

  /** A call that must succeed (2xx, or one of `alsoOk`); the error names the request and the server's message. */
  async must(method: string, path: string, body?: unknown, alsoOk: number[] = []): Promise<unknown> {
    const response = await this.call(method, path, body);
    if ((response.status < 200 || response.status > 299) && !alsoOk.includes(response.status)) {
      const message = (response.body as { message?: string } | undefined)?.message ?? String(response.body).slice(0, 300);
      throw new Error(`${method} ${path}: ${response.status} ${message}`);
    }
    return response.body;
  }

  /** Wall time of one request in ms (the connection is already open when the pool is warm). */
  async timedCall(method: string, path: string, body?: unknown): Promise<number> {
    const start = performance.now();
    const response = await this.call(method, path, body);
    const ms = performance.now() - start;
    if (response.status < 200 || response.status > 299) throw new Error(`${method} ${path}: ${response.status}`);
    return ms;
  }

  /** Every item of a list, following continue tokens. */
  async listAll(path: string, labelSelector: string): Promise<{ metadata?: { name?: string; namespace?: string; labels?: Record<string, string> } }[]> {
    const items: { metadata?: { name?: string; namespace?: string; labels?: Record<string, string> } }[] = [];
    let token = '';
    do {
      const query = new URLSearchParams({ labelSelector, limit: '500', ...(token ? { continue: token } : {}) });
      const page = (await this.must('GET', `${path}?${query}`)) as { items: typeof items; metadata?: { continue?: string } };
      items.push(...page.items);
      token = page.metadata?.continue ?? '';
    } while (token);
    return items;
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

/** Runs `fn` on every item with at most `limit` calls in flight; the first failure rejects. */
export async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (failure === undefined && next < items.length) {
      const index = next++;
      try {
        await fn(items[index]!, index);
      } catch (error) {
        failure ??= error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure !== undefined) throw failure;
}

/** Every kind a job or its driver can leave, as admin list paths (all namespaces). */
export const JOB_KIND_PATHS: Record<string, string> = {
  serviceaccounts: '/api/v1/serviceaccounts',
  roles: '/apis/rbac.authorization.k8s.io/v1/roles',
  rolebindings: '/apis/rbac.authorization.k8s.io/v1/rolebindings',
  leases: '/apis/coordination.k8s.io/v1/leases',
  secrets: '/api/v1/secrets',
  pods: '/api/v1/pods',
  services: '/api/v1/services',
  configmaps: '/api/v1/configmaps',
  persistentvolumeclaims: '/api/v1/persistentvolumeclaims',
};

/** Objects of every kind matching a label selector, as "kind/namespace/name". */
export async function labelledObjects(api: Api, labelSelector: string): Promise<string[]> {
  const found = await Promise.all(
    Object.entries(JOB_KIND_PATHS).map(async ([kind, path]) =>
      (await api.listAll(path, labelSelector)).map((o) => `${kind}/${o.metadata?.namespace}/${o.metadata?.name}`),
    ),
  );
  return found.flat();
}
