import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { missingCapabilities, readServerCapabilities, requireServerCapabilities } from '../../src/k8s/server-capabilities.ts';
import { dssuserKube } from '../support/kube.ts';

const root = resolve(import.meta.dirname, '../..');
const OLD_VERSION = 'v1.29.6';

describe("the run's cluster", () => {
  it('has every capability the tool uses, and reports the version asked for', async () => {
    const kube = dssuserKube();
    const server = await readServerCapabilities(kube);
    expect(server.version.gitVersion).toBe(process.env.TEST_K8S_VERSION ?? 'v1.34.4');
    expect(missingCapabilities(server)).toEqual([]);
    await expect(requireServerCapabilities(kube)).resolves.toMatchObject({ version: { gitVersion: server.version.gitVersion } });
  });
});
