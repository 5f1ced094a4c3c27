import { describe, expect, it } from 'vitest';
import { RefusedError, UsageError } from '../../src/errors.ts';
import { jobBaseName, loginToSlug } from '../../src/plan/names.ts';
import { planJob } from '../../src/plan/plan.ts';
import { Annotation, JOB_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, MANAGED_NAMESPACE_LABEL, OWNER_LABEL, USER_LABEL } from '../../src/plan/types.ts';
import { fixtureContext, fixtureProfile } from './fixtures.ts';

const BASE = jobBaseName('alice', 'abc123');
const input = { apiServer: 'https://127.0.0.1:6443', caCertFile: '/tmp/job/ca.crt', callerArgs: ['app.py', '1'] };

describe('planJob', () => {
  const plan = planJob(fixtureProfile(), fixtureContext(), input);
  const labels = {
    team: 'data',
    [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
    [JOB_LABEL]: 'abc123',
    [USER_LABEL]: 'alice',
    [OWNER_LABEL]: plan.baseName,
  };
  const annotations = {
    'example.com/owner': 'platform',
    [Annotation.login]: 'alice',
    [Annotation.host]: 'dss-host',
    [Annotation.pid]: '4242',
    [Annotation.processStart]: '2025-01-02T03:04:05.000Z',
    [Annotation.createdAt]: '2025-01-02T03:04:06.000Z',
    [Annotation.expiresAt]: '2025-01-02T04:04:06.000Z',
  };
  const meta = (name: string) => ({ name, namespace: 'dss-alice', labels, annotations });
  // A profile annotation could be a cloud workload identity: accounts carry only the tool's.
  const accountAnnotations = Object.fromEntries(Object.entries(annotations).filter(([key]) => key.startsWith('dss-spark-k8s.dataiku.io/')));
  const accountMeta = (name: string) => ({ ...meta(name), annotations: accountAnnotations });

  it('names everything after the user and the job', () => {
    expect(plan).toMatchObject({
      jobId: 'abc123',
      login: 'alice',
      userSlug: 'alice',
      namespace: 'dss-alice',
      baseName: expect.stringMatching(/^dss-spark-[a-z2-7]{16}-alice-abc123$/),
      labels,
    });
  });

  it('builds the namespace with Pod Security labels and no job label', () => {
    expect(plan.namespaceObject?.metadata?.name).toBe('dss-alice');
    expect(plan.namespaceObject?.metadata?.labels?.[MANAGED_NAMESPACE_LABEL]).toBe('true');
    expect(plan.namespaceObject?.metadata?.labels?.['pod-security.kubernetes.io/enforce']).toBe('restricted');
    expect(plan.namespaceObject?.metadata?.labels).not.toHaveProperty(JOB_LABEL);
  });

  it("builds the accounts and the binding with the same labels, the accounts with the tool's annotations only", () => {
    expect(accountAnnotations).not.toEqual(annotations);
    expect(plan.serviceAccount).toEqual({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: accountMeta(BASE),
      automountServiceAccountToken: false,
    });
    expect(plan.executorServiceAccount).toEqual({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: accountMeta(`${BASE}-exec`),
      automountServiceAccountToken: false,
    });
    expect(plan.roleBinding).toEqual({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: meta(BASE),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'dss-spark-k8s-driver' },
      subjects: [{ kind: 'ServiceAccount', name: BASE, namespace: 'dss-alice' }],
    });
  });

  it('binds the driver role to the job account, never to the executor account', () => {
    expect(plan.roleBinding.subjects?.map((s) => s.name)).toEqual([plan.serviceAccount.metadata?.name]);
    expect(plan.roleBinding.subjects?.map((s) => s.name)).not.toContain(plan.executorServiceAccount.metadata?.name);
  });

  it('holds a lease for 4 renewal intervals and asks for a token of the profile lifetime', () => {
    expect(plan.lease.metadata).toEqual(meta(BASE));
    expect(plan.lease.spec?.holderIdentity).toBe('dss-host/4242/2025-01-02T03:04:05.000Z');
    expect(plan.lease.spec?.leaseDurationSeconds).toBe(120);
    expect(plan.lease.spec?.renewTime).toBe('2025-01-02T03:04:06.000000Z');
    expect(plan.tokenRequest).toEqual({
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { expirationSeconds: 3600 },
    });
  });

  it('runs spark-submit against the job namespace with the executor account and the job labels', () => {
    const args = plan.sparkSubmitArgs;
    expect(args.slice(0, 4)).toEqual(['--master', 'k8s://https://127.0.0.1:6443', '--deploy-mode', 'client']);
    const confs = args.flatMap((a, i) => (args[i - 1] === '--conf' ? [a] : []));
    expect(confs).toEqual(
      expect.arrayContaining([
        'spark.kubernetes.namespace=dss-alice',
        'spark.kubernetes.authenticate.caCertFile=/tmp/job/ca.crt',
        `spark.kubernetes.authenticate.executor.serviceAccountName=${BASE}-exec`,
        `spark.kubernetes.authenticate.driver.serviceAccountName=${BASE}-exec`,
        `spark.kubernetes.executor.podNamePrefix=${BASE}`,
        `spark.kubernetes.executor.label.${JOB_LABEL}=abc123`,
        `spark.kubernetes.executor.label.${USER_LABEL}=alice`,
        `spark.kubernetes.executor.label.${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`,
        'spark.kubernetes.container.image=spark:4.0.0',
        'spark.executor.instances=2',
      ]),
    );
    expect(args.slice(-2)).toEqual(['app.py', '1']);
    expect(confs.some((c) => c.endsWith(`=${BASE}`) && c.includes('serviceAccountName'))).toBe(false);
  });

  it('leaves the namespace out when the profile does not create it', () => {
    const noCreate = planJob(fixtureProfile({ autoCreateNamespace: false }), fixtureContext(), input);
    expect(noCreate.namespaceObject).toBeUndefined();
    expect('namespaceObject' in noCreate).toBe(false);
  });

  it('is deterministic', () => {
    expect(planJob(fixtureProfile(), fixtureContext(), input)).toEqual(plan);
  });

  it('keeps names valid for a long, messy login and a long job id', () => {
    const ctx = fixtureContext({ login: 'Jean-Hervé.Dupont-Aignan@EXAMPLE.corp'.repeat(3), jobId: 'j'.repeat(63) });
    const long = planJob(fixtureProfile(), ctx, input);
    expect(long.userSlug).toBe(loginToSlug(ctx.login));
    expect(long.namespace).toBe(`dss-${long.userSlug}`);
    expect(long.namespace.length).toBeLessThanOrEqual(63);
    expect(long.baseName.length).toBeLessThanOrEqual(47);
    expect(long.baseName).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    expect(long.labels[JOB_LABEL]).toBe('j'.repeat(63));
    expect(long.serviceAccount.metadata?.annotations?.[Annotation.login]).toBe(ctx.login);
  });

  it('uses the team namespace from an admin property', () => {
    const team = planJob(
      fixtureProfile({ targetNamespace: 'dss-team-${adminProperty:team}' }),
      fixtureContext({ adminProperties: { team: 'analytics' } }),
      input,
    );
    expect(team.namespace).toBe('dss-team-analytics');
  });

  it.each([
    ['a bad job id', fixtureProfile(), fixtureContext({ jobId: 'Bad_Id' }), input, UsageError],
    ['a managed caller argument', fixtureProfile(), fixtureContext(), { ...input, callerArgs: ['--master', 'local', 'a.py'] }, UsageError],
    ['a system namespace', fixtureProfile({ targetNamespace: 'kube-system', allowedNamespaces: /.*/ }), fixtureContext(), input, RefusedError],
    ['a missing admin property', fixtureProfile({ targetNamespace: 'dss-${adminProperty:team}' }), fixtureContext(), input, RefusedError],
  ])('refuses %s', (_name, profile, ctx, planInput, type) => {
    expect(() => planJob(profile, ctx, planInput)).toThrow(type);
  });
});
