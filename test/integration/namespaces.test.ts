// `namespaces reconcile` as the restricted dssuser: a managed namespace whose guardrails are missing gets them
// with --yes (and only then), Pod Security label drift is reported for an administrator, and a namespace the
// tool did not create is refused.
import { afterAll, describe, expect, inject, it } from 'vitest';
import { runCli, uniqueJobId, writeConfig } from '../support/cli.ts';
import { adminCore } from '../support/kube.ts';
import { adminApi } from '../support/redteam.ts';

const unix = inject('unix');
const alice = unix.endUsers[0]!;
const suffix = uniqueJobId('rc').slice(-6);
const template = `dss-rc${suffix}-\${dssUserLogin}`;
const namespace = `dss-rc${suffix}-${alice.name}`;
const guarded = {
  targetNamespace: template,
  resourceQuota: { hard: { pods: '40' } },
  limitRange: { limits: [{ type: 'Container', default: { cpu: '1' } }] },
  podSecurity: { warn: 'baseline' },
};

afterAll(async () => {
  await adminCore()
    .deleteNamespace({ name: namespace })
    .catch(() => undefined);
});

async function exists(read: () => Promise<unknown>): Promise<boolean> {
  return read().then(
    () => true,
    () => false,
  );
}

describe('namespaces reconcile', () => {
  it('shows, then creates, the guardrails a managed namespace lacks, and reports label drift for an administrator', async () => {
    // A first job made the namespace with a profile that had no quota (or whose quota create failed).
    const bare = writeConfig({ targetNamespace: template, networkPolicy: { enabled: false } });
    const job = await runCli(['run', '--user', alice.name, '--config', bare.path, '--job-id', uniqueJobId('rc'), '--', 'app', 'probe']);
    expect(job.exitCode, job.stderr).toBe(0);
    const core = adminCore();
    const quota = () => core.readNamespacedResourceQuota({ namespace, name: 'dss-spark-k8s' });
    const limits = () => core.readNamespacedLimitRange({ namespace, name: 'dss-spark-k8s' });
    const networkPolicy = async () => {
      const read = await adminApi().get('networkpolicies', namespace, 'dss-spark-k8s');
      if (read.status !== 200) throw new Error(`get NetworkPolicy: ${read.status}`);
    };
    expect(await exists(quota)).toBe(false);
    expect(await exists(networkPolicy)).toBe(false);

    const config = writeConfig(guarded);
    const shown = await runCli(['namespaces', 'reconcile', '--config', config.path, '-o', 'json']);
    expect(shown.exitCode, shown.stderr).toBe(1);
    expect(JSON.parse(shown.stdout)).toEqual([
      { namespace, object: 'ResourceQuota dss-spark-k8s', state: 'missing' },
      { namespace, object: 'LimitRange dss-spark-k8s', state: 'missing' },
      { namespace, object: 'NetworkPolicy dss-spark-k8s', state: 'missing' },
      {
        namespace,
        object: 'label pod-security.kubernetes.io/warn',
        state: 'differs',
        detail: `restricted, the profile says baseline; an administrator fixes it: kubectl label --overwrite namespace ${namespace} pod-security.kubernetes.io/warn=baseline`,
      },
    ]);
    // Showing created nothing (the check is a server-side dry run).
    expect(await exists(quota)).toBe(false);
    expect(await exists(networkPolicy)).toBe(false);

    const applied = await runCli(['namespaces', 'reconcile', '--config', config.path, '-n', namespace, '--yes']);
    expect(applied.stdout).toMatch(new RegExp(`^${namespace}\\s+ResourceQuota dss-spark-k8s\\s+created`, 'm'));
    expect(applied.exitCode).toBe(1); // the label drift remains: dssuser may not change a namespace
    expect((await quota()).spec?.hard).toEqual({ pods: '40' });
    expect((await limits()).spec?.limits[0]?._default).toEqual({ cpu: '1' });
    expect(await exists(networkPolicy)).toBe(true);

    const again = await runCli(['namespaces', 'reconcile', '--config', writeConfig({ ...guarded, podSecurity: {} }).path, '-n', namespace, '-o', 'json']);
    expect(again.exitCode, again.stdout).toBe(0);
    expect(JSON.parse(again.stdout).map((row: { state: string }) => row.state)).toEqual(['present', 'present', 'present']);
  });

  it('refuses a namespace the tool did not create, in one line (exit 64)', async () => {
    const result = await runCli(['namespaces', 'reconcile', '--config', writeConfig(guarded).path, '-n', 'kube-system', '--yes']);
    expect(result.exitCode).toBe(64);
    expect(result.stderr.trim()).toBe('dss-spark-k8s: -n kube-system: not a namespace the tool created (no app.kubernetes.io/managed-by=dss-spark-k8s label)');
  });
});
