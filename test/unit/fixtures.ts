// The profile and job context the pure planning tests share.
import type { Profile } from '../../src/config/types.ts';
import type { JobContext } from '../../src/plan/types.ts';

export function fixtureProfile(overrides: Partial<Profile> = {}): Profile {
  return {
    name: 'default',
    source: '/etc/dss-spark-k8s/config.yaml',
    targetNamespace: 'dss-${dssUserLogin}',
    perUserNamespaces: [/^dss-ns-[a-z0-9]([-a-z0-9]*[a-z0-9])?$/],
    autoCreateNamespace: true,
    sparkSubmit: '/opt/spark/bin/spark-submit',
    sparkConf: { 'spark.kubernetes.container.image': 'spark:4.0.0', 'spark.executor.instances': '2' },
    tokenTtlSeconds: 3600,
    allowedNamespaces: /^dss-/,
    allowedUserGroups: [],
    minUid: 1000,
    labels: { team: 'data' },
    annotations: { 'example.com/owner': 'platform' },
    podSecurity: { enforce: 'restricted', audit: 'restricted', warn: 'restricted' },
    networkPolicy: { enabled: true, driverPorts: { from: 40000, to: 40127 }, egress: [] },
    allowedImagePullSecrets: [],
    executorRunAsUser: 185,
    leaseRenewSeconds: 30,
    killGraceSeconds: 10,
    apiTimeoutSeconds: 30,
    ...overrides,
  };
}

export function fixtureContext(overrides: Partial<JobContext> = {}): JobContext {
  return {
    jobId: 'abc123',
    login: 'alice',
    uid: 1001,
    adminProperties: {},
    host: 'dss-host',
    pid: 4242,
    processStart: '2025-01-02T03:04:05.000Z',
    now: new Date('2025-01-02T03:04:06.000Z'),
    ...overrides,
  };
}
