// dssuser's kubeconfig as kubectl reads it: files, $KUBECONFIG merging, contexts, paths, tokens, in-cluster.
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.ts';
import { renderKubeconfig } from '../../src/exec/job-dir.ts';
import { loadCredentials } from '../../src/k8s/kubeconfig.ts';

const dir = mkdtempSync(join(tmpdir(), 'kubeconfig-unit-'));
const CA = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

function file(name: string, content: unknown): string {
  const path = join(dir, name);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

function config(options: {
  current?: string;
  contexts?: [string, string, string][];
  clusters?: [string, Record<string, unknown>][];
  users?: [string, Record<string, unknown>][];
}) {
  return {
    apiVersion: 'v1',
    kind: 'Config',
    ...(options.current ? { 'current-context': options.current } : {}),
    clusters: (options.clusters ?? []).map(([name, cluster]) => ({ name, cluster })),
    users: (options.users ?? []).map(([name, user]) => ({ name, user })),
    contexts: (options.contexts ?? []).map(([name, cluster, user]) => ({ name, context: { cluster, user } })),
  };
}

const simple = config({
  current: 'main',
  contexts: [
    ['main', 'k8s', 'dss'],
    ['other', 'k8s', 'admin'],
  ],
  clusters: [['k8s', { server: 'https://10.0.0.1:6443/', 'certificate-authority-data': Buffer.from(CA).toString('base64') }]],
  users: [
    ['dss', { token: 'dss-token' }],
    ['admin', { token: 'admin-token' }],
  ],
});

describe('loadCredentials', () => {
  it('takes the current context: server, CA and bearer token', async () => {
    const credentials = loadCredentials({ kubeconfig: file('simple.yaml', simple) }, {});
    expect(credentials.endpoint).toEqual({ server: 'https://10.0.0.1:6443', caPem: CA, skipTlsVerify: false });
    expect(await credentials.headers()).toEqual({ authorization: 'Bearer dss-token' });
  });

  it('takes another context when asked, and names the known ones when it does not exist', async () => {
    const path = file('simple.yaml', simple);
    expect(await loadCredentials({ kubeconfig: path, context: 'other' }, {}).headers()).toEqual({ authorization: 'Bearer admin-token' });
    expect(() => loadCredentials({ kubeconfig: path, context: 'nope' }, {})).toThrow(
      new ConfigError(`context "nope" is not in the kubeconfig ${path}; pick one of: main, other`),
    );
  });

  it('reads files relative to the kubeconfig, and the token file at every request (it may be rotated)', async () => {
    file('rel/ca.crt', CA);
    const tokenFile = file('rel/token', 'first\n');
    const path = file(
      'rel/config',
      config({
        current: 'x',
        contexts: [['x', 'c', 'u']],
        clusters: [['c', { server: 'https://k', 'certificate-authority': 'ca.crt' }]],
        users: [['u', { tokenFile: 'token' }]],
      }),
    );
    const credentials = loadCredentials({ kubeconfig: path }, {});
    expect(credentials.endpoint.caPem).toBe(CA);
    expect(await credentials.headers()).toEqual({ authorization: 'Bearer first' });
    writeFileSync(tokenFile, 'second');
    expect(await credentials.headers()).toEqual({ authorization: 'Bearer second' });
  });

  it('loads client certificates and the TLS server name, and honours insecure-skip-tls-verify', () => {
    const path = file(
      'certs.yaml',
      config({
        current: 'x',
        contexts: [['x', 'c', 'u']],
        clusters: [['c', { server: 'https://k', 'insecure-skip-tls-verify': true, 'tls-server-name': 'api.internal' }]],
        users: [['u', { 'client-certificate-data': Buffer.from('CERT').toString('base64'), 'client-key-data': Buffer.from('KEY').toString('base64') }]],
      }),
    );
    const credentials = loadCredentials({ kubeconfig: path }, {});
    expect(credentials.endpoint.skipTlsVerify).toBe(true);
    expect(credentials.tlsServerName).toBe('api.internal');
    expect(credentials.endpoint.tlsServerName).toBe('api.internal');
    expect(credentials.clientCert?.toString()).toBe('CERT');
    expect(credentials.clientKey?.toString()).toBe('KEY');
  });

  it('merges the files of $KUBECONFIG as kubectl does: the first definition of a name and of current-context wins', async () => {
    const first = file('merge/a', config({ users: [['dss', { token: 'from-a' }]] }));
    const second = file(
      'merge/b',
      config({ current: 'main', contexts: [['main', 'k8s', 'dss']], clusters: [['k8s', { server: 'https://b' }]], users: [['dss', { token: 'from-b' }]] }),
    );
    const credentials = loadCredentials({}, { KUBECONFIG: `${first}:${join(dir, 'merge/missing')}:${second}` });
    expect(credentials.endpoint.server).toBe('https://b');
    expect(await credentials.headers()).toEqual({ authorization: 'Bearer from-a' });
  });

  it('falls back to ~/.kube/config, then to the in-cluster service account', async () => {
    const home = join(dir, 'home');
    file('home/.kube/config', simple);
    expect(loadCredentials({}, { HOME: home }).endpoint.server).toBe('https://10.0.0.1:6443');
    const serviceAccount = join(dir, 'sa');
    file('sa/ca.crt', CA);
    file('sa/token', 'pod-token\n');
    const pod = loadCredentials({}, { HOME: join(dir, 'nohome'), KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, serviceAccount);
    expect(pod.endpoint).toEqual({ server: 'https://[fd00::1]:443', caPem: CA, skipTlsVerify: false });
    expect(await pod.headers()).toEqual({ authorization: 'Bearer pod-token' });
    expect(() => loadCredentials({}, { HOME: join(dir, 'nohome') })).toThrow(
      /no kubeconfig: .*nohome\/\.kube\/config does not exist and KUBECONFIG is not set; pass --kubeconfig/,
    );
  });

  it('fails with one line naming the file on unreadable, malformed or incomplete kubeconfigs', () => {
    const missing = join(dir, 'absent.yaml');
    expect(() => loadCredentials({ kubeconfig: missing }, {})).toThrow(new RegExp(`^cannot load the kubeconfig ${missing}: ENOENT`));
    expect(() => loadCredentials({ kubeconfig: file('bad.yaml', 'clusters: [oops') }, {})).toThrow(/^cannot load the kubeconfig .*bad\.yaml: /);
    expect(() => loadCredentials({ kubeconfig: file('list.yaml', { clusters: 'nope' }) }, {})).toThrow(
      /is malformed: clusters must be a list of entries with a name/,
    );
    expect(() => loadCredentials({ kubeconfig: file('nocurrent.yaml', config({})) }, {})).toThrow(/has no current-context; set it or pass --context/);
    const noServer = file('noserver.yaml', config({ current: 'x', contexts: [['x', 'c', 'u']], clusters: [['c', {}]] }));
    expect(() => loadCredentials({ kubeconfig: noServer }, {})).toThrow(`the kubeconfig ${noServer} has no cluster "c" with a server for context "x"`);
    const proxy = file(
      'proxy.yaml',
      config({ current: 'x', contexts: [['x', 'c', 'u']], clusters: [['c', { server: 'https://k', 'proxy-url': 'http://proxy:3128' }]] }),
    );
    expect(() => loadCredentials({ kubeconfig: proxy }, {})).toThrow(/uses proxy-url, which dss-spark-k8s does not support/);
    for (const error of [() => loadCredentials({ kubeconfig: missing }, {}), () => loadCredentials({ kubeconfig: noServer }, {})]) {
      expect(error).toThrow(ConfigError);
    }
  });

  it('never puts a token in an error message', () => {
    const path = file(
      'secret-ca.yaml',
      config({
        current: 'x',
        contexts: [['x', 'c', 'u']],
        clusters: [['c', { server: 'https://k', 'certificate-authority': 'missing-ca' }]],
        users: [['u', { token: 'super-secret-token' }]],
      }),
    );
    let message = '';
    try {
      loadCredentials({ kubeconfig: path }, {});
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/^cannot read certificate-authority missing-ca of the kubeconfig/);
    expect(message).not.toContain('super-secret-token');
  });

  it("writes dssuser's tls-server-name into the job kubeconfig, which reads back as the same endpoint", () => {
    const path = file(
      'tls-name.yaml',
      config({
        current: 'x',
        contexts: [['x', 'c', 'u']],
        clusters: [
          ['c', { server: 'https://10.0.0.1:6443', 'certificate-authority-data': Buffer.from(CA).toString('base64'), 'tls-server-name': 'api.internal' }],
        ],
        users: [['u', { token: 'dss-token' }]],
      }),
    );
    const { endpoint } = loadCredentials({ kubeconfig: path }, {});
    const job = JSON.parse(renderKubeconfig(endpoint, 'dss-ns-alice', 'job-token'));
    expect(job.clusters[0].cluster['tls-server-name']).toBe('api.internal');
    expect(loadCredentials({ kubeconfig: file('job.kubeconfig', job) }, {}).endpoint).toEqual(endpoint);
    const plain = loadCredentials({ kubeconfig: file('simple.yaml', simple) }, {}).endpoint;
    expect(JSON.parse(renderKubeconfig(plain, 'ns', 't')).clusters[0].cluster).not.toHaveProperty('tls-server-name');
  });

  it.each([
    ['as', 'admin'],
    ['as-uid', '1234'],
    ['as-groups', ['system:masters']],
    ['as-user-extra', { scopes: ['all'] }],
  ])('refuses impersonation (%s) with one line, as proxy-url', (key, value) => {
    const path = file(
      `as-${key}.yaml`,
      config({ current: 'x', contexts: [['x', 'c', 'u']], clusters: [['c', { server: 'https://k' }]], users: [['u', { token: 't', [key]: value }]] }),
    );
    expect(() => loadCredentials({ kubeconfig: path }, {})).toThrow(
      new ConfigError(`the kubeconfig ${path}, context x impersonates (${key}), which dss-spark-k8s does not support; give dssuser's own credentials`),
    );
  });

  it('takes empty impersonation fields as unset, as kubectl does', async () => {
    const path = file(
      'as-empty.yaml',
      config({
        current: 'x',
        contexts: [['x', 'c', 'u']],
        clusters: [['c', { server: 'https://k' }]],
        users: [['u', { token: 't', as: '', 'as-groups': [], 'as-user-extra': {} }]],
      }),
    );
    expect(await loadCredentials({ kubeconfig: path }, {}).headers()).toEqual({ authorization: 'Bearer t' });
  });
});

describe('credential plugins (exec)', () => {
  const credential = (status: Record<string, unknown>) => JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status });
  function plugin(name: string, status: Record<string, unknown>): string {
    const path = file(name, `#!/bin/sh\necho '${credential(status)}'\n`);
    chmodSync(path, 0o755);
    return path;
  }
  const execUser = (command: string, extra: Record<string, unknown> = {}) => ({
    exec: { apiVersion: 'client.authentication.k8s.io/v1', command, interactiveMode: 'Never', ...extra },
  });
  const execConfig = (name: string, user: Record<string, unknown>) =>
    file(name, config({ current: 'x', contexts: [['x', 'c', 'u']], clusters: [['c', { server: 'https://k' }]], users: [['u', user]] }));

  it("runs a command with a path separator relative to the kubeconfig's directory, as kubectl does", async () => {
    plugin('plugins/conf/bin/get-token', { token: 'relative-token' });
    const path = execConfig('plugins/conf/config', execUser('bin/get-token'));
    expect(process.cwd()).not.toBe(join(dir, 'plugins/conf'));
    expect(await loadCredentials({ kubeconfig: path }, {}).headers()).toEqual({ authorization: 'Bearer relative-token' });
    const dotted = execConfig('plugins/conf/dotted', execUser('./bin/get-token'));
    expect(await loadCredentials({ kubeconfig: dotted }, {}).headers()).toEqual({ authorization: 'Bearer relative-token' });
  });

  it("looks a bare command name up on PATH, never in the kubeconfig's directory", async () => {
    plugin('plugins/bare/get-token', { token: 'beside-the-kubeconfig' });
    plugin('plugins/path/get-token', { token: 'from-path' });
    const path = execConfig('plugins/bare/config', execUser('get-token', { env: [{ name: 'PATH', value: join(dir, 'plugins/path') }] }));
    expect(await loadCredentials({ kubeconfig: path }, {}).headers()).toEqual({ authorization: 'Bearer from-path' });
  });

  it('refuses a plugin that returns a client certificate, with one line (it would be dropped)', async () => {
    const command = plugin('plugins/cert/get-cert', { clientCertificateData: 'PLUGIN-CERT', clientKeyData: 'PLUGIN-KEY' });
    const path = execConfig('plugins/cert/config', execUser(command));
    const credentials = loadCredentials({ kubeconfig: path }, {});
    await expect(credentials.headers()).rejects.toThrow(
      new ConfigError(
        `the credential plugin of the kubeconfig ${path}, context x returns a client certificate, which dss-spark-k8s does not support; use a plugin that returns a token`,
      ),
    );
  });

  it("keeps the kubeconfig's own client certificate beside a plugin's token", async () => {
    const command = plugin('plugins/static/get-token', { token: 'plugin-token' });
    const path = execConfig('plugins/static/config', {
      ...execUser(command),
      'client-certificate-data': Buffer.from('CERT').toString('base64'),
      'client-key-data': Buffer.from('KEY').toString('base64'),
    });
    const credentials = loadCredentials({ kubeconfig: path }, {});
    expect(await credentials.headers()).toEqual({ authorization: 'Bearer plugin-token' });
    expect(credentials.clientCert?.toString()).toBe('CERT');
  });
});
