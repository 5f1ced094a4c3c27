// `policy network-policy`: the NetworkPolicy of a profile, printed for a team namespace's administrator.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load as loadYaml } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { networkPolicyCommand } from '../../src/commands/policy-network.ts';
import { ConfigError, ExitCode, UsageError } from '../../src/errors.ts';
import { buildNetworkPolicy } from '../../src/plan/network-policy.ts';

function configWith(networkPolicy: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'dss-np-'));
  const path = join(dir, 'config.yaml');
  writeFileSync(path, `profiles:\n  default:\n    sparkSubmit: /opt/spark/bin/spark-submit\n    networkPolicy: ${networkPolicy}\n`);
  return path;
}

async function print(options: Parameters<typeof networkPolicyCommand>[0]) {
  const out = { stdout: '', stderr: '' };
  const code = await networkPolicyCommand(options, {
    stdout: { write: (t: string) => (out.stdout += t) },
    stderr: { write: (t: string) => (out.stderr += t) },
    env: {},
  });
  return { code, ...out };
}

describe('policy network-policy', () => {
  const config = configWith('{driverAddresses: [10.1.2.0/24], driverPorts: 41000-41063, egress: [{cidr: 10.9.0.0/16, ports: [443]}]}');
  const expected = buildNetworkPolicy(
    'dss-team-a',
    { enabled: true, driverAddresses: ['10.1.2.0/24'], driverPorts: { from: 41000, to: 41063 }, egress: [{ cidr: '10.9.0.0/16', ports: [443] }] },
    ['10.1.2.0/24'],
  );

  it("prints the profile's policy for the namespace, as YAML kubectl reads back and as JSON", async () => {
    const yaml = await print({ namespace: 'dss-team-a', config });
    expect(yaml.code).toBe(0);
    expect(loadYaml(yaml.stdout)).toEqual(expected);
    expect(yaml.stderr).toMatch(/^dss-spark-k8s: NetworkPolicy of profile "default" for namespace dss-team-a; apply it as an administrator/);
    const json = await print({ namespace: 'dss-team-a', config, output: 'json' });
    expect(JSON.parse(json.stdout)).toEqual(expected);
  });

  it('refuses a missing or invalid namespace (exit 64) and a profile with the policy off (exit 78), in one line', async () => {
    await expect(print({ config })).rejects.toThrow(new UsageError('-n NAMESPACE is required: the namespace the NetworkPolicy is for'));
    const invalid = await print({ namespace: 'Team_A', config }).catch((e: UsageError) => e);
    expect(invalid).toBeInstanceOf(UsageError);
    expect((invalid as UsageError).exitCode).toBe(ExitCode.usage);
    const off = await print({ namespace: 'dss-team-a', config: configWith('{enabled: false}') }).catch((e: ConfigError) => e);
    expect(off).toBeInstanceOf(ConfigError);
    expect((off as ConfigError).message).toMatch(/^profile "default" sets networkPolicy\.enabled: false, .*; turn it on/);
    expect((off as ConfigError).exitCode).toBe(ExitCode.config);
  });
});
