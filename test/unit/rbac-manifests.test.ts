// The manifests of deploy/rbac say what the code means: the generated job-isolation policy is current, both
// manifests carry the same dssuser policy and the same driver ClusterRole, and that role is DRIVER_RULES.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAll } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { DRIVER_CLUSTER_ROLE, DRIVER_RULES } from '../../src/plan/objects.ts';
import { buildIsolationPolicy } from '../../src/plan/policy.ts';
import { MANIFESTS, withCurrentBlock } from '../../scripts/render-rbac.ts';

const root = join(import.meta.dirname, '../..');
type Doc = { kind: string; metadata: { name: string }; spec?: unknown; rules?: unknown };
const docs = (file: string) => loadAll(readFileSync(join(root, file), 'utf8')) as Doc[];
const find = (file: string, kind: string, name: string) => docs(file).find((d) => d.kind === kind && d.metadata.name === name);

describe.each(MANIFESTS)('%s', (file) => {
  it('carries the current job-isolation policy (else run: node scripts/render-rbac.ts)', () => {
    const text = readFileSync(join(root, file), 'utf8');
    expect(withCurrentBlock(text)).toBe(text);
    expect(find(file, 'ValidatingAdmissionPolicy', 'dss-spark-k8s-job-isolation')).toEqual(JSON.parse(JSON.stringify(buildIsolationPolicy())));
  });

  it('grants jobs exactly DRIVER_RULES through the driver ClusterRole', () => {
    expect(find(file, 'ClusterRole', DRIVER_CLUSTER_ROLE)?.rules).toEqual(JSON.parse(JSON.stringify(DRIVER_RULES)));
  });

  it('binds every admission policy it defines, denying', () => {
    for (const policy of docs(file).filter((d) => d.kind === 'ValidatingAdmissionPolicy')) {
      const binding = find(file, 'ValidatingAdmissionPolicyBinding', policy.metadata.name);
      expect(binding?.spec).toMatchObject({ policyName: policy.metadata.name, validationActions: ['Deny'] });
    }
  });
});

it('both manifests bound dssuser with the same admission policy', () => {
  const [perUser, team] = MANIFESTS.map((file) => find(file, 'ValidatingAdmissionPolicy', 'dss-spark-k8s-dssuser-scope'));
  expect(perUser).toBeDefined();
  expect(team).toEqual(perUser);
});
