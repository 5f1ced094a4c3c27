import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, afterAll } from 'vitest';
import type { Profile } from '../../src/config/types.ts';
import { ConfigError, RefusedError, UsageError } from '../../src/errors.ts';
import { loadAdminPropertiesFile, parseAdminPropertiesFile, parseAdminPropertyFlags, resolveAdminProperties } from '../../src/plan/admin-properties.ts';
import { perUserNamespacePattern, resolveNamespace } from '../../src/plan/names.ts';

const dir = mkdtempSync(join(tmpdir(), 'dss-spark-k8s-admin-properties-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let fileCount = 0;
function propertiesFile(text: string, mode = 0o644): string {
  const path = join(dir, `properties-${++fileCount}.yaml`);
  writeFileSync(path, text);
  chmodSync(path, mode);
  return path;
}

describe('parseAdminPropertyFlags', () => {
  it.each([
    [[], {}],
    [['k8sNS=dss-team-a'], { k8sNS: 'dss-team-a' }],
    [['k8sNS=dss-team-a', 'cost.center=42'], { k8sNS: 'dss-team-a', 'cost.center': '42' }],
    [['expr=a=b'], { expr: 'a=b' }],
    [['empty='], { empty: '' }],
  ])('%j → %j', (flags, expected) => {
    expect(parseAdminPropertyFlags(flags)).toEqual(expected);
  });

  it.each([
    ['k8sNS', '--admin-property "k8sNS": expected NAME=VALUE'],
    ['=dss-team-a', '--admin-property "": expected NAME=VALUE'],
    ['bad name=x', '--admin-property "bad name": expected NAME=VALUE'],
    ['-x=y', '--admin-property "-x": expected NAME=VALUE'],
  ])('refuses %j with a UsageError', (flag, message) => {
    expect(() => parseAdminPropertyFlags([flag])).toThrow(UsageError);
    expect(() => parseAdminPropertyFlags([flag])).toThrow(message);
  });

  it('never echoes the value of a malformed flag', () => {
    expect(() => parseAdminPropertyFlags(['bad name=s3cret'])).toThrow(expect.objectContaining({ message: expect.not.stringContaining('s3cret') }));
  });

  it('refuses a value with a control character, which could split an error line', () => {
    expect(() => parseAdminPropertyFlags(['k8sNS=dss-a\nforged line'])).toThrow('--admin-property k8sNS: the value contains a control character (a newline?)');
  });

  it('refuses a property given twice', () => {
    expect(() => parseAdminPropertyFlags(['k8sNS=a', 'k8sNS=b'])).toThrow('--admin-property k8sNS is given twice; pass each property once');
  });

  it('keeps "__proto__"-like names as plain own properties', () => {
    expect(() => parseAdminPropertyFlags(['__proto__=x'])).toThrow(UsageError);
    expect(Object.getPrototypeOf(parseAdminPropertyFlags(['toString=x']))).toBe(Object.prototype);
    expect(parseAdminPropertyFlags(['toString=x']).toString).toBe('x');
  });
});

describe('parseAdminPropertiesFile', () => {
  it('reads logins to properties', () => {
    const text = 'alice:\n  k8sNS: dss-team-a\n  costCenter: "42"\nbob: { k8sNS: dss-team-b }\ncarol:\n';
    expect(parseAdminPropertiesFile(text, 'f.yaml')).toEqual({
      alice: { k8sNS: 'dss-team-a', costCenter: '42' },
      bob: { k8sNS: 'dss-team-b' },
      carol: {},
    });
  });

  it('reads an empty file as no properties', () => {
    expect(parseAdminPropertiesFile('  \n', 'f.yaml')).toEqual({});
  });

  it.each([
    ['alice: [1\n', /^f\.yaml: invalid YAML at line \d+: /],
    ['just text', 'f.yaml: expected a map of logins to maps of admin properties, got "just text"'],
    ['- alice\n', 'f.yaml: expected a map of logins to maps of admin properties, got a list'],
    ['alice: dss-team-a\n', 'f.yaml: alice: expected a map of admin property names to values, got "dss-team-a"'],
    ['alice: { k8sNS: 42 }\n', 'f.yaml: alice.k8sNS: expected a string, got 42; quote the value'],
    ['alice: { k8sNS: true }\n', 'f.yaml: alice.k8sNS: expected a string, got true; quote the value'],
    ['alice: { k8sNS: "a\\nb" }\n', 'f.yaml: alice.k8sNS: the value contains a control character (a newline?)'],
    ['alice: { "bad name": x }\n', 'f.yaml: alice["bad name"]: invalid admin property name; use letters, digits, "_", "." or "-"'],
  ])('refuses %j with a ConfigError naming the file', (text, message) => {
    expect(() => parseAdminPropertiesFile(text, 'f.yaml')).toThrow(ConfigError);
    expect(() => parseAdminPropertiesFile(text, 'f.yaml')).toThrow(message);
  });

  it('refuses a "__proto__" login in one line rather than dropping or obeying it', () => {
    expect(() => parseAdminPropertiesFile('__proto__: { k8sNS: dss-evil }\n', 'f.yaml')).toThrow('f.yaml: __proto__: reserved key; use another name');
  });
});

describe('loadAdminPropertiesFile', () => {
  it("returns one login's properties, {} for a login without any", () => {
    const path = propertiesFile('alice: { k8sNS: dss-team-a }\n');
    expect(loadAdminPropertiesFile(path, 'alice')).toEqual({ k8sNS: 'dss-team-a' });
    expect(loadAdminPropertiesFile(path, 'bob')).toEqual({});
    expect(loadAdminPropertiesFile(path, 'constructor')).toEqual({});
  });

  it("checks the whole file, not only the login's entry", () => {
    const path = propertiesFile('alice: { k8sNS: dss-team-a }\nbob: { k8sNS: 7 }\n');
    expect(() => loadAdminPropertiesFile(path, 'alice')).toThrow(`${path}: bob.k8sNS: expected a string, got 7; quote the value`);
  });

  it('refuses a missing file with a ConfigError naming it', () => {
    const path = join(dir, 'missing.yaml');
    expect(() => loadAdminPropertiesFile(path, 'alice')).toThrow(ConfigError);
    expect(() => loadAdminPropertiesFile(path, 'alice')).toThrow(
      `${path}: cannot read the admin properties file (ENOENT: no such file or directory); create it or remove adminPropertiesFile from the profile`,
    );
  });

  it('refuses a file every user may write (anyone could choose the namespace of others)', () => {
    const path = propertiesFile('alice: { k8sNS: dss-team-a }\n', 0o666);
    expect(() => loadAdminPropertiesFile(path, 'alice')).toThrow(`${path}: the admin properties file is writable by every user`);
  });
});

describe('resolveAdminProperties', () => {
  const file = propertiesFile('alice: { k8sNS: dss-team-a, costCenter: "42" }\n');

  it('takes the file, with --admin-property winning name by name', () => {
    expect(resolveAdminProperties('alice', ['k8sNS=dss-team-live'], { adminPropertiesFile: file })).toEqual({ k8sNS: 'dss-team-live', costCenter: '42' });
    expect(resolveAdminProperties('alice', [], { adminPropertiesFile: file })).toEqual({ k8sNS: 'dss-team-a', costCenter: '42' });
  });

  it('takes the flags alone when the profile has no file', () => {
    expect(resolveAdminProperties('alice', ['k8sNS=dss-team-b'], {})).toEqual({ k8sNS: 'dss-team-b' });
    expect(resolveAdminProperties('alice', [], {})).toEqual({});
  });

  it('refuses a malformed flag before reading the file', () => {
    expect(() => resolveAdminProperties('alice', ['oops'], { adminPropertiesFile: join(dir, 'missing.yaml') })).toThrow(UsageError);
  });
});

describe('team namespaces from admin properties', () => {
  const profile = {
    name: 'team',
    source: '/etc/dss-spark-k8s/config.yaml',
    targetNamespace: '${adminProperty:k8sNS}',
    allowedNamespaces: /^dss-team-/,
    perUserNamespaces: [perUserNamespacePattern('dss-ns-${dssUserLogin}')],
    adminPropertiesFile: propertiesFile(
      ['alice: { k8sNS: dss-team-analytics }', 'eve: { k8sNS: kube-system }', 'mallory: { k8sNS: dss-ns-alice }', 'oscar: { k8sNS: "" }', ''].join('\n'),
    ),
  } as Profile;
  const namespaceOf = (login: string, flags: string[] = []) =>
    resolveNamespace(profile, { login, adminProperties: resolveAdminProperties(login, flags, profile) });

  it("sends a user's jobs to the team namespace of its property", () => {
    expect(namespaceOf('alice')).toBe('dss-team-analytics');
  });

  it.each([
    ['eve', [], /namespace "kube-system" \(from profile "team" in \/etc\/dss-spark-k8s\/config.yaml\) is a system namespace/],
    ['alice', ['k8sNS=kube-system'], /"kube-system" .* is a system namespace/],
    ['alice', ['k8sNS=default'], /"default" .* is a system namespace/],
    ['mallory', [], /namespace "dss-ns-alice" does not match the allowed pattern \/\^dss-team-\//],
    ['alice', ['k8sNS=dss-ns-bob'], /"dss-ns-bob" does not match the allowed pattern/],
    ['alice', ['k8sNS=Dss-Team-X'], /is not a valid Kubernetes namespace name/],
    ['oscar', [], /^user "oscar" has no admin property "k8sNS"/],
    ['nobody', [], /^user "nobody" has no admin property "k8sNS"/],
  ])('refuses %s with %j', (login, flags, message) => {
    expect(() => namespaceOf(login, flags)).toThrow(RefusedError);
    expect(() => namespaceOf(login, flags)).toThrow(message);
  });
});

describe('team namespaces never per-user ones (finding 8)', () => {
  // The default allowedNamespaces (^dss-) matches every per-user namespace: the pattern alone is no defence.
  const profile = {
    name: 'team',
    source: '/etc/dss-spark-k8s/config.yaml',
    targetNamespace: '${adminProperty:k8sNS}',
    allowedNamespaces: /^dss-/,
    perUserNamespaces: [perUserNamespacePattern('dss-ns-${dssUserLogin}'), perUserNamespacePattern('dss-u-${dssUserLogin}-spark')],
  } as Profile;
  const namespaceOf = (login: string, k8sNS: string) => resolveNamespace(profile, { login, adminProperties: { k8sNS } });

  it.each(['dss-ns-bob', 'dss-ns-alice', 'dss-u-bob-spark'])("refuses k8sNS=%s for alice: it is a user's private namespace", (ns) => {
    expect(() => namespaceOf('alice', ns)).toThrow(RefusedError);
    expect(() => namespaceOf('alice', ns)).toThrow(/per-user namespace/);
  });

  it('still sends a job to a team namespace that merely looks alike', () => {
    expect(namespaceOf('alice', 'dss-team-ns')).toBe('dss-team-ns');
    expect(namespaceOf('alice', 'dss-u-bob-sparkles')).toBe('dss-u-bob-sparkles');
  });
});
