import { describe, expect, it } from 'vitest';
import { desiredGuardrails, podSecurityDrift, renderRows } from '../../src/namespaces/reconcile.ts';
import { buildNamespace } from '../../src/plan/objects.ts';
import { fixtureProfile } from './fixtures.ts';

describe('namespaces reconcile: the pure part', () => {
  const profile = fixtureProfile({ resourceQuota: { hard: { pods: '5' } }, podSecurity: { enforce: 'restricted', audit: 'restricted', warn: 'baseline' } });

  it('wants the profile quota, limits and NetworkPolicy, and nothing when the profile sets none of them', () => {
    const wanted = desiredGuardrails('dss-a', profile, ['192.0.2.10/32']);
    expect(wanted.map((g) => [g.kind, g.object.metadata?.name, g.object.metadata?.namespace])).toEqual([
      ['resourcequotas', 'dss-spark-k8s', 'dss-a'],
      ['networkpolicies', 'dss-spark-k8s', 'dss-a'],
    ]);
    expect(JSON.stringify(wanted[1]?.object)).toContain('192.0.2.10/32');
    const none = fixtureProfile({ networkPolicy: { enabled: false, driverPorts: { from: 40000, to: 40127 }, egress: [] } });
    expect(desiredGuardrails('dss-a', none, [])).toEqual([]);
  });

  it('reports each Pod Security label that differs, with the administrator command, and none when they match', () => {
    const created = buildNamespace('dss-a', fixtureProfile());
    expect(podSecurityDrift(created, profile)).toEqual([
      {
        namespace: 'dss-a',
        object: 'label pod-security.kubernetes.io/warn',
        state: 'differs',
        detail:
          'restricted, the profile says baseline; an administrator fixes it: kubectl label --overwrite namespace dss-a pod-security.kubernetes.io/warn=baseline',
      },
    ]);
    expect(podSecurityDrift(buildNamespace('dss-a', profile), profile)).toEqual([]);
  });

  it('renders a table and says how to create what is missing', () => {
    const rows = [
      { namespace: 'dss-a', object: 'ResourceQuota dss-spark-k8s', state: 'missing' as const },
      { namespace: 'dss-bb', object: 'LimitRange dss-spark-k8s', state: 'present' as const },
    ];
    expect(renderRows(rows, false)).toBe(
      [
        'NAMESPACE  OBJECT                       STATE    DETAIL',
        'dss-a      ResourceQuota dss-spark-k8s  missing',
        'dss-bb     LimitRange dss-spark-k8s     present',
        '1 missing; run again with --yes to create them',
        '',
      ].join('\n'),
    );
    expect(renderRows([], true)).toBe('no managed namespace found\n');
  });
});
