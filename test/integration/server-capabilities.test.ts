// What the apiserver offers of what the tool relies on (src/k8s/server-capabilities.ts), read as the restricted
// dssuser identity: the run's cluster has everything (its version is the one asked for: TEST_K8S_VERSION under
// scripts/matrix.sh, else the default). A version that lacks a required one is refused: test/matrix/old-kubernetes.test.ts.
import { describe, expect, it } from 'vitest';
import { missingCapabilities, readServerCapabilities, requireServerCapabilities } from '../../src/k8s/server-capabilities.ts';
import { dssuserKube } from '../support/kube.ts';

describe("the run's cluster", () => {
  it('has every capability the tool uses, and reports the version asked for', async () => {
    const kube = dssuserKube();
    const server = await readServerCapabilities(kube);
    expect(server.version.gitVersion).toBe(process.env.TEST_K8S_VERSION ?? 'v1.34.4');
    expect(missingCapabilities(server)).toEqual([]);
    await expect(requireServerCapabilities(kube)).resolves.toMatchObject({ version: { gitVersion: server.version.gitVersion } });
  });
});
