import { describe, expect, it } from 'vitest';
import {
  buildExecutorServiceAccount,
  buildLease,
  buildNamespace,
  buildRoleBinding,
  buildServiceAccount,
  buildTokenRequest,
  DRIVER_CLUSTER_ROLE,
  DRIVER_RULES,
  holderIdentity,
  jobAnnotations,
  jobLabels,
} from '../../src/plan/objects.ts';
import { Annotation, JOB_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, MANAGED_NAMESPACE_LABEL, OWNER_LABEL, USER_LABEL } from '../../src/plan/types.ts';
import { fixtureContext, fixtureProfile } from './fixtures.ts';

describe('jobLabels', () => {
  it('adds the tool labels to the profile labels', () => {
    expect(jobLabels(fixtureProfile(), 'job-1', 'alice', 'dss-spark-alice-job-1')).toEqual({
      team: 'data',
      [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
      [JOB_LABEL]: 'job-1',
      [USER_LABEL]: 'alice',
      [OWNER_LABEL]: 'dss-spark-alice-job-1',
    });
  });

  it('never lets profile labels override the tool labels', () => {
    const profile = fixtureProfile({
      labels: { [MANAGED_BY_LABEL]: 'helm', [JOB_LABEL]: 'other-job', [USER_LABEL]: 'bob', extra: 'x' },
    });
    const labels = jobLabels(profile, 'job-1', 'alice', 'dss-spark-alice-job-1');
    expect(labels[MANAGED_BY_LABEL]).toBe(MANAGED_BY_VALUE);
    expect(labels[JOB_LABEL]).toBe('job-1');
    expect(labels[USER_LABEL]).toBe('alice');
    expect(labels.extra).toBe('x');
  });
});

describe('jobAnnotations', () => {
  it('records who, where and when, over any profile annotation of the same key', () => {
    const profile = fixtureProfile({ annotations: { [Annotation.login]: 'mallory', note: 'n' } });
    const ctx = fixtureContext({ login: 'Alice.B' });
    expect(jobAnnotations(profile, ctx, new Date('2025-01-02T04:04:06.000Z'))).toEqual({
      note: 'n',
      [Annotation.login]: 'Alice.B',
      [Annotation.host]: 'dss-host',
      [Annotation.pid]: '4242',
      [Annotation.processStart]: '2025-01-02T03:04:05.000Z',
      [Annotation.createdAt]: '2025-01-02T03:04:06.000Z',
      [Annotation.expiresAt]: '2025-01-02T04:04:06.000Z',
    });
  });
});

describe('buildNamespace', () => {
  it('labels the namespace as managed, with Pod Security Admission levels and no job label', () => {
    const ns = buildNamespace('dss-alice', fixtureProfile({ podSecurity: { enforce: 'baseline', audit: 'restricted', warn: 'restricted' } }));
    expect(ns.apiVersion).toBe('v1');
    expect(ns.kind).toBe('Namespace');
    expect(ns.metadata?.name).toBe('dss-alice');
    expect(ns.metadata?.labels).toEqual({
      team: 'data',
      [MANAGED_NAMESPACE_LABEL]: 'true',
      [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
      'pod-security.kubernetes.io/enforce': 'baseline',
      'pod-security.kubernetes.io/enforce-version': 'latest',
      'pod-security.kubernetes.io/audit': 'restricted',
      'pod-security.kubernetes.io/audit-version': 'latest',
      'pod-security.kubernetes.io/warn': 'restricted',
      'pod-security.kubernetes.io/warn-version': 'latest',
    });
    expect(ns.metadata?.labels).not.toHaveProperty(JOB_LABEL);
  });

  it('keeps its own labels over the profile labels', () => {
    const profile = fixtureProfile({
      labels: { 'pod-security.kubernetes.io/enforce': 'privileged', [MANAGED_BY_LABEL]: 'x', [MANAGED_NAMESPACE_LABEL]: 'false' },
    });
    const ns = buildNamespace('dss-alice', profile);
    expect(ns.metadata?.labels?.['pod-security.kubernetes.io/enforce']).toBe('restricted');
    expect(ns.metadata?.labels?.[MANAGED_BY_LABEL]).toBe(MANAGED_BY_VALUE);
    expect(ns.metadata?.labels?.[MANAGED_NAMESPACE_LABEL]).toBe('true');
  });
});

describe('service accounts', () => {
  it.each([
    ['job', buildServiceAccount],
    ['executor', buildExecutorServiceAccount],
  ])('never automounts a token for the %s account', (_name, build) => {
    const sa = build('dss-spark-alice-abc', 'dss-alice', { a: 'b' }, { c: 'd' });
    expect(sa).toEqual({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'dss-spark-alice-abc', namespace: 'dss-alice', labels: { a: 'b' }, annotations: { c: 'd' } },
      automountServiceAccountToken: false,
    });
  });

  it('copies labels so that editing one object does not change another', () => {
    const labels = { a: 'b' };
    const sa = buildServiceAccount('n', 'ns', labels, {});
    labels.a = 'changed';
    expect(sa.metadata?.labels?.a).toBe('b');
  });
});

describe('DRIVER_RULES (the rules of the driver ClusterRole)', () => {
  it('are exactly the documented rules', () => {
    expect(DRIVER_RULES).toEqual([
      { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete', 'deletecollection'] },
      { apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: ['create'] },
    ]);
  });

  const resources = DRIVER_RULES.flatMap((rule) => rule.resources);
  it.each([
    'secrets',
    'pods/exec',
    'pods/attach',
    'pods/portforward',
    'roles',
    'rolebindings',
    'namespaces',
    'serviceaccounts',
    'serviceaccounts/token',
    // A client-mode driver creates no Service and, with disableConfigMap, no ConfigMap: a Service of any
    // shape (LoadBalancer, NodePort, externalIPs) was a way out of the namespace.
    'services',
    'configmaps',
    '*',
  ])('grant nothing on %s', (resource) => {
    expect(resources).not.toContain(resource);
  });

  it('grant no wildcard verb or group, no escalate/bind/impersonate', () => {
    for (const rule of DRIVER_RULES) {
      expect(rule.apiGroups).toEqual(['']);
      expect(rule.verbs).not.toContain('*');
      for (const verb of ['escalate', 'bind', 'impersonate']) expect(rule.verbs).not.toContain(verb);
    }
  });

  it('cannot be widened at run time', () => {
    expect(() => (DRIVER_RULES[0]!.resources as string[]).push('secrets')).toThrow();
    expect(DRIVER_RULES[0]!.resources).not.toContain('secrets');
  });
});

describe('buildRoleBinding', () => {
  it('binds the driver ClusterRole to the job account, in the job namespace only', () => {
    expect(buildRoleBinding('rb', 'dss-alice', 'sa', { a: 'b' }, { c: 'd' })).toEqual({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'rb', namespace: 'dss-alice', labels: { a: 'b' }, annotations: { c: 'd' } },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'dss-spark-k8s-driver' },
      subjects: [{ kind: 'ServiceAccount', name: 'sa', namespace: 'dss-alice' }],
    });
    expect(DRIVER_CLUSTER_ROLE).toBe('dss-spark-k8s-driver');
  });
});

describe('buildLease', () => {
  it('holds the job with microsecond times', () => {
    const now = new Date('2025-01-02T03:04:06.789Z');
    const lease = buildLease('l', 'dss-alice', { a: 'b' }, {}, 'host/1/start', 120, now);
    expect(lease.apiVersion).toBe('coordination.k8s.io/v1');
    expect(lease.kind).toBe('Lease');
    expect(lease.metadata).toMatchObject({ name: 'l', namespace: 'dss-alice', labels: { a: 'b' } });
    expect(lease.spec?.holderIdentity).toBe('host/1/start');
    expect(lease.spec?.leaseDurationSeconds).toBe(120);
    expect(lease.spec?.acquireTime).toBe('2025-01-02T03:04:06.789000Z');
    expect(lease.spec?.renewTime).toBe('2025-01-02T03:04:06.789000Z');
    expect(new Date(lease.spec!.renewTime!).getTime()).toBe(now.getTime());
  });
});

describe('buildTokenRequest', () => {
  it('asks for the given lifetime', () => {
    expect(buildTokenRequest(3600)).toEqual({
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { expirationSeconds: 3600 },
    });
    expect(buildTokenRequest(600, ['https://kubernetes.default.svc']).spec).toEqual({
      expirationSeconds: 600,
      audiences: ['https://kubernetes.default.svc'],
    });
  });
});

describe('holderIdentity', () => {
  it('is host/pid/process start', () => {
    expect(holderIdentity(fixtureContext())).toBe('dss-host/4242/2025-01-02T03:04:05.000Z');
  });
});
