// Writes the job policies (src/plan/policy.ts: isolation, src/plan/attribution-policy.ts: attribution) into both
// manifests of deploy/rbac, between the markers, so that what an administrator applies is what the code and the tests mean. A unit test fails
// when a manifest is out of date: run `node scripts/render-rbac.ts` then.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dump } from 'js-yaml';
import { jobPolicies } from '../src/plan/attribution-policy.ts';

export const BEGIN = '# --- job policies (isolation, attribution): generated from src/plan by scripts/render-rbac.ts; do not edit ---';
export const END = '# --- end of the generated job policies ---';
export const MANIFESTS = ['deploy/rbac/per-user-namespaces.yaml', 'deploy/rbac/team-namespaces.yaml'];

export function renderPolicyBlock(): string {
  const yaml = (object: object) => dump(object, { lineWidth: 140, noRefs: true });
  const documents = jobPolicies().flatMap(({ policy, binding }) => [yaml(policy), yaml(binding)]);
  return `${BEGIN}\n${documents.join('---\n')}${END}\n`;
}

/** The manifest with its generated block replaced by the current one. */
export function withCurrentBlock(text: string): string {
  const start = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  if (start < 0 || end < start) throw new Error(`no generated block (${BEGIN} … ${END})`);
  return text.slice(0, start) + renderPolicyBlock() + text.slice(end + END.length + 1);
}

if (import.meta.main) {
  const root = join(import.meta.dirname, '..');
  for (const file of MANIFESTS) writeFileSync(join(root, file), withCurrentBlock(readFileSync(join(root, file), 'utf8')));
}
