// The tool's own Kubernetes client against the real apiserver: the credential forms of dssuser's kubeconfig
// (a credential plugin, as EKS, GKE and AKS use), TLS verification, and one-line errors without secrets.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { KubernetesError } from '../../src/errors.ts';
import { Kube } from '../../src/k8s/client.ts';
import { loadCredentials } from '../../src/k8s/kubeconfig.ts';
import { startFaultProxy } from '../support/fault-proxy.ts';

const dir = mkdtempSync(join(tmpdir(), 'dss-spark-k8s-client-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cluster = inject('cluster');
const dssuser = loadCredentials({ kubeconfig: cluster.dssuserKubeconfig }, {});
const dssuserToken = async () => (await dssuser.headers()).authorization!.replace(/^Bearer /, '');

function kubeconfig(name: string, user: Record<string, unknown>, clusterOverrides: Record<string, unknown> = {}): string {
  const path = join(dir, name);
  const caData = Buffer.from(dssuser.endpoint.caPem!).toString('base64');
  writeFileSync(
    path,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': 'x',
      clusters: [{ name: 'c', cluster: { server: dssuser.endpoint.server, 'certificate-authority-data': caData, ...clusterOverrides } }],
      users: [{ name: 'u', user }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
    }),
    { mode: 0o600 },
  );
  return path;
}

async function failure(promise: Promise<unknown>): Promise<KubernetesError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(KubernetesError);
  return error as KubernetesError;
}

describe('the Kubernetes client', () => {
  it('authenticates through a credential plugin (exec), run once and cached', async () => {
    const calls = join(dir, 'plugin-calls');
    const plugin = join(dir, 'plugin.sh');
    const credential = { apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: await dssuserToken() } };
    writeFileSync(plugin, `#!/bin/sh\necho called >> '${calls}'\ncat <<'JSON'\n${JSON.stringify(credential)}\nJSON\n`, { mode: 0o700 });
    const kube = Kube.load({
      kubeconfig: kubeconfig('exec.yaml', { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: plugin, interactiveMode: 'Never' } }),
      timeoutSeconds: 30,
    });
    try {
      expect((await kube.whoAmI()).username).toBe(cluster.dssuserName);
      expect(await kube.serverVersion()).toBe('v1.34.4');
    } finally {
      await kube.close();
    }
    expect(readFileSync(calls, 'utf8').trim().split('\n')).toHaveLength(1);
  });

  it('speaks HTTP/2 to the apiserver: parallel requests share one connection', async () => {
    const kube = Kube.load({ kubeconfig: cluster.dssuserKubeconfig, timeoutSeconds: 30 });
    try {
      const answers = await Promise.all(Array.from({ length: 8 }, () => kube.serverVersion()));
      expect(answers).toEqual(Array(8).fill('v1.34.4'));
      expect(kube.protocol).toBe('h2');
    } finally {
      await kube.close();
    }
  });

  it('falls back to HTTP/1.1 for a server that does not offer HTTP/2 (a proxy in front of the apiserver)', async () => {
    const proxy = await startFaultProxy({
      server: cluster.server,
      caFile: cluster.caFile,
      certFile: join(cluster.dir, 'apiserver.crt'),
      keyFile: join(cluster.dir, 'apiserver.key'),
      http1Only: true,
    });
    const kube = Kube.load({ kubeconfig: kubeconfig('http1.yaml', { token: await dssuserToken() }, { server: proxy.url }), timeoutSeconds: 30 });
    try {
      expect((await kube.whoAmI()).username).toBe(cluster.dssuserName);
      expect(await Promise.all([kube.serverVersion(), kube.getNamespace('default')])).toEqual([
        'v1.34.4',
        expect.objectContaining({ metadata: expect.objectContaining({ name: 'default' }) }),
      ]);
      expect(kube.protocol).toBe('http/1.1');
      // The HTTP/2 attempt ends in the TLS handshake (no protocol in common): only HTTP/1.1 requests reach it.
      expect(proxy.log.map((r) => `${r.method} ${r.path} ${r.outcome}`).sort()).toEqual([
        'GET /api/v1/namespaces/default 200',
        'GET /version 200',
        'POST /apis/authentication.k8s.io/v1/selfsubjectreviews 201',
      ]);
    } finally {
      await kube.close();
      await proxy.close();
    }
  });

  it('says in one line, with the status, when the credentials are rejected (401) or not allowed (403)', async () => {
    const rejected = Kube.load({ kubeconfig: kubeconfig('bad-token.yaml', { token: 'not-a-valid-token' }), timeoutSeconds: 30 });
    const error = await failure(rejected.serverVersion());
    expect(error.message).toBe('get server version failed (401 Unauthorized): Unauthorized');
    expect(error.status).toBe(401);
    await rejected.close();

    const kube = Kube.load({ kubeconfig: cluster.dssuserKubeconfig, timeoutSeconds: 30 });
    const denied = await failure(kube.createServiceAccount({ metadata: { name: 'x', namespace: 'kube-system' } }));
    expect(denied.status).toBe(403);
    expect(denied.message).toMatch(/^create ServiceAccount kube-system\/x failed \(403 Forbidden\): /);
    expect(denied.message).not.toContain('\n');
    expect(denied.message).not.toContain(await dssuserToken());
    await kube.close();
  });

  it('refuses a server whose certificate the kubeconfig does not trust', async () => {
    const otherCa = Buffer.from(
      // A CA that signed nothing of this cluster (any self-signed certificate does).
      execFileSync(
        'openssl',
        ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', '/dev/null', '-subj', '/CN=other', '-days', '1'],
        { encoding: 'utf8' },
      ),
    ).toString('base64');
    const kube = Kube.load({
      kubeconfig: kubeconfig('other-ca.yaml', { token: await dssuserToken() }, { 'certificate-authority-data': otherCa }),
      timeoutSeconds: 30,
    });
    const error = await failure(kube.serverVersion());
    expect(error.message).toMatch(
      /^get server version failed: (UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|DEPTH_ZERO_SELF_SIGNED_CERT)$/,
    );
    expect(error.status).toBeUndefined();
    await kube.close();
  });

  it('names the refused connection when nothing listens', async () => {
    const kube = Kube.load({ kubeconfig: kubeconfig('closed.yaml', { token: 'x' }, { server: 'https://127.0.0.1:1' }), timeoutSeconds: 30 });
    expect((await failure(kube.getNamespace('default'))).message).toBe('get Namespace default failed: ECONNREFUSED');
    await kube.close();
  });
});
