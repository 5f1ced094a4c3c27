// What the cluster's apiserver offers of what the tool relies on, from /version and API discovery: parsing is
// pure (tested on captured answers), reading takes the client. `run` refuses a cluster that lacks a required
// capability (one line, before any write); doctor lists every missing one with its fix.
//
// Why discovery and not the version alone: a managed cluster may switch an API off (--runtime-config) or
// report a vendor version ("v1.30.4-eks-a737599"); the version only decides what discovery cannot show.
import { CliError, ExitCode, KubernetesError } from '../errors.ts';
import type { Kube } from './client.ts';

/** The oldest Kubernetes minor the tool supports: ValidatingAdmissionPolicy v1 is GA there. */
export const MINIMUM_MINOR = 30;

export type CapabilityName = 'validating-admission-policy' | 'token-request' | 'leases' | 'self-subject-review' | 'token-credential-id';

export interface Capability {
  name: CapabilityName;
  /** What it is, as an administrator would look it up. */
  title: string;
  /** What the tool does with it. */
  usedFor: string;
  /** Without it `run` refuses; otherwise the tool works with less (doctor warns). */
  required: boolean;
  present: boolean;
  /** What to do when it is missing. */
  fix: string;
}

export interface ServerVersion {
  gitVersion: string;
  major: number;
  minor: number;
}

export interface ServerCapabilities {
  version: ServerVersion;
  capabilities: Capability[];
}

/** The discovery documents read: group version → the resource names it serves (subresources as "a/b"). */
export type Discovery = Record<string, string[] | undefined>;

export const DISCOVERY_PATHS = {
  v1: '/api/v1',
  'admissionregistration.k8s.io/v1': '/apis/admissionregistration.k8s.io/v1',
  'coordination.k8s.io/v1': '/apis/coordination.k8s.io/v1',
  'authentication.k8s.io/v1': '/apis/authentication.k8s.io/v1',
} as const;
export type DiscoveredGroupVersion = keyof typeof DISCOVERY_PATHS;

/** /version's answer. Managed clusters add suffixes ("1.30+" as minor on EKS and GKE); the git version decides. */
export function parseServerVersion(body: unknown): ServerVersion {
  const info = (body ?? {}) as { gitVersion?: unknown; major?: unknown; minor?: unknown };
  const gitVersion = typeof info.gitVersion === 'string' ? info.gitVersion : '';
  const fromGit = /^v(\d+)\.(\d+)\./.exec(gitVersion);
  const major = Number.parseInt(fromGit?.[1] ?? String(info.major ?? ''), 10);
  const minor = Number.parseInt(fromGit?.[2] ?? String(info.minor ?? ''), 10);
  if (!Number.isInteger(major) || !Number.isInteger(minor)) {
    throw new KubernetesError(`the apiserver's /version answer names no version (gitVersion "${gitVersion.slice(0, 40)}")`);
  }
  return { gitVersion: gitVersion || `v${major}.${minor}`, major, minor };
}

/** The resource names of an APIResourceList (a discovery document of one group version). */
export function parseResourceList(body: unknown): string[] {
  const resources = (body as { resources?: { name?: unknown }[] } | undefined)?.resources;
  if (!Array.isArray(resources)) return [];
  return resources.flatMap((resource) => (typeof resource?.name === 'string' ? [resource.name] : []));
}

const atLeast = (version: ServerVersion, minor: number) => version.major > 1 || (version.major === 1 && version.minor >= minor);

/** Which capabilities the server has, from its version and the discovery documents (a group version the server does not serve is undefined). */
export function capabilitiesOf(version: ServerVersion, discovery: Discovery): ServerCapabilities {
  const serves = (groupVersion: DiscoveredGroupVersion, ...resources: string[]) =>
    resources.every((resource) => discovery[groupVersion]?.includes(resource) === true);
  const upgrade = (minor: number) => `upgrade the cluster to Kubernetes 1.${minor} or newer (it runs ${version.gitVersion})`;
  const capabilities: Capability[] = [
    {
      name: 'validating-admission-policy',
      title: 'ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1, GA in Kubernetes 1.30)',
      usedFor: "the dssuser-scope and job-isolation policies of deploy/rbac, which keep dssuser and each job's token in their lane",
      required: true,
      present: serves('admissionregistration.k8s.io/v1', 'validatingadmissionpolicies', 'validatingadmissionpolicybindings'),
      fix: atLeast(version, MINIMUM_MINOR)
        ? 'the API is switched off: enable admissionregistration.k8s.io/v1 validatingadmissionpolicies on the apiserver (--runtime-config)'
        : upgrade(MINIMUM_MINOR),
    },
    {
      name: 'token-request',
      title: 'TokenRequest (serviceaccounts/token)',
      usedFor: "each job's short-lived token, bound to its anchor Secret",
      required: true,
      present: serves('v1', 'serviceaccounts', 'serviceaccounts/token'),
      fix: 'configure the apiserver to issue service-account tokens (--service-account-issuer and --service-account-signing-key-file)',
    },
    {
      name: 'leases',
      title: 'Leases (coordination.k8s.io/v1)',
      usedFor: "each job's liveness Lease, which cleanup --orphans reads",
      required: true,
      present: serves('coordination.k8s.io/v1', 'leases'),
      fix: 'enable coordination.k8s.io/v1 on the apiserver (--runtime-config)',
    },
    {
      name: 'self-subject-review',
      title: 'SelfSubjectReview (authentication.k8s.io/v1, GA in Kubernetes 1.28)',
      usedFor: 'doctor showing who dssuser authenticates as',
      required: false,
      present: serves('authentication.k8s.io/v1', 'selfsubjectreviews'),
      fix: atLeast(version, 28)
        ? 'the API is switched off: enable authentication.k8s.io/v1 selfsubjectreviews on the apiserver (--runtime-config)'
        : upgrade(28),
    },
    {
      name: 'token-credential-id',
      // Not in discovery: ServiceAccountTokenJTI is on by default from 1.30 (beta; GA in 1.32). Measured on
      // v1.30.14: the token has a jti and its requests carry the credential id; 1.29 has it off (alpha).
      title: "tokens' credential id (jti, in audit events as authentication.kubernetes.io/credential-id; on by default from Kubernetes 1.30)",
      usedFor: "telling one job token's requests from another's in the audit log",
      required: false,
      present: atLeast(version, 30),
      fix: upgrade(30),
    },
  ];
  return { version, capabilities };
}

export function missingCapabilities(server: ServerCapabilities, which: 'required' | 'all' = 'all'): Capability[] {
  return server.capabilities.filter((capability) => !capability.present && (which === 'all' || capability.required));
}

/** The one-line refusal for a server that lacks a required capability, or undefined when it has them all. */
export function refusal(server: ServerCapabilities, where: string): string | undefined {
  const missing = missingCapabilities(server, 'required');
  if (missing.length === 0) return undefined;
  const names = missing.map((capability) => capability.title).join('; ');
  return `Kubernetes ${server.version.gitVersion} at ${where} lacks ${names}, which the tool needs for ${missing[0]!.usedFor}: ${missing[0]!.fix}`;
}

type Requester = Pick<Kube, 'request'>;

async function discover(kube: Requester, groupVersion: DiscoveredGroupVersion): Promise<string[] | undefined> {
  try {
    return parseResourceList(await kube.request(`discover ${groupVersion}`, 'GET', DISCOVERY_PATHS[groupVersion]));
  } catch (error) {
    if (error instanceof KubernetesError && error.status === 404) return undefined;
    throw error;
  }
}

/** Reads /version and the discovery documents at once. */
export async function readServerCapabilities(kube: Requester): Promise<ServerCapabilities> {
  const groupVersions = Object.keys(DISCOVERY_PATHS) as DiscoveredGroupVersion[];
  // Sent at once; the error reported is the first one in this order (the version's), not the first to arrive.
  const versionRead = kube.request('get server version', 'GET', '/version').then(parseServerVersion);
  const listsRead = groupVersions.map((groupVersion) => discover(kube, groupVersion));
  const failed = (await Promise.allSettled([versionRead, ...listsRead])).find((result) => result.status === 'rejected');
  if (failed) throw failed.reason;
  const [version, lists] = [await versionRead, await Promise.all(listsRead)];
  const discovery: Discovery = Object.fromEntries(groupVersions.map((groupVersion, i) => [groupVersion, lists[i]]));
  return capabilitiesOf(version, discovery);
}

/**
 * For `run`, before its first write: throws a one-line CliError (exit code 69, ExitCode.kubernetes) when the
 * cluster lacks a required capability; resolves with what was read otherwise. Five GETs, sent at once.
 */
export async function requireServerCapabilities(kube: Requester & Pick<Kube, 'endpoint'>): Promise<ServerCapabilities> {
  const server = await readServerCapabilities(kube);
  const message = refusal(server, kube.endpoint.server);
  if (message) throw new CliError(message, ExitCode.kubernetes);
  return server;
}

/** doctor's verdict: fail on a missing required capability, warn on a missing optional one; the fixes, one a line. */
export function capabilityVerdict(server: ServerCapabilities): { status: 'pass' | 'warn' | 'fail'; detail: string; fix?: string } {
  const missing = missingCapabilities(server);
  const version = `Kubernetes ${server.version.gitVersion}`;
  if (missing.length === 0) return { status: 'pass', detail: `${version} has everything the tool uses (${server.capabilities.map((c) => c.name).join(', ')})` };
  const required = missing.some((capability) => capability.required);
  const fixes = [...new Set(missing.map((capability) => capability.fix))];
  return {
    status: required ? 'fail' : 'warn',
    detail: `${version} lacks ${missing.map((capability) => `${capability.title}${capability.required ? '' : ' (optional)'}, for ${capability.usedFor}`).join('; ')}`,
    fix: fixes.join('\n'),
  };
}
