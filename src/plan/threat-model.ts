// The verb × resource part of THREAT-MODEL.md: every right the manifests of deploy/rbac grant to the two
// Kubernetes identities (a job's token, dssuser), read from the manifests themselves, and for each write right
// the constraint that bounds it and the test that proves the bound. scripts/render-threat-model.ts writes the
// table into THREAT-MODEL.md; test/unit/threat-model.test.ts fails when a granted write right has no entry in
// BOUNDS, when an entry names a right no longer granted, a policy rule that is not there or a test that does
// not exist. Not used by the CLI (it lives here, beside policy.ts, because tsc checks src/ and the entries
// name that policy's rules).
//
// Who gets which role is read from the bindings: a binding's subject must be dssuser, and the roles dssuser may
// `bind` (by resourceNames) are what a job's token gets, in its namespace, through its RoleBinding.

import { DRIVER_CLUSTER_ROLE } from './objects.ts';
import { ATTRIBUTION_POLICY_NAME } from './attribution-policy.ts';
import { ISOLATION_POLICY_NAME } from './policy.ts';

export const DSSUSER_POLICY_NAME = 'dss-spark-k8s-dssuser-scope';
/** The identity in dssuser's kubeconfig, as the manifests name it. */
const DSSUSER_SUBJECT = { kind: 'User', name: 'dssuser' };

export type Identity = 'job token' | 'dssuser';
const IDENTITY_ORDER: readonly Identity[] = ['job token', 'dssuser'];
/** The matchCondition by which an admission policy picks out this identity's requests. */
const MATCH_CONDITION: Record<Identity, string> = { 'job token': 'is-job-account', dssuser: 'is-dssuser' };

/** Not admission-controlled and not bounded here: listed, not tabled. Every other verb is a write. */
export const READ_VERBS: readonly string[] = ['get', 'list', 'watch'];
const VERB_ORDER = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection', 'bind'];
/** The admission operation a verb is seen as (deletecollection: one DELETE per object). */
const OPERATION: Record<string, string> = { create: 'CREATE', update: 'UPDATE', patch: 'UPDATE', delete: 'DELETE', deletecollection: 'DELETE' };

export interface Manifest {
  /** Path from the repository root, e.g. deploy/rbac/team-namespaces.yaml. */
  file: string;
  /** Its YAML documents, parsed. */
  docs: readonly unknown[];
}

export interface Grant {
  file: string;
  role: string;
  scope: string;
}

export interface Right {
  identity: Identity;
  verb: string;
  /** `resource[/subresource][.group]`, as kubectl names it: pods, serviceaccounts/token, leases.coordination.k8s.io. */
  resource: string;
  resourceNames: readonly string[];
  grants: Grant[];
}

export type Constraint =
  /** A validation of an admission policy, found by a piece of its message; `request`: the request it sees, when not the right's own. */
  | { policy: string; rule: string; request?: { verb: string; resource: string } }
  /** The right names its objects (RBAC resourceNames). */
  | { rbac: 'resourceNames' }
  /** Pod Security Admission of the namespace. */
  | { podSecurity: string };

export interface Proof {
  /** From the repository root. */
  file: string;
  /** The test's title, or a piece of it found once in the file. */
  it: string;
}

export interface Bound {
  identity: Identity;
  verb: string;
  resource: string;
  resourceNames?: readonly string[];
  /** What the identity can still do with the right, in one sentence. */
  bound: string;
  by: readonly Constraint[];
  proofs: readonly Proof[];
  /** Where the bound does not hold, said plainly. */
  gap?: string;
}

export function rightKey(right: { identity: string; verb: string; resource: string; resourceNames?: readonly string[] }): string {
  const names = right.resourceNames?.length ? ` (${[...right.resourceNames].sort().join(', ')})` : '';
  return `${right.identity} ${right.verb} ${right.resource}${names}`;
}

export const isWrite = (verb: string) => !READ_VERBS.includes(verb);

// --- reading the manifests ---

interface Rule {
  apiGroups?: string[];
  resources?: string[];
  verbs?: string[];
  resourceNames?: string[];
}
interface Doc {
  kind?: string;
  metadata?: { name?: string };
  rules?: Rule[];
  roleRef?: { kind?: string; name?: string };
  subjects?: { kind?: string; name?: string; namespace?: string }[];
  spec?: Record<string, unknown>;
}

const docsOf = (manifest: Manifest) => manifest.docs.filter((d): d is Doc => typeof d === 'object' && d !== null) as Doc[];
const roleId = (kind: string | undefined, name: string | undefined) => `${kind} ${name}`;
const displayResource = (group: string, resource: string) => (group ? `${resource}.${group}` : resource);
const fileName = (file: string) => file.slice(file.lastIndexOf('/') + 1);

/** Every right granted to a known identity by the manifests, and what the manifests grant that the model does not know. */
export function grantedRights(manifests: readonly Manifest[]): { rights: Right[]; problems: string[] } {
  const rights = new Map<string, Right>();
  const problems: string[] = [];
  const grant = (identity: Identity, rules: readonly Rule[], where: Grant) => {
    for (const rule of rules) {
      for (const group of rule.apiGroups ?? ['']) {
        for (const resource of rule.resources ?? []) {
          for (const verb of rule.verbs ?? []) {
            const right = { identity, verb, resource: displayResource(group, resource), resourceNames: [...(rule.resourceNames ?? [])].sort(), grants: [] };
            const existing = rights.get(rightKey(right)) ?? right;
            if (!existing.grants.some((g) => g.file === where.file && g.role === where.role)) existing.grants.push(where);
            rights.set(rightKey(right), existing);
          }
        }
      }
    }
  };

  for (const manifest of manifests) {
    const docs = docsOf(manifest);
    const roles = new Map(docs.filter((d) => d.kind === 'Role' || d.kind === 'ClusterRole').map((d) => [roleId(d.kind, d.metadata?.name), d.rules ?? []]));
    const reached = new Set<string>();
    const jobRoles: string[] = [];
    for (const binding of docs.filter((d) => d.kind === 'RoleBinding' || d.kind === 'ClusterRoleBinding')) {
      const role = roleId(binding.roleRef?.kind, binding.roleRef?.name);
      const rules = roles.get(role);
      const named = `${manifest.file}: ${binding.kind} ${binding.metadata?.name}`;
      if (!rules) problems.push(`${named} grants ${role}, which the manifest does not define: its rights are unknown`);
      for (const subject of binding.subjects ?? []) {
        if (subject.kind !== DSSUSER_SUBJECT.kind || subject.name !== DSSUSER_SUBJECT.name) {
          problems.push(`${named} grants ${role} to ${subject.kind} ${subject.name}, an identity the threat model does not know`);
          continue;
        }
        if (!rules) continue;
        reached.add(role);
        grant('dssuser', rules, {
          file: manifest.file,
          role,
          scope: binding.kind === 'ClusterRoleBinding' ? 'cluster-wide' : 'in each namespace the manifest is applied to',
        });
        for (const rule of rules.filter((r) => r.verbs?.includes('bind'))) {
          for (const resource of rule.resources ?? []) {
            const kind = resource === 'clusterroles' ? 'ClusterRole' : resource === 'roles' ? 'Role' : undefined;
            if (!kind) continue;
            if (!rule.resourceNames?.length) problems.push(`${manifest.file}: ${role} lets dssuser bind any ${kind}: a job could be given any rights`);
            for (const name of rule.resourceNames ?? []) jobRoles.push(roleId(kind, name));
          }
        }
      }
    }
    for (const role of new Set(jobRoles)) {
      const rules = roles.get(role);
      if (!rules) {
        problems.push(`${manifest.file}: dssuser may bind ${role}, which the manifest does not define: a job's rights are unknown`);
        continue;
      }
      reached.add(role);
      grant('job token', rules, { file: manifest.file, role, scope: "in the job's namespace (its RoleBinding)" });
    }
    for (const role of roles.keys()) if (!reached.has(role)) problems.push(`${manifest.file}: ${role} is bound to no identity of the threat model`);
  }
  return { rights: [...rights.values()].sort(byIdentityResourceVerb), problems };
}

function byIdentityResourceVerb(a: Right, b: Right): number {
  const verbIndex = (verb: string) => (VERB_ORDER.includes(verb) ? VERB_ORDER.indexOf(verb) : VERB_ORDER.length);
  return (
    IDENTITY_ORDER.indexOf(a.identity) - IDENTITY_ORDER.indexOf(b.identity) ||
    a.resource.localeCompare(b.resource) ||
    verbIndex(a.verb) - verbIndex(b.verb) ||
    a.verb.localeCompare(b.verb) ||
    rightKey(a).localeCompare(rightKey(b))
  );
}

// --- checking the table against the manifests and the tests ---

interface PolicyDoc {
  matchConstraints?: { resourceRules?: { apiGroups?: string[]; operations?: string[]; resources?: string[] }[] };
  matchConditions?: { name?: string }[];
  validations?: { message?: string; messageExpression?: string }[];
}

/** Whether a policy's resourceRules see `operation` on `resource` (resource[/sub][.group]). */
function policySees(policy: PolicyDoc, operation: string, resource: string): boolean {
  const dot = resource.indexOf('.');
  const [name, group] = dot < 0 ? [resource, ''] : [resource.slice(0, dot), resource.slice(dot + 1)];
  const [main, sub] = name.split('/') as [string, string | undefined];
  const coversResource = (pattern: string) =>
    pattern === '*/*' || pattern === name || (sub === undefined ? pattern === '*' : pattern === `${main}/*` || pattern === `*/${sub}`);
  return (policy.matchConstraints?.resourceRules ?? []).some(
    (r) =>
      (r.apiGroups ?? []).some((g) => g === '*' || g === group) &&
      (r.operations ?? []).some((o) => o === '*' || o === operation) &&
      (r.resources ?? []).some(coversResource),
  );
}

/** Every way BOUNDS and the granted rights disagree: (b) unbounded rights, (d) stale entries, and constraints the manifests do not carry. */
export function boundProblems(rights: readonly Right[], bounds: readonly Bound[], manifests: readonly Manifest[]): string[] {
  const problems: string[] = [];
  const writes = new Map(rights.filter((r) => isWrite(r.verb)).map((r) => [rightKey(r), r]));
  const seen = new Set<string>();
  for (const bound of bounds) {
    const key = rightKey(bound);
    if (seen.has(key)) problems.push(`${key}: bounded twice in BOUNDS`);
    seen.add(key);
    const right = writes.get(key);
    if (!right) {
      problems.push(`${key}: in BOUNDS, but no manifest grants it (any more): remove the entry`);
      continue;
    }
    if (bound.by.length === 0) problems.push(`${key}: no constraint named`);
    if (bound.proofs.length === 0) problems.push(`${key}: no test named`);
    problems.push(...new Set(bound.by.flatMap((constraint) => constraintProblems(right, constraint, manifests))));
  }
  for (const [key, right] of writes) {
    if (!seen.has(key)) problems.push(`${key}: granted by ${right.grants.map((g) => `${g.role} (${g.file})`).join(', ')} but bounded by no entry of BOUNDS`);
  }
  return problems;
}

function constraintProblems(right: Right, constraint: Constraint, manifests: readonly Manifest[]): string[] {
  const key = rightKey(right);
  if ('rbac' in constraint) return right.resourceNames.length ? [] : [`${key}: bounded by RBAC resourceNames, but the rule names no object`];
  if ('podSecurity' in constraint) return [];
  const problems: string[] = [];
  const request = constraint.request ?? { verb: right.verb, resource: right.resource };
  const operation = OPERATION[request.verb];
  for (const file of new Set(right.grants.map((g) => g.file))) {
    const docs = docsOf(manifests.find((m) => m.file === file)!);
    const policy = docs.find((d) => d.kind === 'ValidatingAdmissionPolicy' && d.metadata?.name === constraint.policy)?.spec as PolicyDoc | undefined;
    const where = `${key}: ${constraint.policy} in ${file}`;
    if (!policy) {
      problems.push(`${where}: the manifest does not carry the policy`);
      continue;
    }
    const binding = docs.find((d) => d.kind === 'ValidatingAdmissionPolicyBinding' && d.spec?.policyName === constraint.policy);
    if (!(binding?.spec?.validationActions as string[] | undefined)?.includes('Deny')) problems.push(`${where}: no binding that denies`);
    if (!policy.matchConditions?.some((c) => c.name === MATCH_CONDITION[right.identity])) {
      problems.push(`${where}: does not pick out the ${right.identity} (no matchCondition ${MATCH_CONDITION[right.identity]})`);
    }
    if (!operation || !policySees(policy, operation, request.resource)) {
      problems.push(`${where}: does not see ${request.verb} ${request.resource}${operation ? ` (${operation})` : ' (not an admission operation)'}`);
    }
    if (!policy.validations?.some((v) => `${v.message ?? ''}\n${v.messageExpression ?? ''}`.includes(constraint.rule))) {
      problems.push(`${where}: no validation says "${constraint.rule}"`);
    }
  }
  return problems;
}

const LITERAL = /'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"|`(?:\\.|[^`\\])*`/g;
const LITERAL_TITLE = /\b(?:it|test)(?:\.each\([\s\S]*?\))?\(\s*('(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"|`(?:\\.|[^`\\])*`)/g;
/** it(attack.name, …): a title held in data. */
const DATA_TITLE = /\b(?:it|test)\(\s*[A-Za-z_$][\w$.]*\s*,/;
/** A string literal's text: quotes dropped, escapes resolved (\' → '). */
const unquote = (literal: string) => literal.slice(1, -1).replace(/\\(.)/g, '$1');

/**
 * (c) Tests that do not exist: the file is missing, or no test title has the piece (or several do, and none is
 * exactly it). A title held in data (it(attack.name, …)) is found as the one string of the file that holds it.
 */
export function proofProblems(bounds: readonly Bound[], readFile: (file: string) => string | undefined): string[] {
  return bounds.flatMap((bound) => bound.proofs.flatMap((proof) => testProblem(rightKey(bound), proof, readFile) ?? []));
}

/** Why `proof` names no test, or undefined when it names one. */
export function testProblem(label: string, proof: Proof, readFile: (file: string) => string | undefined): string | undefined {
  const where = `${label}: ${proof.file} › "${proof.it}"`;
  const text = readFile(proof.file);
  if (text === undefined) return `${where}: no such file`;
  const found = (strings: string[]) => strings.length === 1 || strings.filter((t) => t === proof.it).length === 1;
  const titles = [...text.matchAll(LITERAL_TITLE)].map((m) => unquote(m[1]!)).filter((t) => t.includes(proof.it));
  if (found(titles)) return undefined;
  if (titles.length > 1) return `${where}: ${titles.length} tests have that title; name one`;
  const strings = DATA_TITLE.test(text) ? [...text.matchAll(LITERAL)].map((m) => unquote(m[0])).filter((t) => t.includes(proof.it)) : [];
  if (found(strings)) return undefined;
  return `${where}: ${strings.length === 0 ? 'no test has that title' : `${strings.length} strings hold that title; name one`}`;
}

/** The tests a text names as `file` › `title` (file as written, the title's line breaks made spaces). */
export function namedTests(text: string): Proof[] {
  return [...text.matchAll(/`([\w./-]+\.test\.ts)` › `([^`]+)`/g)].map((m) => ({ file: m[1]!, it: m[2]!.replace(/\s+/g, ' ') }));
}

// --- rendering ---

export const BEGIN = '<!-- BEGIN generated by scripts/render-threat-model.ts from deploy/rbac and src/plan/threat-model.ts; do not edit -->';
export const END = '<!-- END generated -->';

const cell = (text: string) => text.replaceAll('|', '\\|').replaceAll('\n', ' ');
const code = (text: string) => `\`${text}\``;

function constraintText(constraint: Constraint): string {
  if ('rbac' in constraint) return 'RBAC resourceNames';
  if ('podSecurity' in constraint) return `Pod Security: ${constraint.podSecurity}`;
  const short = constraint.policy.replace(/^dss-spark-k8s-/, '');
  const on = constraint.request ? ` (on ${constraint.request.verb} ${constraint.request.resource})` : '';
  return `${short}${on}: ${code(constraint.rule.trim())}`;
}

const grantText = (grants: readonly Grant[]) => grants.map((g) => `${fileName(g.file)}: ${g.role}, ${g.scope}`).join('<br>');
const resourceText = (right: { resource: string; resourceNames?: readonly string[] }) =>
  code(right.resource) + (right.resourceNames?.length ? ` named ${right.resourceNames.map(code).join(', ')}` : '');

/** The generated block of THREAT-MODEL.md, markers included. */
export function renderThreatModelBlock(rights: readonly Right[], bounds: readonly Bound[]): string {
  const byKey = new Map(bounds.map((b) => [rightKey(b), b]));
  const writes = rights.filter((r) => isWrite(r.verb));
  const reads = rights.filter((r) => !isWrite(r.verb));
  const count = (list: readonly Right[], identity: Identity) => list.filter((r) => r.identity === identity).length;
  const lines = [
    BEGIN,
    '',
    `${writes.length} write rights (job token ${count(writes, 'job token')}, dssuser ${count(writes, 'dssuser')}) and ${reads.length} read rights,` +
      ' read from the Roles, ClusterRoles and bindings of deploy/rbac. Admission policies: `job-isolation` is' +
      ` ${code(ISOLATION_POLICY_NAME)} (src/plan/policy.ts), \`job-attribution\` is ${code(ATTRIBUTION_POLICY_NAME)} (src/plan/attribution-policy.ts),` +
      ` \`dssuser-scope\` is ${code(DSSUSER_POLICY_NAME)}; a quoted rule is a piece` +
      ' of the message of the validation that refuses.',
    '',
    '### Write rights',
    '',
    '| Identity | Verb | Resource | Granted by | What it can still do | Bounded by | Proved by |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const right of writes) {
    const bound = byKey.get(rightKey(right));
    const proofs = bound?.proofs.map((p) => `${p.file} › ${code(p.it)}`).join('<br>') ?? '';
    lines.push(
      '| ' +
        [
          right.identity,
          right.verb,
          resourceText(right),
          grantText(right.grants),
          bound ? bound.bound : '**NO BOUND**',
          bound ? bound.by.map(constraintText).join('<br>') : '',
          proofs,
        ]
          .map(cell)
          .join(' | ') +
        ' |',
    );
  }
  const gaps = writes.map((r) => byKey.get(rightKey(r))).filter((b): b is Bound => b?.gap !== undefined);
  if (gaps.length) {
    lines.push('', '### Where a bound does not hold', '');
    for (const bound of gaps) lines.push(`- ${bound.identity} ${bound.verb} ${resourceText(bound)}: ${bound.gap}`);
  }
  lines.push('', '### Read rights (not admission-controlled: bounded by RBAC alone)', '', '| Identity | Resource | Verbs | Granted by |', '|---|---|---|---|');
  const readRows = new Map<string, { identity: Identity; resource: string; resourceNames: readonly string[]; verbs: string[]; grants: Grant[] }>();
  for (const right of reads) {
    const key = `${right.identity} ${rightKey({ identity: '', verb: '', resource: right.resource, resourceNames: right.resourceNames })}`;
    const row = readRows.get(key) ?? { identity: right.identity, resource: right.resource, resourceNames: right.resourceNames, verbs: [], grants: [] };
    row.verbs.push(right.verb);
    for (const g of right.grants) if (!row.grants.some((h) => h.file === g.file && h.role === g.role)) row.grants.push(g);
    readRows.set(key, row);
  }
  for (const row of readRows.values())
    lines.push('| ' + [row.identity, resourceText(row), row.verbs.join(', '), grantText(row.grants)].map(cell).join(' | ') + ' |');
  lines.push('', END);
  return `${lines.join('\n')}\n`;
}

/** `text` with its generated block replaced by `block`. */
export function withBlock(text: string, block: string): string {
  const start = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  if (start < 0 || end < start) throw new Error(`no generated block (${BEGIN} … ${END})`);
  return text.slice(0, start) + block + text.slice(end + END.length + 1);
}

// --- the table ---

const DSSUSER = DSSUSER_POLICY_NAME;
const JOB = ISOLATION_POLICY_NAME;
const IT = {
  controlPlane: 'test/integration/control-plane.test.ts',
  isolation: 'test/integration/isolation.test.ts',
  run: 'test/integration/run.test.ts',
  cleanup: 'test/integration/cleanup.test.ts',
  leaseLoss: 'test/integration/lease-loss.test.ts',
  redteamJob: 'test/integration/redteam-job.test.ts',
  redteamDssuser: 'test/integration/redteam-dssuser.test.ts',
  redteamAttribution: 'test/integration/redteam-attribution.test.ts',
  audit: 'test/integration/audit.test.ts',
  prune: 'test/integration/namespaces-prune.test.ts',
};
const redteamJob = (...titles: string[]): Proof[] => titles.map((it) => ({ file: IT.redteamJob, it }));

const dssuserRules = {
  managedNamespace: { policy: DSSUSER, rule: 'dssuser may only write in namespaces labelled dss-spark-k8s.dataiku.io/managed=true' },
  namespaces: { policy: DSSUSER, rule: 'dssuser may only create namespaces matching ^dss-' },
  perUserNamespace: { policy: DSSUSER, rule: 'dssuser may only change or delete per-user namespaces it created' },
  namespaceUpdate: { policy: DSSUSER, rule: 'dssuser may only change the annotation dss-spark-k8s.dataiku.io/last-used' },
  jobObject: { policy: DSSUSER, rule: 'named after a job account (dss-spark-…), labelled' },
  serviceAccountShape: { policy: DSSUSER, rule: "dssuser's ServiceAccounts must set automountServiceAccountToken: false" },
  serviceAccountUpdate: { policy: DSSUSER, rule: 'dssuser may only change the annotation dss-spark-k8s.dataiku.io/credential-ids' },
  roleBindingShape: { policy: DSSUSER, rule: "dssuser's RoleBindings may only grant ClusterRole dss-spark-k8s-driver" },
  secretShape: { policy: DSSUSER, rule: 'dssuser may only create empty Secrets of type Opaque' },
  token: { policy: DSSUSER, rule: 'dssuser may only request tokens for job accounts' },
  labelledDelete: { policy: DSSUSER, rule: 'dssuser may only delete objects labelled app.kubernetes.io/managed-by=dss-spark-k8s' },
  quotaAndLimits: { policy: DSSUSER, rule: 'dssuser may only create the ResourceQuota (without scopes) and LimitRange named dss-spark-k8s' },
  networkPolicy: { policy: DSSUSER, rule: 'dssuser may only create the NetworkPolicy named dss-spark-k8s of a namespace it created' },
} as const;

const jobRules = {
  ownObjectsOnly: { policy: JOB, rule: 'it is not labelled dss-spark-k8s.dataiku.io/owner-sa=' },
  labels: { policy: JOB, rule: 'must carry the labels dss-spark-k8s.dataiku.io/owner-sa=' },
  names: { policy: JOB, rule: 'names starting with dss-spark- are reserved to their job' },
  account: { policy: JOB, rule: 'must run as the service account ' },
  host: { policy: JOB, rule: 'not allowed for a job pod' },
  volumes: { policy: JOB, rule: 'a job may mount emptyDir' },
  secretEnv: { policy: JOB, rule: 'may not read secrets through env or envFrom' },
  pullSecrets: { policy: JOB, rule: 'not allowed; an administrator lists the ones jobs may use' },
  claimSource: { policy: JOB, rule: 'a job may not create a claim from a data source' },
  finalizers: { policy: JOB, rule: 'a job may not add finalizers' },
  ownIdentity: { policy: ATTRIBUTION_POLICY_NAME, rule: 'must carry the job id, user and login of ' },
} as const;
const redteamAttribution = (...titles: string[]): Proof[] => titles.map((it) => ({ file: IT.redteamAttribution, it }));

const POD_SECURITY =
  "the namespace's enforce level; restricted adds to the isolation policy: non-root, no privilege escalation, all capabilities dropped, seccomp RuntimeDefault";
const redteamDssuser = (...titles: string[]): Proof[] => titles.map((it) => ({ file: IT.redteamDssuser, it }));
const ownPath = redteamDssuser("to provision a job through the tool's own path and tear it down");
const perObject = (verb: string) => (verb === 'deletecollection' ? ' (each object of the collection is admitted as one DELETE)' : '');
const teardownDelete = (resource: string, verb: string, what: string, proofs: Proof[]): Bound => ({
  identity: 'dssuser',
  verb,
  resource,
  bound: `only ${what} labelled managed-by=dss-spark-k8s, in managed namespaces${perObject(verb)}`,
  by: [dssuserRules.managedNamespace, dssuserRules.labelledDelete],
  proofs: [...proofs, { file: IT.isolation, it: 'leaves dssuser (not a job account) free to tear down any job object' }],
});
const jobObjectDelete = (resource: string, verb: string, proofs: Proof[]): Bound => ({
  identity: 'dssuser',
  verb,
  resource,
  bound: `only objects named dss-spark-… and labelled managed-by=dss-spark-k8s, in managed namespaces${perObject(verb)}`,
  by: [dssuserRules.managedNamespace, dssuserRules.labelledDelete],
  proofs: [...proofs, ...ownPath],
});

/** For each write right of the manifests: what bounds it and which test proves it. */
export const BOUNDS: readonly Bound[] = [
  // The job token: DRIVER_CLUSTER_ROLE in the job's namespace. Every namespace holding a job is labelled managed
  // (dssuser writes nowhere else), so the isolation policy sees every write of the token.
  {
    identity: 'job token',
    verb: 'create',
    resource: 'pods',
    bound:
      "labelled with its own account, its job id and user (and its login, when annotated); as its own executor account, no token mounted; none of hostNetwork, hostPID, hostIPC, nodeName, privileged, hostPort, capabilities beyond baseline's, seccomp or AppArmor Unconfined, SELinux options, an unmasked /proc, sysctls, a system-… priority class, a probe or lifecycle host, resource claims; volumes emptyDir, configMap, downwardAPI, projected configMap/downwardAPI, its own or unreserved claims, ephemeral claims without the tool's labels, dataSource, volumeName, selector or a reserved name; no secret in env; only listed pull secrets; no finalizer; names dss-spark-… only its own",
    by: [
      jobRules.labels,
      jobRules.names,
      jobRules.account,
      jobRules.host,
      jobRules.volumes,
      jobRules.secretEnv,
      jobRules.pullSecrets,
      jobRules.finalizers,
      jobRules.ownIdentity,
      { podSecurity: POD_SECURITY },
    ],
    proofs: [
      ...redteamAttribution(
        'the job-id label of another job',
        'the user label of another job',
        'the login annotation of another job',
        "writes the job's own job id, user and login into the audit event of a forged request",
      ),
      ...redteamJob(
        'pod without the managed-by label',
        "pod named like the other job's executors",
        "pod as the other job's executor account",
        'pod with automountServiceAccountToken true',
        'pod with hostNetwork',
        'pod adding capability SYS_ADMIN',
        'pod with a system priority class',
        'pod with an nfs volume',
        'pod with a projected service-account token',
        'pod with an ephemeral claim template posing as the other job (finding 1)',
        "pod whose ephemeral claim would take the other job's claim name",
        'pod reading a secret through envFrom',
        'pod with an unlisted image pull secret',
        'pod with a finalizer (it would outlive teardown)',
        'pod whose liveness probe makes the kubelet call a host of its choosing',
        'pod claiming a device through a ResourceClaim of the namespace',
        'refuses a root pod without seccomp there, though the isolation policy admits it',
        'the executor pod Spark makes from the managed template',
      ),
      { file: IT.isolation, it: 'its executor pods admitted under Pod Security restricted (finding 4)' },
    ],
    gap:
      'Pod Security is what the namespace enforces: restricted in the namespaces the tool creates (baseline at least: dssuser-scope), in a' +
      ' team namespace only what its administrator labelled, and nothing checks that label. Where none is set, the isolation policy holds' +
      ' every node-access control of baseline, but nothing of restricted: a container may run as root (in its own user namespace only if' +
      ' the node maps one).',
  },
  {
    identity: 'job token',
    verb: 'patch',
    resource: 'pods',
    bound: 'only its own pods (owner-sa = its account), which stay labelled as its own (job id and user too), adding no finalizer',
    by: [jobRules.ownObjectsOnly, jobRules.labels, jobRules.finalizers, jobRules.ownIdentity, { podSecurity: POD_SECURITY }],
    proofs: [
      ...redteamAttribution("refuses a patch of the job's own pod to the other job's job-id"),
      ...redteamJob(
        "patch of the other job's pod",
        "patch of its own pod into the other job's",
        'patch of its own pod dropping the managed-by label',
        'patch of its own pod adding a finalizer',
        'patch of its own pod (the labels Spark sets)',
      ),
    ],
  },
  {
    identity: 'job token',
    verb: 'delete',
    resource: 'pods',
    bound: 'only its own pods (owner-sa = its account)',
    by: [jobRules.ownObjectsOnly],
    proofs: redteamJob("delete of the other job's pod", 'delete of its own pod'),
  },
  {
    identity: 'job token',
    verb: 'deletecollection',
    resource: 'pods',
    bound: 'only its own pods: each object of the collection is admitted as one DELETE, and one foreign pod refuses the request',
    by: [jobRules.ownObjectsOnly],
    proofs: [
      ...redteamJob("deletecollection of the other job's pods", 'deletecollection of its own pods'),
      { file: IT.isolation, it: "deletecollection is admitted object by object: it deletes job A's pods and is denied on job B's" },
    ],
  },
  {
    identity: 'job token',
    verb: 'create',
    resource: 'persistentvolumeclaims',
    bound:
      'labelled with its own account, job id and user; names dss-spark-… only its own; no dataSource, dataSourceRef, selector or finalizer; volumeName only one the namespace annotation lists',
    by: [jobRules.labels, jobRules.names, jobRules.claimSource, jobRules.finalizers, jobRules.ownIdentity],
    proofs: [
      ...redteamAttribution("refuses a claim with the other job's job-id label"),
      ...redteamJob(
        'claim without the managed-by label',
        "claim named like the other job's claims",
        "claim cloning the other job's claim (dataSource)",
        "claim cloning the other job's claim (dataSourceRef)",
        'claim bound to an unlisted PersistentVolume',
        'claim choosing its PersistentVolume by selector',
        'claim with a finalizer (it would outlive teardown)',
        'a labelled claim with no binding fields',
      ),
    ],
  },

  // dssuser: ClusterRole dss-spark-k8s (per-user manifest, cluster-wide) or Role dss-spark-k8s (team manifest, per
  // namespace). The dssuser-scope policy sees every write of dssuser in every API group and refuses every kind
  // outside its list.
  {
    identity: 'dssuser',
    verb: 'create',
    resource: 'namespaces',
    bound:
      'only named ^dss-, labelled managed=true and managed-by, with Pod Security enforce baseline or restricted (audit and warn likewise when set), versions latest, and no allowed-persistent-volumes annotation',
    by: [dssuserRules.namespaces],
    proofs: redteamDssuser(
      'namespace whose name does not start with dss-',
      'namespace dss-evil, managed, enforcing privileged (the node-root attack)',
      'namespace with no enforce label',
      'namespace with enforce-version not latest',
      'namespace auditing privileged',
      'namespace without the managed label',
      'namespace allowing its jobs to bind any PersistentVolume by name',
      'to create the namespace the tool plans, at restricted or at baseline',
    ),
  },
  {
    identity: 'dssuser',
    verb: 'patch',
    resource: 'namespaces',
    bound:
      'only a per-user namespace it created (named ^dss-, labelled managed-by, managed=true and with a user), and only its last-used annotation, an RFC 3339 UTC time: labels, other annotations, finalizers and owners stay as they were (spec.finalizers only change through namespaces/finalize, not granted)',
    by: [dssuserRules.perUserNamespace, dssuserRules.namespaceUpdate],
    proofs: [
      ...[
        "records each job's start on its per-user namespace",
        'patch of a label of a per-user namespace (enforce privileged)',
        "patch of another annotation of a per-user namespace (an administrator's allowed-persistent-volumes)",
        'patch of last-used with a value that is not an RFC 3339 UTC time to the second',
        'patch removing last-used',
        'patch adding a finalizer to a per-user namespace (it would never finish deleting)',
        'patch adding an owner to a per-user namespace (the garbage collector would delete it)',
        'patch of last-used on a team namespace',
        "cannot change a namespace's spec.finalizers",
        'by an identity with the same namespaces rights and no dssuser policy, is admitted',
      ].map((it) => ({ file: IT.prune, it })),
    ],
    gap: 'the policy checks the shape of the time, not that a job started then: a compromised dssuser can make a per-user namespace look idle or in use (it may delete one anyway, below).',
  },
  {
    identity: 'dssuser',
    verb: 'delete',
    resource: 'namespaces',
    bound:
      'only a per-user namespace it created (named ^dss-, labelled managed-by, managed=true and with a user): never a team namespace, one an administrator made, or a system one',
    by: [dssuserRules.perUserNamespace, dssuserRules.labelledDelete],
    proofs: [
      ...[
        'with --yes deletes the idle one and keeps one a job started in between its read and its delete',
        'delete of a team namespace (managed, made by an administrator)',
        'delete of a namespace the tool made without a user (not per-user)',
        "delete of an administrator's dss- namespace without labels",
        'delete of an unmanaged system namespace (kube-node-lease)',
        'is refused deleting default and kube-system',
      ].map((it) => ({ file: IT.prune, it })),
    ],
    gap: "admission cannot look inside a namespace: that it holds no Lease, job account, pod or claim is namespaces prune's check, not the policy's. A compromised dssuser can delete any per-user namespace, a running job's and its users' claims (their volumes, per the storage class's reclaim policy) with it.",
  },
  {
    identity: 'dssuser',
    verb: 'create',
    resource: 'serviceaccounts',
    bound:
      "only a job's account or its executor account: named dss-spark-…, labelled managed-by and owner-sa (the namespace's user in a per-user namespace), no token automount, no secrets, only the tool's annotations, in managed namespaces",
    by: [dssuserRules.managedNamespace, dssuserRules.jobObject, dssuserRules.serviceAccountShape],
    proofs: [
      ...redteamDssuser(
        'ServiceAccount not named dss-spark-…',
        'ServiceAccount without managed-by',
        'ServiceAccount named after no job account (owner label of another name)',
        'ServiceAccount with automountServiceAccountToken unset',
        'ServiceAccount listing secrets',
        'ServiceAccount listing image pull secrets',
        'ServiceAccount carrying a cloud workload identity (eks.amazonaws.com/role-arn)',
        "ServiceAccount carrying an annotation that is not the tool's (iam.amazonaws.com/role)",
        "another user's job ServiceAccount in a per-user namespace",
        'job ServiceAccount in ${namespace}',
      ),
      ...ownPath,
    ],
  },
  {
    identity: 'dssuser',
    verb: 'patch',
    resource: 'serviceaccounts',
    bound:
      "only a job's own account (not its executor account), labelled managed-by and owner-sa, in managed namespaces, and only its credential-ids annotation (at most 32 token ids): labels, other annotations, token automount, secrets, finalizers and owners stay as they were",
    by: [dssuserRules.managedNamespace, dssuserRules.jobObject, dssuserRules.serviceAccountUpdate],
    proofs: [
      { file: IT.audit, it: "records every token's credential id on the job ServiceAccount" },
      ...[
        'patch of a job ServiceAccount label',
        'patch of another annotation of a job ServiceAccount',
        'patch adding a cloud workload identity to a job ServiceAccount',
        'patch writing 33 credential ids (the policy admits the newest 32, a bounded size)',
        'patch turning on token automount of a job ServiceAccount',
        'patch of the credential ids of an executor ServiceAccount',
        'patch of the credential ids of an unlabelled ServiceAccount',
      ].map((it) => ({ file: IT.audit, it })),
    ],
    gap: "the policy checks the shape of the ids (hex and '-'), not that they are the job's: a compromised dssuser can write other ids on a job account. The credential id in each audit event is the apiserver's own.",
  },
  jobObjectDelete(
    'serviceaccounts',
    'delete',
    redteamDssuser(
      "delete of an unlabelled ServiceAccount (an administrator's)",
      'delete of a ServiceAccount labelled managed-by but not named dss-spark-…',
      'delete of a labelled dss-spark- ServiceAccount in default',
    ),
  ),
  jobObjectDelete('serviceaccounts', 'deletecollection', redteamDssuser('deletecollection of the ServiceAccounts labelled managed-by')),
  {
    identity: 'dssuser',
    verb: 'create',
    resource: 'serviceaccounts/token',
    bound:
      "only for a job account (dss-spark-…, not …-exec), bound to one of that job's anchor Secrets (<account>-t…), for at most 24 hours, in managed namespaces",
    by: [dssuserRules.managedNamespace, dssuserRules.token],
    proofs: redteamDssuser(
      "token for an administrator's account (team-ci) in a managed namespace",
      "token for team-ci bound to a job's anchor Secret",
      "token for a job's executor account",
      'token for a job account without boundObjectRef',
      'token for a job account for more than 24 hours',
      'token for a job account bound to a Pod',
      "token for a job account bound to another job's anchor",
      'token for a dss-spark- ServiceAccount in default',
      "to ask a job account's token bound to its anchor, for at most 24 hours",
    ),
  },
  {
    identity: 'dssuser',
    verb: 'create',
    resource: 'rolebindings.rbac.authorization.k8s.io',
    bound:
      "only a job's binding: named after the job account, labelled, granting ClusterRole dss-spark-k8s-driver to that one ServiceAccount of the same namespace; RBAC refuses any other role (bind)",
    by: [dssuserRules.managedNamespace, dssuserRules.jobObject, dssuserRules.roleBindingShape],
    proofs: [
      ...redteamDssuser(
        'RoleBinding not named dss-spark-…',
        'RoleBinding without managed-by',
        'RoleBinding to a User',
        "RoleBinding to an administrator's ServiceAccount (team-ci)",
        "RoleBinding to the job's executor account",
        'RoleBinding to a ServiceAccount of another namespace',
        'RoleBinding to its job account and team-ci',
        'job RoleBinding in ${namespace}',
      ),
      ...ownPath,
    ],
  },
  jobObjectDelete('rolebindings.rbac.authorization.k8s.io', 'delete', redteamDssuser("delete of an unlabelled RoleBinding (an administrator's)")),
  jobObjectDelete('rolebindings.rbac.authorization.k8s.io', 'deletecollection', redteamDssuser('deletecollection of every RoleBinding of the namespace')),
  {
    identity: 'dssuser',
    verb: 'bind',
    resource: 'clusterroles.rbac.authorization.k8s.io',
    resourceNames: [DRIVER_CLUSTER_ROLE],
    bound: "only the driver ClusterRole, and only in a job's RoleBinding (see create rolebindings)",
    by: [{ rbac: 'resourceNames' }, { ...dssuserRules.roleBindingShape, request: { verb: 'create', resource: 'rolebindings.rbac.authorization.k8s.io' } }],
    proofs: redteamDssuser(
      'RoleBinding to ClusterRole edit',
      "RoleBinding to dssuser's own ClusterRole",
      'RoleBinding to a Role of the namespace',
      'ClusterRoleBinding create (RBAC)',
    ),
  },
  {
    identity: 'dssuser',
    verb: 'create',
    resource: 'leases.coordination.k8s.io',
    bound: "only a job's Lease: named after the job account, labelled managed-by and owner-sa, in managed namespaces",
    by: [dssuserRules.managedNamespace, dssuserRules.jobObject],
    proofs: [...redteamDssuser('Lease not named dss-spark-…', 'Lease without managed-by', 'job Lease in ${namespace}'), ...ownPath],
  },
  {
    identity: 'dssuser',
    verb: 'update',
    resource: 'leases.coordination.k8s.io',
    bound: "only a Lease that was the tool's, keeping its name, labels and owner",
    by: [dssuserRules.managedNamespace, dssuserRules.jobObject],
    proofs: redteamDssuser(
      'update of an unlabelled Lease',
      "update of a job's Lease dropping managed-by",
      "update of a job's Lease handing it to another job",
      "to renew a job's Lease",
    ),
  },
  jobObjectDelete('leases.coordination.k8s.io', 'delete', redteamDssuser('delete of an unlabelled Lease')),
  jobObjectDelete('leases.coordination.k8s.io', 'deletecollection', redteamDssuser('deletecollection of every Lease of the namespace')),
  {
    identity: 'dssuser',
    verb: 'create',
    resource: 'secrets',
    bound: "only a job's token anchor: named <account>-t…, labelled, empty, type Opaque, in managed namespaces (it cannot read any Secret)",
    by: [dssuserRules.managedNamespace, dssuserRules.jobObject, dssuserRules.secretShape],
    proofs: [
      ...redteamDssuser(
        'Secret not named dss-spark-…',
        'Secret without managed-by',
        'Secret of type kubernetes.io/service-account-token (a never-expiring token for team-ci)',
        'Secret of type kubernetes.io/dockerconfigjson',
        'Opaque Secret with data',
        'Opaque Secret with stringData',
        "another user's job Secret in a per-user namespace",
        'job Secret in ${namespace}',
      ),
      { file: IT.controlPlane, it: 'lets dssuser create and delete only empty, labelled Secrets (token anchors), never read one' },
    ],
  },
  jobObjectDelete('secrets', 'delete', [
    ...redteamDssuser('delete of an unlabelled Secret'),
    { file: IT.controlPlane, it: 'lets dssuser create and delete only empty, labelled Secrets (token anchors), never read one' },
  ]),
  jobObjectDelete('secrets', 'deletecollection', redteamDssuser('deletecollection of every Secret of the namespace')),
  {
    identity: 'dssuser',
    verb: 'create',
    resource: 'resourcequotas',
    bound: 'only the one named dss-spark-k8s, labelled managed-by, in managed namespaces',
    by: [dssuserRules.managedNamespace, dssuserRules.quotaAndLimits],
    proofs: [
      ...redteamDssuser('ResourceQuota of another name'),
      { file: IT.run, it: 'gives an auto-created namespace the Pod Security labels, quota and limits of the profile' },
    ],
  },
  {
    identity: 'dssuser',
    verb: 'create',
    resource: 'limitranges',
    bound: 'only the one named dss-spark-k8s, labelled managed-by, in managed namespaces',
    by: [dssuserRules.managedNamespace, dssuserRules.quotaAndLimits],
    proofs: [
      ...redteamDssuser('LimitRange of another name'),
      { file: IT.run, it: 'gives an auto-created namespace the Pod Security labels, quota and limits of the profile' },
    ],
  },
  {
    identity: 'dssuser',
    verb: 'create',
    resource: 'networkpolicies.networking.k8s.io',
    bound:
      'only the one named dss-spark-k8s, labelled managed-by, of a namespace dssuser created, created once (never changed or deleted), selecting every pod' +
      " for Ingress and Egress, peers only the namespace's own pods, ipBlocks and kube-system on port 53. Residual: the ipBlocks are the profile's and" +
      ' cannot be pinned, so a compromised dssuser could admit any address into a namespace it created, as open as that namespace without the policy' +
      " (which it could create anyway); never in an administrator's namespace, and never a second policy beside the tool's (one name, create only)",
    by: [dssuserRules.managedNamespace, dssuserRules.networkPolicy],
    proofs: [
      ...redteamDssuser(
        'NetworkPolicy of another name',
        'NetworkPolicy allowing ingress from every namespace',
        'NetworkPolicy allowing egress everywhere',
        'NetworkPolicy selecting only some pods',
        'the dss-spark-k8s NetworkPolicy in a namespace an administrator made',
      ),
      { file: 'test/integration/network-policy.test.ts', it: 'gives an auto-created namespace the NetworkPolicy of the profile' },
      { file: 'test/integration/network-policy.test.ts', it: 'refuses dssuser a broader NetworkPolicy in the managed namespace, and any in another one (403)' },
    ],
  },
  teardownDelete('pods', 'delete', 'pods', redteamDssuser('delete of an unlabelled pod')),
  teardownDelete('pods', 'deletecollection', 'pods', redteamDssuser('deletecollection of every pod of the namespace')),
  teardownDelete('persistentvolumeclaims', 'delete', 'claims', redteamDssuser('delete of an unlabelled claim')),
  teardownDelete('persistentvolumeclaims', 'deletecollection', 'claims', redteamDssuser('deletecollection of every claim of the namespace')),
];
