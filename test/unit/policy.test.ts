import fc from 'fast-check';
import { loadAllYaml } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { policyCommand, renderManifest } from '../../src/commands/policy.ts';
import { ConfigError } from '../../src/errors.ts';
import { executorServiceAccountName, jobBaseName, loginToSlug } from '../../src/plan/names.ts';
import { DRIVER_RULES } from '../../src/plan/objects.ts';
import { buildAttributionPolicy, buildAttributionPolicyBinding } from '../../src/plan/attribution-policy.ts';
import { ISOLATION_POLICY_NAME, JOB_ACCOUNT_PREFIX, OWNER_LABEL, policyManifest } from '../../src/plan/policy.ts';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, MANAGED_NAMESPACE_LABEL } from '../../src/plan/types.ts';

const { policy, binding } = policyManifest();
const spec = policy.spec!;

/** The matchCondition's RE2 pattern, simple enough to mean the same as a JavaScript RegExp. */
function jobAccountPattern(): RegExp {
  const expression = spec.matchConditions!.find((c) => c.name === 'is-job-account')!.expression;
  return new RegExp(/matches\('(.*)'\)$/.exec(expression)![1]!);
}

describe('policyManifest', () => {
  it('is a v1 ValidatingAdmissionPolicy and a binding that denies with 403 (reason Forbidden)', () => {
    expect(policy).toMatchObject({
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicy',
      metadata: { name: ISOLATION_POLICY_NAME, labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE } },
    });
    expect(spec.failurePolicy).toBe('Fail');
    expect(spec.validations!.length).toBeGreaterThan(0);
    for (const v of spec.validations!) {
      expect(v.reason).toBe('Forbidden');
      expect(v.messageExpression).toBeTruthy();
    }
    expect(binding).toEqual({
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicyBinding',
      metadata: { name: ISOLATION_POLICY_NAME, labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE } },
      spec: { policyName: ISOLATION_POLICY_NAME, validationActions: ['Deny'] },
    });
  });

  it('guards the writes of the kinds a job may write, in managed namespaces only', () => {
    expect(spec.matchConstraints!.namespaceSelector).toEqual({ matchLabels: { [MANAGED_NAMESPACE_LABEL]: 'true' } });
    const [rule, ...others] = spec.matchConstraints!.resourceRules!;
    expect(others).toEqual([]);
    expect(rule!.operations).toEqual(['CREATE', 'UPDATE', 'DELETE']);
    // Every kind DRIVER_RULES lets a job write is guarded.
    const writable = DRIVER_RULES.filter((r) => r.verbs.some((v) => ['create', 'update', 'patch', 'delete', 'deletecollection'].includes(v)));
    expect(rule!.apiGroups).toEqual([...new Set(writable.flatMap((r) => r.apiGroups))]);
    expect([...rule!.resources!].sort()).toEqual([...new Set(writable.flatMap((r) => r.resources))].sort());
  });

  it.each([
    ['system:serviceaccount:dss-team-a:dss-spark-alice-abc123', true],
    ['system:serviceaccount:dss-team-a:dss-spark-alice-abc123-exec', true],
    ['system:serviceaccount:dss-team-a:dssuser', false],
    ['system:serviceaccount:dss-team-a:team-runner', false],
    ['system:serviceaccount:dss-team-a:dss-spark-', false],
    ['dss-spark-alice-abc123', false],
    ['system:serviceaccount:dss-spark-x', false],
    ['oidc:system:serviceaccount:ns:dss-spark-alice', false],
    ['dssuser', false],
  ])('treats %s as a job account: %s', (username, expected) => {
    expect(jobAccountPattern().test(username)).toBe(expected);
  });

  it('matches every job account jobBaseName makes, and names the executor account as the plan does', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 80 }), fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$/), (login, jobId) => {
        const base = jobBaseName(loginToSlug(login), jobId);
        expect(base.startsWith(JOB_ACCOUNT_PREFIX)).toBe(true);
        expect(jobAccountPattern().test(`system:serviceaccount:dss-team:${base}`)).toBe(true);
        // The owner label holds the base name: it must be a valid label value.
        expect(base.length).toBeLessThanOrEqual(63);
        expect(executorServiceAccountName(base)).toBe(`${base}-exec`);
      }),
    );
    const executorAccount = spec.variables!.find((v) => v.name === 'executorAccount')!.expression;
    expect(executorAccount).toBe("variables.account + '-exec'");
  });

  it('takes the requester from the user name and compares the owner label with it', () => {
    expect(spec.variables!.find((v) => v.name === 'account')!.expression).toBe("request.userInfo.username.split(':')[3]");
    const expressions = spec.validations!.map((v) => v.expression).join('\n');
    expect(expressions).toContain(`oldObject.metadata.?labels[?'${OWNER_LABEL}'].orValue('') == variables.account`);
    expect(expressions).toContain(`object.metadata.?labels[?'${OWNER_LABEL}'].orValue('') == variables.account`);
    expect(expressions).toContain("object.spec.?serviceAccountName.orValue('') == variables.executorAccount");
  });

  it('is built fresh each time (callers may change what they get)', () => {
    const first = policyManifest();
    first.policy.spec!.validations!.pop();
    expect(policyManifest().policy.spec!.validations!.length).toBe(spec.validations!.length);
  });
});

describe('renderManifest', () => {
  // Isolation first: a cluster that applies only part of the stream has the policy that matters most.
  const everyObject = JSON.parse(JSON.stringify([policy, binding, buildAttributionPolicy(), buildAttributionPolicyBinding()])) as object[];

  it('prints YAML that kubectl apply reads back as the same objects: isolation, then attribution', () => {
    const docs = loadAllYaml(renderManifest('yaml')).map((d) => JSON.parse(JSON.stringify(d)));
    expect(docs).toEqual(everyObject);
  });

  it('prints a JSON v1 List', () => {
    expect(JSON.parse(renderManifest('json'))).toEqual({ apiVersion: 'v1', kind: 'List', items: everyObject });
  });
});

describe('policyCommand', () => {
  it('show prints the manifest even when the cluster cannot be asked, and says so on stderr', async () => {
    const io = { out: '', err: '' };
    const code = await policyCommand(
      'show',
      { kubeconfig: '/nonexistent/kubeconfig', output: 'yaml' },
      { stdout: (t) => (io.out += t), stderr: (t) => (io.err += t) },
    );
    expect(code).toBe(0);
    expect(io.out).toBe(renderManifest('yaml'));
    expect(io.err).toMatch(/^dss-spark-k8s: cannot tell whether the policy is installed: cannot load the kubeconfig \/nonexistent\/kubeconfig: .*\n$/);
  });

  it('apply fails with a ConfigError when the kubeconfig cannot be loaded', async () => {
    await expect(policyCommand('apply', { kubeconfig: '/nonexistent/kubeconfig', output: 'yaml' }, { stdout: () => {}, stderr: () => {} })).rejects.toThrow(
      ConfigError,
    );
  });
});
