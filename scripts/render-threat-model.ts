// Writes the verb × resource table of src/plan/threat-model.ts, read from the manifests of deploy/rbac, into
// THREAT-MODEL.md between the markers. A unit test fails when the document is out of date: run
// `node scripts/render-threat-model.ts` then. It prints what the table and the manifests disagree on, and exits 1.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAll } from 'js-yaml';
import { BOUNDS, boundProblems, grantedRights, type Manifest, proofProblems, renderThreatModelBlock, withBlock } from '../src/plan/threat-model.ts';
import { MANIFESTS } from './render-rbac.ts';

export const THREAT_MODEL = 'THREAT-MODEL.md';
const root = join(import.meta.dirname, '..');

export function readManifests(): Manifest[] {
  return MANIFESTS.map((file) => ({ file, docs: loadAll(readFileSync(join(root, file), 'utf8')) }));
}

export const readRepositoryFile = (file: string) => (existsSync(join(root, file)) ? readFileSync(join(root, file), 'utf8') : undefined);

/** THREAT-MODEL.md as it should be, and everything the table, the manifests and the tests disagree on. */
export function currentThreatModel(): { text: string; problems: string[] } {
  const manifests = readManifests();
  const { rights, problems } = grantedRights(manifests);
  return {
    text: withBlock(readFileSync(join(root, THREAT_MODEL), 'utf8'), renderThreatModelBlock(rights, BOUNDS)),
    problems: [...problems, ...boundProblems(rights, BOUNDS, manifests), ...proofProblems(BOUNDS, readRepositoryFile)],
  };
}

if (import.meta.main) {
  const { text, problems } = currentThreatModel();
  writeFileSync(join(root, THREAT_MODEL), text);
  for (const problem of problems) process.stderr.write(`render-threat-model: ${problem}\n`);
  process.exitCode = problems.length ? 1 : 0;
}
