// The checks of `dss-spark-k8s doctor`. Each check is a small function returning one CheckResult, with the
// exact fix under a failure. Parsers, rule lists, fix builders and the output formats are pure; the checks reach
// the outside world only through the Kube client and the RunProcess function they are given.

import { execFile } from 'node:child_process';
import { readdir, realpath, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { V1ValidatingAdmissionPolicyBinding } from '@kubernetes/client-node';
import type { ChalkInstance } from 'chalk';
import { loadConfig, selectProfile } from '../config/load.ts';
import type { Profile } from '../config/types.ts';
import { CliError, KubernetesError } from '../errors.ts';
import { sudoEnv } from '../exec/spark-submit.ts';
import { DRIVER_CREATED_KINDS, type Kube } from '../k8s/client.ts';
import { resolveAdminProperties } from '../plan/admin-properties.ts';
import { resolveNamespace } from '../plan/names.ts';
import { DRIVER_CLUSTER_ROLE, DRIVER_RULES } from '../plan/objects.ts';
import { ISOLATION_POLICY_NAME } from '../plan/policy.ts';
import { MANAGED_NAMESPACE_LABEL } from '../plan/types.ts';

export type Status = 'pass' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  id: 'config' | 'cluster' | 'namespace' | 'rights' | 'driver-role' | 'policy' | 'sudo' | 'spark';
  title: string;
  status: Status;
  /** Nothing to fix: the check passed, or passed with a warning. A skipped check was not verified. */
  ok: boolean;
  detail: string;
  /** What to do: a YAML snippet, sudoers lines, a command or a config key. Only under a failure or warning. */
  fix?: string;
}

type Id = CheckResult['id'];

export function result(id: Id, title: string, status: Status, detail: string, fix?: string): CheckResult {
  return { id, title, status, ok: status === 'pass' || status === 'warn', detail, ...(fix === undefined ? {} : { fix }) };
}

/** Login used to expand a per-user namespace template when no --user is given. */
export const PLACEHOLDER_LOGIN = 'sample-user';
/** Token rotation re-reads the kubeconfig: fabric8 kubernetes-client 6.7 (Spark 3.5) or newer. */
export const MIN_FABRIC8 = '6.7';
const SPARK_TIMEOUT_MS = 30_000;
const SUDO_TIMEOUT_MS = 10_000;

export function isTeamMode(profile: Pick<Profile, 'targetNamespace'>): boolean {
  return profile.targetNamespace.includes('${adminProperty:');
}

// ---------------------------------------------------------------------------------------------------------
// 1. Configuration

export function checkConfig(path: string, profileName: string | undefined): { result: CheckResult; profile?: Profile } {
  const title = 'configuration';
  try {
    const profile = selectProfile(loadConfig(path), profileName);
    const mode = isTeamMode(profile) ? 'team namespaces' : 'per-user namespaces';
    return { result: result('config', title, 'pass', `profile "${profile.name}" of ${path} (${mode}: ${profile.targetNamespace})`), profile };
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    return { result: result('config', title, 'fail', error.message, 'correct the file or pick another profile with --profile') };
  }
}

// ---------------------------------------------------------------------------------------------------------
// 2. Cluster

export async function checkCluster(load: () => Kube, where: string): Promise<{ result: CheckResult; kube?: Kube; username?: string }> {
  const title = 'cluster';
  let kube: Kube;
  try {
    kube = load();
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    return { result: result('cluster', title, 'fail', error.message, `set kubeconfig (and context) in ${where}, or pass --kubeconfig and --context`) };
  }
  try {
    const version = await kube.serverVersion();
    const username = await kube.whoAmI().then((me) => me.username, () => undefined);
    const as = username ? ` as ${username}` : '';
    return { result: result('cluster', title, 'pass', `${kube.endpoint.server}: Kubernetes ${version}${as}`), kube, username };
  } catch (error) {
    if (!(error instanceof KubernetesError)) throw error;
    const fix =
      error.status === 401
        ? `the credentials of dssuser's kubeconfig are rejected: renew them (kubeconfig key of ${where}, or --kubeconfig)`
        : `make ${kube.endpoint.server} reachable from this host, or point kubeconfig/context of ${where} at the right cluster`;
    await kube.close();
    return { result: result('cluster', title, 'fail', error.message, fix) };
  }
}

// ---------------------------------------------------------------------------------------------------------
// 3. Namespace and rights

/** The namespace the sample user would get (admin properties from the flags and the profile's file), or why none. */
export function sampleNamespace(profile: Profile, login: string | undefined, adminPropertyFlags: string[]): { namespace: string } | { result: CheckResult } {
  try {
    const sample = login ?? PLACEHOLDER_LOGIN;
    return { namespace: resolveNamespace(profile, { login: sample, adminProperties: resolveAdminProperties(sample, adminPropertyFlags, profile) }) };
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    const fix = /has no admin property/.test(error.message)
      ? 'pass --user LOGIN of a sample end user, with --admin-property NAME=VALUE unless adminPropertiesFile holds it'
      : `change targetNamespace or allowedNamespaces of profile "${profile.name}" in ${profile.source}`;
    return { result: result('namespace', 'namespace', 'fail', error.message, fix) };
  }
}

export async function checkNamespace(kube: Kube, profile: Profile, namespace: string, sampleUser: boolean): Promise<CheckResult> {
  const title = `namespace ${namespace}`;
  if (!sampleUser) {
    return result('namespace', title, 'warn', `from the placeholder login "${PLACEHOLDER_LOGIN}": existence and label not checked`, 'pass --user LOGIN to check the namespace of a real end user');
  }
  const label = `${MANAGED_NAMESPACE_LABEL}=true`;
  let found;
  try {
    found = await kube.getNamespace(namespace);
  } catch (error) {
    if (error instanceof KubernetesError && error.status === 403) {
      return result('namespace', title, 'warn', `cannot read it (no get on namespaces): make sure it exists and is labelled ${label}`);
    }
    if (error instanceof KubernetesError) return result('namespace', title, 'fail', error.message);
    throw error;
  }
  if (found === undefined) {
    if (profile.autoCreateNamespace) return result('namespace', title, 'pass', 'does not exist yet: the first job creates it (autoCreateNamespace)');
    return result('namespace', title, 'fail', 'does not exist and autoCreateNamespace is off',
      `kubectl create namespace ${namespace} && kubectl label namespace ${namespace} ${label}`);
  }
  if (found.metadata?.labels?.[MANAGED_NAMESPACE_LABEL] !== 'true') {
    return result('namespace', title, 'fail', `exists but is not labelled ${label}: dssuser may not write in it`,
      `kubectl label namespace ${namespace} ${label}`);
  }
  return result('namespace', title, 'pass', `exists, labelled ${label}`);
}

export interface Right {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  /** A right on one object only (RBAC resourceNames). */
  name?: string;
}

/** Every right a job of this profile needs in its namespace (namespaces: cluster-scoped, only to auto-create). */
export function requiredRights(profile: Pick<Profile, 'autoCreateNamespace' | 'resourceQuota' | 'limitRange'>): Right[] {
  const each = (group: string, resources: string[], verbs: string[]): Right[] =>
    resources.flatMap((resource) => verbs.map((verb) => ({ verb, group, resource })));
  return [
    ...(profile.autoCreateNamespace ? each('', ['namespaces'], ['get', 'create']) : []),
    ...(profile.autoCreateNamespace && profile.resourceQuota ? each('', ['resourcequotas'], ['create']) : []),
    ...(profile.autoCreateNamespace && profile.limitRange ? each('', ['limitranges'], ['create']) : []),
    // deletecollection: cleanup --orphans deletes jobs a batch at a time, by their labels.
    ...each('', ['serviceaccounts'], ['create', 'get', 'list', 'delete', 'deletecollection']),
    { verb: 'create', group: '', resource: 'serviceaccounts', subresource: 'token' },
    ...each('rbac.authorization.k8s.io', ['rolebindings'], ['create', 'get', 'list', 'delete', 'deletecollection']),
    // A job's RoleBinding refers to the driver's ClusterRole; dssuser may bind that one and no other.
    { verb: 'bind', group: 'rbac.authorization.k8s.io', resource: 'clusterroles', name: DRIVER_CLUSTER_ROLE },
    ...each('coordination.k8s.io', ['leases'], ['create', 'get', 'list', 'update', 'delete', 'deletecollection']),
    // Each job token is bound to an empty Secret (its token anchor); never get/list/watch.
    ...each('', ['secrets'], ['create', 'delete', 'deletecollection']),
    // What Spark's driver creates: dssuser only finds and deletes what a job left of them.
    ...each('', [...DRIVER_CREATED_KINDS], ['list', 'delete', 'deletecollection']),
  ];
}

export function rightName(right: Right): string {
  const resource = right.subresource ? `${right.resource}/${right.subresource}` : right.resource;
  return `${right.verb} ${resource}${right.group ? `.${right.group}` : ''}`;
}

/** The missing rights as RBAC rules (YAML): one rule per API group and set of verbs, in the order given. */
export function rulesYaml(missing: Right[]): string {
  const rules: { group: string; resources: string[]; name: string; verbs: string[] }[] = [];
  const verbsOf = new Map<string, string[]>();
  for (const right of missing) {
    const key = `${right.group}\0${right.subresource ? `${right.resource}/${right.subresource}` : right.resource}\0${right.name ?? ''}`;
    verbsOf.set(key, [...(verbsOf.get(key) ?? []), right.verb]);
  }
  for (const [key, verbs] of verbsOf) {
    const [group, resource, name] = key.split('\0') as [string, string, string];
    const same = rules.find((rule) => rule.group === group && rule.name === name && rule.verbs.join() === verbs.join());
    if (same) same.resources.push(resource);
    else rules.push({ group, resources: [resource], name, verbs });
  }
  return rules
    .map((rule) => [
      `- apiGroups: [${rule.group === '' ? '""' : rule.group}]`,
      `  resources: [${rule.resources.join(', ')}]`,
      ...(rule.name ? [`  resourceNames: [${rule.name}]`] : []),
      `  verbs: [${rule.verbs.join(', ')}]`,
    ].join('\n'))
    .join('\n');
}

/** Parallel access reviews, over a few keep-alive connections rather than one TLS handshake each. */
const SSAR_CONCURRENCY = 8;

async function mapLimit<T, R>(items: T[], limit: number, f: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await f(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

export async function checkRights(kube: Kube, profile: Profile, namespace: string, username: string | undefined): Promise<CheckResult> {
  const title = `rights in ${namespace}`;
  const rights = requiredRights(profile);
  let allowed: boolean[];
  try {
    allowed = await mapLimit(rights, SSAR_CONCURRENCY, (right) =>
      // As the apiserver sees the requests: POST /namespaces has no namespace, GET /namespaces/<ns> has both.
      right.resource === 'namespaces'
        ? kube.canI({ ...right, ...(right.verb === 'create' ? {} : { namespace, name: namespace }) })
        : kube.canI({ ...right, namespace }), // bind on a ClusterRole, too: it is checked in the binding's namespace
    );
  } catch (error) {
    if (error instanceof KubernetesError) return result('rights', title, 'fail', error.message);
    throw error;
  }
  const missing = rights.filter((_, i) => !allowed[i]);
  if (missing.length === 0) return result('rights', title, 'pass', `all ${rights.length} rights a job needs`);
  const who = username ?? 'dssuser';
  const where = isTeamMode(profile)
    ? `# add to the rules of the Role bound to ${who} in namespace ${namespace} (dss-spark-k8s of deploy/rbac/team-namespaces.yaml):`
    : `# add to the rules of the ClusterRole bound to ${who} (dss-spark-k8s of deploy/rbac/per-user-namespaces.yaml):`;
  return result('rights', title, 'fail', `missing ${missing.length} of ${rights.length}: ${missing.map(rightName).join(', ')}`, `${where}\n${rulesYaml(missing)}`);
}

/** The driver's ClusterRole (deploy/rbac) exists and grants exactly DRIVER_RULES: a job's RoleBinding refers to it. */
export async function checkDriverRole(kube: Kube, profile: Profile): Promise<CheckResult> {
  const title = 'driver role';
  const manifest = isTeamMode(profile) ? 'team-namespaces.yaml' : 'per-user-namespaces.yaml';
  const fix = `kubectl apply -f deploy/rbac/${manifest}   # as a cluster administrator`;
  let rules: RuleLike[] | undefined;
  try {
    rules = await kube.getClusterRoleRules(DRIVER_CLUSTER_ROLE);
  } catch (error) {
    if (error instanceof KubernetesError && error.status === 403) {
      return result('driver-role', title, 'warn', `cannot read ClusterRole ${DRIVER_CLUSTER_ROLE} (no get on it): make sure it exists as in deploy/rbac/${manifest}, or jobs get no rights`);
    }
    if (error instanceof KubernetesError) return result('driver-role', title, 'fail', error.message);
    throw error;
  }
  if (rules === undefined) return result('driver-role', title, 'fail', `ClusterRole ${DRIVER_CLUSTER_ROLE} does not exist: jobs would get no rights`, fix);
  const granted = ruleSet(rules);
  const needed = ruleSet(DRIVER_RULES);
  const extra = [...granted].filter((right) => !needed.has(right));
  const lacking = [...needed].filter((right) => !granted.has(right));
  if (extra.length > 0) return result('driver-role', title, 'fail', `ClusterRole ${DRIVER_CLUSTER_ROLE} grants jobs more than the driver needs: ${extra.join(', ')}`, fix);
  if (lacking.length > 0) return result('driver-role', title, 'fail', `ClusterRole ${DRIVER_CLUSTER_ROLE} lacks rights the driver needs: ${lacking.join(', ')}`, fix);
  return result('driver-role', title, 'pass', `ClusterRole ${DRIVER_CLUSTER_ROLE} grants exactly the driver's rights`);
}

/** Rules as "verb resource.group" strings; anything broader than plain names (wildcards, resourceNames, URLs) shows as such. */
type RuleLike = { apiGroups?: readonly string[]; resources?: readonly string[]; verbs: readonly string[]; resourceNames?: readonly string[]; nonResourceURLs?: readonly string[] };

function ruleSet(rules: readonly RuleLike[]): Set<string> {
  const rights = new Set<string>();
  for (const rule of rules) {
    if (rule.nonResourceURLs?.length) rights.add(`${rule.verbs.join('/')} ${rule.nonResourceURLs.join(',')}`);
    for (const group of rule.apiGroups ?? []) {
      for (const resource of rule.resources ?? []) {
        for (const verb of rule.verbs) rights.add(`${verb} ${resource}${group ? `.${group}` : ''}${rule.resourceNames?.length ? ` (${rule.resourceNames.join(',')})` : ''}`);
      }
    }
  }
  return rights;
}

// ---------------------------------------------------------------------------------------------------------
// 4. Admission policies (both modes): the job-isolation policy and the policy that keeps dssuser in its lane

/** The policy of deploy/rbac that bounds what dssuser may write. */
export const DSSUSER_POLICY_NAME = 'dss-spark-k8s-dssuser-scope';

export async function checkPolicy(kube: Kube, profile: Profile): Promise<CheckResult> {
  const title = 'admission policies';
  const manifest = isTeamMode(profile) ? 'team-namespaces.yaml' : 'per-user-namespaces.yaml';
  const fix = `kubectl apply -f deploy/rbac/${manifest}   # as a cluster administrator`;
  const missing: string[] = [];
  try {
    for (const [name, without] of [
      [ISOLATION_POLICY_NAME, 'jobs can act as other jobs and keep what they create after their teardown'],
      [DSSUSER_POLICY_NAME, 'dssuser is bounded by its RBAC rights alone'],
    ] as const) {
      const [policy, binding] = await Promise.all([
        kube.getClusterObject('validatingadmissionpolicies', name),
        kube.getClusterObject<V1ValidatingAdmissionPolicyBinding>('validatingadmissionpolicybindings', name),
      ]);
      if (policy === undefined) missing.push(`${name} is not installed (${without})`);
      else if (binding?.spec?.policyName !== name || !binding.spec.validationActions.includes('Deny')) missing.push(`${name} is not bound with validationActions [Deny] (${without})`);
    }
  } catch (error) {
    if (error instanceof KubernetesError && error.status === 403) {
      return result('policy', title, 'fail', `cannot read the ValidatingAdmissionPolicies ${ISOLATION_POLICY_NAME} and ${DSSUSER_POLICY_NAME}: the identity lacks the read rights of deploy/rbac/${manifest}`, fix);
    }
    if (error instanceof KubernetesError) return result('policy', title, 'fail', error.message);
    throw error;
  }
  if (missing.length > 0) return result('policy', title, 'fail', `ValidatingAdmissionPolicy ${missing.join('; ')}`, fix);
  return result('policy', title, 'pass', `${ISOLATION_POLICY_NAME} and ${DSSUSER_POLICY_NAME} installed and bound (Deny)`);
}

// ---------------------------------------------------------------------------------------------------------
// Processes

export interface ProcessResult {
  /** Exit code; null when the process could not start, timed out or died of a signal. */
  code: number | null;
  stdout: string;
  stderr: string;
  /** Why there is no exit code: "ENOENT", "timed out after 30 s"... */
  failure?: string;
  ms: number;
}

export type RunProcess = (file: string, args: string[], options: { timeoutMs: number }) => Promise<ProcessResult>;

/**
 * Runs a program without a shell, in /, with the environment `run` gives sudo (nothing of the caller's) in the
 * C locale (sudo's messages are parsed); never throws.
 */
export const runProcess: RunProcess = (file, args, { timeoutMs }) =>
  new Promise((resolve) => {
    const started = Date.now();
    execFile(file, args, { cwd: '/', timeout: timeoutMs, env: { ...sudoEnv(), LC_ALL: 'C' }, maxBuffer: 4 << 20 }, (error, stdout, stderr) => {
      const ms = Date.now() - started;
      if (!error) return resolve({ code: 0, stdout, stderr, ms });
      const e = error as NodeJS.ErrnoException & { code?: number | string; killed?: boolean; signal?: string };
      if (typeof e.code === 'number') return resolve({ code: e.code, stdout, stderr, ms });
      const failure = e.killed && ms >= timeoutMs ? `timed out after ${Math.round(timeoutMs / 1000)} s` : String(e.code ?? e.signal ?? e.message);
      resolve({ code: null, stdout, stderr, failure, ms });
    });
  });

/** The line of a failed program's output that says why: the first that looks like an error, else the last. */
function reasonLine(text: string): string {
  const lines = text.split('\n').map((line) => line.trim()).filter(Boolean);
  const reason = lines.find((line) => /could not|error|exception|not found|no such file|not set/i.test(line)) ?? lines.at(-1) ?? '';
  return reason.length > 200 ? `${reason.slice(0, 197)}...` : reason;
}

// ---------------------------------------------------------------------------------------------------------
// 5. sudoers

/**
 * env_reset and env_keep as the Defaults that `sudo -l` lists for the caller leave them (global and
 * runas/command-specific alike, in order).
 */
export function sudoEnvDefaults(listing: string): { reset: boolean; keep: Set<string> } {
  let reset = true;
  let keep = new Set<string>();
  for (const entry of sudoDefaults(listing)) {
    const m = /^(!?)(\w+)\s*(?:([+-]?=)\s*(.*))?$/.exec(entry);
    if (!m) continue;
    const [, negated, name, op, raw = ''] = m;
    if (name === 'env_reset') reset = negated !== '!';
    if (name !== 'env_keep') continue;
    const vars = raw.replace(/^"(.*)"$/, '$1').split(/\s+/).filter(Boolean);
    if (negated === '!') keep = new Set();
    else if (op === '=') keep = new Set(vars);
    else if (op === '+=') for (const v of vars) keep.add(v);
    else if (op === '-=') for (const v of vars) keep.delete(v);
  }
  return { reset, keep };
}

/** The entries of the "Matching Defaults entries" and "Runas and Command-specific defaults" blocks of `sudo -l`. */
export function sudoDefaults(listing: string): string[] {
  let text = '';
  let inBlock = false;
  for (const line of listing.split('\n')) {
    if (/^(Matching Defaults entries|Runas and Command-specific defaults) for /.test(line)) inBlock = true;
    else if (line.trim() === '') inBlock = false;
    else if (inBlock) text += ` ${line.trim()}`;
  }
  // Runas/command-specific lines start with "Defaults>x", "Defaults!cmd"...: a separator like a comma.
  text = text.replace(/(^|\s)Defaults\S*/g, ',');
  const entries: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\\' && i + 1 < text.length) current += c + text[++i];
    else if (c === '"') (quoted = !quoted), (current += c);
    else if (c === ',' && !quoted) entries.push(current), (current = '');
    else current += c;
  }
  entries.push(current);
  return entries.map((e) => e.trim()).filter(Boolean);
}

/** The sudoers lines of the README with the real names: the runas list is the profile's groups, else the sample user. */
export function sudoersLines(dssuser: string, user: string, profile: Pick<Profile, 'allowedUserGroups' | 'sparkSubmit'>, need: { keep: boolean; allow: boolean }): string {
  const runas = profile.allowedUserGroups.length > 0 ? profile.allowedUserGroups.map((g) => `%${g}`).join(', ') : user;
  return [
    '# in /etc/sudoers.d/dss-spark-k8s (edit with: visudo -f /etc/sudoers.d/dss-spark-k8s)',
    ...(need.keep ? [`Defaults:${dssuser} env_keep += "KUBECONFIG"`] : []),
    ...(need.allow ? [`${dssuser} ALL = (${runas}) NOPASSWD: ${profile.sparkSubmit}`] : []),
  ].join('\n');
}

export async function checkSudo(run: RunProcess, me: string, user: string | undefined, profile: Profile, sparkSubmitExists: boolean): Promise<CheckResult> {
  const title = 'sudoers rule';
  if (user === undefined) return result('sudo', title, 'fail', 'needs a sample end user', 'pass --user LOGIN (an end user who runs Spark jobs)');
  if (!sparkSubmitExists) return result('sudo', title, 'skip', `${profile.sparkSubmit} does not exist (see spark-submit below)`);
  const probe = await run('sudo', ['-n', '-l', '-u', user, profile.sparkSubmit], { timeoutMs: SUDO_TIMEOUT_MS });
  if (probe.failure === 'ENOENT') return result('sudo', title, 'fail', 'sudo is not installed', 'install sudo (apt-get install sudo)');
  const why = (probe.stderr.split('\n').find((line) => line.trim()) ?? '').trim().replace(/^sudo: /, '');
  if (/unknown user/.test(why)) return result('sudo', title, 'fail', `sudo: ${why}`, 'pass --user with the login of an existing end user');
  const allow = probe.code === 0;
  const listing = await run('sudo', ['-n', '-l'], { timeoutMs: SUDO_TIMEOUT_MS });
  const env = listing.code === 0 ? sudoEnvDefaults(listing.stdout) : undefined;
  // Whether KUBECONFIG is kept once the environment is reset, as it must be.
  const keep = env && env.keep.has('KUBECONFIG');
  if (allow && env?.reset && keep) return result('sudo', title, 'pass', `${me} may run ${profile.sparkSubmit} as ${user} without a password, KUBECONFIG kept`);
  if (allow && env === undefined) {
    return result('sudo', title, 'warn', `${me} may run spark-submit as ${user}, but sudo -l needs a password: cannot see whether KUBECONFIG is kept`,
      sudoersLines(me, user, profile, { keep: true, allow: false }));
  }
  const noReset = env?.reset === false;
  const problems = [
    ...(allow ? [] : [`${me} may not run ${profile.sparkSubmit} as ${user} without a password${why ? ` (${why})` : ''}`]),
    ...(noReset ? [`sudo keeps ${me}'s environment (!env_reset), which would reach the end user's driver`] : []),
    ...(keep === false && !noReset ? ['KUBECONFIG does not reach spark-submit (no env_keep)'] : []),
  ];
  // When sudo -l cannot tell (no rule at all), the Defaults line is in the fix too: it is part of the rule.
  const lines = keep !== true || !allow ? [sudoersLines(me, user, profile, { keep: keep !== true, allow: !allow })] : [];
  const fix = [...(noReset ? [`# remove "!env_reset" from sudoers (find it with: grep -rn env_reset /etc/sudoers /etc/sudoers.d); sudo must reset the environment`] : []), ...lines];
  return result('sudo', title, 'fail', problems.join('; '), fix.join('\n'));
}

// ---------------------------------------------------------------------------------------------------------
// 6. spark-submit

/** "4.3.0" from spark-submit --version's banner (not the "Using Scala version" line). */
export function parseSparkVersion(output: string): string | undefined {
  return /(?<!Scala )version (\d+\.\d+\.\d+\S*)/.exec(output)?.[1];
}

/** The fabric8 client version from the jar names of SPARK_HOME/jars. */
export function fabric8Version(jarNames: string[]): string | undefined {
  for (const name of jarNames) {
    const m = /^kubernetes-client-(\d+(?:\.\d+)*)\.jar$/.exec(name);
    if (m) return m[1];
  }
  return undefined;
}

export function versionAtLeast(version: string, minimum: string): boolean {
  const a = version.split('.').map(Number);
  const b = minimum.split('.').map(Number);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}

/**
 * SPARK_HOME of a spark-submit: the directory above bin/ for a Spark distribution (and pip's
 * site-packages/pyspark/bin); for pip's <venv>/bin/spark-submit script, <venv>/lib/python*\/site-packages/pyspark.
 */
export async function sparkHome(sparkSubmit: string): Promise<{ home: string; pipScript: boolean } | undefined> {
  const real = await realpath(sparkSubmit).catch(() => sparkSubmit);
  const bin = dirname(real);
  if (await exists(join(bin, 'find_spark_home.py'))) {
    const lib = join(dirname(bin), 'lib');
    for (const python of (await readdir(lib).catch(() => [])).filter((d) => d.startsWith('python')).sort()) {
      const home = join(lib, python, 'site-packages', 'pyspark');
      if (await exists(join(home, 'jars'))) return { home, pipScript: true };
    }
    return undefined;
  }
  return { home: dirname(bin), pipScript: false };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/** The fix for a spark-submit --version that failed, from what it printed. */
export function sparkFailureFix(output: string, path: string, where: string, home: { home: string; pipScript: boolean } | undefined): string {
  if (/Could not find valid SPARK_HOME/.test(output) && home?.pipScript) {
    return `set sparkSubmit: ${join(home.home, 'bin', 'spark-submit')} in ${where} (pip's venv script needs the venv's python on PATH, which sudo resets), and put that path in the sudoers rule`;
  }
  if (/JAVA_HOME|java: (command )?not found|UnsupportedClassVersionError|No Java runtime/i.test(output)) {
    return 'install Java 17 or newer where sudo\'s secure_path finds `java`, or set JAVA_HOME in $SPARK_HOME/conf/spark-env.sh';
  }
  return `run "${path} --version" as the end user to see the error; fix the installation or sparkSubmit in ${where}`;
}

export async function checkSpark(run: RunProcess, profile: Profile, asUser: string | undefined): Promise<CheckResult> {
  const title = 'spark-submit';
  const path = profile.sparkSubmit;
  const where = `profile "${profile.name}" of ${profile.source}`;
  const info = await stat(path).catch((error: NodeJS.ErrnoException) => error.code ?? 'error');
  if (typeof info === 'string') return result('spark', title, 'fail', `${path}: ${info === 'ENOENT' ? 'no such file' : info}`, `set sparkSubmit in ${where} to the absolute path of spark-submit`);
  if (!info.isFile() || (info.mode & 0o111) === 0) return result('spark', title, 'fail', `${path} is not an executable file`, `chmod a+rx ${path}`);

  const command = asUser === undefined ? [path, '--version'] : ['sudo', '-n', '-u', asUser, '--', path, '--version'];
  const ran = await run(command[0]!, command.slice(1), { timeoutMs: SPARK_TIMEOUT_MS });
  const output = `${ran.stdout}\n${ran.stderr}`;
  const how = `${asUser === undefined ? 'as this user' : `as ${asUser} through sudo`} in ${(ran.ms / 1000).toFixed(1)} s`;
  const home = await sparkHome(path);
  if (ran.code !== 0) {
    const why = ran.failure ?? `exit ${ran.code}: ${reasonLine(ran.stderr) || reasonLine(ran.stdout)}`;
    return result('spark', title, 'fail', `${path} --version failed ${how} (${why})`, sparkFailureFix(output, path, where, home));
  }
  const spark = parseSparkVersion(output);
  if (spark === undefined) return result('spark', title, 'fail', `${path} --version printed no Spark version (${how})`, `point sparkSubmit in ${where} at Spark's spark-submit`);

  const jars = home === undefined ? undefined : await readdir(join(home.home, 'jars')).catch(() => undefined);
  const fabric8 = jars === undefined ? undefined : fabric8Version(jars);
  const found = `Spark ${spark}${fabric8 ? `, fabric8 kubernetes-client ${fabric8}` : ''}, Java works (${how})`;
  if (jars === undefined) return result('spark', title, 'warn', `${found}; no jars directory found: cannot tell whether token rotation works (needs fabric8 kubernetes-client >= ${MIN_FABRIC8})`);
  if (fabric8 === undefined) return result('spark', title, 'fail', `${found}; no kubernetes-client jar in ${join(home!.home, 'jars')}: this Spark has no Kubernetes support`, 'use a Spark distribution built with Kubernetes support (-Pkubernetes), such as pyspark from PyPI');
  if (!versionAtLeast(fabric8, MIN_FABRIC8)) return result('spark', title, 'fail', `${found}: token rotation needs kubernetes-client >= ${MIN_FABRIC8}`, `use Spark 3.5 or newer (sparkSubmit in ${where})`);
  return result('spark', title, 'pass', found);
}

// ---------------------------------------------------------------------------------------------------------
// Output

export function allOk(results: CheckResult[]): boolean {
  return results.every((r) => r.ok);
}

export function formatJson(results: CheckResult[]): string {
  return `${JSON.stringify({ ok: allOk(results), checks: results }, null, 2)}\n`;
}

export function formatText(results: CheckResult[], chalk: ChalkInstance): string {
  const mark: Record<Status, string> = { pass: chalk.green('✓'), warn: chalk.yellow('!'), fail: chalk.red('✗'), skip: chalk.dim('-') };
  const lines = results.flatMap((r) => [
    `${mark[r.status]} ${chalk.bold(r.title)}: ${r.detail}`,
    ...(r.fix === undefined ? [] : r.fix.split('\n').map((line) => `    ${chalk.cyan(line)}`)),
  ]);
  const failed = results.filter((r) => !r.ok).length;
  const summary = failed === 0
    ? chalk.green(`all ${results.length} checks passed`)
    : chalk.red(`${failed} of ${results.length} checks failed or could not run; apply the fixes above and run doctor again`);
  return `${[...lines, summary].join('\n')}\n`;
}
