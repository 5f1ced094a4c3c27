// dssuser's credentials, from a kubeconfig as kubectl finds it: --kubeconfig, else every file of $KUBECONFIG
// (the first definition of a name wins), else ~/.kube/config, else the in-cluster service account.
// Parsed here rather than by @kubernetes/client-node, which every job would pay ~100 ms to load; client-node is
// loaded only for what it alone does well: credential plugins (`exec`, `auth-provider`), at the first request.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { load as parseYaml } from 'js-yaml';
import { ConfigError, firstLine } from '../errors.ts';

/** Where the cluster is and how to trust it: what a job's kubeconfig needs, without dssuser's credentials. */
export interface ClusterEndpoint {
  server: string;
  /** PEM of the CA that signs the apiserver's certificate, when the kubeconfig names one. */
  caPem?: string;
  /** The name the server's certificate is checked against, when it is not the server's host. */
  tlsServerName?: string;
  skipTlsVerify: boolean;
}

export interface Credentials {
  endpoint: ClusterEndpoint;
  /** The same as endpoint.tlsServerName. */
  tlsServerName?: string;
  clientCert?: Buffer;
  clientKey?: Buffer;
  /** The Authorization header (and any other header) of each request; a plugin's token can change over time. */
  headers(): Promise<Record<string, string>>;
}

export interface KubeconfigOptions {
  kubeconfig?: string;
  context?: string;
}

type Entry = Record<string, unknown>;
interface Named {
  name: string;
  [key: string]: unknown;
}
interface Loaded {
  clusters: Map<string, { entry: Entry; dir: string }>;
  users: Map<string, { entry: Entry; dir: string }>;
  contexts: Map<string, Entry>;
  currentContext?: string;
  source: string;
}

const IN_CLUSTER_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export function loadCredentials(options: KubeconfigOptions, env: NodeJS.ProcessEnv = process.env, inClusterDir = IN_CLUSTER_DIR): Credentials {
  const files = options.kubeconfig ? [options.kubeconfig] : (env.KUBECONFIG ?? '').split(delimiter).filter(Boolean);
  if (files.length === 0) {
    const home = join(env.HOME ?? homedir(), '.kube', 'config');
    if (existsSync(home)) files.push(home);
    else if (env.KUBERNETES_SERVICE_HOST && !options.context) return inCluster(env, inClusterDir);
    else throw new ConfigError(`no kubeconfig: ${home} does not exist and KUBECONFIG is not set; pass --kubeconfig or set kubeconfig in the profile`);
  }
  const loaded = loadFiles(files);
  const contextName = options.context ?? loaded.currentContext;
  if (!contextName) throw new ConfigError(`the kubeconfig ${loaded.source} has no current-context; set it or pass --context`);
  const context = loaded.contexts.get(contextName);
  if (!context) {
    throw new ConfigError(
      `context "${contextName}" is not in the kubeconfig ${loaded.source}; pick one of: ${[...loaded.contexts.keys()].join(', ') || '(none)'}`,
    );
  }
  const cluster = loaded.clusters.get(String(context.cluster ?? ''));
  if (!cluster || typeof cluster.entry.server !== 'string') {
    throw new ConfigError(`the kubeconfig ${loaded.source} has no cluster "${String(context.cluster ?? '')}" with a server for context "${contextName}"`);
  }
  const user = loaded.users.get(String(context.user ?? '')) ?? { entry: {}, dir: cluster.dir };
  return credentials(cluster.entry, cluster.dir, user.entry, user.dir, `${loaded.source}, context ${contextName}`);
}

function loadFiles(files: string[]): Loaded {
  const loaded: Loaded = { clusters: new Map(), users: new Map(), contexts: new Map(), source: files.join(delimiter) };
  for (const file of files) {
    let document: unknown;
    try {
      document = parseYaml(readFileSync(file, 'utf8'));
    } catch (error) {
      // A missing file in a $KUBECONFIG list is skipped, as kubectl does; a named one must exist.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' && files.length > 1) continue;
      throw new ConfigError(`cannot load the kubeconfig ${file}: ${firstLine(error)}`);
    }
    const config = (document ?? {}) as Entry;
    if (typeof config !== 'object' || Array.isArray(config)) throw new ConfigError(`the kubeconfig ${file} is not a YAML mapping`);
    const dir = dirname(file);
    // The first file to define a name or the current context wins (kubectl's merge rule).
    for (const item of namedList(config.clusters, file, 'clusters')) {
      if (!loaded.clusters.has(item.name)) loaded.clusters.set(item.name, { entry: (item.cluster ?? {}) as Entry, dir });
    }
    for (const item of namedList(config.users, file, 'users')) {
      if (!loaded.users.has(item.name)) loaded.users.set(item.name, { entry: (item.user ?? {}) as Entry, dir });
    }
    for (const item of namedList(config.contexts, file, 'contexts')) {
      if (!loaded.contexts.has(item.name)) loaded.contexts.set(item.name, (item.context ?? {}) as Entry);
    }
    if (!loaded.currentContext && typeof config['current-context'] === 'string' && config['current-context']) loaded.currentContext = config['current-context'];
  }
  return loaded;
}

function namedList(value: unknown, file: string, key: string): Named[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'object' || item === null || typeof item.name !== 'string')) {
    throw new ConfigError(`the kubeconfig ${file} is malformed: ${key} must be a list of entries with a name`);
  }
  return value as Named[];
}

// Impersonation would make every request of ours another identity's, which the job's rights are not checked against.
const IMPERSONATION = ['as', 'as-uid', 'as-groups', 'as-user-extra'];

function credentials(cluster: Entry, clusterDir: string, user: Entry, userDir: string, source: string): Credentials {
  if (cluster['proxy-url'])
    throw new ConfigError(`the kubeconfig ${source} uses proxy-url, which dss-spark-k8s does not support; reach the apiserver directly`);
  const impersonation = IMPERSONATION.filter((key) => isSet(user[key]));
  if (impersonation.length > 0) {
    throw new ConfigError(
      `the kubeconfig ${source} impersonates (${impersonation.join(', ')}), which dss-spark-k8s does not support; give dssuser's own credentials`,
    );
  }
  const ca = bytes(cluster, 'certificate-authority', clusterDir, source);
  const tlsServerName = typeof cluster['tls-server-name'] === 'string' && cluster['tls-server-name'] ? cluster['tls-server-name'] : undefined;
  const endpoint: ClusterEndpoint = {
    server: String(cluster.server).replace(/\/+$/, ''),
    ...(ca ? { caPem: ca.toString() } : {}),
    ...(tlsServerName ? { tlsServerName } : {}),
    skipTlsVerify: cluster['insecure-skip-tls-verify'] === true,
  };
  const base = {
    endpoint,
    ...(tlsServerName ? { tlsServerName } : {}),
    clientCert: bytes(user, 'client-certificate', userDir, source),
    clientKey: bytes(user, 'client-key', userDir, source),
  };
  if (user.exec || user['auth-provider']) return { ...base, headers: pluginHeaders(cluster, clusterDir, user, userDir, source) };
  const token = typeof user.token === 'string' && user.token ? user.token : undefined;
  const tokenFile = typeof user.tokenFile === 'string' && user.tokenFile ? resolvePath(user.tokenFile, userDir) : undefined;
  if (token) return { ...base, headers: async () => ({ authorization: `Bearer ${token}` }) };
  if (tokenFile) return { ...base, headers: async () => ({ authorization: `Bearer ${readSecretFile(tokenFile, source)}` }) };
  return { ...base, headers: async () => ({}) };
}

/** The in-cluster service account, as a pod sees it (the token file is re-read: the kubelet rotates it). */
function inCluster(env: NodeJS.ProcessEnv, dir: string): Credentials {
  const host = env.KUBERNETES_SERVICE_HOST!;
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  const caFile = join(dir, 'ca.crt');
  const tokenFile = join(dir, 'token');
  return {
    endpoint: {
      server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
      caPem: readText(caFile, 'the in-cluster configuration'),
      skipTlsVerify: false,
    },
    headers: async () => ({ authorization: `Bearer ${readSecretFile(tokenFile, 'the in-cluster configuration')}` }),
  };
}

/**
 * Credential plugins through @kubernetes/client-node (loaded on first use only), given a one-context kubeconfig
 * with absolute paths. It runs the plugin and caches its credential until it expires. Only a token is taken:
 * a client certificate the plugin returns would be needed at the TLS handshake, which happened before.
 */
function pluginHeaders(cluster: Entry, clusterDir: string, user: Entry, userDir: string, source: string): () => Promise<Record<string, string>> {
  const absolute = (entry: Entry, dir: string, keys: string[]) =>
    Object.fromEntries(Object.entries(entry).map(([key, value]) => [key, keys.includes(key) && typeof value === 'string' ? resolvePath(value, dir) : value]));
  // The kubeconfig's own client certificate is ours to load (Credentials.clientCert): any certificate that
  // client-node then reports comes from the plugin.
  const rest = Object.fromEntries(Object.entries(user).filter(([key]) => !/^client-(certificate|key)(-data)?$/.test(key)));
  const exec = user.exec as Entry | undefined;
  const single = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: absolute(cluster, clusterDir, ['certificate-authority']) }],
    users: [
      { name: 'u', user: { ...absolute(rest, userDir, ['tokenFile']), ...(exec ? { exec: { ...exec, command: execCommand(exec.command, userDir) } } : {}) } },
    ],
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
    'current-context': 'x',
  };
  let client: Promise<{ applyToHTTPSOptions(options: { headers?: Record<string, unknown>; cert?: unknown; key?: unknown }): Promise<void> }> | undefined;
  return async () => {
    client ??= import('@kubernetes/client-node').then(({ KubeConfig }) => {
      const kc = new KubeConfig();
      kc.loadFromString(JSON.stringify(single));
      return kc;
    });
    const options: { headers?: Record<string, unknown>; cert?: unknown; key?: unknown } = {};
    await (await client).applyToHTTPSOptions(options);
    if (options.cert || options.key) {
      throw new ConfigError(
        `the credential plugin of the kubeconfig ${source} returns a client certificate, which dss-spark-k8s does not support; use a plugin that returns a token`,
      );
    }
    return Object.fromEntries(Object.entries(options.headers ?? {}).map(([key, value]) => [key.toLowerCase(), String(value)]));
  };
}

/** As kubectl: a command with a path separator is relative to its kubeconfig's directory; a bare name is looked up on PATH. */
function execCommand(command: unknown, dir: string): unknown {
  if (typeof command !== 'string' || !command.includes('/') || isAbsolute(command)) return command;
  return join(dir, command);
}

/** `<key>-data` (base64) or the file `<key>` (relative to the kubeconfig's directory). */
function bytes(entry: Entry, key: string, dir: string, source: string): Buffer | undefined {
  const data = entry[`${key}-data`];
  if (typeof data === 'string' && data) return Buffer.from(data, 'base64');
  const file = entry[key];
  if (typeof file !== 'string' || !file) return undefined;
  try {
    return readFileSync(resolvePath(file, dir));
  } catch (error) {
    throw new ConfigError(`cannot read ${key} ${file} of the kubeconfig ${source}: ${firstLine(error)}`);
  }
}

function readSecretFile(path: string, source: string): string {
  return readText(path, source).trim();
}

function readText(path: string, source: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read ${path} of ${source}: ${firstLine(error)}`);
  }
}

function resolvePath(path: string, dir: string): string {
  if (path.startsWith('~/')) return join(homedir(), path.slice(2));
  return isAbsolute(path) ? path : join(dir, path);
}

function isSet(value: unknown): boolean {
  if (value === undefined || value === null || value === '') return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object') return Object.keys(value).length > 0;
  return true;
}
