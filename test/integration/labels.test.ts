// run --label on the real cluster: the job runner's labels (with the profile's) land on every object of the
// job and on its executor pods, which the isolation policy still admits; a bad label is one line, exit 64,
// and nothing is created.
import { CoordinationV1Api, CoreV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { describe, expect, inject, it } from 'vitest';
import { JOB_LABEL } from '../../src/plan/types.ts';
import { jobObjects, runCli, startCli, uniqueJobId, writeConfig } from '../support/cli.ts';
import { adminKubeConfig } from '../support/kube.ts';

const unix = inject('unix');
const alice = unix.endUsers[0]!;

describe('run --label', () => {
  it("puts the labels on the job's ServiceAccounts, RoleBinding, Lease and executor pods", { timeout: 120_000 }, async () => {
    const config = writeConfig({ labels: { team: 'from-profile', env: 'prod' } });
    const jobId = uniqueJobId('labels');
    const job = startCli([
      'run',
      '--user',
      alice.name,
      '--config',
      config.path,
      '--job-id',
      jobId,
      '--label',
      'team=analytics',
      '--label',
      'example.com/cost-center=c42',
      '--',
      'app',
      'probe',
      'sleep',
      '30',
    ]);
    const probe = await job.waitForEvent('probe');
    // The probe's pod is what Spark makes of the managed template and the executor label confs: admitted.
    expect(probe.createPod, JSON.stringify(probe)).toBe(200);
    const started = (await job.waitForEvent('started')) as { args?: string[] };
    for (const conf of [
      'spark.kubernetes.executor.label.team=analytics',
      'spark.kubernetes.driver.label.team=analytics',
      'spark.kubernetes.executor.label.env=prod',
    ])
      expect(started.args).toContain(conf);

    const kc = adminKubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    const labelSelector = `${JOB_LABEL}=${jobId}`;
    const [accounts, bindings, leases, pods] = await Promise.all([
      core.listServiceAccountForAllNamespaces({ labelSelector }),
      kc.makeApiClient(RbacAuthorizationV1Api).listRoleBindingForAllNamespaces({ labelSelector }),
      kc.makeApiClient(CoordinationV1Api).listLeaseForAllNamespaces({ labelSelector }),
      core.listPodForAllNamespaces({ labelSelector }),
    ]);
    const objects = [
      ...accounts.items.map((o) => ['serviceaccount', o] as const),
      ...bindings.items.map((o) => ['rolebinding', o] as const),
      ...leases.items.map((o) => ['lease', o] as const),
      ...pods.items.map((o) => ['pod', o] as const),
    ];
    expect(objects.map(([kind]) => kind).sort()).toEqual(['lease', 'pod', 'rolebinding', 'serviceaccount', 'serviceaccount']);
    for (const [kind, object] of objects) {
      expect(object.metadata?.labels, `${kind} ${object.metadata?.name}`).toMatchObject({
        team: 'analytics', // the flag wins over the profile
        env: 'prod',
        'example.com/cost-center': 'c42',
        [JOB_LABEL]: jobId,
        'app.kubernetes.io/managed-by': 'dss-spark-k8s',
      });
    }
    job.child.kill('SIGTERM');
    const result = await job.result;
    expect(result.exitCode, result.stderr).toBe(143);
    expect(await jobObjects(jobId)).toEqual([]);
  });

  it.each([
    ['dss-spark-k8s.dataiku.io/owner-sa=dss-spark-other', /is set by dss-spark-k8s itself/],
    ['app.kubernetes.io/managed-by=me', /is set by dss-spark-k8s itself/],
    ['bad key=1', /is not a Kubernetes label key/],
    ['team=not a value', /is not a Kubernetes label value/],
    ['team', /expected KEY=VALUE/],
  ])('refuses --label %s in one line, exit 64, creating nothing', async (label, message) => {
    const config = writeConfig({});
    const jobId = uniqueJobId('badlabel');
    const result = await runCli(['run', '--user', alice.name, '--config', config.path, '--job-id', jobId, '--label', label, '--', 'app', 'probe']);
    expect(result.exitCode, result.stderr).toBe(64);
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/--label /);
    expect(result.stderr).toMatch(message);
    expect(result.stdout).toBe(''); // spark-submit never ran
    expect(await jobObjects(jobId)).toEqual([]);
  });

  it('refuses a key given twice', async () => {
    const config = writeConfig({});
    const jobId = uniqueJobId('badlabel');
    const result = await runCli(['run', '--user', alice.name, '--config', config.path, '--job-id', jobId, '--label', 'a=1', '--label', 'a=2', '--', 'app']);
    expect([result.exitCode, result.stderr.trimEnd().split('\n').length]).toEqual([64, 1]);
    expect(result.stderr).toMatch(/--label "a=2": the key a is given twice/);
    expect(await jobObjects(jobId)).toEqual([]);
  });
});
