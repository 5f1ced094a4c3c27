// The NetworkPolicy of auto-created namespaces, its default driver addresses, and the driver ports the tool
// manages so that the driver listens where the policy lets executors connect.
import type { NetworkInterfaceInfo } from 'node:os';
import { describe, expect, it } from 'vitest';
import { requiredRights } from '../../src/doctor/rights.ts';
import { UsageError } from '../../src/errors.ts';
import { buildNetworkPolicy, driverAddresses, hostCidr, managedDriverPortConfs } from '../../src/plan/network-policy.ts';
import { planJob, planObjects } from '../../src/plan/plan.ts';
import { fixtureContext, fixtureProfile } from './fixtures.ts';

const settings = { enabled: true, driverPorts: { from: 40000, to: 40127 }, egress: [] as { cidr: string; ports: number[] }[] };
const plan = (profile = fixtureProfile(), callerArgs: string[] = ['app.py'], addresses = ['192.0.2.2/32']) =>
  planJob(profile, fixtureContext(), { apiServer: 'https://k8s:6443', callerArgs, driverAddresses: addresses });

describe('buildNetworkPolicy', () => {
  it('selects every pod, for ingress and egress, and lets in only the namespace and the drivers on their ports', () => {
    const policy = buildNetworkPolicy('dss-ns-alice', settings, ['192.0.2.2/32', '2001:db8::1/128']);
    expect(policy.metadata).toEqual({ name: 'dss-spark-k8s', namespace: 'dss-ns-alice', labels: { 'app.kubernetes.io/managed-by': 'dss-spark-k8s' } });
    expect(policy.spec.podSelector).toEqual({});
    expect(policy.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    const drivers = [{ ipBlock: { cidr: '192.0.2.2/32' } }, { ipBlock: { cidr: '2001:db8::1/128' } }];
    const driverPorts = [{ protocol: 'TCP', port: 40000, endPort: 40127 }];
    expect(policy.spec.ingress).toEqual([{ from: [{ podSelector: {} }] }, { from: drivers, ports: driverPorts }]);
    expect(policy.spec.egress).toEqual([
      { to: [{ podSelector: {} }] },
      { to: drivers, ports: driverPorts },
      {
        to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } } }],
        ports: [
          { protocol: 'UDP', port: 53 },
          { protocol: 'TCP', port: 53 },
        ],
      },
    ]);
  });

  it("adds the profile's extra egress (TCP ports, or every port when none is listed), and one port without endPort", () => {
    const policy = buildNetworkPolicy(
      'dss-ns-alice',
      {
        ...settings,
        driverPorts: { from: 41000, to: 41000 },
        egress: [
          { cidr: '10.1.0.0/16', ports: [443, 8443] },
          { cidr: '10.2.0.0/16', ports: [] },
        ],
      },
      ['192.0.2.2/32'],
    );
    expect(policy.spec.egress[1]).toEqual({ to: [{ ipBlock: { cidr: '192.0.2.2/32' } }], ports: [{ protocol: 'TCP', port: 41000 }] });
    expect(policy.spec.egress.slice(3)).toEqual([
      {
        to: [{ ipBlock: { cidr: '10.1.0.0/16' } }],
        ports: [
          { protocol: 'TCP', port: 443 },
          { protocol: 'TCP', port: 8443 },
        ],
      },
      { to: [{ ipBlock: { cidr: '10.2.0.0/16' } }] },
    ]);
  });

  it('without any driver address, has no driver rules (never an ingress or egress rule open to everyone)', () => {
    const policy = buildNetworkPolicy('dss-ns-alice', settings, []);
    expect(policy.spec.ingress).toEqual([{ from: [{ podSelector: {} }] }]);
    expect(policy.spec.egress.every((rule) => rule.to.length > 0)).toBe(true);
    expect(policy.spec.egress).toHaveLength(2);
  });
});

describe('driverAddresses', () => {
  const nic = (address: string, family: 'IPv4' | 'IPv6', internal = false) =>
    ({ address, family, internal, netmask: '', mac: '', cidr: null }) as unknown as NetworkInterfaceInfo;
  const interfaces = {
    lo: [nic('127.0.0.1', 'IPv4', true), nic('::1', 'IPv6', true)],
    eth0: [nic('192.0.2.2', 'IPv4'), nic('2001:db8::2', 'IPv6')],
    br0: [nic('198.51.100.1', 'IPv4')],
  };

  it("are the profile's when it lists some", () => {
    const profile = fixtureProfile({ networkPolicy: { ...settings, driverAddresses: ['10.0.0.0/24'] }, sparkConf: { 'spark.driver.host': '192.0.2.9' } });
    expect(driverAddresses(profile, interfaces)).toEqual(['10.0.0.0/24']);
  });

  it("else spark.driver.host of the profile's sparkConf when it is an IP address (/32, /128)", () => {
    expect(driverAddresses(fixtureProfile({ sparkConf: { 'spark.driver.host': '192.0.2.9' } }), interfaces)).toEqual(['192.0.2.9/32']);
    expect(driverAddresses(fixtureProfile({ sparkConf: { 'spark.driver.host': '2001:db8::9' } }), interfaces)).toEqual(['2001:db8::9/128']);
  });

  it("else this host's non-internal IPv4 addresses (also when spark.driver.host is a name)", () => {
    expect(driverAddresses(fixtureProfile(), interfaces)).toEqual(['192.0.2.2/32', '198.51.100.1/32']);
    expect(driverAddresses(fixtureProfile({ sparkConf: { 'spark.driver.host': 'dss.example.com' } }), interfaces)).toEqual(['192.0.2.2/32', '198.51.100.1/32']);
    // Pods never reach a loopback driver: the host's addresses instead (the namespace keeps its first job's policy).
    expect(driverAddresses(fixtureProfile({ sparkConf: { 'spark.driver.host': '127.0.0.1' } }), interfaces)).toEqual(['192.0.2.2/32', '198.51.100.1/32']);
    expect(driverAddresses(fixtureProfile({ sparkConf: { 'spark.driver.host': '::1' } }), interfaces)).toEqual(['192.0.2.2/32', '198.51.100.1/32']);
  });

  it('hostCidr takes only IP addresses', () => {
    expect([hostCidr('192.0.2.1'), hostCidr('::1'), hostCidr('host'), hostCidr('192.0.2.1/32')]).toEqual(['192.0.2.1/32', '::1/128', undefined, undefined]);
  });
});

describe('the plan', () => {
  it('gives an auto-created namespace its NetworkPolicy, shown by --dry-run after the other guardrails', () => {
    const job = plan(fixtureProfile({ resourceQuota: { hard: { pods: '5' } } }));
    expect(job.namespaceNetworkPolicy?.spec.ingress[1]?.from).toEqual([{ ipBlock: { cidr: '192.0.2.2/32' } }]);
    const kinds = planObjects(job).map((o) => (o as { kind: string }).kind);
    expect(kinds.slice(0, 4)).toEqual(['Namespace', 'ResourceQuota', 'NetworkPolicy', 'ServiceAccount']);
  });

  it('makes none when the namespace is not auto-created, or when the profile turns it off', () => {
    expect(plan(fixtureProfile({ autoCreateNamespace: false })).namespaceNetworkPolicy).toBeUndefined();
    expect(plan(fixtureProfile({ networkPolicy: { ...settings, enabled: false } })).namespaceNetworkPolicy).toBeUndefined();
  });
});

describe('the managed driver ports', () => {
  const confs = (args: string[]) => args.filter((a) => /^spark\.(driver\.port|blockManager\.port|port\.maxRetries)=/.test(a));

  it('start at the range and retry up to its end, when the policy is on (team namespaces too: the admin applies the same policy)', () => {
    expect(managedDriverPortConfs({ ...settings, driverPorts: { from: 41000, to: 41063 } })).toEqual({
      'spark.driver.port': '41000',
      'spark.blockManager.port': '41000',
      'spark.port.maxRetries': '63',
    });
    expect(confs(plan().sparkSubmitArgs)).toEqual(['spark.driver.port=40000', 'spark.blockManager.port=40000', 'spark.port.maxRetries=127']);
    const team = fixtureProfile({ autoCreateNamespace: false, targetNamespace: 'dss-team-a' });
    expect(confs(plan(team).sparkSubmitArgs)).toHaveLength(3);
  });

  it("are not set when the policy is off, and the caller's or the profile's own are then theirs", () => {
    const off = fixtureProfile({ networkPolicy: { ...settings, enabled: false }, sparkConf: { 'spark.driver.port': '7078' } });
    expect(confs(plan(off, ['--conf', 'spark.blockManager.port=7079', 'app.py']).sparkSubmitArgs)).toEqual([
      'spark.driver.port=7078',
      'spark.blockManager.port=7079',
    ]);
  });

  it("refuse the caller's --conf and -D of them in one line, and ignore the profile's", () => {
    for (const args of [
      ['--conf', 'spark.driver.port=7078', 'app.py'],
      ['-c', 'spark.port.maxRetries=0', 'app.py'],
      ['--driver-java-options', '-Dspark.blockManager.port=7079', 'app.py'],
    ]) {
      expect(() => plan(fixtureProfile(), args)).toThrow(UsageError);
      expect(() => plan(fixtureProfile(), args)).toThrow(/dss-spark-k8s manages spark\.(driver\.port|port\.maxRetries|blockManager\.port); remove it/);
    }
    const profile = fixtureProfile({ sparkConf: { 'spark.driver.port': '7078' } });
    expect(confs(plan(profile).sparkSubmitArgs)).toEqual(['spark.driver.port=40000', 'spark.blockManager.port=40000', 'spark.port.maxRetries=127']);
  });
});

describe("doctor's rights check", () => {
  const np = (profile: Parameters<typeof requiredRights>[0]) =>
    requiredRights(profile)
      .filter((r) => r.resource === 'networkpolicies')
      .map((r) => `${r.group}/${r.resource}:${r.verb}`);

  it('asks for networkpolicies create only when the profile auto-creates namespaces with the policy on', () => {
    expect(np(fixtureProfile())).toEqual(['networking.k8s.io/networkpolicies:create']);
    expect(np(fixtureProfile({ autoCreateNamespace: false }))).toEqual([]);
    expect(np(fixtureProfile({ networkPolicy: { ...settings, enabled: false } }))).toEqual([]);
  });
});
