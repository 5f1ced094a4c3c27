// Kubernetes 1.29 — the last version without ValidatingAdmissionPolicy v1 — on a real kube-apiserver of its
// own (`cluster.sh up --no-node`, built once into its cache directory: ~19 min cold, so this file runs in the
// matrix project, by scripts/matrix.sh, not in the README's test command): run refuses it in one line, doctor
// fails its cluster check with the upgrade as the fix. The result is in COMPATIBILITY.md.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CliError, ExitCode } from '../../src/errors.ts';
import { Kube } from '../../src/k8s/client.ts';
import { missingCapabilities, readServerCapabilities, requireServerCapabilities } from '../../src/k8s/server-capabilities.ts';
import { dssuserDir, runCli, writeConfig } from '../support/cli.ts';
import { writeTokenKubeconfig } from '../support/cluster.ts';

const root = resolve(import.meta.dirname, '../..');
const OLD_VERSION = 'v1.29.6';

describe(`Kubernetes ${OLD_VERSION} (no ValidatingAdmissionPolicy v1)`, () => {
  let dir: string;
  let state: { version: string; dssuserKubeconfig: string; adminKubeconfig: string; kubectl: string };

  beforeAll(() => {
    dir = mkdtempSync('/tmp/dss-spark-k8s-test-old-k8s-');
    rmSync(dir, { recursive: true });
    state = JSON.parse(
      execFileSync('bash', [join(root, 'scripts/cluster.sh'), 'up', '--no-node', '--dir', dir, '--owner-pid', String(process.pid)], {
        encoding: 'utf8',
        // The Go proxy of the project's machines refuses the v0.29.6 zips of three staging modules the control
        // plane needs (403); v0.29.5 is served. Built once (~15 min cold) into its own cache directory.
        env: {
          ...process.env,
          K8S_VERSION: OLD_VERSION,
          K8S_STAGING_OVERRIDES: 'k8s.io/legacy-cloud-providers=v0.29.5 k8s.io/endpointslice=v0.29.5 k8s.io/kube-controller-manager=v0.29.5',
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      }),
    );
  }, 1_800_000);
  afterAll(() => {
    if (dir) execFileSync('bash', [join(root, 'scripts/cluster.sh'), 'down', '--dir', dir], { stdio: 'ignore' });
  });

  it('serves admissionregistration.k8s.io/v1 without the policies: the apply of deploy/rbac could not create them', () => {
    expect(state.version).toBe(OLD_VERSION);
    const resources = execFileSync(
      state.kubectl,
      ['--kubeconfig', state.adminKubeconfig, 'api-resources', '--api-group=admissionregistration.k8s.io', '-o', 'name'],
      { encoding: 'utf8' },
    );
    expect(resources).toContain('validatingwebhookconfigurations.admissionregistration.k8s.io');
    expect(resources).not.toContain('validatingadmissionpolicies');
  });

  it('run refuses it in one line before any write, exit code 69: dssuser has its RBAC rights there, nothing is created', async () => {
    const unix = inject('unix');
    const [alice] = unix.endUsers;
    const kubeconfig = join(dssuserDir('dss-spark-k8s-test-old-k8s-'), 'dssuser.kubeconfig');
    writeTokenKubeconfig(state.dssuserKubeconfig, kubeconfig, unix.dssuser);
    const config = writeConfig({ kubeconfig });
    const result = await runCli(['run', '--config', config.path, '--user', alice!.name, '--', 'app.py']);
    expect(result.stderr).toMatch(
      new RegExp(
        `^dss-spark-k8s: Kubernetes ${OLD_VERSION.replaceAll('.', '\\.')} at https://127\\.0\\.0\\.1:\\d+ lacks ValidatingAdmissionPolicy .*: upgrade the cluster to Kubernetes 1\\.30 or newer \\(it runs ${OLD_VERSION.replaceAll('.', '\\.')}\\)\n$`,
      ),
    );
    expect(result.exitCode).toBe(69);
    const namespaces = execFileSync(state.kubectl, ['--kubeconfig', state.adminKubeconfig, 'get', 'namespaces', '-o', 'name'], { encoding: 'utf8' });
    expect(namespaces).not.toMatch(/namespace\/dss-/);
    const accounts = execFileSync(state.kubectl, ['--kubeconfig', state.adminKubeconfig, 'get', 'serviceaccounts', '-A', '-o', 'name'], { encoding: 'utf8' });
    expect(accounts).not.toContain('dss-spark-');
  });

  it('doctor fails its cluster check with what is missing and the upgrade as the fix (exit code 78)', async () => {
    const unix = inject('unix');
    const [alice] = unix.endUsers;
    const kubeconfig = join(dssuserDir('dss-spark-k8s-test-old-k8s-'), 'dssuser.kubeconfig');
    writeTokenKubeconfig(state.dssuserKubeconfig, kubeconfig, unix.dssuser);
    const config = writeConfig({ kubeconfig });
    const result = await runCli(['doctor', '--config', config.path, '--user', alice!.name, '-o', 'json']);
    expect(result.exitCode).toBe(78);
    const checks = (JSON.parse(result.stdout) as { checks: { id: string; status: string; detail: string; fix?: string }[] }).checks;
    const cluster = checks.find((check) => check.id === 'cluster')!;
    expect(cluster.status).toBe('fail');
    expect(cluster.detail).toMatch(
      new RegExp(
        `^https://127\\.0\\.0\\.1:\\d+: Kubernetes ${OLD_VERSION.replaceAll('.', '\\.')} as dssuser; it lacks ValidatingAdmissionPolicy \\(admissionregistration\\.k8s\\.io/v1, GA in Kubernetes 1\\.30\\), for the dssuser-scope`,
      ),
    );
    expect(cluster.fix).toBe(`upgrade the cluster to Kubernetes 1.30 or newer (it runs ${OLD_VERSION})`);
  });

  it('is found lacking ValidatingAdmissionPolicy only, and refused in one line with the fix (exit code 69)', async () => {
    const kube = Kube.load({ kubeconfig: state.dssuserKubeconfig, timeoutSeconds: 10 });
    try {
      const server = await readServerCapabilities(kube);
      expect(server.version.gitVersion).toBe(OLD_VERSION);
      expect(missingCapabilities(server).map((c) => c.name)).toEqual(['validating-admission-policy', 'token-credential-id']);
      const refused = await requireServerCapabilities(kube).catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(CliError);
      expect((refused as CliError).exitCode).toBe(ExitCode.kubernetes);
      expect((refused as CliError).message).toBe(
        `Kubernetes ${OLD_VERSION} at ${kube.endpoint.server} lacks ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1, GA in Kubernetes 1.30),` +
          " which the tool needs for the dssuser-scope and job-isolation policies of deploy/rbac, which keep dssuser and each job's token in their lane:" +
          ` upgrade the cluster to Kubernetes 1.30 or newer (it runs ${OLD_VERSION})`,
      );
    } finally {
      await kube.close();
    }
  });
});
