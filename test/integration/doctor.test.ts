// `dss-spark-k8s doctor` end to end: the staged CLI run as the dssuser Unix account against the real control plane
// and real sudo. Each test breaks one thing (a right, the namespace label, the sudoers rule, spark-submit), expects
// exactly that check to fail with its fix and exit 78, applies the printed fix and expects doctor to pass again.
//
// The Kubernetes identity is a ServiceAccount per test whose (Cluster)Role the test controls; Spark is a stub
// (bin/spark-submit printing a banner, jars/kubernetes-client-<v>.jar) except in the tests of the real pyspark.
// Sudoers: a file of this test adds the stubs and pyspark to the documented rule of the run (never removes
// anything); the tests that break sudoers use Unix users of their own, so other test files are not disturbed.
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CoreV1Api, RbacAuthorizationV1Api, loadAllYaml, loadYaml, type V1PolicyRule } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { requiredRights, rightName as docRightName } from '../../src/doctor/rights.ts';
import { kubectl } from '../support/cluster.ts';
import { adminKubeConfig, tokenKube, tokenKubeConfig } from '../support/kube.ts';
import { lookupUser, type UnixUser } from '../support/unix.ts';

/** The profile default: auto-created namespaces get a NetworkPolicy (networkpolicies create). */
const NETWORK_POLICY_ON = { networkPolicy: { enabled: true, driverPorts: { from: 40000, to: 40127 }, egress: [] } };

const cluster = inject('cluster');
const unix = inject('unix');
const root = resolve(import.meta.dirname, '../..');
const id = Math.random().toString(36).slice(2, 7);
const testLabel = { 'dss-spark-k8s-test/doctor': id };
const homeNamespace = `dss-doctor-${id}`;
const [alice] = unix.endUsers as [UnixUser];
const workDir = mkdtempSync('/tmp/dss-spark-k8s-doctor-');
const sudoersFile = `/etc/sudoers.d/dss-spark-k8s-test-doctor-${id}`;
const ownSudoersFile = `${sudoersFile}-own`;
const own = { group: `dsdoc-${id}-grp`, dss: `dsdoc-${id}-dss`, user: `dsdoc-${id}-usr` };

const admin = adminKubeConfig();
const core = admin.makeApiClient(CoreV1Api);
const rbac = admin.makeApiClient(RbacAuthorizationV1Api);

type Rule = { apiGroups: string[]; resources: string[]; resourceNames?: string[]; verbs: string[] };
/** dssuser's own role in a manifest (not the driver's ClusterRole beside it). */
const manifestRules = (file: string, kind: string): Rule[] =>
  (loadAllYaml(readFileSync(join(root, 'deploy/rbac', file), 'utf8')) as { kind: string; metadata: { name: string }; rules?: Rule[] }[]).find(
    (d) => d.kind === kind && d.metadata.name === 'dss-spark-k8s',
  )!.rules!;
const perUserRules = manifestRules('per-user-namespaces.yaml', 'ClusterRole');
const teamRules = manifestRules('team-namespaces.yaml', 'Role');

interface Check {
  id: string;
  title: string;
  status: 'pass' | 'warn' | 'fail' | 'skip';
  ok: boolean;
  detail: string;
  fix?: string;
}
interface DoctorRun {
  code: number;
  stdout: string;
  stderr: string;
  checks: Check[];
  check(id: string): Check;
}

// ---------------------------------------------------------------------------------------------------------
// Fixtures

/** A Spark home stub: bin/spark-submit prints a banner on --version, jars/ holds the fabric8 client jar. */
function sparkStub(version: string, fabric8: string): string {
  const home = join(workDir, `spark-${version}`);
  mkdirSync(join(home, 'bin'), { recursive: true });
  mkdirSync(join(home, 'jars'));
  writeFileSync(join(home, 'jars', `kubernetes-client-${fabric8}.jar`), '');
  writeFileSync(join(home, 'jars', `kubernetes-client-api-${fabric8}.jar`), '');
  const banner = `Welcome to\\n   /___/ .__/\\\\_,_/_/ /_/\\\\_\\\\   version ${version}\\nUsing Scala version 2.12.18, OpenJDK 64-Bit Server VM, 17.0.15\\n`;
  writeFileSync(join(home, 'bin/spark-submit'), `#!/bin/sh\n[ "$1" = --version ] || exit 2\nprintf '${banner}' >&2\n`, { mode: 0o755 });
  return join(home, 'bin/spark-submit');
}

// install-pyspark.sh prints the package's own script; the venv's bin/ wrapper is the one that fails under sudo.
const pysparkBin = execFileSync('bash', [join(root, 'scripts/install-pyspark.sh')], { encoding: 'utf8' }).trim();
const pysparkScript = resolve(pysparkBin, '../../../../../../bin/spark-submit');

let spark35: string;
let spark34: string;

function installSudoers(file: string, text: string) {
  const staged = join(workDir, 'sudoers.check');
  writeFileSync(staged, text, { mode: 0o440 });
  execFileSync('visudo', ['-c', '-q', '-f', staged]);
  writeFileSync(file, text, { mode: 0o440 });
}

function sh(file: string, args: string[]) {
  execFileSync(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A config file readable by every test user; JSON is YAML. */
let configs = 0;
function writeConfig(profile: Record<string, unknown>): string {
  const path = join(workDir, `config-${++configs}.yaml`);
  writeFileSync(path, JSON.stringify({ profiles: { default: profile } }), { mode: 0o644 });
  return path;
}

const perUserProfile = (extra: Record<string, unknown> = {}) => ({
  targetNamespace: `dss-doc-${id}-\${dssUserLogin}`,
  autoCreateNamespace: true,
  sparkSubmit: spark35,
  ...extra,
});

interface Identity {
  /** The ServiceAccount's name (in homeNamespace). */
  name: string;
  kubeconfig: string;
  /** Replaces the rules of its (Cluster)Role. */
  setRules(rules: Rule[]): Promise<void>;
  canI(right: Right): Promise<boolean>;
}

/** A ServiceAccount bound to a ClusterRole (or, with `namespace`, a Role there) holding exactly `rules`. */
let identities = 0;
async function identity(rules: Rule[], owner: { uid: number; gid: number }, namespace?: string): Promise<Identity> {
  const name = `doc-${id}-${++identities}`;
  const metadata = { name, labels: testLabel };
  const subjects = [{ kind: 'ServiceAccount', name, namespace: homeNamespace }];
  if (namespace === undefined) {
    await rbac.createClusterRole({ body: { metadata, rules } });
    await rbac.createClusterRoleBinding({ body: { metadata, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name }, subjects } });
  } else {
    await rbac.createNamespacedRole({ namespace, body: { metadata, rules } });
    await rbac.createNamespacedRoleBinding({ namespace, body: { metadata, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name }, subjects } });
  }
  // Both manifests bind dssuser to the read-only dss-spark-k8s-doctor ClusterRole too (admission policies, driver role).
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { ...metadata, name: `${name}-doctor` },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'dss-spark-k8s-doctor' },
      subjects,
    },
  });
  await core.createNamespacedServiceAccount({ namespace: homeNamespace, body: { metadata } });
  const token = (await core.createNamespacedServiceAccountToken({ name, namespace: homeNamespace, body: { spec: { audiences: [], expirationSeconds: 3600 } } }))
    .status!.token!;
  const kubeconfig = join(workDir, `${name}.kubeconfig`);
  writeFileSync(kubeconfig, tokenKubeConfig(token).exportConfig(), { mode: 0o600 });
  chownSync(kubeconfig, owner.uid, owner.gid);
  const kube = tokenKube(token);
  return {
    name,
    kubeconfig,
    canI: (right) => kube.canI(attributes(right, namespace ?? `dss-doc-${id}-x`)),
    setRules: async (newRules) => {
      if (namespace === undefined) await rbac.replaceClusterRole({ name, body: { metadata, rules: newRules as V1PolicyRule[] } });
      else await rbac.replaceNamespacedRole({ name, namespace, body: { metadata, rules: newRules as V1PolicyRule[] } });
    },
  };
}

interface Right {
  group: string;
  resource: string;
  verb: string;
  name?: string;
}
const rightsOf = (rules: Rule[]): Right[] =>
  rules.flatMap((rule) =>
    rule.resources.flatMap((resource) =>
      rule.verbs.flatMap((verb) =>
        (rule.resourceNames ?? [undefined]).map((name) => ({ group: rule.apiGroups[0]!, resource, verb, ...(name ? { name } : {}) })),
      ),
    ),
  );
const rightName = (r: Right) => `${r.verb} ${r.resource}${r.group ? `.${r.group}` : ''}`;
const attributes = (r: Right, namespace: string) => {
  const [resource, subresource] = r.resource.split('/') as [string, string?];
  return { verb: r.verb, group: r.group, resource, subresource, name: r.name, namespace: resource === 'namespaces' ? undefined : namespace };
};

/** The rules without one right. */
function without(rules: Rule[], right: Right): Rule[] {
  return rules.flatMap((rule) => {
    if (rule.apiGroups[0] !== right.group || !rule.resources.includes(right.resource) || !rule.verbs.includes(right.verb)) return [rule];
    const others = rule.resources.filter((r) => r !== right.resource);
    const verbs = rule.verbs.filter((v) => v !== right.verb); // resourceNames stay with the rule
    return [...(others.length ? [{ ...rule, resources: others }] : []), ...(verbs.length ? [{ ...rule, resources: [right.resource], verbs }] : [])];
  });
}

/** RBAC changes reach the authorizer a moment later: wait until the identity's access is as expected. */
async function until(condition: () => Promise<boolean>, what: string) {
  const deadline = Date.now() + 15_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function doctor(config: string, args: string[], as: { uid: number; gid: number; home: string } = unix.dssuser): Promise<DoctorRun> {
  return new Promise((resolvePromise, reject) => {
    execFile(
      unix.cli,
      ['doctor', '--config', config, ...args],
      { uid: as.uid, gid: as.gid, cwd: '/', timeout: 120_000, env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: as.home, NO_COLOR: '1' } },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        if (code === -1) return reject(error);
        const checks: Check[] = args.includes('json') ? JSON.parse(stdout).checks : [];
        const check = (checkId: string) => {
          const found = checks.find((c) => c.id === checkId);
          if (!found) throw new Error(`no check ${checkId} in ${stdout}`);
          return found;
        };
        resolvePromise({ code, stdout, stderr, checks, check });
      },
    );
  });
}

const json = ['-o', 'json'];
const statuses = (run: DoctorRun) => Object.fromEntries(run.checks.map((c) => [c.id, c.status]));

// ---------------------------------------------------------------------------------------------------------

let full: Identity;

beforeAll(async () => {
  chmodSync(workDir, 0o755);
  spark35 = sparkStub('3.5.1', '6.7.2');
  spark34 = sparkStub('3.4.1', '6.4.1');
  execFileSync('chmod', ['-R', 'a+rX', workDir]);
  // Added to the run's documented rule (it already keeps KUBECONFIG for dssuser).
  installSudoers(sudoersFile, `${unix.dssuser.name} ALL = (%${unix.group}) NOPASSWD: ${spark35}, ${spark34}, ${pysparkBin}, ${pysparkScript}\n`);
  await core.createNamespace({ body: { metadata: { name: homeNamespace, labels: testLabel } } });
  full = await identity(perUserRules, unix.dssuser);
});

afterAll(async () => {
  rmSync(sudoersFile, { force: true });
  rmSync(ownSudoersFile, { force: true });
  rmSync(workDir, { recursive: true, force: true });
  const labelSelector = `dss-spark-k8s-test/doctor=${id}`;
  await rbac.deleteCollectionClusterRoleBinding({ labelSelector });
  await rbac.deleteCollectionClusterRole({ labelSelector });
});

describe('doctor with a correct set-up', () => {
  it('passes every check and exits 0, in text', async () => {
    const run = await doctor(writeConfig(perUserProfile()), ['--user', alice.name, '--kubeconfig', full.kubeconfig]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines.map((l) => l.split(':')[0])).toEqual([
      '✓ configuration',
      '✓ cluster',
      `✓ namespace dss-doc-${id}-${alice.name}`,
      `✓ rights in dss-doc-${id}-${alice.name}`,
      '✓ driver role',
      '✓ admission policies',
      '✓ sudoers rule',
      '✓ spark-submit',
      'all 8 checks passed',
    ]);
    expect(lines[1]).toMatch(new RegExp(`Kubernetes v1\\.34\\.4 as system:serviceaccount:${homeNamespace}:${full.name}$`));
    expect(lines[7]).toMatch(new RegExp(`Spark 3\\.5\\.1, fabric8 kubernetes-client 6\\.7\\.2, Java works \\(as ${alice.name} through sudo in`));
  });

  it('prints {"ok": true, "checks": [...]} with -o json', async () => {
    const run = await doctor(writeConfig(perUserProfile()), ['--user', alice.name, '--kubeconfig', full.kubeconfig, ...json]);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).ok).toBe(true);
    expect(statuses(run)).toEqual({
      config: 'pass',
      cluster: 'pass',
      namespace: 'pass',
      rights: 'pass',
      'driver-role': 'pass',
      policy: 'pass',
      sudo: 'pass',
      spark: 'pass',
    });
    expect(run.check('rights').detail).toBe(`all ${requiredRights({ autoCreateNamespace: true, ...NETWORK_POLICY_ON }).length} rights a job needs`);
    expect(run.check('driver-role').detail).toBe("ClusterRole dss-spark-k8s-driver grants exactly the driver's rights");
    expect(run.check('sudo').detail).toBe(`${unix.dssuser.name} may run ${spark35} as ${alice.name} without a password, KUBECONFIG kept`);
  });

  it('runs the real pyspark spark-submit as the user: Spark 4.3.0 with fabric8 7.6.1', async () => {
    const run = await doctor(writeConfig(perUserProfile({ sparkSubmit: pysparkBin })), ['--user', alice.name, '--kubeconfig', full.kubeconfig, ...json]);
    expect(run.check('spark')).toMatchObject({ status: 'pass' });
    expect(run.check('spark').detail).toMatch(
      new RegExp(`^Spark 4\\.3\\.0, fabric8 kubernetes-client 7\\.6\\.1, Java works \\(as ${alice.name} through sudo in \\d+\\.\\d s\\)$`),
    );
    expect(run.code).toBe(0);
  });
});

describe('doctor finds each missing right of the documented ClusterRole', () => {
  // `list namespaces` is in the manifest (for administrators' convenience), `delete namespaces` for namespaces
  // prune, and `get` of the driver's ClusterRole for doctor's own check, but no job needs them; quotas and limit
  // ranges only profiles that set resourceQuota / limitRange (not this one).
  const forDoctorOnly = (r: Right) =>
    (r.resource === 'namespaces' && (r.verb === 'list' || r.verb === 'delete')) || (r.resource === 'clusterroles' && r.verb === 'get');
  const notNeeded = (r: Right) => forDoctorOnly(r) || r.resource === 'resourcequotas' || r.resource === 'limitranges';
  const rights = rightsOf(perUserRules);

  it('asks for exactly the rights of deploy/rbac/per-user-namespaces.yaml, but list namespaces and get of the driver role', () => {
    const needed = requiredRights({ autoCreateNamespace: true, resourceQuota: {}, limitRange: {}, ...NETWORK_POLICY_ON }).map(
      (r) => `${docRightName(r)}${r.name ? ` ${r.name}` : ''}`,
    );
    expect(
      rights
        .filter((r) => !forDoctorOnly(r))
        .map((r) => `${rightName(r)}${r.name ? ` ${r.name}` : ''}`)
        .sort(),
    ).toEqual(needed.sort());
  });

  it.concurrent.each(rights.map((r) => [rightName(r), r] as const))('without %s', async (_, right) => {
    const rules = without(perUserRules, right);
    const who = await identity(rules, unix.dssuser);
    const other = rights.find((r) => r !== right && !notNeeded(r))!;
    await until(() => who.canI(other), 'the binding');
    const config = writeConfig(perUserProfile());
    const args = ['--user', alice.name, '--kubeconfig', who.kubeconfig, ...json];

    const broken = await doctor(config, args);
    if (notNeeded(right)) {
      expect(broken.code).toBe(0);
      if (right.resource === 'clusterroles') expect(broken.check('driver-role')).toMatchObject({ status: 'warn' });
      return;
    }
    expect(broken.code).toBe(78);
    const check = broken.check('rights');
    expect(check.status).toBe('fail');
    expect(check.detail).toBe(`missing 1 of ${requiredRights({ autoCreateNamespace: true, ...NETWORK_POLICY_ON }).length}: ${rightName(right)}`);
    expect(check.fix).toMatch(/^# add to the rules of the ClusterRole bound to system:serviceaccount:/);
    const fixRules = loadYaml<Rule[]>(check.fix!);
    expect(fixRules).toEqual([
      { apiGroups: [right.group], resources: [right.resource], ...(right.name ? { resourceNames: [right.name] } : {}), verbs: [right.verb] },
    ]);
    expect(broken.checks.filter((c) => c.id !== 'rights').every((c) => c.ok)).toBe(true);

    await who.setRules([...rules, ...fixRules]);
    await until(() => who.canI(right), 'the fixed rule');
    const fixed = await doctor(config, args);
    expect(fixed.check('rights').status).toBe('pass');
    expect(fixed.code).toBe(0);
  });
});

describe('doctor checks the namespace', () => {
  it('fails on an existing namespace without the managed label; the printed kubectl command fixes it', async () => {
    const config = writeConfig(perUserProfile({ targetNamespace: `dss-doc-${id}-nolabel-\${dssUserLogin}` }));
    const namespace = `dss-doc-${id}-nolabel-${alice.name}`;
    await core.createNamespace({ body: { metadata: { name: namespace, labels: testLabel } } });
    const args = ['--user', alice.name, '--kubeconfig', full.kubeconfig, ...json];
    const broken = await doctor(config, args);
    expect(broken.code).toBe(78);
    expect(broken.check('namespace')).toMatchObject({
      status: 'fail',
      detail: 'exists but is not labelled dss-spark-k8s.dataiku.io/managed=true: dssuser may not write in it',
      fix: `kubectl label namespace ${namespace} dss-spark-k8s.dataiku.io/managed=true`,
    });
    runKubectlFix(broken.check('namespace').fix!);
    const fixed = await doctor(config, args);
    expect(fixed.check('namespace')).toMatchObject({ status: 'pass', detail: 'exists, labelled dss-spark-k8s.dataiku.io/managed=true' });
    expect(fixed.code).toBe(0);
  });

  it('fails on a missing namespace when autoCreateNamespace is off; the printed commands fix it', async () => {
    const config = writeConfig(perUserProfile({ targetNamespace: `dss-doc-${id}-absent-\${dssUserLogin}`, autoCreateNamespace: false }));
    const args = ['--user', alice.name, '--kubeconfig', full.kubeconfig, ...json];
    const broken = await doctor(config, args);
    expect(broken.code).toBe(78);
    expect(broken.check('namespace')).toMatchObject({ status: 'fail', detail: 'does not exist and autoCreateNamespace is off' });
    runKubectlFix(broken.check('namespace').fix!);
    const fixed = await doctor(config, args);
    expect(fixed.check('namespace').status).toBe('pass');
    expect(fixed.code).toBe(0);
  });

  it('without --user: checks rights in the placeholder namespace, and fails on the sudoers check that needs a user', async () => {
    const run = await doctor(writeConfig(perUserProfile()), ['--kubeconfig', full.kubeconfig, ...json]);
    expect(run.code).toBe(78);
    expect(statuses(run)).toEqual({
      config: 'pass',
      cluster: 'pass',
      namespace: 'warn',
      rights: 'pass',
      'driver-role': 'pass',
      policy: 'pass',
      sudo: 'fail',
      spark: 'pass',
    });
    expect(run.check('rights').title).toBe(`rights in dss-doc-${id}-sample-user`);
    expect(run.check('sudo').fix).toBe('pass --user LOGIN (an end user who runs Spark jobs)');
    expect(run.check('spark').detail).toMatch(/\(as this user in/);
  });
});

/** Runs "kubectl …[ && kubectl …]" as the administrator. */
function runKubectlFix(fix: string) {
  for (const command of fix.split(' && ')) {
    const [program, ...args] = command.split(' ');
    expect(program).toBe('kubectl');
    kubectl(cluster.kubectl, cluster.adminKubeconfig, args);
  }
}

describe('doctor in team mode', () => {
  const teamNamespace = `dss-doc-${id}-red`;
  const profile = () => ({ targetNamespace: `dss-doc-${id}-\${adminProperty:team}`, autoCreateNamespace: false, sparkSubmit: spark35 });

  beforeAll(async () => {
    await core.createNamespace({ body: { metadata: { name: teamNamespace, labels: { ...testLabel, 'dss-spark-k8s.dataiku.io/managed': 'true' } } } });
  });

  it("passes with only the rights of team-namespaces.yaml (a Role, and reading the tool's policies and driver role), warning what it cannot read", async () => {
    const who = await identity(teamRules, unix.dssuser, teamNamespace);
    await until(() => who.canI({ group: '', resource: 'pods', verb: 'list' }), 'the binding');
    const run = await doctor(writeConfig(profile()), ['--user', alice.name, '--admin-property', 'team=red', '--kubeconfig', who.kubeconfig, ...json]);
    expect(statuses(run)).toEqual({
      config: 'pass',
      cluster: 'pass',
      namespace: 'warn',
      rights: 'pass',
      'driver-role': 'pass',
      policy: 'pass',
      sudo: 'pass',
      spark: 'pass',
    });
    expect(run.check('namespace').detail).toMatch(/^cannot read it \(no get on namespaces\)/);
    expect(run.check('policy').detail).toBe(
      'dss-spark-k8s-job-isolation, dss-spark-k8s-job-attribution and dss-spark-k8s-dssuser-scope installed and bound (Deny)',
    );
    expect(run.check('rights').detail).toMatch(/^all \d+ rights a job needs$/);
    expect(run.code).toBe(0);
  });

  it('prints the Role rule for a missing right; adding it to the Role fixes it', async () => {
    const right = { group: '', resource: 'pods', verb: 'deletecollection' };
    const rules = without(teamRules, right);
    const who = await identity(rules, unix.dssuser, teamNamespace);
    await until(() => who.canI({ group: '', resource: 'pods', verb: 'list' }), 'the binding');
    const config = writeConfig(profile());
    const args = ['--user', alice.name, '--admin-property', 'team=red', '--kubeconfig', who.kubeconfig, ...json];
    const broken = await doctor(config, args);
    expect(broken.code).toBe(78);
    expect(broken.check('rights').fix!.split('\n')[0]).toBe(
      `# add to the rules of the Role bound to system:serviceaccount:${homeNamespace}:${who.name} in namespace ${teamNamespace} (dss-spark-k8s of deploy/rbac/team-namespaces.yaml):`,
    );
    await who.setRules([...rules, ...loadYaml<Rule[]>(broken.check('rights').fix!)]);
    await until(() => who.canI(right), 'the fixed rule');
    expect((await doctor(config, args)).code).toBe(0);
  });

  it('fails when the identity may not read the admission policies: an unverified boundary is no pass', async () => {
    const who = await identity(teamRules, unix.dssuser, teamNamespace);
    await rbac.deleteClusterRoleBinding({ name: `${who.name}-doctor` });
    await until(
      async () =>
        !(await who.canI({ group: 'admissionregistration.k8s.io', resource: 'validatingadmissionpolicies', verb: 'get', name: 'dss-spark-k8s-job-isolation' })),
      'the unbinding',
    );
    const run = await doctor(writeConfig(profile()), ['--user', alice.name, '--admin-property', 'team=red', '--kubeconfig', who.kubeconfig, ...json]);
    expect(run.check('policy')).toMatchObject({ status: 'fail', fix: 'kubectl apply -f deploy/rbac/team-namespaces.yaml   # as a cluster administrator' });
    expect(run.check('policy').detail).toMatch(
      /^cannot read the ValidatingAdmissionPolicies dss-spark-k8s-job-isolation, dss-spark-k8s-job-attribution and dss-spark-k8s-dssuser-scope/,
    );
    expect(run.code).toBe(78);
  });

  it('asks for the admin property when the team namespace cannot be resolved', async () => {
    const run = await doctor(writeConfig(profile()), ['--user', alice.name, '--kubeconfig', full.kubeconfig, ...json]);
    expect(run.code).toBe(78);
    expect(run.check('namespace')).toMatchObject({ status: 'fail' });
    expect(run.check('namespace').detail).toMatch(/has no admin property "team"/);
    expect(run.check('namespace').fix).toMatch(/--admin-property NAME=VALUE/);
    expect(run.check('rights').status).toBe('skip');
  });
});

describe('doctor checks the sudoers rule (Unix users of its own)', () => {
  let dss: UnixUser;
  let _user: UnixUser;
  let config: string;
  let kubeconfig: string;

  beforeAll(async () => {
    sh('groupadd', [own.group]);
    sh('useradd', ['--create-home', '--user-group', '--shell', '/bin/bash', own.dss]);
    sh('useradd', ['--create-home', '--user-group', '--shell', '/bin/bash', '-G', own.group, own.user]);
    dss = lookupUser(own.dss);
    _user = lookupUser(own.user);
    const who = await identity(perUserRules, dss);
    kubeconfig = who.kubeconfig;
    config = writeConfig(perUserProfile({ allowedUserGroups: [own.group] }));
  });

  afterAll(() => {
    for (const name of [own.dss, own.user]) execFileSync('userdel', ['--remove', name], { stdio: 'ignore' });
    execFileSync('groupdel', [own.group], { stdio: 'ignore' });
  });

  const run = () => doctor(config, ['--user', own.user, '--kubeconfig', kubeconfig, ...json], dss);

  it('fails when dssuser may not run spark-submit as the user; appending the printed lines fixes it', async () => {
    installSudoers(ownSudoersFile, `Defaults:${own.dss} env_keep += "KUBECONFIG"\n`);
    const broken = await run();
    expect(broken.code).toBe(78);
    expect(broken.check('sudo')).toMatchObject({
      status: 'fail',
      detail: `${own.dss} may not run ${spark35} as ${own.user} without a password (a password is required)`,
    });
    // Without any rule sudo -l cannot list dssuser's Defaults: the fix is the whole rule.
    expect(broken.check('sudo').fix!.split('\n').slice(1)).toEqual([
      `Defaults:${own.dss} env_keep += "KUBECONFIG"`,
      `${own.dss} ALL = (%${own.group}) NOPASSWD: ${spark35}`,
    ]);
    expect(broken.check('spark').detail).toMatch(/\(as this user in/);
    installSudoers(ownSudoersFile, `${readFileSync(ownSudoersFile, 'utf8')}${broken.check('sudo').fix}\n`);
    const fixed = await run();
    expect(fixed.check('sudo').status).toBe('pass');
    expect(fixed.check('spark').detail).toMatch(new RegExp(`\\(as ${own.user} through sudo in`));
    expect(fixed.code).toBe(0);
  });

  it('fails when KUBECONFIG would not reach spark-submit; appending the printed Defaults line fixes it', async () => {
    installSudoers(ownSudoersFile, `${own.dss} ALL = (%${own.group}) NOPASSWD: ${spark35}\n`);
    const broken = await run();
    expect(broken.code).toBe(78);
    expect(broken.check('sudo')).toMatchObject({ status: 'fail', detail: 'KUBECONFIG does not reach spark-submit (no env_keep)' });
    expect(broken.check('sudo').fix!.split('\n').slice(1)).toEqual([`Defaults:${own.dss} env_keep += "KUBECONFIG"`]);
    installSudoers(ownSudoersFile, `${readFileSync(ownSudoersFile, 'utf8')}${broken.check('sudo').fix}\n`);
    const fixed = await run();
    expect(fixed.check('sudo').status).toBe('pass');
    expect(fixed.code).toBe(0);
  });
});

describe('doctor checks spark-submit', () => {
  const args = () => ['--user', alice.name, '--kubeconfig', full.kubeconfig, ...json];

  it('fails on a sparkSubmit that does not exist, naming the config key', async () => {
    const missing = join(workDir, 'no-spark/bin/spark-submit');
    const run = await doctor(writeConfig(perUserProfile({ sparkSubmit: missing })), args());
    expect(run.code).toBe(78);
    expect(run.check('spark')).toMatchObject({ status: 'fail', detail: `${missing}: no such file` });
    expect(run.check('spark').fix).toMatch(/^set sparkSubmit in profile "default" of .*config-\d+\.yaml to the absolute path of spark-submit$/);
    expect(run.check('sudo').status).toBe('skip');
  });

  it('fails when the fabric8 client is older than 6.7; the newer Spark fixes it', async () => {
    const broken = await doctor(writeConfig(perUserProfile({ sparkSubmit: spark34 })), args());
    expect(broken.code).toBe(78);
    expect(broken.check('spark')).toMatchObject({ status: 'fail' });
    expect(broken.check('spark').detail).toMatch(/^Spark 3\.4\.1, fabric8 kubernetes-client 6\.4\.1, .*: token rotation needs kubernetes-client >= 6\.7$/);
    expect(broken.check('spark').fix).toMatch(/^use Spark 3\.5 or newer/);
    expect((await doctor(writeConfig(perUserProfile({ sparkSubmit: spark35 })), args())).code).toBe(0);
  });

  it("fails on pip's venv script, which cannot find SPARK_HOME under sudo; the printed sparkSubmit fixes it", async () => {
    const broken = await doctor(writeConfig(perUserProfile({ sparkSubmit: pysparkScript })), args());
    expect(broken.code).toBe(78);
    expect(broken.check('sudo').status).toBe('pass');
    expect(broken.check('spark')).toMatchObject({ status: 'fail' });
    expect(broken.check('spark').detail).toMatch(/--version failed as .* through sudo .*\(exit 127: Could not find valid SPARK_HOME while searching /);
    const fixed = /^set sparkSubmit: (\S+) in /.exec(broken.check('spark').fix!)?.[1];
    expect(fixed).toBe(pysparkBin);
    const run = await doctor(writeConfig(perUserProfile({ sparkSubmit: fixed })), args());
    expect(run.check('spark').detail).toMatch(/^Spark 4\.3\.0, fabric8 kubernetes-client 7\.6\.1/);
    expect(run.code).toBe(0);
  });
});

describe('doctor without a cluster or a valid configuration', () => {
  it('fails on rejected credentials and skips the checks that need the cluster', async () => {
    const kubeconfig = join(workDir, 'bad-token.kubeconfig');
    writeFileSync(kubeconfig, tokenKubeConfig('not-a-token').exportConfig(), { mode: 0o600 });
    chownSync(kubeconfig, unix.dssuser.uid, unix.dssuser.gid);
    const run = await doctor(writeConfig(perUserProfile()), ['--user', alice.name, '--kubeconfig', kubeconfig, ...json]);
    expect(run.code).toBe(78);
    expect(statuses(run)).toEqual({
      config: 'pass',
      cluster: 'fail',
      namespace: 'skip',
      rights: 'skip',
      'driver-role': 'skip',
      policy: 'skip',
      sudo: 'pass',
      spark: 'pass',
    });
    expect(run.check('cluster').detail).toMatch(/^get server version failed \(401/);
    expect(run.check('cluster').fix).toMatch(/credentials of dssuser's kubeconfig are rejected/);
  });

  it('fails on an invalid profile with the configuration error, exit 78', async () => {
    const run = await doctor(writeConfig({ sparkSubmit: spark35, tokenTtl: '1m' }), ['--user', alice.name]);
    expect(run.code).toBe(78);
    expect(run.stdout.split('\n')[0]).toMatch(/^✗ configuration: .*config-\d+\.yaml: profiles\.default\.tokenTtl: must be at least 600s/);
    expect(run.stdout).toMatch(/\n- cluster: not checked: the configuration is invalid\n/);
  });
});
