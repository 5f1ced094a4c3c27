// run --label: parsing and checking of the flag, and where the labels go in the plan (every object of the
// job, Spark's pods; never the namespace), and the isolation policy's audit annotations.
import { describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli.ts';
import { ExitCode, UsageError } from '../../src/errors.ts';
import { isLabelKey, isLabelValue, parseLabelFlags } from '../../src/plan/labels.ts';
import { jobLabels } from '../../src/plan/objects.ts';
import { planJob, planObjects } from '../../src/plan/plan.ts';
import {
  ATTRIBUTION_AUDIT_ANNOTATIONS,
  ATTRIBUTION_POLICY_NAME,
  buildAttributionPolicy,
  buildAttributionPolicyBinding,
} from '../../src/plan/attribution-policy.ts';
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

describe("the job policies' audit annotations", () => {
  const isolation = buildIsolationPolicy();
  const attribution = buildAttributionPolicy();

  it('name the authenticated job account (isolation) and, from its ServiceAccount, the job id, user and login (attribution)', () => {
    expect(isolation.spec?.auditAnnotations).toEqual(AUDIT_ANNOTATIONS);
    expect(isolation.spec?.auditAnnotations).toEqual([{ key: 'job-account', valueExpression: 'variables.account' }]);
    expect(attribution.spec?.auditAnnotations).toEqual(ATTRIBUTION_AUDIT_ANNOTATIONS);
    const [jobId, user, login] = attribution.spec!.auditAnnotations!;
    expect(attribution.spec?.auditAnnotations?.map((a) => a.key)).toEqual(['job-id', 'user', 'login']);
    expect(jobId!.valueExpression).toBe(`variables.ownAccount ? params.metadata.?labels[?'${JOB_LABEL}'].orValue('') : ''`);
    expect(user!.valueExpression).toBe(`variables.ownAccount ? params.metadata.?labels[?'${USER_LABEL}'].orValue('') : ''`);
    expect(login!.valueExpression).toBe(`variables.ownAccount ? params.metadata.?annotations[?'${Annotation.login}'].orValue('') : ''`);
    // Never the object's own labels: a process holding the token chooses those.
    for (const annotation of attribution.spec!.auditAnnotations!) expect(annotation.valueExpression).not.toMatch(/\bobject\b/);
  });

  it('keys the API accepts: qualified names of at most 63 characters, no prefix', () => {
    for (const { key } of [...AUDIT_ANNOTATIONS, ...ATTRIBUTION_AUDIT_ANNOTATIONS]) expect(key).toMatch(/^[A-Za-z0-9][-A-Za-z0-9_.]{0,62}$/);
  });
});

describe('the job-attribution policy', () => {
  const policy = buildAttributionPolicy();
  const binding = buildAttributionPolicyBinding();

  it("takes the tool's ServiceAccounts of the request's namespace as parameters, and is skipped where there are none", () => {
    expect(policy.spec?.paramKind).toEqual({ apiVersion: 'v1', kind: 'ServiceAccount' });
    expect(binding.spec).toEqual({
      policyName: ATTRIBUTION_POLICY_NAME,
      validationActions: ['Deny'],
      paramRef: { selector: { matchLabels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE } }, parameterNotFoundAction: 'Allow' },
    });
  });

  it('holds the same requests as the isolation policy', () => {
    const isolation = buildIsolationPolicy().spec!;
    expect(policy.spec?.matchConstraints).toEqual(isolation.matchConstraints);
    expect(policy.spec?.matchConditions).toEqual(isolation.matchConditions);
  });

  it("compares the written object's job id, user and login with its own account's, never on a delete", () => {
    const [sameAccount, check] = policy.spec!.validations!;
    expect(policy.spec!.validations).toHaveLength(2);
    // The account is the token's own, not one made again under its name.
    expect(sameAccount!.expression).toBe('!variables.ownAccount || params.metadata.uid == request.userInfo.uid');
    expect(check!.expression).toMatch(/^!variables\.ownAccount \|\| request\.operation == 'DELETE' \|\| /);
    expect(check!.expression).toContain(`object.metadata.?labels[?'${JOB_LABEL}'].orValue('') == params.metadata.?labels[?'${JOB_LABEL}'].orValue('')`);
    expect(check!.expression).toContain(`object.metadata.?labels[?'${USER_LABEL}'].orValue('') == params.metadata.?labels[?'${USER_LABEL}'].orValue('')`);
    expect(check!.expression).toContain(`object.metadata.?annotations[?'${Annotation.login}']`);
    expect(policy.spec!.variables).toContainEqual({ name: 'ownAccount', expression: 'params.metadata.name == variables.account' });
  });
});
