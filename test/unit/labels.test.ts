// run --label: parsing and checking of the flag, and where the labels go in the plan (every object of the
// job, Spark's pods; never the namespace), and the isolation policy's audit annotations.
import { describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli.ts';
import { ExitCode, UsageError } from '../../src/errors.ts';
import { isLabelKey, isLabelValue, parseLabelFlags } from '../../src/plan/labels.ts';
import { jobLabels } from '../../src/plan/objects.ts';
import { planJob, planObjects } from '../../src/plan/plan.ts';
import { AUDIT_ANNOTATIONS, buildIsolationPolicy } from '../../src/plan/policy.ts';
import { buildSparkSubmitArgs } from '../../src/plan/spark-args.ts';
import { Annotation, JOB_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_LABEL, USER_LABEL } from '../../src/plan/types.ts';
import { fixtureContext, fixtureProfile } from './fixtures.ts';

const input = { apiServer: 'https://127.0.0.1:6443', caCertFile: '/tmp/job/ca.crt', callerArgs: ['app.py'] };

function usageMessage(flags: string[]): string {
  try {
    parseLabelFlags(flags);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).exitCode).toBe(ExitCode.usage);
    return (error as Error).message;
  }
  throw new Error(`parseLabelFlags(${JSON.stringify(flags)}) did not throw`);
}

describe('parseLabelFlags', () => {
  it('takes KEY=VALUE pairs, with a prefixed key, an empty value and "=" in no key', () => {
    expect(parseLabelFlags(['team=analytics', 'example.com/cost-center=C_42.x', 'empty='])).toEqual({
      team: 'analytics',
      'example.com/cost-center': 'C_42.x',
      empty: '',
    });
    expect(parseLabelFlags([])).toEqual({});
  });

  it.each([
    [['team'], /^--label "team": expected KEY=VALUE/],
    [['=v'], /"" is not a Kubernetes label key/],
    [['bad key=v'], /"bad key" is not a Kubernetes label key/],
    [['-team=v'], /is not a Kubernetes label key/],
    [['Example.com/team=v'], /is not a Kubernetes label key/], // the prefix is a lowercase DNS subdomain
    [['/team=v'], /is not a Kubernetes label key/],
    [[`${'a'.repeat(64)}=v`], /is not a Kubernetes label key/],
    [[`team=${'a'.repeat(64)}`], /is not a Kubernetes label value/],
    [['team=a b'], /is not a Kubernetes label value/],
    [['team=-a'], /is not a Kubernetes label value/],
    [[`${JOB_LABEL}=other`], /is set by dss-spark-k8s itself/],
    [[`${OWNER_LABEL}=dss-spark-victim`], /is set by dss-spark-k8s itself/],
    [['dss-spark-k8s.dataiku.io/anything-new=x'], /is set by dss-spark-k8s itself/],
    [[`${MANAGED_BY_LABEL}=me`], /is set by dss-spark-k8s itself/],
    [['spark-role=driver'], /is set by Spark itself/],
    [['team=a', 'team=b'], /^--label "team=b": the key team is given twice/],
  ])('refuses %j with one line naming the flag', (flags, message) => {
    const text = usageMessage(flags);
    expect(text).toMatch(message);
    expect(text).toMatch(/^--label /);
    expect(text).not.toContain('\n');
  });

  it('truncates a huge flag in its message', () => {
    expect(usageMessage([`x y=${'v'.repeat(10_000)}`]).length).toBeLessThan(400);
  });

  it('agrees with the API on keys and values at their limits', () => {
    expect(isLabelKey(`${'a'.repeat(253)}/${'b'.repeat(63)}`)).toBe(true);
    expect(isLabelKey(`${'a'.repeat(254)}/b`)).toBe(false);
    expect(isLabelValue('a'.repeat(63))).toBe(true);
    expect(isLabelValue('')).toBe(true);
  });
});

describe('the command line', () => {
  it('refuses a bad --label with exit 64 before the configuration is read', async () => {
    // The configuration file does not exist: the label is what is refused.
    const run = runCli(['node', 'dss-spark-k8s', 'run', '--user', 'alice', '--config', '/nonexistent.yaml', '--label', `${OWNER_LABEL}=x`, '--', 'app.py']);
    await expect(run).rejects.toThrow(UsageError);
    await expect(run).rejects.toThrow(/--label .*is set by dss-spark-k8s itself/);
  });
});

describe('the labels of a job', () => {
  const profile = fixtureProfile({ labels: { team: 'data', env: 'prod', [JOB_LABEL]: 'forged' } });

  it('are the profile labels, then the flags, then the tool labels', () => {
    expect(jobLabels(profile, 'abc123', 'alice', 'dss-spark-x', { team: 'analytics' })).toEqual({
      team: 'analytics',
      env: 'prod',
      [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
      [JOB_LABEL]: 'abc123',
      [USER_LABEL]: 'alice',
      [OWNER_LABEL]: 'dss-spark-x',
    });
  });

  const plan = planJob(profile, fixtureContext(), { ...input, labels: { team: 'analytics', 'example.com/cost-center': 'c42' } });
  const expected = { team: 'analytics', env: 'prod', 'example.com/cost-center': 'c42', [JOB_LABEL]: 'abc123', [OWNER_LABEL]: plan.baseName };

  it('are on every object of the job and on the executor pod template, never on the namespace', () => {
    const jobObjects = [plan.serviceAccount, plan.executorServiceAccount, plan.roleBinding, plan.lease, plan.tokenAnchor, plan.executorPodTemplate];
    for (const object of jobObjects) expect(object.metadata?.labels, object.metadata?.name).toMatchObject(expected);
    expect(planObjects(plan)).toContain(plan.namespaceObject);
    expect(plan.namespaceObject?.metadata?.labels).not.toHaveProperty('example.com/cost-center');
  });

  it("are on Spark's driver and executor pods, with the login annotation", () => {
    for (const [key, value] of Object.entries(expected)) {
      expect(plan.sparkSubmitArgs).toContain(`spark.kubernetes.executor.label.${key}=${value}`);
      expect(plan.sparkSubmitArgs).toContain(`spark.kubernetes.driver.label.${key}=${value}`);
    }
    expect(plan.sparkSubmitArgs).toContain(`spark.kubernetes.executor.annotation.${Annotation.login}=alice`);
    expect(plan.sparkSubmitArgs).toContain(`spark.kubernetes.driver.annotation.${Annotation.login}=alice`);
  });

  it('refuses a caller --conf that would set the login annotation of the pods', () => {
    const callerArgs = ['--conf', `spark.kubernetes.executor.annotation.${Annotation.login}=bob`, 'app.py'];
    expect(() => planJob(profile, fixtureContext(), { ...input, callerArgs })).toThrow(/dss-spark-k8s manages spark\.kubernetes\.executor\.annotation/);
  });

  it("refuses a caller --conf that would give Spark's pods another value of a job label", () => {
    const args = (callerArgs: string[]) => () =>
      buildSparkSubmitArgs({
        apiServer: 'https://127.0.0.1:6443',
        namespace: 'dss-alice',
        podTemplateFile: '/tmp/job/executor-pod.json',
        executorServiceAccount: 'x-exec',
        labels: { team: 'analytics' },
        podNamePrefix: 'x',
        profileConf: {},
        callerArgs,
      });
    expect(args(['--conf', 'spark.kubernetes.executor.label.team=other', 'app.py'])).toThrow(/spark\.kubernetes\.executor\.label\.team.*run --label/);
    expect(args(['--conf', 'spark.kubernetes.driver.label.team=other', 'app.py'])).toThrow(UsageError);
    expect(args(['--conf', 'spark.kubernetes.executor.label.other=x', 'app.py'])).not.toThrow();
  });
});

describe("the isolation policy's audit annotations", () => {
  const policy = buildIsolationPolicy();

  it('name the job account, the job id and the user of every request the policy evaluates', () => {
    expect(policy.spec?.auditAnnotations?.map((a) => a.key)).toEqual(['job-account', 'job-id', 'user', 'login']);
    expect(policy.spec?.auditAnnotations).toEqual(AUDIT_ANNOTATIONS);
    const [account, jobId, user, login] = policy.spec!.auditAnnotations!;
    expect(account!.valueExpression).toBe('variables.account');
    expect(jobId!.valueExpression).toContain(`labels[?'${JOB_LABEL}']`);
    expect(user!.valueExpression).toContain(`labels[?'${USER_LABEL}']`);
    expect(login!.valueExpression).toContain(`annotations[?'${Annotation.login}']`);
    // A delete has only oldObject; the value is empty (and the annotation left out) when the label is missing.
    for (const annotation of [jobId!, user!, login!]) {
      expect(annotation.valueExpression).toContain('object != null ? object : oldObject');
      expect(annotation.valueExpression).toMatch(/\.orValue\(''\)$/);
    }
  });

  it('keys the API accepts: qualified names of at most 63 characters, no prefix', () => {
    for (const { key } of AUDIT_ANNOTATIONS) expect(key).toMatch(/^[A-Za-z0-9][-A-Za-z0-9_.]{0,62}$/);
  });
});
