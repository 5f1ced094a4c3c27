// The pure parts of src/k8s/server-capabilities.ts: /version as vanilla and managed clusters answer it, discovery
// documents (trimmed from kube-apiserver's answers), which capability each decides, and run's one-line refusal.
import { describe, expect, it } from 'vitest';
import { CliError, ExitCode, KubernetesError } from '../../src/errors.ts';
import {
  capabilitiesOf,
  capabilityVerdict,
  missingCapabilities,
  parseResourceList,
  parseServerVersion,
  readServerCapabilities,
  refusal,
  requireServerCapabilities,
  type Discovery,
} from '../../src/k8s/server-capabilities.ts';

const resourceList = (groupVersion: string, names: string[]) => ({
  kind: 'APIResourceList',
  apiVersion: 'v1',
  groupVersion,
  resources: names.map((name) => ({ name, singularName: '', namespaced: true, kind: 'X', verbs: ['create'] })),
});

/** What kube-apiserver v1.34.4 serves of the four group versions read. */
const DISCOVERY_134: Record<string, unknown> = {
  '/api/v1': resourceList('v1', ['namespaces', 'pods', 'pods/log', 'secrets', 'serviceaccounts', 'serviceaccounts/token']),
  '/apis/admissionregistration.k8s.io/v1': resourceList('admissionregistration.k8s.io/v1', [
    'mutatingwebhookconfigurations',
    'validatingadmissionpolicies',
    'validatingadmissionpolicies/status',
    'validatingadmissionpolicybindings',
    'validatingwebhookconfigurations',
  ]),
  '/apis/coordination.k8s.io/v1': resourceList('coordination.k8s.io/v1', ['leases']),
  '/apis/authentication.k8s.io/v1': resourceList('authentication.k8s.io/v1', ['selfsubjectreviews', 'tokenreviews']),
};
/** Kubernetes 1.29 serves admissionregistration.k8s.io/v1 without the policies (v1beta1 only, off by default). */
const DISCOVERY_129: Record<string, unknown> = {
  ...DISCOVERY_134,
  '/apis/admissionregistration.k8s.io/v1': resourceList('admissionregistration.k8s.io/v1', [
    'mutatingwebhookconfigurations',
    'validatingwebhookconfigurations',
  ]),
};

const discoveryOf = (answers: Record<string, unknown>): Discovery =>
  Object.fromEntries(Object.values(answers).map((body) => [(body as { groupVersion: string }).groupVersion, parseResourceList(body)]));

/** A client answering from captured documents, 404 for anything else (as the apiserver does). */
function answering(version: unknown, answers: Record<string, unknown>) {
  const asked: string[] = [];
  return {
    asked,
    endpoint: { server: 'https://k8s.example.com:6443' } as never,
    async request<T>(action: string, _method: string, path: string): Promise<T> {
      asked.push(path);
      if (path === '/version') return version as T;
      if (path in answers) return answers[path] as T;
      throw new KubernetesError(`${action} failed: 404 Not Found`, 404);
    },
  };
}

describe('parseServerVersion', () => {
  it.each([
    [{ major: '1', minor: '34', gitVersion: 'v1.34.4' }, 1, 34, 'v1.34.4'],
    [{ major: '1', minor: '30+', gitVersion: 'v1.30.4-eks-a737599' }, 1, 30, 'v1.30.4-eks-a737599'],
    [{ major: '1', minor: '32+', gitVersion: 'v1.32.2-gke.1297002' }, 1, 32, 'v1.32.2-gke.1297002'],
    [{ major: '1', minor: '37', gitVersion: 'v1.37.2' }, 1, 37, 'v1.37.2'],
    // A build without version ldflags reports v0.0.0: the fields decide then.
    [{ major: '1', minor: '31', gitVersion: 'weird' }, 1, 31, 'weird'],
  ])('%j is %i.%i', (body, major, minor, gitVersion) => {
    expect(parseServerVersion(body)).toEqual({ major, minor, gitVersion });
  });

  it('refuses an answer that names no version, in one line', () => {
    expect(() => parseServerVersion({ gitVersion: 'nonsense' })).toThrow(/^the apiserver's \/version answer names no version \(gitVersion "nonsense"\)$/);
    expect(() => parseServerVersion(undefined)).toThrow(KubernetesError);
  });
});

describe('capabilitiesOf', () => {
  it('finds everything on Kubernetes 1.34', () => {
    const server = capabilitiesOf(parseServerVersion({ gitVersion: 'v1.34.4' }), discoveryOf(DISCOVERY_134));
    expect(missingCapabilities(server)).toEqual([]);
    expect(server.capabilities.map((c) => c.name)).toEqual([
      'validating-admission-policy',
      'token-request',
      'leases',
      'self-subject-review',
      'token-credential-id',
    ]);
    expect(refusal(server, 'https://x')).toBeUndefined();
  });

  it('finds no ValidatingAdmissionPolicy on 1.29, and says to upgrade to 1.30', () => {
    const server = capabilitiesOf(parseServerVersion({ gitVersion: 'v1.29.6' }), discoveryOf(DISCOVERY_129));
    expect(missingCapabilities(server, 'required').map((c) => c.name)).toEqual(['validating-admission-policy']);
    expect(missingCapabilities(server).map((c) => c.name)).toEqual(['validating-admission-policy', 'token-credential-id']);
    expect(refusal(server, 'https://k8s.example.com:6443')).toBe(
      'Kubernetes v1.29.6 at https://k8s.example.com:6443 lacks ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1, GA in Kubernetes 1.30),' +
        " which the tool needs for the dssuser-scope and job-isolation policies of deploy/rbac, which keep dssuser and each job's token in their lane:" +
        ' upgrade the cluster to Kubernetes 1.30 or newer (it runs v1.29.6)',
    );
  });

  it('tells a switched-off API on a recent version from an old version', () => {
    const server = capabilitiesOf(parseServerVersion({ gitVersion: 'v1.33.1' }), discoveryOf(DISCOVERY_129));
    expect(missingCapabilities(server)[0]!.fix).toMatch(/^the API is switched off: enable admissionregistration\.k8s\.io\/v1 validatingadmissionpolicies/);
  });

  it('needs the token subresource, not only the accounts', () => {
    const discovery = { ...discoveryOf(DISCOVERY_134), v1: ['serviceaccounts', 'secrets'] };
    const server = capabilitiesOf(parseServerVersion({ gitVersion: 'v1.34.4' }), discovery);
    expect(missingCapabilities(server, 'required').map((c) => c.name)).toEqual(['token-request']);
  });

  it('finds everything on 1.30, the oldest supported version (the credential id is on by default there)', () => {
    const server = capabilitiesOf(parseServerVersion({ gitVersion: 'v1.30.14' }), discoveryOf(DISCOVERY_134));
    expect(missingCapabilities(server)).toEqual([]);
  });

  it('only warns (not required) for a switched-off SelfSubjectReview', () => {
    const server = capabilitiesOf(parseServerVersion({ gitVersion: 'v1.31.2' }), {
      ...discoveryOf(DISCOVERY_134),
      'authentication.k8s.io/v1': ['tokenreviews'],
    });
    expect(missingCapabilities(server, 'required')).toEqual([]);
    expect(missingCapabilities(server).map((c) => [c.name, c.required, c.fix])).toEqual([
      ['self-subject-review', false, 'the API is switched off: enable authentication.k8s.io/v1 selfsubjectreviews on the apiserver (--runtime-config)'],
    ]);
  });

  it('counts a group version the server does not serve as missing', () => {
    const { 'coordination.k8s.io/v1': _, ...discovery } = discoveryOf(DISCOVERY_134);
    const server = capabilitiesOf(parseServerVersion({ gitVersion: 'v1.34.4' }), discovery);
    expect(missingCapabilities(server).map((c) => c.name)).toEqual(['leases']);
  });
});

describe('reading and requiring', () => {
  it('reads /version and the four discovery documents; a 404 is a group version not served', async () => {
    const { '/apis/authentication.k8s.io/v1': _, ...answers } = DISCOVERY_134;
    const kube = answering({ gitVersion: 'v1.34.4' }, answers);
    const server = await readServerCapabilities(kube);
    expect(kube.asked.sort()).toEqual([
      '/api/v1',
      '/apis/admissionregistration.k8s.io/v1',
      '/apis/authentication.k8s.io/v1',
      '/apis/coordination.k8s.io/v1',
      '/version',
    ]);
    expect(missingCapabilities(server).map((c) => c.name)).toEqual(['self-subject-review']);
  });

  it('passes other errors on unchanged', async () => {
    const kube = answering({ gitVersion: 'v1.34.4' }, DISCOVERY_134);
    const failing = {
      ...kube,
      request: async () => {
        throw new KubernetesError('discover v1 failed: 403 Forbidden', 403);
      },
    };
    await expect(readServerCapabilities(failing)).rejects.toThrow('discover v1 failed: 403 Forbidden');
  });

  it("reports the version's error when every request fails, whichever answer arrives first (rejected credentials)", async () => {
    const unauthorized = {
      endpoint: answering({ gitVersion: 'v1.34.4' }, DISCOVERY_134).endpoint,
      request: async (what: string) => {
        // The version's 401 arrives last.
        await new Promise((resolve) => setTimeout(resolve, what === 'get server version' ? 20 : 0));
        throw new KubernetesError(`${what} failed (401 Unauthorized): Unauthorized`, 401);
      },
    };
    await expect(readServerCapabilities(unauthorized)).rejects.toThrow(/^get server version failed \(401/);
  });

  it('requireServerCapabilities resolves on 1.34 and refuses 1.29 with one line and exit code 69', async () => {
    await expect(requireServerCapabilities(answering({ gitVersion: 'v1.34.4' }, DISCOVERY_134))).resolves.toMatchObject({ version: { minor: 34 } });
    const refused = await requireServerCapabilities(answering({ gitVersion: 'v1.29.6' }, DISCOVERY_129)).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(CliError);
    expect((refused as CliError).exitCode).toBe(ExitCode.kubernetes);
    expect((refused as CliError).message).toMatch(
      /^Kubernetes v1\.29\.6 at https:\/\/k8s\.example\.com:6443 lacks ValidatingAdmissionPolicy .*: upgrade the cluster to Kubernetes 1\.30 or newer \(it runs v1\.29\.6\)$/,
    );
    expect((refused as CliError).message).not.toContain('\n');
  });
});

describe("doctor's verdict", () => {
  it('passes on 1.34, warns without SelfSubjectReview, fails on 1.29 with the upgrade as the one fix', () => {
    const on = (gitVersion: string, discovery: Discovery) => capabilityVerdict(capabilitiesOf(parseServerVersion({ gitVersion }), discovery));
    expect(on('v1.34.4', discoveryOf(DISCOVERY_134))).toEqual({
      status: 'pass',
      detail: 'Kubernetes v1.34.4 has everything the tool uses (validating-admission-policy, token-request, leases, self-subject-review, token-credential-id)',
    });
    const noReview = on('v1.31.2', { ...discoveryOf(DISCOVERY_134), 'authentication.k8s.io/v1': undefined });
    expect(noReview.status).toBe('warn');
    expect(noReview.detail).toMatch(/^Kubernetes v1\.31\.2 lacks SelfSubjectReview .* \(optional\), for doctor showing who dssuser authenticates as$/);
    const v129 = on('v1.29.6', discoveryOf(DISCOVERY_129));
    expect(v129.status).toBe('fail');
    expect(v129.detail).toMatch(
      /^Kubernetes v1\.29\.6 lacks ValidatingAdmissionPolicy .*, for the dssuser-scope and job-isolation policies .*; tokens' credential id .* \(optional\), for /,
    );
    // The same action gives both: listed once.
    expect(v129.fix).toBe('upgrade the cluster to Kubernetes 1.30 or newer (it runs v1.29.6)');
  });
});
