// The pure parts of `doctor`: which rights a profile needs and the RBAC fix for the missing ones, sudo -l parsing
// (outputs captured from sudo 1.9.13 on Debian 12), the sudoers fix, Spark/fabric8 versions, and both output formats.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadYaml } from '@kubernetes/client-node';
import { Chalk } from 'chalk';
import { describe, expect, it } from 'vitest';
import { doctorCommand } from '../../src/commands/doctor.ts';
import { checkPolicy } from '../../src/doctor/policies.ts';
import type { ProcessResult, RunProcess } from '../../src/doctor/process.ts';
import { formatJson, formatText, result } from '../../src/doctor/result.ts';
import { checkDriverRole, checkRights, requiredRights, rightName, rulesYaml, sampleNamespace } from '../../src/doctor/rights.ts';
import { checkSpark, fabric8Version, parseSparkVersion, sparkHome, versionAtLeast } from '../../src/doctor/spark.ts';
import { checkSudo, sudoDefaults, sudoEnvDefaults, sudoersLines } from '../../src/doctor/sudoers.ts';
import type { Profile } from '../../src/config/types.ts';
import { profileWith } from '../support/profile.ts';
import { ExitCode, KubernetesError, UsageError } from '../../src/errors.ts';
import { DRIVER_RULES } from '../../src/plan/objects.ts';
import { jobPolicies } from '../../src/plan/attribution-policy.ts';
import type { KubeClient } from '../../src/k8s/client.ts';

const SUDO_LIST = `Matching Defaults entries for dssuser on vm:
    env_reset, mail_badpass,
    secure_path=/usr/local/sbin\\:/usr/local/bin\\:/usr/sbin\\:/usr/bin\\:/sbin\\:/bin,
    use_pty, env_keep+=KUBECONFIG

User dssuser may run the following commands on vm:
    (%spark) NOPASSWD: /bin/echo,
        /opt/spark/bin/spark-submit
`;

const profile: Profile = profileWith({ source: '/etc/dss-spark-k8s/config.yaml', autoCreateNamespace: true });

function fakeRun(answers: Record<string, Partial<ProcessResult>>): RunProcess & { calls: string[] } {
  const calls: string[] = [];
  const run = async (file: string, args: string[]) => {
    const line = [file, ...args].join(' ');
    calls.push(line);
    const answer = answers[line];
    if (!answer) throw new Error(`unexpected command: ${line}`);
    return { code: 0, stdout: '', stderr: '', ms: 1200, ...answer };
  };
  return Object.assign(run, { calls });
}

describe('requiredRights', () => {
  it('asks for namespaces get and create only when the profile auto-creates the namespace', () => {
    const names = (auto: boolean) => requiredRights({ autoCreateNamespace: auto }).map(rightName);
    expect(names(true)).toEqual(expect.arrayContaining(['get namespaces', 'create namespaces', 'patch namespaces']));
    expect(names(false).filter((n) => n.includes('namespaces'))).toEqual([]);
  });

  it('covers the job objects, the token request, the lease, binding the driver role and deleting what drivers create', () => {
    const names = requiredRights({ autoCreateNamespace: false }).map(rightName);
    expect(names).toEqual(
      expect.arrayContaining([
        'create serviceaccounts',
        'delete serviceaccounts',
        'create serviceaccounts/token',
        'create rolebindings.rbac.authorization.k8s.io',
        'list rolebindings.rbac.authorization.k8s.io',
        'bind clusterroles.rbac.authorization.k8s.io',
        'update leases.coordination.k8s.io',
        'create secrets',
        'deletecollection secrets',
        'deletecollection persistentvolumeclaims',
        'list pods',
        'delete pods',
      ]),
    );
    // Nothing of the kinds a job token no longer creates (Services, ConfigMaps): there is nothing of them to delete.
    expect(names.filter((n) => /services|configmaps/.test(n))).toEqual([]);
    expect(names).toHaveLength(6 + 1 + 5 + 1 + 6 + 3 + 6);
    expect(new Set(names).size).toBe(names.length);
  });

  it('never asks to create roles or driver objects, to read secrets, or to bind anything but the driver role', () => {
    const rights = requiredRights({ autoCreateNamespace: true, resourceQuota: {}, limitRange: {} });
    expect(
      rights.filter(
        (r) =>
          r.resource === 'roles' || ['escalate', 'impersonate'].includes(r.verb) || (r.resource === 'secrets' && ['get', 'list', 'watch'].includes(r.verb)),
      ),
    ).toEqual([]);
    expect(
      rights.filter(
        (r) => ['pods', 'services', 'configmaps', 'persistentvolumeclaims'].includes(r.resource) && !['list', 'delete', 'deletecollection'].includes(r.verb),
      ),
    ).toEqual([]);
    expect(rights.filter((r) => r.verb === 'bind')).toEqual([
      { verb: 'bind', group: 'rbac.authorization.k8s.io', resource: 'clusterroles', name: 'dss-spark-k8s-driver' },
    ]);
  });
});

describe('sampleNamespace', () => {
  const team = { ...profile, targetNamespace: 'dss-team-${adminProperty:team}', autoCreateNamespace: false };

  it('expands the template for the sample user, or a placeholder login without --user', () => {
    expect(sampleNamespace(profile, 'alice', [])).toEqual({ namespace: 'dss-ns-alice' });
    expect(sampleNamespace(profile, undefined, [])).toEqual({ namespace: 'dss-ns-sample-user' });
  });

  it('takes team admin properties from the flags, then the profile file', () => {
    expect(sampleNamespace(team, 'alice', ['team=red'])).toEqual({ namespace: 'dss-team-red' });
    const dir = mkdtempSync(join(tmpdir(), 'doctor-unit-'));
    writeFileSync(join(dir, 'props.yaml'), 'alice: { team: blue }\n', { mode: 0o644 });
    expect(sampleNamespace({ ...team, adminPropertiesFile: join(dir, 'props.yaml') }, 'alice', [])).toEqual({ namespace: 'dss-team-blue' });
  });

  it('fails with the flags to pass when the admin property is missing, and with the key to change otherwise', () => {
    const missing = sampleNamespace(team, 'alice', []);
    expect(missing).toMatchObject({ result: { id: 'namespace', status: 'fail' } });
    expect('result' in missing && missing.result.fix).toMatch(/--admin-property NAME=VALUE/);
    const refused = sampleNamespace(team, 'alice', ['team=Red']);
    expect('result' in refused && refused.result.fix).toBe(
      'change targetNamespace or allowedNamespaces of profile "default" in /etc/dss-spark-k8s/config.yaml',
    );
  });
});

describe('rulesYaml', () => {
  it('turns missing rights into RBAC rules, one per API group and verb set', () => {
    const yaml = rulesYaml([
      { verb: 'delete', group: '', resource: 'serviceaccounts' },
      { verb: 'create', group: '', resource: 'serviceaccounts', subresource: 'token' },
      { verb: 'update', group: 'coordination.k8s.io', resource: 'leases' },
      { verb: 'watch', group: '', resource: 'pods' },
      { verb: 'watch', group: '', resource: 'services' },
    ]);
    expect(yaml).toBe(
      [
        '- apiGroups: [""]',
        '  resources: [serviceaccounts]',
        '  verbs: [delete]',
        '- apiGroups: [""]',
        '  resources: [serviceaccounts/token]',
        '  verbs: [create]',
        '- apiGroups: [coordination.k8s.io]',
        '  resources: [leases]',
        '  verbs: [update]',
        '- apiGroups: [""]',
        '  resources: [pods, services]',
        '  verbs: [watch]',
      ].join('\n'),
    );
    expect(loadYaml(yaml)).toEqual([
      { apiGroups: [''], resources: ['serviceaccounts'], verbs: ['delete'] },
      { apiGroups: [''], resources: ['serviceaccounts/token'], verbs: ['create'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['update'] },
      { apiGroups: [''], resources: ['pods', 'services'], verbs: ['watch'] },
    ]);
  });

  it('names the one object of a right on a named object (resourceNames)', () => {
    const yaml = rulesYaml([
      { verb: 'bind', group: 'rbac.authorization.k8s.io', resource: 'clusterroles', name: 'dss-spark-k8s-driver' },
      { verb: 'list', group: 'rbac.authorization.k8s.io', resource: 'rolebindings' },
    ]);
    expect(loadYaml(yaml)).toEqual([
      { apiGroups: ['rbac.authorization.k8s.io'], resources: ['clusterroles'], resourceNames: ['dss-spark-k8s-driver'], verbs: ['bind'] },
      { apiGroups: ['rbac.authorization.k8s.io'], resources: ['rolebindings'], verbs: ['list'] },
    ]);
  });
});

describe('checkDriverRole', () => {
  const kubeWith = (rules: Awaited<ReturnType<KubeClient['getClusterRoleRules']>> | Error) =>
    ({
      getClusterRoleRules: async (name: string) => {
        expect(name).toBe('dss-spark-k8s-driver');
        if (rules instanceof Error) throw rules;
        return rules;
      },
    }) satisfies Partial<KubeClient>;
  const driverRules = DRIVER_RULES.map((rule) => ({ apiGroups: [...rule.apiGroups], resources: [...rule.resources], verbs: [...rule.verbs] }));
  const team = { ...profile, targetNamespace: 'dss-team-${adminProperty:team}', autoCreateNamespace: false };

  it('passes when the ClusterRole grants exactly the driver rules, however they are split', async () => {
    expect(await checkDriverRole(kubeWith(driverRules), profile)).toMatchObject({ id: 'driver-role', status: 'pass' });
    const split = driverRules.flatMap((rule) => rule.verbs.map((verb) => ({ apiGroups: [''], resources: rule.resources, verbs: [verb] })));
    expect((await checkDriverRole(kubeWith(split), profile)).status).toBe('pass');
  });

  it('fails with the manifest to apply when it is missing', async () => {
    expect(await checkDriverRole(kubeWith(undefined), profile)).toMatchObject({
      status: 'fail',
      detail: 'ClusterRole dss-spark-k8s-driver does not exist: jobs would get no rights',
      fix: 'kubectl apply -f deploy/rbac/per-user-namespaces.yaml   # as a cluster administrator',
    });
    expect((await checkDriverRole(kubeWith(undefined), team)).fix).toMatch(/team-namespaces\.yaml/);
  });

  it('fails when it grants jobs more (secrets, a wildcard, exec) or less than the driver needs', async () => {
    for (const extra of [
      { apiGroups: [''], resources: ['secrets'], verbs: ['get'] },
      { apiGroups: [''], resources: ['pods/exec'], verbs: ['create'] },
      { apiGroups: ['*'], resources: ['*'], verbs: ['*'] },
    ]) {
      const r = await checkDriverRole(kubeWith([...driverRules, extra]), profile);
      expect(r.status).toBe('fail');
      expect(r.detail).toMatch(/^ClusterRole dss-spark-k8s-driver grants jobs more than the driver needs: /);
    }
    const less = await checkDriverRole(kubeWith([{ ...driverRules[0], verbs: ['get', 'list', 'watch', 'create'] }]), profile);
    expect(less.detail).toBe(
      'ClusterRole dss-spark-k8s-driver lacks rights the driver needs: patch pods, delete pods, deletecollection pods, create persistentvolumeclaims',
    );
  });

  it('warns when dssuser may not read it (team rights)', async () => {
    const r = await checkDriverRole(kubeWith(new KubernetesError('get ClusterRole dss-spark-k8s-driver failed (403 Forbidden): no', 403)), team);
    expect(r).toMatchObject({ status: 'warn', ok: true });
  });
});

describe('checkPolicy', () => {
  const all = ['dss-spark-k8s-job-isolation', 'dss-spark-k8s-job-attribution', 'dss-spark-k8s-dssuser-scope'];
  const kubeWith = (policies: string[], bindings: Record<string, string[]>, denied = false, stalePolicies: string[] = []) =>
    ({
      getClusterObject: async (kind: string, name: string) => {
        if (denied) throw new KubernetesError(`get ${kind} ${name} failed (403 Forbidden): no`, 403);
        if (kind === 'validatingadmissionpolicies') return policies.includes(name) ? { metadata: { name } } : undefined;
        if (!bindings[name]) return undefined;
        const paramRef = jobPolicies().find((p) => p.binding.metadata?.name === name)?.binding.spec?.paramRef;
        return { spec: { policyName: name, validationActions: bindings[name], ...(paramRef && !stalePolicies.includes(name) ? { paramRef } : {}) } };
      },
    }) as unknown as Pick<KubeClient, 'getClusterObject'>;
  const deny = Object.fromEntries(all.map((n) => [n, ['Deny']]));
  const team = { ...profile, targetNamespace: 'dss-team-${adminProperty:team}', autoCreateNamespace: false };

  it('passes when the three policies are installed and bound with Deny, in either mode', async () => {
    for (const p of [profile, team]) expect(await checkPolicy(kubeWith(all, deny), p)).toMatchObject({ id: 'policy', status: 'pass' });
  });

  it('fails, with the manifest to apply, when any policy is missing or only audits', async () => {
    const noAttribution = await checkPolicy(kubeWith(['dss-spark-k8s-job-isolation', 'dss-spark-k8s-dssuser-scope'], deny), profile);
    expect(noAttribution.detail).toMatch(/^ValidatingAdmissionPolicy dss-spark-k8s-job-attribution is not installed \(audit events do not name/);
    const missing = await checkPolicy(kubeWith(['dss-spark-k8s-job-attribution', 'dss-spark-k8s-dssuser-scope'], deny), profile);
    expect(missing).toMatchObject({ status: 'fail', fix: 'kubectl apply -f deploy/rbac/per-user-namespaces.yaml   # as a cluster administrator' });
    expect(missing.detail).toMatch(/^ValidatingAdmissionPolicy dss-spark-k8s-job-isolation is not installed/);
    const audit = await checkPolicy(kubeWith(all, { ...deny, 'dss-spark-k8s-dssuser-scope': ['Audit'] }), team);
    expect(audit.status).toBe('fail');
    expect(audit.detail).toMatch(/dss-spark-k8s-dssuser-scope is not bound with validationActions \[Deny\]/);
    expect(audit.fix).toMatch(/team-namespaces\.yaml/);
  });

  it("fails when the attribution binding lacks this version's parameters (it would refuse every job write)", async () => {
    const r = await checkPolicy(kubeWith(all, deny, false, ['dss-spark-k8s-job-attribution']), profile);
    expect(r.status).toBe('fail');
    expect(r.detail).toMatch(/dss-spark-k8s-job-attribution's binding does not select the parameters this version expects/);
  });

  it('fails when the identity may not read them: an unverified boundary is not a boundary', async () => {
    const r = await checkPolicy(kubeWith(all, deny, true), team);
    expect(r.status).toBe('fail');
    expect(r.detail).toMatch(/^cannot read the ValidatingAdmissionPolicies/);
  });
});

describe('checkRights', () => {
  const kubeDenying = (denied: string[]) =>
    ({
      canI: async (a: { verb: string; resource: string; subresource?: string; namespace?: string }) =>
        !denied.includes(`${a.verb} ${a.resource}${a.subresource ? `/${a.subresource}` : ''}`),
    }) satisfies Partial<KubeClient>;

  it('passes when every SelfSubjectAccessReview allows', async () => {
    const r = await checkRights(kubeDenying([]), profile, 'dss-ns-alice', 'dssuser');
    expect(r).toMatchObject({ id: 'rights', status: 'pass', ok: true });
  });

  it('fails with the ClusterRole rules to add, or the Role rules in team mode', async () => {
    const r = await checkRights(kubeDenying(['delete serviceaccounts', 'create serviceaccounts/token']), profile, 'dss-ns-alice', 'dssuser');
    expect(r.status).toBe('fail');
    expect(r.detail).toBe('missing 2 of 32: delete serviceaccounts, create serviceaccounts/token');
    expect(r.fix?.split('\n')[0]).toMatch(/^# add to the rules of the ClusterRole bound to dssuser/);
    expect(loadYaml(r.fix!)).toEqual([
      { apiGroups: [''], resources: ['serviceaccounts'], verbs: ['delete'] },
      { apiGroups: [''], resources: ['serviceaccounts/token'], verbs: ['create'] },
    ]);
    const team = { ...profile, targetNamespace: 'dss-team-${adminProperty:team}', autoCreateNamespace: false };
    const teamResult = await checkRights(kubeDenying(['list pods']), team, 'dss-team-a', 'dssuser');
    expect(teamResult.fix?.split('\n')[0]).toBe(
      '# add to the rules of the Role bound to dssuser in namespace dss-team-a (dss-spark-k8s of deploy/rbac/team-namespaces.yaml):',
    );
  });
});

describe('sudo -l parsing', () => {
  it('lists the Defaults entries of both blocks, keeping quoted values whole', () => {
    const listing = `Matching Defaults entries for d on vm:
    env_reset, mail_badpass,
    use_pty, env_keep+="KUBECONFIG FOO", env_keep+=BAR

Runas and Command-specific defaults for d:
    Defaults!/opt/spark/bin/spark-submit
    env_keep+=BAZ
    Defaults>%spark !env_reset

User d may run the following commands on vm:
    (%spark) NOPASSWD: /opt/spark/bin/spark-submit
`;
    expect(sudoDefaults(listing)).toEqual([
      'env_reset',
      'mail_badpass',
      'use_pty',
      'env_keep+="KUBECONFIG FOO"',
      'env_keep+=BAR',
      'env_keep+=BAZ',
      '!env_reset',
    ]);
  });

  it.each([
    ['env_keep += KUBECONFIG', SUDO_LIST, true, true],
    ['no env_keep', SUDO_LIST.replace(', env_keep+=KUBECONFIG', ''), true, false],
    ['a quoted list', SUDO_LIST.replace('env_keep+=KUBECONFIG', 'env_keep+="FOO KUBECONFIG"'), true, true],
    ['added then removed', SUDO_LIST.replace('env_keep+=KUBECONFIG', 'env_keep+=KUBECONFIG, env_keep-=KUBECONFIG'), true, false],
    ['env_keep replaced', SUDO_LIST.replace('env_keep+=KUBECONFIG', 'env_keep+=KUBECONFIG, env_keep=FOO'), true, false],
    ['env_reset off', SUDO_LIST.replace(', env_keep+=KUBECONFIG', ', !env_reset'), false, false],
    [
      'env_reset off for dssuser, as sudo 1.9.13 lists "Defaults:dssuser !env_reset"',
      SUDO_LIST.replace(', env_keep+=KUBECONFIG', ', !env_reset, env_keep+=KUBECONFIG'),
      false,
      true,
    ],
    ['env_reset off, then on again', SUDO_LIST.replace(', env_keep+=KUBECONFIG', ', !env_reset, env_reset, env_keep+=KUBECONFIG'), true, true],
    [
      'a runas-specific !env_reset',
      SUDO_LIST.replace('\nUser', 'Runas and Command-specific defaults for dssuser:\n    Defaults>%spark !env_reset\n\nUser'),
      false,
      true,
    ],
    [
      'a runas-specific Defaults',
      SUDO_LIST.replace(', env_keep+=KUBECONFIG', '').replace(
        '\nUser',
        'Runas and Command-specific defaults for dssuser:\n    Defaults>%spark env_keep+=KUBECONFIG\n\nUser',
      ),
      true,
      true,
    ],
    ['KUBECONFIG only in the command list', SUDO_LIST.replace(', env_keep+=KUBECONFIG', '').replace('/bin/echo', 'KUBECONFIG'), true, false],
  ])('%s → env_reset: %s, KUBECONFIG kept: %s', (_, listing, reset, kept) => {
    const env = sudoEnvDefaults(listing);
    expect(env.reset).toBe(reset);
    expect(env.keep.has('KUBECONFIG')).toBe(kept);
  });
});

describe('checkSudo', () => {
  const allowed = { 'sudo -n -l -u alice /opt/spark/bin/spark-submit': { stdout: '/opt/spark/bin/spark-submit\n' }, 'sudo -n -l': { stdout: SUDO_LIST } };

  it('passes when sudo lets dssuser run spark-submit as the user without a password and keeps KUBECONFIG', async () => {
    const r = await checkSudo(fakeRun(allowed), 'dssuser', 'alice', profile, true);
    expect(r).toMatchObject({ status: 'pass', detail: 'dssuser may run /opt/spark/bin/spark-submit as alice without a password, KUBECONFIG kept' });
  });

  it('fails with the rule line, using the profile groups as the runas list', async () => {
    const run = fakeRun({ ...allowed, 'sudo -n -l -u alice /opt/spark/bin/spark-submit': { code: 1, stderr: 'sudo: a password is required\n' } });
    const r = await checkSudo(run, 'dssuser', 'alice', { ...profile, allowedUserGroups: ['spark', 'ds'] }, true);
    expect(r.status).toBe('fail');
    expect(r.detail).toBe('dssuser may not run /opt/spark/bin/spark-submit as alice without a password (a password is required)');
    expect(r.fix).toBe(
      '# in /etc/sudoers.d/dss-spark-k8s (edit with: visudo -f /etc/sudoers.d/dss-spark-k8s)\ndssuser ALL = (%spark, %ds) NOPASSWD: /opt/spark/bin/spark-submit',
    );
  });

  it('fails with the Defaults line when KUBECONFIG is not kept', async () => {
    const run = fakeRun({ ...allowed, 'sudo -n -l': { stdout: SUDO_LIST.replace(', env_keep+=KUBECONFIG', '') } });
    const r = await checkSudo(run, 'dssuser', 'alice', profile, true);
    expect(r.detail).toBe('KUBECONFIG does not reach spark-submit (no env_keep)');
    expect(r.fix?.split('\n').slice(1)).toEqual(['Defaults:dssuser env_keep += "KUBECONFIG"']);
  });

  it('fails on "Defaults:dssuser !env_reset" (dssuser\'s variables would reach the driver), with the line to remove', async () => {
    const noReset = SUDO_LIST.replace(', env_keep+=KUBECONFIG', ', !env_reset, env_keep+=KUBECONFIG');
    const r = await checkSudo(fakeRun({ ...allowed, 'sudo -n -l': { stdout: noReset } }), 'dssuser', 'alice', profile, true);
    expect(r).toMatchObject({ status: 'fail', ok: false, detail: "sudo keeps dssuser's environment (!env_reset), which would reach the end user's driver" });
    expect(r.fix).toBe('# remove "!env_reset" from sudoers (find it with: grep -rn env_reset /etc/sudoers /etc/sudoers.d); sudo must reset the environment');
    // Without env_keep it was KUBECONFIG's only way through: the fix adds the Defaults line too.
    const alone = await checkSudo(
      fakeRun({ ...allowed, 'sudo -n -l': { stdout: SUDO_LIST.replace(', env_keep+=KUBECONFIG', ', !env_reset') } }),
      'dssuser',
      'alice',
      profile,
      true,
    );
    expect(alone.detail).toBe("sudo keeps dssuser's environment (!env_reset), which would reach the end user's driver");
    expect(alone.fix?.split('\n')).toEqual([
      '# remove "!env_reset" from sudoers (find it with: grep -rn env_reset /etc/sudoers /etc/sudoers.d); sudo must reset the environment',
      '# in /etc/sudoers.d/dss-spark-k8s (edit with: visudo -f /etc/sudoers.d/dss-spark-k8s)',
      'Defaults:dssuser env_keep += "KUBECONFIG"',
    ]);
  });

  it('gives the whole rule when dssuser has no sudo rule at all (sudo -l cannot list)', async () => {
    const run = fakeRun({
      'sudo -n -l -u alice /opt/spark/bin/spark-submit': { code: 1, stderr: 'sudo: a password is required\n' },
      'sudo -n -l': { code: 1, stderr: 'sudo: a password is required\n' },
    });
    const r = await checkSudo(run, 'dssuser', 'alice', profile, true);
    expect(r.detail).toBe('dssuser may not run /opt/spark/bin/spark-submit as alice without a password (a password is required)');
    expect(r.fix?.split('\n').slice(1)).toEqual(['Defaults:dssuser env_keep += "KUBECONFIG"', 'dssuser ALL = (alice) NOPASSWD: /opt/spark/bin/spark-submit']);
  });

  it('warns when the rule allows the user but sudo -l asks for a password', async () => {
    const run = fakeRun({ ...allowed, 'sudo -n -l': { code: 1, stderr: 'sudo: a password is required\n' } });
    expect(await checkSudo(run, 'dssuser', 'alice', profile, true)).toMatchObject({ status: 'warn', ok: true });
  });

  it('needs --user, an existing user and an existing spark-submit', async () => {
    expect(await checkSudo(fakeRun({}), 'dssuser', undefined, profile, true)).toMatchObject({
      status: 'fail',
      fix: 'pass --user LOGIN (an end user who runs Spark jobs)',
    });
    expect(await checkSudo(fakeRun({}), 'dssuser', 'alice', profile, false)).toMatchObject({ status: 'skip', ok: false });
    const unknown = fakeRun({
      'sudo -n -l -u zed /opt/spark/bin/spark-submit': { code: 1, stderr: 'sudo: unknown user zed\nsudo: error initializing audit plugin sudoers_audit\n' },
    });
    expect(await checkSudo(unknown, 'dssuser', 'zed', profile, true)).toMatchObject({ status: 'fail', detail: 'sudo: unknown user zed' });
  });

  it('writes both lines when neither is in place, with the sample user as the runas list', () => {
    expect(sudoersLines('dssuser', 'alice', profile, { keep: true, allow: true }).split('\n').slice(1)).toEqual([
      'Defaults:dssuser env_keep += "KUBECONFIG"',
      'dssuser ALL = (alice) NOPASSWD: /opt/spark/bin/spark-submit',
    ]);
  });
});

describe('spark-submit', () => {
  const BANNER = `WARNING: Using incubator modules: jdk.incubator.vector
Welcome to
      ____              __
     / __/__  ___ _____/ /__
    _\\ \\/ _ \\/ _ \`/ __/  '_/
   /___/ .__/\\_,_/_/ /_/\\_\\   version 4.3.0
      /_/

Using Scala version 2.13.18, OpenJDK 64-Bit Server VM, 17.0.15
`;

  it('reads the Spark version from the banner, not the Scala version', () => {
    expect(parseSparkVersion(BANNER)).toBe('4.3.0');
    expect(parseSparkVersion('Using Scala version 2.12.18')).toBeUndefined();
  });

  it('reads the fabric8 client version from the jar names', () => {
    expect(fabric8Version(['kubernetes-client-api-7.6.1.jar', 'kubernetes-model-core-7.6.1.jar', 'kubernetes-client-7.6.1.jar'])).toBe('7.6.1');
    expect(fabric8Version(['spark-core_2.13-4.3.0.jar'])).toBeUndefined();
  });

  it.each([
    ['6.7.2', true],
    ['6.7', true],
    ['7.0.0', true],
    ['6.6.2', false],
    ['5.12.4', false],
    ['6.10.0', true],
  ])('fabric8 %s >= 6.7: %s', (version, ok) => {
    expect(versionAtLeast(version, '6.7')).toBe(ok);
  });

  /** A fake Spark home: bin/spark-submit (never run: the RunProcess is faked) and jars/. */
  function sparkDir(jars: string[], pip = false): string {
    const dir = mkdtempSync(join(tmpdir(), 'doctor-unit-'));
    const home = pip ? join(dir, 'lib/python3.11/site-packages/pyspark') : dir;
    mkdirSync(join(home, 'jars'), { recursive: true });
    for (const jar of jars) writeFileSync(join(home, 'jars', jar), '');
    mkdirSync(join(dir, 'bin'), { recursive: true });
    writeFileSync(join(dir, 'bin/spark-submit'), '#!/bin/sh\n', { mode: 0o755 });
    if (pip) writeFileSync(join(dir, 'bin/find_spark_home.py'), '');
    return dir;
  }

  it('finds SPARK_HOME for a distribution and for a pip venv script', async () => {
    const dist = sparkDir([]);
    expect(await sparkHome(join(dist, 'bin/spark-submit'))).toEqual({ home: dist, pipScript: false });
    const venv = sparkDir([], true);
    expect(await sparkHome(join(venv, 'bin/spark-submit'))).toEqual({ home: join(venv, 'lib/python3.11/site-packages/pyspark'), pipScript: true });
  });

  it('passes with the versions, through sudo as the user', async () => {
    const dir = sparkDir(['kubernetes-client-7.6.1.jar']);
    const ss = join(dir, 'bin/spark-submit');
    const run = fakeRun({ [`sudo -n -u alice -- ${ss} --version`]: { stderr: BANNER } });
    const r = await checkSpark(run, { ...profile, sparkSubmit: ss }, 'alice');
    expect(r).toMatchObject({ status: 'pass', detail: 'Spark 4.3.0, fabric8 kubernetes-client 7.6.1, Java works (as alice through sudo in 1.2 s)' });
  });

  it('fails when fabric8 is older than 6.7, or missing', async () => {
    for (const [jars, message] of [
      [['kubernetes-client-6.4.1.jar'], /token rotation needs kubernetes-client >= 6.7/],
      [[], /no Kubernetes support/],
    ] as const) {
      const dir = sparkDir([...jars]);
      const ss = join(dir, 'bin/spark-submit');
      const r = await checkSpark(fakeRun({ [`${ss} --version`]: { stderr: BANNER } }), { ...profile, sparkSubmit: ss }, undefined);
      expect(r.status).toBe('fail');
      expect(r.detail).toMatch(message);
    }
  });

  it("points a pip venv script that cannot find SPARK_HOME under sudo at pyspark's own bin/spark-submit", async () => {
    const venv = sparkDir(['kubernetes-client-7.6.1.jar'], true);
    const ss = join(venv, 'bin/spark-submit');
    const stderr = "Could not find valid SPARK_HOME while searching ['/']\n\n...\nspark-submit: line 27: /bin/spark-class: No such file or directory\n";
    const r = await checkSpark(fakeRun({ [`sudo -n -u alice -- ${ss} --version`]: { code: 127, stderr } }), { ...profile, sparkSubmit: ss }, 'alice');
    expect(r.status).toBe('fail');
    expect(r.detail).toMatch(/\(exit 127: Could not find valid SPARK_HOME while searching \['\/'\]\)$/);
    expect(r.fix).toContain(`set sparkSubmit: ${join(venv, 'lib/python3.11/site-packages/pyspark/bin/spark-submit')} in profile "default"`);
  });

  it('fails on a missing Java with the Java fix, and on a missing file with the config key', async () => {
    const dir = sparkDir(['kubernetes-client-7.6.1.jar']);
    const ss = join(dir, 'bin/spark-submit');
    const r = await checkSpark(fakeRun({ [`${ss} --version`]: { code: 1, stderr: 'JAVA_HOME is not set\n' } }), { ...profile, sparkSubmit: ss }, undefined);
    expect(r.fix).toMatch(/install Java 17/);
    const missing = await checkSpark(fakeRun({}), { ...profile, sparkSubmit: join(dir, 'nothing') }, undefined);
    expect(missing).toMatchObject({ status: 'fail', detail: `${join(dir, 'nothing')}: no such file` });
    expect(missing.fix).toMatch(/^set sparkSubmit in profile "default"/);
  });

  it('reports a timeout instead of hanging', async () => {
    const dir = sparkDir(['kubernetes-client-7.6.1.jar']);
    const ss = join(dir, 'bin/spark-submit');
    const r = await checkSpark(fakeRun({ [`${ss} --version`]: { code: null, failure: 'timed out after 30 s' } }), { ...profile, sparkSubmit: ss }, undefined);
    expect(r.detail).toMatch(/\(timed out after 30 s\)$/);
  });
});

describe('output', () => {
  const results = [
    result('config', 'configuration', 'pass', 'profile "default"'),
    result('policy', 'admission policies', 'warn', 'cannot verify'),
    result('rights', 'rights in dss-ns-alice', 'fail', 'missing 1 of 52: delete serviceaccounts', '# add:\n- apiGroups: [""]'),
    result('spark', 'spark-submit', 'skip', 'not checked'),
  ];

  it('prints one line per check and the fix indented under it, without colours at level 0', () => {
    expect(formatText(results, new Chalk({ level: 0 }))).toBe(
      [
        '✓ configuration: profile "default"',
        '! admission policies: cannot verify',
        '✗ rights in dss-ns-alice: missing 1 of 52: delete serviceaccounts',
        '    # add:',
        '    - apiGroups: [""]',
        '- spark-submit: not checked',
        '2 of 4 checks failed or could not run; apply the fixes above and run doctor again',
        '',
      ].join('\n'),
    );
    expect(formatText(results.slice(0, 2), new Chalk({ level: 0 }))).toMatch(/\nall 2 checks passed\n$/);
  });

  it('colours the marks when colours are on', () => {
    const text = formatText(results, new Chalk({ level: 1 }));
    expect(text).toContain('\u001b[32m✓\u001b[39m');
    expect(text).toContain('\u001b[31m✗\u001b[39m');
  });

  it('prints {ok, checks} as JSON', () => {
    const json = JSON.parse(formatJson(results));
    expect(json.ok).toBe(false);
    expect(json.checks.map((c: { id: string; ok: boolean }) => [c.id, c.ok])).toEqual([
      ['config', true],
      ['policy', true],
      ['rights', false],
      ['spark', false],
    ]);
    expect(json.checks[2].fix).toBe('# add:\n- apiGroups: [""]');
    expect(JSON.parse(formatJson(results.slice(0, 2))).ok).toBe(true);
  });
});

describe('doctorCommand', () => {
  it('reports an invalid configuration, skips the rest and exits 78', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'doctor-unit-'));
    writeFileSync(join(dir, 'config.yaml'), 'profiles:\n  default:\n    sparkSubmit: relative/spark-submit\n');
    let out = '';
    const code = await doctorCommand(
      { config: join(dir, 'config.yaml'), output: 'json' },
      { stdout: { write: (t: string) => (out += t) }, run: fakeRun({}), env: {}, me: 'dssuser' },
    );
    expect(code).toBe(ExitCode.config);
    const json = JSON.parse(out);
    expect(json.ok).toBe(false);
    expect(json.checks[0]).toMatchObject({ id: 'config', status: 'fail' });
    expect(json.checks[0].detail).toContain('sparkSubmit: expected an absolute path');
    expect(json.checks.slice(1).map((c: { status: string }) => c.status)).toEqual(['skip', 'skip', 'skip', 'skip', 'skip', 'skip', 'skip']);
  });

  it('prints no colour under NO_COLOR', async () => {
    let out = '';
    await doctorCommand(
      { config: '/nonexistent/config.yaml' },
      { stdout: { write: (t: string) => (out += t) }, run: fakeRun({}), env: { NO_COLOR: '1', FORCE_COLOR: '1' }, me: 'd' },
    );
    expect(out).toMatch(/^✗ configuration: \/nonexistent\/config.yaml: cannot read the configuration file/);
    expect(out).not.toContain('\u001b[');
  });

  it('refuses a malformed --admin-property as a usage error', async () => {
    await expect(
      doctorCommand({ config: '/nonexistent', adminProperty: ['team'] }, { stdout: { write: () => true }, run: fakeRun({}), env: {}, me: 'd' }),
    ).rejects.toThrow(UsageError);
  });
});
