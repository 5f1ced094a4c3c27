// The NetworkPolicy of an auto-created namespace (a guardrail like its quota: made with the namespace, never
// deleted by teardown), and the driver addresses it lets in. Client mode: the driver runs on the DSS host, so
// executors must reach it there; Spark's own NetworkPolicy step exists in cluster mode only.
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Profile } from '../config/types.ts';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from './types.ts';

export const NETWORK_POLICY_NAME = 'dss-spark-k8s';

// The wire shape (the client library's V1NetworkPolicyIngressRule names `from` `_from`; the body is sent as JSON).
interface NetworkPolicyPort {
  protocol: 'TCP' | 'UDP';
  port: number;
  endPort?: number;
}
interface NetworkPolicyPeer {
  podSelector?: Record<string, never>;
  namespaceSelector?: { matchLabels: Record<string, string> };
  ipBlock?: { cidr: string };
}
export interface NetworkPolicy {
  apiVersion: 'networking.k8s.io/v1';
  kind: 'NetworkPolicy';
  metadata: { name: string; namespace: string; labels: Record<string, string> };
  spec: {
    podSelector: Record<string, never>;
    policyTypes: ['Ingress', 'Egress'];
    ingress: { from: NetworkPolicyPeer[]; ports?: NetworkPolicyPort[] }[];
    egress: { to: NetworkPolicyPeer[]; ports?: NetworkPolicyPort[] }[];
  };
}

type NetworkPolicySettings = Profile['networkPolicy'];

/** The namespace's own pods (a podSelector without namespaceSelector selects in the policy's namespace). */
const SAME_NAMESPACE: NetworkPolicyPeer = { podSelector: {} };
const KUBE_SYSTEM: NetworkPolicyPeer = { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } } };

/**
 * One policy for every pod of the namespace: ingress only from the namespace's pods and from the drivers on the
 * driver ports; egress only to the namespace's pods (shuffle), the drivers' ports, DNS and the profile's extra egress.
 */
export function buildNetworkPolicy(namespace: string, settings: NetworkPolicySettings, driverAddresses: readonly string[]): NetworkPolicy {
  const drivers: NetworkPolicyPeer[] = driverAddresses.map((cidr) => ({ ipBlock: { cidr } }));
  const driverPorts: NetworkPolicyPort[] = [
    settings.driverPorts.from === settings.driverPorts.to
      ? { protocol: 'TCP', port: settings.driverPorts.from }
      : { protocol: 'TCP', port: settings.driverPorts.from, endPort: settings.driverPorts.to },
  ];
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: NETWORK_POLICY_NAME, namespace, labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE } },
    spec: {
      podSelector: {},
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ from: [SAME_NAMESPACE] }, ...(drivers.length > 0 ? [{ from: drivers, ports: driverPorts }] : [])],
      egress: [
        { to: [SAME_NAMESPACE] },
        ...(drivers.length > 0 ? [{ to: drivers, ports: driverPorts }] : []),
        {
          to: [KUBE_SYSTEM],
          ports: [
            { protocol: 'UDP', port: 53 },
            { protocol: 'TCP', port: 53 },
          ],
        },
        ...settings.egress.map((rule) => ({
          to: [{ ipBlock: { cidr: rule.cidr } }],
          ...(rule.ports.length > 0 ? { ports: rule.ports.map((port): NetworkPolicyPort => ({ protocol: 'TCP', port })) } : {}),
        })),
      ],
    },
  };
}

/** An address as a single-host CIDR (/32 or /128), or undefined when it is not an IP address. */
function isLoopback(cidr: string): boolean {
  return cidr.startsWith('127.') || cidr === '::1/128';
}

export function hostCidr(address: string): string | undefined {
  const family = isIP(address.trim());
  return family === 4 ? `${address.trim()}/32` : family === 6 ? `${address.trim()}/128` : undefined;
}

/**
 * Where this host's drivers are reached: the profile's driverAddresses, else spark.driver.host of its sparkConf
 * when that is an IP address other than a loopback one, else this host's non-internal IPv4 addresses (what Spark picks from).
 */
export function driverAddresses(
  profile: Pick<Profile, 'networkPolicy' | 'sparkConf'>,
  interfaces: ReturnType<typeof networkInterfaces> = networkInterfaces(),
): string[] {
  if (profile.networkPolicy.driverAddresses && profile.networkPolicy.driverAddresses.length > 0) return [...profile.networkPolicy.driverAddresses];
  const configured = profile.sparkConf['spark.driver.host'];
  const fromConf = configured === undefined ? undefined : hostCidr(configured);
  // A loopback driver address is never where pods reach a driver; it would shut executors out for good, since the
  // namespace keeps the policy its first job made.
  if (fromConf && !isLoopback(fromConf)) return [fromConf];
  const found = Object.values(interfaces)
    .flat()
    .filter((entry) => entry !== undefined && !entry.internal && entry.family === 'IPv4')
    .map((entry) => `${entry!.address}/32`);
  return [...new Set(found)];
}

/**
 * The ports the driver takes when the policy is on, so that driver and policy agree: the driver port and the
 * block manager port start at the range's first port and Spark tries the next one while a port is taken, up
 * to its last (concurrent jobs on one host each take the next free port).
 */
export function managedDriverPortConfs(settings: NetworkPolicySettings): Record<string, string> {
  if (!settings.enabled) return {};
  const { from, to } = settings.driverPorts;
  return {
    'spark.driver.port': String(from),
    'spark.blockManager.port': String(from),
    'spark.port.maxRetries': String(to - from),
  };
}
