// THREAT-MODEL.md says what the manifests grant: its verb × resource block is what scripts/render-threat-model.ts
// renders from deploy/rbac now, every write right granted there has a bound in src/plan/threat-model.ts (and no
// bound names a right no longer granted), and every test the table names exists.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  BOUNDS,
  boundProblems,
  type Bound,
  grantedRights,
  type Manifest,
  namedTests,
  proofProblems,
  renderThreatModelBlock,
  testProblem,
} from '../../src/plan/threat-model.ts';
import { currentThreatModel, readManifests, readRepositoryFile, THREAT_MODEL } from '../../scripts/render-threat-model.ts';

const PER_USER = 'deploy/rbac/per-user-namespaces.yaml';
const TEAM = 'deploy/rbac/team-namespaces.yaml';

type Doc = {
  kind: string;
  metadata: { name: string };
  rules?: { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[];
  // biome-ignore lint/suspicious/noExplicitAny: the manifests' YAML, read loosely
  spec?: any;
};

/** The manifests of deploy/rbac with `change` applied to one document of `file`. */
function changed(file: string, kind: string, name: string, change: (doc: Doc) => void): Manifest[] {
  const manifests = structuredClone(readManifests());
  const doc = manifests.find((m) => m.file === file)!.docs.find((d) => (d as Doc).kind === kind && (d as Doc).metadata.name === name) as Doc;
  change(doc);
  return manifests;
}

function problemsOf(manifests: Manifest[]): string[] {
  const { rights, problems } = grantedRights(manifests);
  return [...problems, ...boundProblems(rights, BOUNDS, manifests)];
}

describe(THREAT_MODEL, () => {
  it('carries the current verb × resource table (else run: node scripts/render-threat-model.ts)', () => {
    expect(currentThreatModel().text).toBe(readFileSync(join(import.meta.dirname, '../..', THREAT_MODEL), 'utf8'));
  });

  it('knows every binding, subject and role of the manifests', () => {
    expect(grantedRights(readManifests()).problems).toEqual([]);
  });

  it('bounds every write right the manifests grant, and names no right they do not grant', () => {
    const manifests = readManifests();
    const { rights } = grantedRights(manifests);
    expect(rights.filter((r) => r.identity === 'job token').map((r) => `${r.verb} ${r.resource}`)).toEqual([
      'create persistentvolumeclaims',
      'get pods',
      'list pods',
      'watch pods',
      'create pods',
      'patch pods',
      'delete pods',
      'deletecollection pods',
    ]);
    expect(boundProblems(rights, BOUNDS, manifests)).toEqual([]);
  });

  it('names only tests that exist, each by a title found once in its file', () => {
    expect(proofProblems(BOUNDS, readRepositoryFile)).toEqual([]);
  });

  it('names only tests that exist in its prose too (`file` › `title`)', () => {
    const prose = readRepositoryFile(THREAT_MODEL)!.split('<!-- BEGIN')[0]!;
    const named = namedTests(prose);
    expect(named.length).toBeGreaterThan(5);
    // A bare file name is one of test/integration or test/unit.
    const path = (file: string) =>
      file.includes('/') ? file : ['test/integration/', 'test/unit/'].map((dir) => dir + file).find((f) => readRepositoryFile(f));
    expect(named.map((proof) => testProblem('prose', { ...proof, file: path(proof.file) ?? proof.file }, readRepositoryFile)).filter(Boolean)).toEqual([]);
  });
});

describe('the threat-model checks', () => {
  it("fail on a right added to dssuser's role without a bound, and the document shows it unbounded", () => {
    const manifests = changed(PER_USER, 'ClusterRole', 'dss-spark-k8s', (role) =>
      role.rules!.push({ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'create'] }),
    );
    expect(problemsOf(manifests)).toEqual([
      'dssuser create configmaps: granted by ClusterRole dss-spark-k8s (deploy/rbac/per-user-namespaces.yaml) but bounded by no entry of BOUNDS',
    ]);
    const block = renderThreatModelBlock(grantedRights(manifests).rights, BOUNDS);
    expect(block).toMatch(/^\| dssuser \| create \| `configmaps` \| .* \| \*\*NO BOUND\*\* \|/m);
    expect(block).toMatch(/^\| dssuser \| `configmaps` \| get \|/m);
  });

  it('fail on a right added to the driver role of either manifest, and on a wildcard', () => {
    const services = changed(TEAM, 'ClusterRole', 'dss-spark-k8s-driver', (role) =>
      role.rules!.push({ apiGroups: [''], resources: ['services'], verbs: ['create'] }),
    );
    expect(problemsOf(services)).toEqual([
      'job token create services: granted by ClusterRole dss-spark-k8s-driver (deploy/rbac/team-namespaces.yaml) but bounded by no entry of BOUNDS',
    ]);
    const wildcard = changed(TEAM, 'Role', 'dss-spark-k8s', (role) => (role.rules![0]!.verbs = ['*']));
    expect(problemsOf(wildcard)).toContain(
      'dssuser * serviceaccounts: granted by Role dss-spark-k8s (deploy/rbac/team-namespaces.yaml) but bounded by no entry of BOUNDS',
    );
  });

  it('give a job every role dssuser may bind, and fail on one bindable by any name', () => {
    const second = changed(PER_USER, 'ClusterRole', 'dss-spark-k8s', (role) => role.rules!.find((r) => r.verbs.includes('bind'))!.resourceNames!.push('edit'));
    expect(problemsOf(second)).toEqual([
      `${PER_USER}: dssuser may bind ClusterRole edit, which the manifest does not define: a job's rights are unknown`,
      `dssuser bind clusterroles.rbac.authorization.k8s.io (dss-spark-k8s-driver, edit): granted by ClusterRole dss-spark-k8s (${PER_USER}) but bounded by no entry of BOUNDS`,
    ]);
    const anyName = changed(TEAM, 'Role', 'dss-spark-k8s', (role) => delete role.rules!.find((r) => r.verbs.includes('bind'))!.resourceNames);
    expect(problemsOf(anyName)).toEqual([
      'deploy/rbac/team-namespaces.yaml: Role dss-spark-k8s lets dssuser bind any ClusterRole: a job could be given any rights',
      expect.stringMatching(/^deploy\/rbac\/team-namespaces\.yaml: ClusterRole dss-spark-k8s-driver is bound to no identity/),
      'dssuser bind clusterroles.rbac.authorization.k8s.io: granted by Role dss-spark-k8s (deploy/rbac/team-namespaces.yaml) but bounded by no entry of BOUNDS',
    ]);
  });

  it('fail on a binding to an identity the model does not know, and on a role bound to none', () => {
    const manifests = structuredClone(readManifests());
    const perUser = manifests.find((m) => m.file === PER_USER)!;
    (perUser.docs as unknown[]).push(
      {
        kind: 'ClusterRoleBinding',
        metadata: { name: 'everyone' },
        roleRef: { kind: 'ClusterRole', name: 'dss-spark-k8s-driver' },
        subjects: [{ kind: 'Group', name: 'system:authenticated' }],
      },
      { kind: 'ClusterRole', metadata: { name: 'spare' }, rules: [{ apiGroups: [''], resources: ['nodes'], verbs: ['patch'] }] },
    );
    expect(grantedRights(manifests).problems).toEqual([
      `${PER_USER}: ClusterRoleBinding everyone grants ClusterRole dss-spark-k8s-driver to Group system:authenticated, an identity the threat model does not know`,
      `${PER_USER}: ClusterRole spare is bound to no identity of the threat model`,
    ]);
  });

  it('fail on an entry for a right no longer granted', () => {
    const manifests = structuredClone(readManifests());
    for (const manifest of manifests) {
      const driver = manifest.docs.find((d) => (d as Doc).kind === 'ClusterRole' && (d as Doc).metadata.name === 'dss-spark-k8s-driver') as Doc;
      driver.rules![0]!.verbs = driver.rules![0]!.verbs.filter((v) => v !== 'deletecollection');
    }
    expect(problemsOf(manifests)).toEqual(['job token deletecollection pods: in BOUNDS, but no manifest grants it (any more): remove the entry']);
  });

  it('fail when a policy named in the table no longer sees the request or no longer has the rule', () => {
    const unseen = changed(
      TEAM,
      'ValidatingAdmissionPolicy',
      'dss-spark-k8s-job-isolation',
      (policy) => (policy.spec.matchConstraints.resourceRules[0].resources = ['pods']),
    );
    expect(problemsOf(unseen)).toEqual([
      `job token create persistentvolumeclaims: dss-spark-k8s-job-isolation in ${TEAM}: does not see create persistentvolumeclaims (CREATE)`,
    ]);
    const reworded = changed(PER_USER, 'ValidatingAdmissionPolicy', 'dss-spark-k8s-dssuser-scope', (policy) => {
      for (const v of policy.spec.validations) v.message = v.message?.replace('empty Secrets of type Opaque', 'Secrets');
    });
    expect(problemsOf(reworded)).toEqual([
      `dssuser create secrets: dss-spark-k8s-dssuser-scope in ${PER_USER}: no validation says "dssuser may only create empty Secrets of type Opaque"`,
    ]);
    const unbound = changed(
      PER_USER,
      'ValidatingAdmissionPolicyBinding',
      'dss-spark-k8s-dssuser-scope',
      (binding) => (binding.spec.validationActions = ['Audit']),
    );
    expect(problemsOf(unbound).filter((p) => p.endsWith('no binding that denies')).length).toBe(BOUNDS.filter((b) => b.identity === 'dssuser').length);
  });

  it('fail on a test file that does not exist, a title not in it, or one found twice', () => {
    const bound = (it: string, file = 'test/integration/x.test.ts'): Bound => ({ ...BOUNDS[0]!, proofs: [{ file, it }] });
    const files: Record<string, string> = {
      'test/integration/x.test.ts': `it('refuses a pod as another account', () => {});\nit("refuses a pod with a hostPath", () => {});\n`,
      'test/integration/data.test.ts': `const attacks = [{ name: 'pod with an nfs volume' }, { name: 'pod with a hostPath volume' }];\nfor (const a of attacks) it(a.name, () => {});\n`,
    };
    const read = (file: string) => files[file];
    expect(proofProblems([bound('refuses a pod as another account'), bound('nfs', 'test/integration/data.test.ts')], read)).toEqual([]);
    expect(proofProblems([bound('refuses a pod'), bound('secret volume'), bound('x', 'test/integration/gone.test.ts')], read)).toEqual([
      'job token create pods: test/integration/x.test.ts › "refuses a pod": 2 tests have that title; name one',
      'job token create pods: test/integration/x.test.ts › "secret volume": no test has that title',
      'job token create pods: test/integration/gone.test.ts › "x": no such file',
    ]);
    expect(proofProblems([bound('pod with a', 'test/integration/data.test.ts')], read)).toEqual([
      'job token create pods: test/integration/data.test.ts › "pod with a": 2 strings hold that title; name one',
    ]);
  });
});
