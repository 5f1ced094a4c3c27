import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Profile } from '../../src/config/types.ts';
import { ConfigError, RefusedError, UsageError } from '../../src/errors.ts';
import {
  BASE_NAME_MAX,
  executorServiceAccountName,
  expandNamespaceTemplate,
  generateJobId,
  jobBaseName,
  loginToSlug,
  resolveNamespace,
  validateJobId,
  validateNamespace,
} from '../../src/plan/names.ts';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
// 16 base32 characters (80 bits) of sha256, computed here through a bit string, independently of names.ts.
const hash16 = (s: string) =>
  [...createHash('sha256').update(s, 'utf8').digest()]
    .map((byte) => byte.toString(2).padStart(8, '0'))
    .join('')
    .slice(0, 80)
    .match(/.{5}/g)!
    .map((chunk) => 'abcdefghijklmnopqrstuvwxyz234567'[parseInt(chunk, 2)])
    .join('');

function expectError(fn: () => unknown, type: new (...args: never[]) => Error, pattern: RegExp) {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(type);
  expect((thrown as Error).message).toMatch(pattern);
  expect((thrown as Error).message).not.toContain('\n');
}

describe('loginToSlug', () => {
  it.each(['johndoe', 'john-doe', 'a1', '0day', 'x'.repeat(40)])('keeps the clean login %s as is', (login) => {
    expect(loginToSlug(login)).toBe(login);
  });

  it.each([
    ['John.Doe', `john-doe--${hash16('John.Doe')}`],
    ['john.doe', `john-doe--${hash16('john.doe')}`],
    ['JOHN.DOE', `john-doe--${hash16('JOHN.DOE')}`],
    ['Alice', `alice--${hash16('Alice')}`],
    ['jöhn', `j-hn--${hash16('jöhn')}`],
    ['--john--', `john--${hash16('--john--')}`],
    ['', `x--${hash16('')}`],
    ['...', `x--${hash16('...')}`],
    ['ßü', `x--${hash16('ßü')}`],
  ])('slugs %j to %s', (login, slug) => {
    expect(loginToSlug(login)).toBe(slug);
  });

  it('gives John.Doe, john-doe, john.doe and JOHN.DOE four different slugs', () => {
    const slugs = ['John.Doe', 'john-doe', 'john.doe', 'JOHN.DOE', 'john_doe', 'john@doe'].map((l) => loginToSlug(l));
    expect(new Set(slugs).size).toBe(slugs.length);
  });

  it('never lets a clean login equal the hashed slug of another login', () => {
    const crafted = loginToSlug('john.doe'); // john-doe--<hash>: not clean, so it is hashed again
    expect(loginToSlug(crafted)).not.toBe(crafted);
    expect(loginToSlug(hash16(''))).toBe(hash16('')); // a bare 8-hex login stays as is...
    expect(loginToSlug('')).not.toBe(hash16('')); // ...and the empty login does not map onto it
  });

  it.each([
    ['200 chars', 'a'.repeat(200)],
    ['200 chars with dots', 'a.'.repeat(100)],
    ['41 clean chars', 'b'.repeat(41)],
    ['cut at a dash', `${'c'.repeat(29)}.d${'e'.repeat(20)}`],
    ['unicode', 'ü'.repeat(50)],
    ['only punctuation', '!!!###'],
  ])('makes a valid label of at most the maximum from %s', (_name, login) => {
    for (const max of [40, 25, 19]) {
      const slug = loginToSlug(login, max);
      expect(slug.length).toBeLessThanOrEqual(max);
      expect(slug).toMatch(DNS_LABEL);
      expect(slug.endsWith(hash16(login))).toBe(true);
      expect(slug).not.toMatch(/-{3}/);
    }
  });

  it('refuses a maximum too short for the hash', () => {
    expect(() => loginToSlug('John', 18)).toThrow(/no room/);
  });

  it('has no collision among 10,000 pairs of similar logins', () => {
    const seen = new Map<string, string>();
    let state = 42;
    const rand = (n: number) => {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      return state % n;
    };
    const alphabet = 'aAbB.-_ 1';
    for (let i = 0; i < 20_000; i++) {
      let login = '';
      const length = 1 + rand(6);
      for (let j = 0; j < length; j++) login += alphabet[rand(alphabet.length)];
      const slug = loginToSlug(login);
      const previous = seen.get(slug);
      if (previous !== undefined) expect(previous).toBe(login);
      seen.set(slug, login);
    }
    expect(seen.size).toBeGreaterThan(1000);
  });
});

describe('expandNamespaceTemplate', () => {
  const vars = { login: 'John.Doe', adminProperties: { team: 'dss-analytics', evil: '${dssUserLogin}', empty: '' } };

  it.each([
    ['dss-${dssUserLogin}', `dss-john-doe--${hash16('John.Doe')}`],
    ['${adminProperty:team}', 'dss-analytics'],
    ['${adminProperty:team}-x', 'dss-analytics-x'],
    ['dss-fixed', 'dss-fixed'],
    ['dss-${adminProperty:evil}', 'dss-${dssUserLogin}'], // single pass: the value is not expanded again
    ['a$b{c}', 'a$b{c}'],
  ])('expands %s to %s', (template, expected) => {
    expect(expandNamespaceTemplate(template, vars)).toBe(expected);
  });

  it('does not slug an admin property value', () => {
    expect(expandNamespaceTemplate('${adminProperty:x}', { login: 'a', adminProperties: { x: 'Team A' } })).toBe('Team A');
  });

  it.each(['dss-${adminProperty:missing}', 'dss-${adminProperty:empty}', 'dss-${adminProperty:toString}'])(
    'refuses %s when the user has no such property',
    (template) => {
      const name = /adminProperty:(\w+)/.exec(template)?.[1];
      expectError(
        () => expandNamespaceTemplate(template, vars),
        RefusedError,
        new RegExp(
          `^user "John.Doe" has no admin property "${name}" \\(needed by the namespace template "dss-\\$\\{adminProperty:${name}\\}"\\); set it for this user or pass --admin-property ${name}=VALUE$`,
        ),
      );
    },
  );

  it.each([
    ['dss-${user}', /"dss-\$\{user\}".*unknown variable "\$\{user\}"/],
    ['dss-${adminProperty:}', /unknown variable "\$\{adminProperty:\}"/],
    ['dss-${dssUserLogin', /"dss-\$\{dssUserLogin".*not closed/],
    ['${}', /unknown variable "\$\{\}"/],
  ])('refuses the template %s as a configuration error', (template, pattern) => {
    expectError(() => expandNamespaceTemplate(template, vars), ConfigError, pattern);
  });
});

describe('validateNamespace', () => {
  const allowed = /^dss-/;

  it.each(['dss-a', 'dss-john-doe', `dss-${'a'.repeat(59)}`])('accepts %s', (ns) => {
    expect(validateNamespace(ns, allowed, 'test')).toBe(ns);
  });

  it.each([
    ['kube-system', /system namespace/],
    ['kube-public', /system namespace/],
    ['kube-node-lease', /system namespace/],
    ['kube-foo', /system namespace/],
    ['default', /system namespace/],
    ['openshift', /system namespace/],
    ['openshift-monitoring', /system namespace/],
    ['Dss-upper', /not a valid Kubernetes namespace name/],
    ['dss_x', /not a valid Kubernetes namespace name/],
    ['dss-x-', /not a valid Kubernetes namespace name/],
    ['', /not a valid Kubernetes namespace name/],
    [`dss-${'a'.repeat(60)}`, /64 characters long, more than 63/],
    ['team-a', /does not match the allowed pattern \/\^dss-\/ of profile "p"/],
  ])('refuses %s', (ns, pattern) => {
    expectError(() => validateNamespace(ns, allowed, 'profile "p"'), RefusedError, pattern);
  });

  it('refuses system namespaces even when the pattern would allow them', () => {
    expectError(() => validateNamespace('kube-system', /.*/, 'p'), RefusedError, /system namespace/);
    expectError(() => validateNamespace('default', /.*/, 'p'), RefusedError, /system namespace/);
  });

  it('is not fooled by a global pattern', () => {
    const global = /^dss-/g;
    expect(validateNamespace('dss-a', global, 'p')).toBe('dss-a');
    expect(validateNamespace('dss-a', global, 'p')).toBe('dss-a');
  });
});

describe('resolveNamespace', () => {
  const profile = {
    name: 'default',
    source: '/etc/dss-spark-k8s/config.yaml',
    targetNamespace: 'dss-${dssUserLogin}',
    allowedNamespaces: /^dss-/,
  } as Profile;

  it('expands and validates', () => {
    expect(resolveNamespace(profile, { login: 'alice', adminProperties: {} })).toBe('dss-alice');
  });

  it('refuses a template that expands over 63 characters instead of truncating it', () => {
    const long = { ...profile, targetNamespace: 'dss-${adminProperty:team}' };
    expectError(
      () => resolveNamespace(long, { login: 'alice', adminProperties: { team: 'a'.repeat(60) } }),
      RefusedError,
      /more than 63.*profile "default" in \/etc|profile "default" in \/etc.*more than 63/,
    );
  });

  it('names the profile when the namespace is not allowed', () => {
    const team = { ...profile, targetNamespace: '${adminProperty:team}' };
    expectError(
      () => resolveNamespace(team, { login: 'alice', adminProperties: { team: 'analytics' } }),
      RefusedError,
      /"analytics" does not match .* of profile "default" in \/etc\/dss-spark-k8s\/config.yaml/,
    );
  });
});

describe('job ids', () => {
  it.each(['a', 'job-1', '0', 'a'.repeat(63)])('accepts %s', (id) => {
    expect(validateJobId(id)).toBe(id);
  });

  it.each(['', 'Job', 'job_1', '-job', 'job-', 'a'.repeat(64), 'a b', 'job/1'])('refuses %j', (id) => {
    expectError(() => validateJobId(id), UsageError, /^--job-id ".*": must be lowercase letters, digits and '-', at most 63 characters$/);
  });

  it('generates 10 lowercase base32 characters from the given bytes, deterministically', () => {
    const bytes = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]);
    const id = generateJobId(bytes);
    expect(id).toMatch(/^[a-z2-7]{10}$/);
    expect(generateJobId(bytes)).toBe(id);
    expect(generateJobId(Buffer.from([1, 2, 3, 4, 5, 6, 8]))).not.toBe(id);
    expect(generateJobId(Buffer.alloc(7))).toBe('aaaaaaaaaa');
    expect(validateJobId(generateJobId(Buffer.alloc(7, 0xff)))).toBe('7777777777');
  });

  it('refuses too few random bytes', () => {
    expect(() => generateJobId(Buffer.alloc(3))).toThrow(/7 random bytes/);
  });
});

describe('jobBaseName', () => {
  it.each([
    ['alice', 'abc123', 'alice-abc123'],
    ['alice', 'a'.repeat(12), `alice-${'a'.repeat(12)}`],
    ['', 'abc', 'abc'],
    ['john--abcdefgh', 'j1', 'john-abcdefgh-j1'],
  ])('names %s / %s dss-spark-<hash of both>-%s', (slug, id, readable) => {
    expect(jobBaseName(slug, id)).toBe(`dss-spark-${hash16(`${slug}/${id}`)}-${readable}`);
  });

  it.each([
    [loginToSlug('x'.repeat(200)), 'a'.repeat(63)],
    [loginToSlug('John.Doe'.repeat(10)), 'job-42'],
    ['a'.repeat(40), 'b'.repeat(12)],
    [`${'a'.repeat(23)}-${'b'.repeat(16)}`, 'b'.repeat(12)], // the cut falls right after a dash
    [loginToSlug('Ü'.repeat(30)), '0'.repeat(63)],
  ])('stays a DNS label of at most 47 characters for long inputs (%s, %s)', (slug, id) => {
    const base = jobBaseName(slug, id);
    expect(base.length).toBeLessThanOrEqual(BASE_NAME_MAX);
    expect(BASE_NAME_MAX).toBe(47);
    expect(base).toMatch(DNS_LABEL);
    const exec = executorServiceAccountName(base);
    expect(exec).toBe(`${base}-exec`);
    expect(exec.length).toBeLessThanOrEqual(52);
    expect(exec).toMatch(DNS_LABEL);
  });

  // The red-team cases: cut user parts that collided, a long login whose hash was cut away, and one job's
  // account being a prefix of another's (which let the isolation policy hand one job the other's pod names).
  it.each([
    [
      ['data-engineering-team-user1', 'a-very-long-job-id-1'],
      ['data-engineering-team-user2', 'a-very-long-job-id-1'],
    ],
    [
      [loginToSlug('firstname.lastname.a@corp.example'), 'k3x9m2p7qa4b'],
      [loginToSlug('firstname-lastname.a@corp.example'), 'k3x9m2p7qa4b'],
    ],
    [
      ['alice', 'x1'],
      ['alice-x1', 'exec-zz'],
    ],
    [
      ['alice', 'x1'],
      ['alice-x1-exec', 'zz'],
    ],
    [
      ['alice', 'x1-t1'],
      ['alice', 'x1'],
    ],
  ])("keeps %j and %j apart, with no name a prefix of the other's names", (a, b) => {
    const [baseA, baseB] = [jobBaseName(a[0]!, a[1]!), jobBaseName(b[0]!, b[1]!)];
    expect(baseA).not.toBe(baseB);
    const derived = (base: string) => [base, `${base}-exec`, `${base}-exec-`, `${base}-t`];
    for (const x of derived(baseA)) for (const y of derived(baseB)) expect(y.startsWith(x) || x.startsWith(y)).toBe(false);
  });

  it('keeps 200,000 (login, job id) pairs chosen to look alike distinct and prefix-free', () => {
    const names = new Set<string>();
    const hashes = new Set<string>();
    for (let u = 0; u < 400; u++) {
      for (let j = 0; j < 500; j++) {
        const base = jobBaseName(loginToSlug(`user.${'x'.repeat(30)}${u}`), `job-${'0'.repeat(40)}${j}`);
        names.add(base);
        hashes.add(base.slice('dss-spark-'.length, 'dss-spark-'.length + 16));
      }
    }
    expect(names.size).toBe(200_000);
    // Prefix overlap needs equal hashes (fixed position): distinct hashes prove none.
    expect(hashes.size).toBe(200_000);
  });
});
