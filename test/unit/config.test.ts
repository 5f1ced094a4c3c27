import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, parseConfig, parseDuration, resolveConfigPath, selectProfile } from '../../src/config/load.ts';
import type { Config, Profile } from '../../src/config/types.ts';
import { ConfigError, ExitCode } from '../../src/errors.ts';
import { perUserNamespacePattern } from '../../src/plan/names.ts';

const SRC = '/etc/x.yaml';
const P = 'profiles.default';

/** JSON is YAML, so tables can describe files as objects. */
function parseObject(doc: unknown): Config {
  return parseConfig(JSON.stringify(doc), SRC);
}

/** A one-profile file whose profile is `sparkSubmit` plus `settings`. */
function parseProfile(settings: Record<string, unknown>): Profile {
  return parseObject({ profiles: { default: { sparkSubmit: '/opt/spark/bin/spark-submit', ...settings } } }).profiles.default!;
}

function configErrorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const error = err as ConfigError;
    expect(error.exitCode).toBe(ExitCode.config);
    expect(error.message).not.toContain('\n');
    return error;
  }
  throw new Error('expected a ConfigError, but nothing was thrown');
}

const PER_USER_DEFAULT = perUserNamespacePattern('dss-ns-${dssUserLogin}');

const defaults: Omit<Profile, 'name' | 'source' | 'sparkSubmit'> = {
  targetNamespace: 'dss-ns-${dssUserLogin}',
  autoCreateNamespace: false,
  sparkConf: {},
  tokenTtlSeconds: 3600,
  allowedNamespaces: /^dss-/,
  allowedUserGroups: [],
  minUid: 1000,
  labels: {},
  annotations: {},
  podSecurity: { enforce: 'restricted', audit: 'restricted', warn: 'restricted' },
  networkPolicy: { enabled: true, driverPorts: { from: 40000, to: 40127 }, egress: [] },
  allowedImagePullSecrets: [],
  executorRunAsUser: 185,
  leaseRenewSeconds: 30,
  killGraceSeconds: 10,
  apiTimeoutSeconds: 30,
  perUserNamespaces: [PER_USER_DEFAULT],
};

describe('parseConfig: valid files', () => {
  it('returns every setting of a full file, durations in seconds and the pattern compiled', () => {
    const text = `
defaultProfile: prod
profiles:
  prod:
    targetNamespace: "team-\${adminProperty:team}"
    autoCreateNamespace: true
    sparkSubmit: /opt/spark/bin/spark-submit
    sparkConf:
      spark.kubernetes.container.image: "apache/spark:4.0.0"
      spark.executor.instances: 2
      spark.dynamicAllocation.enabled: false
    tokenTtl: 2h
    allowedNamespaces: "^(dss|team)-"
    allowedUserGroups: [dss-spark-users, analysts]
    minUid: 2000
    labels: { app.kubernetes.io/part-of: dss, tier: "" }
    annotations: { example.com/owner: "Data Platform <dp@example.com>" }
    kubeconfig: /home/dssuser/.kube/config
    context: my-context
    tempDir: /var/tmp
    adminPropertiesFile: /etc/dss-spark-k8s/admin-properties.yaml
    podSecurity: { enforce: restricted, audit: restricted, warn: baseline }
    allowedImagePullSecrets: [team-registry]
    networkPolicy: { driverAddresses: [192.0.2.10/32, "2001:db8::/64"], driverPorts: 41000-41063, egress: [{ cidr: 10.1.0.0/16, ports: [443] }] }
    executorRunAsUser: 1001
    leaseRenewSeconds: 15
    tokenRotation: 8m
    killGrace: 1m
    apiTimeout: 45s
  dev:
    sparkSubmit: /usr/local/bin/spark-submit
`;
    const config = parseConfig(text, SRC);
    expect(config.source).toBe(SRC);
    expect(config.defaultProfile).toBe('prod');
    expect(Object.keys(config.profiles)).toEqual(['prod', 'dev']);
    expect(config.profiles.prod).toStrictEqual({
      name: 'prod',
      source: SRC,
      targetNamespace: 'team-${adminProperty:team}',
      autoCreateNamespace: true,
      sparkSubmit: '/opt/spark/bin/spark-submit',
      sparkConf: {
        'spark.kubernetes.container.image': 'apache/spark:4.0.0',
        'spark.executor.instances': '2',
        'spark.dynamicAllocation.enabled': 'false',
      },
      tokenTtlSeconds: 7200,
      allowedNamespaces: /^(dss|team)-/,
      allowedUserGroups: ['dss-spark-users', 'analysts'],
      minUid: 2000,
      labels: { 'app.kubernetes.io/part-of': 'dss', tier: '' },
      annotations: { 'example.com/owner': 'Data Platform <dp@example.com>' },
      kubeconfig: '/home/dssuser/.kube/config',
      context: 'my-context',
      tempDir: '/var/tmp',
      adminPropertiesFile: '/etc/dss-spark-k8s/admin-properties.yaml',
      podSecurity: { enforce: 'restricted', audit: 'restricted', warn: 'baseline' },
      allowedImagePullSecrets: ['team-registry'],
      networkPolicy: {
        enabled: true,
        driverAddresses: ['192.0.2.10/32', '2001:db8::/64'],
        driverPorts: { from: 41000, to: 41063 },
        egress: [{ cidr: '10.1.0.0/16', ports: [443] }],
      },
      executorRunAsUser: 1001,
      perUserNamespaces: [PER_USER_DEFAULT],
      leaseRenewSeconds: 15,
      tokenRotationSeconds: 480,
      killGraceSeconds: 60,
      apiTimeoutSeconds: 45,
    } satisfies Profile);
    expect(config.profiles.dev).toStrictEqual({
      name: 'dev',
      source: SRC,
      sparkSubmit: '/usr/local/bin/spark-submit',
      ...defaults,
    });
  });

  it('fills every default when only sparkSubmit is given, and leaves optional settings out', () => {
    const config = parseConfig('profiles:\n  default:\n    sparkSubmit: /opt/spark/bin/spark-submit\n', SRC);
    expect(config.defaultProfile).toBe('default');
    expect(config.profiles.default).toStrictEqual({
      name: 'default',
      source: SRC,
      sparkSubmit: '/opt/spark/bin/spark-submit',
      ...defaults,
    });
  });

  it('compiles allowedNamespaces into a RegExp that matches as written', () => {
    const { allowedNamespaces } = parseProfile({ allowedNamespaces: '^dss-(a|b)$' });
    expect(allowedNamespaces.test('dss-a')).toBe(true);
    expect(allowedNamespaces.test('dss-c')).toBe(false);
    expect(parseProfile({}).allowedNamespaces.test('kube-system')).toBe(false);
  });

  it('fills a partial podSecurity map with the defaults (restricted)', () => {
    expect(parseProfile({ podSecurity: { enforce: 'baseline' } }).podSecurity).toEqual({
      enforce: 'baseline',
      audit: 'restricted',
      warn: 'restricted',
    });
  });

  // A privileged namespace lets a job's pods reach the node; dssuser's admission policy refuses it too.
  it.each(['enforce', 'audit', 'warn'])('refuses podSecurity.%s: privileged', (mode) => {
    expect(configErrorOf(() => parseProfile({ podSecurity: { [mode]: 'privileged' } })).message).toBe(
      `${SRC}: ${P}.podSecurity.${mode}: expected one of baseline, restricted, got "privileged"`,
    );
  });

  it('refuses a pull secret or volume name that is not a Kubernetes name', () => {
    expect(configErrorOf(() => parseProfile({ allowedImagePullSecrets: ['Team Registry'] })).message).toBe(
      `${SRC}: ${P}.allowedImagePullSecrets[0]: expected a Kubernetes object name, got "Team Registry"`,
    );
  });

  it('treats an empty YAML value as unset', () => {
    const text = 'defaultProfile:\nprofiles:\n  default:\n    sparkSubmit: /s\n    labels:\n    minUid:\n    tokenTtl:\n';
    const profile = parseConfig(text, SRC).profiles.default!;
    expect(profile.labels).toEqual({});
    expect(profile.minUid).toBe(1000);
    expect(profile.tokenTtlSeconds).toBe(3600);
  });

  it.each([
    ['tokenTtl at the Kubernetes minimum', { tokenTtl: 600 }, 'tokenTtlSeconds', 600],
    ['tokenTtl at the 24h maximum (what dssuser may request)', { tokenTtl: '24h' }, 'tokenTtlSeconds', 86400],
    ['minUid 0', { minUid: 0 }, 'minUid', 0],
    ['killGrace 0', { killGrace: 0 }, 'killGraceSeconds', 0],
    ['leaseRenewSeconds as a string', { leaseRenewSeconds: '1' }, 'leaseRenewSeconds', 1],
  ] as const)('accepts %s', (_, settings, field, expected) => {
    expect(parseProfile(settings)[field]).toBe(expected);
  });

  it('accepts profile names with letters, digits, "_", "." and "-"', () => {
    const config = parseObject({ defaultProfile: 'team_a.v2-x', profiles: { 'team_a.v2-x': { sparkSubmit: '/s' } } });
    expect(selectProfile(config, undefined).name).toBe('team_a.v2-x');
  });

  // valibot's records would drop these keys silently; a setting that vanishes must be an error instead.
  it.each(['__proto__', 'constructor', 'prototype'])('refuses a %s key in one line instead of dropping it', (key) => {
    const { message } = configErrorOf(() => parseProfile({ sparkConf: JSON.parse(`{"${key}": "x", "a": "b"}`) }));
    expect(message).toBe(`${SRC}: ${P}.sparkConf.${key}: reserved key; use another name`);
    expect(configErrorOf(() => parseObject({ profiles: { [key]: { sparkSubmit: '/s' } } })).message).toBe(
      `${SRC}: profiles.${key}: reserved key; use another name`,
    );
  });
});

describe('parseConfig: wrong type or value of each profile key', () => {
  // [key, value, expected message after "<file>: profiles.default.<key path>: "]
  const cases: [string, unknown, string, string][] = [
    ['targetNamespace', 5, 'targetNamespace', 'expected a non-empty string, got 5'],
    ['targetNamespace', '', 'targetNamespace', 'expected a non-empty string, got ""'],
    ['autoCreateNamespace', 'yes', 'autoCreateNamespace', 'expected true or false, got "yes"'],
    ['sparkSubmit', 42, 'sparkSubmit', 'expected an absolute path, got 42'],
    ['sparkSubmit', 'bin/spark-submit', 'sparkSubmit', 'expected an absolute path, got "bin/spark-submit"'],
    ['sparkConf', ['a=b'], 'sparkConf', 'expected a map of strings to strings, got a list'],
    ['sparkConf', { 'spark.x': { y: 1 } }, 'sparkConf["spark.x"]', 'expected a string, got a map'],
    ['sparkConf', { 'spark.x': [1] }, 'sparkConf["spark.x"]', 'expected a string, got a list'],
    ['tokenTtl', true, 'tokenTtl', 'expected a duration such as 600, 90s, 10m, 1h or 1h30m, got true'],
    ['tokenTtl', 'one hour', 'tokenTtl', 'expected a duration such as 600, 90s, 10m, 1h or 1h30m, got "one hour"'],
    ['tokenTtl', '25h', 'tokenTtl', 'must be at most 86400s, got 90000s'],
    ['allowedNamespaces', 3, 'allowedNamespaces', 'expected a non-empty string, got 3'],
    ['allowedUserGroups', 'dss-spark-users', 'allowedUserGroups', 'expected a list of strings, got "dss-spark-users"'],
    ['allowedUserGroups', ['a', 3], 'allowedUserGroups[1]', 'expected a non-empty string, got 3'],
    ['minUid', 'abc', 'minUid', 'expected a non-negative integer, got "abc"'],
    ['allowedImagePullSecrets', 'reg', 'allowedImagePullSecrets', 'expected a list of strings, got "reg"'],
    ['executorRunAsUser', -185, 'executorRunAsUser', 'expected a non-negative integer, got -185'],
    ['minUid', -1, 'minUid', 'expected a non-negative integer, got -1'],
    ['minUid', 1.5, 'minUid', 'expected a non-negative integer, got 1.5'],
    ['labels', 'team=a', 'labels', 'expected a map of strings to strings, got "team=a"'],
    ['labels', { tier: 1 }, 'labels.tier', 'expected a string, got 1'],
    ['labels', { 'bad key!': 'x' }, 'labels["bad key!"]', 'invalid key'],
    ['labels', { 'Example.com/x': 'x' }, 'labels["Example.com/x"]', 'invalid key'],
    ['labels', { ['a'.repeat(64)]: 'x' }, 'labels["aaaaaaaa', 'invalid key'],
    ['labels', { tier: 'not ok' }, 'labels.tier', 'invalid value "not ok"'],
    ['labels', { tier: 'x'.repeat(64) }, 'labels.tier', 'invalid value "xxxx'],
    ['annotations', 5, 'annotations', 'expected a map of strings to strings, got 5'],
    ['annotations', { '/x': 'y' }, 'annotations["/x"]', 'invalid key'],
    ['annotations', { owner: false }, 'annotations.owner', 'expected a string, got false'],
    ['kubeconfig', 1, 'kubeconfig', 'expected a non-empty string, got 1'],
    ['context', [], 'context', 'expected a non-empty string, got a list'],
    ['tempDir', 'tmp', 'tempDir', 'expected an absolute path, got "tmp"'],
    ['adminPropertiesFile', 7, 'adminPropertiesFile', 'expected an absolute path, got 7'],
    ['podSecurity', 'restricted', 'podSecurity', 'expected a map with enforce, audit and/or warn, got "restricted"'],
    ['resourceQuota', 'pods=50', 'resourceQuota', 'expected a ResourceQuota spec, e.g. {hard: {pods: "50"}}, got "pods=50"'],
    ['executorPodTemplate', 42, 'executorPodTemplate', 'expected a Pod, as a map or as YAML text, got 42'],
    ['networkPolicy', { driverAddresses: ['192.0.2.10'] }, 'networkPolicy.driverAddresses[0]', 'expected a CIDR such as 192.0.2.10/32, got "192.0.2.10"'],
    ['networkPolicy', { driverPorts: '80-90' }, 'networkPolicy.driverPorts', 'expected ports such as 40000-40127 (from 1024 to 65535), got "80-90"'],
    ['networkPolicy', { egress: [{ ports: [443] }] }, 'networkPolicy.egress[0].cidr', 'required; expected a CIDR such as 10.1.0.0/16'],
    ['networkPolicy', { egress: [{ cidr: '10.0.0.0/8', ports: [0] }] }, 'networkPolicy.egress[0].ports[0]', 'expected a port, 1 to 65535, got 0'],
    ['networkPolicy', { enabled: 'yes' }, 'networkPolicy.enabled', 'expected true or false, got "yes"'],
    ['limitRange', [1], 'limitRange', 'expected a LimitRange spec, e.g. {limits: [{type: Container, default: {cpu: "1"}}]}, got a list'],
    ['podSecurity', { enforce: 'strict' }, 'podSecurity.enforce', 'expected one of baseline, restricted, got "strict"'],
    ['podSecurity', { warn: 1 }, 'podSecurity.warn', 'expected one of baseline, restricted, got 1'],
    ['leaseRenewSeconds', 'fast', 'leaseRenewSeconds', 'expected a duration such as 600, 90s, 10m, 1h or 1h30m, got "fast"'],
    ['leaseRenewSeconds', 0, 'leaseRenewSeconds', 'must be at least 1s, got 0s'],
    ['tokenRotation', {}, 'tokenRotation', 'expected a duration such as 600, 90s, 10m, 1h or 1h30m, got a map'],
    ['tokenRotation', '5s', 'tokenRotation', 'must be at least 10s, got 5s'],
    ['tokenRotation', '1h', 'tokenRotation', 'must be less than tokenTtl (3600s), got 3600s'],
    ['killGrace', 'soon', 'killGrace', 'expected a duration such as 600, 90s, 10m, 1h or 1h30m, got "soon"'],
    ['killGrace', -1, 'killGrace', 'expected a duration such as 600, 90s, 10m, 1h or 1h30m, got -1'],
    ['apiTimeout', [30], 'apiTimeout', 'expected a duration such as 600, 90s, 10m, 1h or 1h30m, got a list'],
    ['apiTimeout', '0s', 'apiTimeout', 'must be at least 1s, got 0s'],
  ];

  it.each(cases)('%s: %j', (key, value, keyPath, expected) => {
    const { message } = configErrorOf(() => parseProfile({ [key]: value }));
    expect(message.startsWith(`${SRC}: ${P}.${keyPath}`)).toBe(true);
    expect(message).toContain(expected);
  });

  it('covers every key of the file format', () => {
    const covered = new Set(cases.map(([key]) => key));
    const allKeys = configErrorOf(() => parseProfile({ colour: 'blue' }))
      .message.split('known keys: ')[1]!
      .split(', ');
    expect(allKeys.length).toBe(25);
    expect(allKeys.filter((key) => !covered.has(key))).toEqual([]);
  });

  it('gives the exact one-line message for a non-integer minUid', () => {
    expect(configErrorOf(() => parseProfile({ minUid: 'abc' })).message).toBe(`${SRC}: ${P}.minUid: expected a non-negative integer, got "abc"`);
  });

  it('requires sparkSubmit', () => {
    const { message } = configErrorOf(() => parseObject({ profiles: { default: { minUid: 1000 } } }));
    expect(message).toBe(`${SRC}: ${P}.sparkSubmit: required; expected the absolute path of spark-submit`);
  });

  it('rejects tokenTtl below the Kubernetes minimum of 600 seconds', () => {
    expect(configErrorOf(() => parseProfile({ tokenTtl: '1m' })).message).toBe(
      `${SRC}: ${P}.tokenTtl: must be at least 600s (Kubernetes minimum for TokenRequest), got 60s`,
    );
    expect(configErrorOf(() => parseProfile({ tokenTtl: 599 })).message).toContain('got 599s');
  });

  it.each([
    ['^(dss-', 'Unterminated group'],
    ['[a-', 'Unterminated character class'],
    ['a{2,1}', 'numbers out of order in {} quantifier'],
  ])('rejects the bad regular expression %j, naming the key', (pattern, reason) => {
    expect(configErrorOf(() => parseProfile({ allowedNamespaces: pattern })).message).toBe(
      `${SRC}: ${P}.allowedNamespaces: invalid regular expression ${JSON.stringify(pattern)}: ${reason}`,
    );
  });

  it('shows a huge value JSON-quoted and truncated, on one line', () => {
    const huge = 'line\n'.repeat(10000);
    const { message } = configErrorOf(() => parseProfile({ minUid: huge }));
    expect(message).toContain(`${P}.minUid: expected a non-negative integer, got "line\\nline\\n`);
    expect(message).toMatch(/\.\.\.$/);
    expect(message.length).toBeLessThan(150);
  });
});

describe('parseConfig: unknown keys', () => {
  it('rejects an unknown top-level key and lists the known ones', () => {
    expect(configErrorOf(() => parseObject({ profiles: { default: { sparkSubmit: '/s' } }, profile: 'x' })).message).toBe(
      `${SRC}: profile: unknown key; known keys: defaultProfile, profiles`,
    );
  });

  it('rejects an unknown profile key and lists the known ones', () => {
    const { message } = configErrorOf(() => parseProfile({ colour: 'blue' }));
    expect(message).toMatch(new RegExp(`^${SRC}: ${P}\\.colour: unknown key; known keys: targetNamespace, autoCreateNamespace, .*, apiTimeout$`));
  });

  it('rejects an unknown podSecurity key and lists the known ones', () => {
    expect(configErrorOf(() => parseProfile({ podSecurity: { audti: 'baseline' } })).message).toBe(
      `${SRC}: ${P}.podSecurity.audti: unknown key; known keys: enforce, audit, warn`,
    );
  });

  it('quotes an unknown key that is not a plain identifier', () => {
    expect(configErrorOf(() => parseProfile({ 'token ttl': '1h' })).message).toContain(`${P}["token ttl"]: unknown key`);
  });
});

describe('parseConfig: file structure', () => {
  it.each([
    ['no profiles key', { defaultProfile: 'default' }, `${SRC}: profiles: required; expected a non-empty map of profile names to settings`],
    ['empty profiles', { profiles: {} }, `${SRC}: profiles: expected a non-empty map of profile names to settings, got {}`],
    ['profiles as a list', { profiles: [{ sparkSubmit: '/s' }] }, `${SRC}: profiles: expected a non-empty map of profile names to settings, got a list`],
    ['a profile that is a string', { profiles: { default: '/s' } }, `${SRC}: ${P}: expected a map of profile settings, got "/s"`],
    ['a profile that is null', { profiles: { default: null } }, `${SRC}: ${P}: expected a map of profile settings, got null`],
    ['a top level that is a list', [1, 2], `${SRC}: expected a map with a "profiles" key at the top level, got a list`],
    ['a top level that is a string', 'profiles', `${SRC}: expected a map with a "profiles" key at the top level, got "profiles"`],
    ['a top level that is null', null, `${SRC}: expected a map with a "profiles" key at the top level, got a scalar`],
    [
      'a defaultProfile that is a number',
      { defaultProfile: 1, profiles: { default: { sparkSubmit: '/s' } } },
      `${SRC}: defaultProfile: expected a non-empty string, got 1`,
    ],
  ])('rejects %s', (_, doc, expected) => {
    expect(configErrorOf(() => parseObject(doc)).message).toBe(expected);
  });

  it.each(['-x', '.hidden', 'a b', 'é'])('rejects the profile name %j', (name) => {
    const { message } = configErrorOf(() => parseObject({ profiles: { [name]: { sparkSubmit: '/s' } } }));
    expect(message).toBe(
      `${SRC}: profiles[${JSON.stringify(name)}]: invalid profile name; expected letters, digits, "_", "." or "-", starting with a letter or digit`,
    );
  });

  it('rejects a defaultProfile that names no profile, listing the known ones', () => {
    const doc = { defaultProfile: 'prod', profiles: { dev: { sparkSubmit: '/s' }, test: { sparkSubmit: '/s' } } };
    expect(configErrorOf(() => parseObject(doc)).message).toBe(`${SRC}: defaultProfile: "prod" is not a profile; known profiles: dev, test`);
  });

  it('accepts a file without a "default" profile when defaultProfile is not set', () => {
    const config = parseObject({ profiles: { dev: { sparkSubmit: '/s' } } });
    expect(config.defaultProfile).toBe('default');
    expect(selectProfile(config, 'dev').name).toBe('dev');
  });
});

describe('parseConfig: invalid YAML', () => {
  it.each([
    ['profiles:\n  default:\n\tsparkSubmit: /s\n', 'invalid YAML at line 3: tab characters must not be used in indentation'],
    ['profiles:\n  default:\n    sparkSubmit: /s\n   minUid: 1\n', 'invalid YAML at line 4: bad indentation of a mapping entry'],
    ['profiles: *nope\n', 'invalid YAML at line 1: unidentified alias "nope"'],
    ['profiles:\n  a: {sparkSubmit: /s}\n  a: {sparkSubmit: /t}\n', 'invalid YAML at line 3: duplicated mapping key'],
    ['profiles: {}\n---\nprofiles: {}\n', 'invalid YAML: expected a single document in the stream, but found more'],
    ['', 'invalid YAML: expected a document, but the input is empty'],
  ])('reports %j as one line with the line number', (text, expected) => {
    expect(configErrorOf(() => parseConfig(text, SRC)).message).toBe(`${SRC}: ${expected}`);
  });
});

describe('selectProfile', () => {
  const config = parseObject({
    defaultProfile: 'dev',
    profiles: { dev: { sparkSubmit: '/s' }, prod: { sparkSubmit: '/p' } },
  });

  it('returns the named profile', () => {
    expect(selectProfile(config, 'prod').sparkSubmit).toBe('/p');
  });

  it('returns the default profile when no name is given', () => {
    expect(selectProfile(config, undefined).name).toBe('dev');
  });

  it('rejects an unknown profile, naming the file, the profile and the known ones', () => {
    expect(configErrorOf(() => selectProfile(config, 'staging')).message).toBe(`${SRC}: unknown profile "staging"; known profiles: dev, prod`);
  });

  it('does not mistake an inherited property for a profile', () => {
    expect(configErrorOf(() => selectProfile(config, 'constructor')).message).toContain('unknown profile "constructor"');
  });

  it('explains a missing implicit "default" profile', () => {
    const noDefault = parseObject({ profiles: { dev: { sparkSubmit: '/s' } } });
    expect(configErrorOf(() => selectProfile(noDefault, undefined)).message).toBe(
      `${SRC}: unknown profile "default" (the default profile; pass --profile or set defaultProfile); known profiles: dev`,
    );
  });
});

describe('loadConfig', () => {
  it('reads and validates a file, using its path as the source', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dss-spark-k8s-config-'));
    try {
      const path = join(dir, 'config.yaml');
      writeFileSync(path, 'profiles:\n  default:\n    sparkSubmit: /opt/spark/bin/spark-submit\n    minUid: 500\n');
      const config = loadConfig(path);
      expect(config.source).toBe(path);
      expect(config.profiles.default).toMatchObject({ source: path, minUid: 500 });
      writeFileSync(path, 'profiles:\n  default:\n    sparkSubmit: /s\n    minUid: x\n');
      expect(configErrorOf(() => loadConfig(path)).message).toMatch(new RegExp(`^${path}: ${P}\\.minUid: `));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports a missing file in one line and says how to fix it', () => {
    const path = '/nonexistent/dss-spark-k8s/config.yaml';
    expect(configErrorOf(() => loadConfig(path)).message).toBe(
      `${path}: cannot read the configuration file (ENOENT: no such file or directory); create it or pass --config`,
    );
  });

  it('reports a directory as unreadable', () => {
    expect(configErrorOf(() => loadConfig(tmpdir())).message).toMatch(/: cannot read the configuration file \(EISDIR: [^)]*\); create it or pass --config$/);
  });
});

describe('resolveConfigPath', () => {
  it.each([
    ['the flag over the environment', '/flag.yaml', { DSS_SPARK_K8S_CONFIG: '/env.yaml' }, '/flag.yaml'],
    ['the environment without a flag', undefined, { DSS_SPARK_K8S_CONFIG: '/env.yaml' }, '/env.yaml'],
    ['the default without either', undefined, {}, '/etc/dss-spark-k8s/config.yaml'],
    ['the default when the variable is empty', undefined, { DSS_SPARK_K8S_CONFIG: '' }, '/etc/dss-spark-k8s/config.yaml'],
  ])('uses %s', (_, flag, env, expected) => {
    expect(resolveConfigPath(flag, env)).toBe(expected);
  });
});

describe('parseDuration', () => {
  it.each([
    [600, 600],
    [0, 0],
    ['600', 600],
    ['90s', 90],
    ['10m', 600],
    ['1h', 3600],
    ['1h30m', 5400],
    ['2d', 172800],
    ['1d2h3m4s', 93784],
    [' 5m ', 300],
  ])('parses %j as %d seconds', (value, seconds) => {
    expect(parseDuration(value, 'x.tokenTtl', SRC)).toBe(seconds);
  });

  it.each(['', '1.5h', '10 m', '1x', 'h', '30m1h', '1h1h', '-5', '10M', '99999999999999999999d'])('rejects %j naming the file and the key', (value) => {
    expect(configErrorOf(() => parseDuration(value, 'x.tokenTtl', SRC)).message).toBe(
      `${SRC}: x.tokenTtl: expected a duration such as 600, 90s, 10m, 1h or 1h30m, got ${JSON.stringify(value)}`,
    );
  });

  it.each([-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])('rejects the number %d', (value) => {
    expect(configErrorOf(() => parseDuration(value, 'k', SRC)).message).toContain(`${SRC}: k: expected a duration`);
  });
});
