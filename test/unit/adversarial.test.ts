// Adversarial input, property-based (fast-check): logins and namespace templates, families of look-alike
// logins, randomly mutated configuration files, and spark-submit argument lists that try to override what the
// tool manages. Pure code only; the same inputs through the real CLI (never a cluster write) are in
// test/integration/faults.test.ts.
//
// The properties:
//   - a resolved namespace is a DNS-1123 label of at most 63 characters, matches the allow-list, and is never
//     a system namespace; otherwise the input is refused with a CliError and a documented exit code;
//   - distinct logins never share a slug (and so never a namespace), for families of deliberately similar
//     logins (case, separators, unicode look-alikes, length around the truncation points), and for logins an
//     adversary picks;
//   - a mutated config is either valid or refused with one ConfigError line (exit 78), quickly; never any
//     other exception;
//   - a spark-submit argument list is either refused with one UsageError line (exit 64) or, read the way
//     Spark 4.3 reads it (SparkSubmitOptionParser, CommandBuilderUtils.parseOptionString, the JVM's -D and
//     @argfiles), sets no setting the tool manages.
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import type { Profile } from '../../src/config/types.ts';
import { profileWith } from '../support/profile.ts';
import { CliError, ExitCode } from '../../src/errors.ts';
import { isDnsLabel, loginToSlug, resolveNamespace, validateJobId } from '../../src/plan/names.ts';
import { planJob } from '../../src/plan/plan.ts';
import { buildSparkSubmitArgs, checkCallerArgs, MANAGED_SPARK_CONFS, MANAGED_SPARK_CONF_PREFIXES } from '../../src/plan/spark-args.ts';

const DOCUMENTED_ERROR_CODES = new Set<number>(Object.values(ExitCode).filter((code) => code !== 0));
const SEED = Number(process.env.ADVERSARIAL_SEED ?? 20261128);

const figures = {
  namespaceInputs: 0,
  loginsInFamilies: 0,
  pairsCompared: 0,
  collisions: 0,
  adversarialLogins: 0,
  adversarialPairsCovered: 0,
  adversarialCollisions: 0,
  configInputs: 0,
  argumentLists: 0,
  familySeconds: 0,
  multiLineMessages: new Set<string>(),
  otherExceptions: new Set<string>(),
  overridesAccepted: new Set<string>(),
};

afterAll(() => {
  const inputs = figures.namespaceInputs + figures.loginsInFamilies + figures.adversarialLogins + figures.configInputs + figures.argumentLists;
  console.log(
    `reliability adversarial: ${inputs} inputs tried (${figures.namespaceInputs} login/template, ${figures.loginsInFamilies} look-alike logins in families, ` +
      `${figures.adversarialLogins} adversary-chosen logins, ${figures.configInputs} mutated configs, ${figures.argumentLists} argument lists); ` +
      `${figures.pairsCompared} login pairs compared one by one, ${figures.collisions} collisions; ` +
      `${figures.adversarialPairsCovered} adversary pairs covered by grouping, ${figures.adversarialCollisions} collisions; ` +
      `(${figures.familySeconds.toFixed(1)} s); ` +
      `${figures.multiLineMessages.size} distinct multi-line error messages, ${figures.otherExceptions.size} non-CliError exceptions, ` +
      `${figures.overridesAccepted.size} accepted argument lists that override a managed setting (counts include fast-check's shrinking)`,
  );
});

type Outcome<T> = { value: T } | { cliError: CliError } | { other: unknown };

function attempt<T>(f: () => T): Outcome<T> {
  try {
    return { value: f() };
  } catch (error) {
    if (error instanceof CliError) return { cliError: error };
    return { other: error };
  }
}

/** Fails for anything but a value or a one-line CliError with one of the expected exit codes. */
function expectValueOrCliError<T>(outcome: Outcome<T>, codes: Set<number>, input: unknown): T | undefined {
  if ('other' in outcome) {
    figures.otherExceptions.add(String((outcome.other as Error)?.message ?? outcome.other));
    throw new Error(`not a CliError for ${JSON.stringify(input)}: ${String((outcome.other as Error)?.stack ?? outcome.other)}`);
  }
  if ('cliError' in outcome) {
    const { exitCode, message } = outcome.cliError;
    if (!codes.has(exitCode)) throw new Error(`exit code ${exitCode} for ${JSON.stringify(input)}: ${message}`);
    return undefined;
  }
  return outcome.value;
}

function isOneLine(outcome: Outcome<unknown>): boolean {
  if (!('cliError' in outcome)) return true;
  const oneLine = !/[\r\n]/.test(outcome.cliError.message);
  if (!oneLine) figures.multiLineMessages.add(outcome.cliError.message);
  return oneLine;
}

function profile(overrides: Partial<Profile> = {}): Profile {
  return profileWith({ source: 'adversarial.yaml', autoCreateNamespace: true, ...overrides });
}

/** Kubernetes' own namespaces and OpenShift's, decided here independently of the code under test. */
function isSystemNamespace(ns: string): boolean {
  return ns === 'default' || ns.startsWith('kube-') || ns === 'openshift' || ns.startsWith('openshift-');
}

// ---- generators ----

const LOOK_ALIKES: Record<string, string[]> = {
  a: ['A', 'а', 'á', 'ª', 'ａ'],
  e: ['E', 'е', 'é', 'ё'],
  i: ['I', 'і', 'ı', 'í', 'İ'],
  o: ['O', 'о', 'ο', 'ö', '0'],
  k: ['K', 'K', 'κ'],
  s: ['S', 'ſ', 'ѕ', '5'],
  c: ['C', 'с', 'ç'],
  l: ['L', '1', 'ⅼ', 'I'],
  n: ['N', 'ñ', 'ｎ'],
  u: ['U', 'ü', 'υ'],
};
const SEPARATORS = ['.', '_', '-', '@', '..', '._', '-.', '__', '@.', '.@', '--', '-_-', ''];

const hostileLogin = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9._@][A-Za-z0-9._@-]{0,80}$/),
  fc.string({ maxLength: 70 }),
  fc.string({ unit: 'grapheme', maxLength: 50 }),
  fc.string({ unit: 'binary', maxLength: 50 }),
  fc.constantFrom('', '-', '.', '@', '--', 'x'.repeat(300), 'kube-system', 'default', 'Default', 'KUBE-SYSTEM', '\n', 'a\nb', 'ﬀ', 'İstanbul', 'ß'),
);
const hostileValue = fc.oneof(
  fc.constantFrom(
    'kube-system',
    'kube-public',
    'kube-node-lease',
    'default',
    'openshift',
    'openshift-config',
    'Kube-System',
    'dss-team-a',
    'dss-',
    'dss-team\nkube-system',
    '',
    ' dss-a',
    'dss-a ',
    'dss-' + 'a'.repeat(70),
    '..',
    'dss-a.b',
  ),
  fc.string({ maxLength: 40 }),
  fc.stringMatching(/^[a-z0-9-]{0,70}$/),
);
const templatePiece = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('${dssUserLogin}', '${adminProperty:ns}', '${adminProperty:team}') },
  { weight: 2, arbitrary: fc.constantFrom('dss-', 'dss-ns-', 'kube-', 'default', 'openshift-', '-', '.', 'ns', 'DSS-', 'team-') },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '${',
      '}',
      '$',
      '${unknown}',
      '${adminProperty:}',
      '${adminProperty:missing}',
      '${dssUserLogin',
      '\n',
      ' ',
      '${${dssUserLogin}}',
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
);
const template = fc.array(templatePiece, { minLength: 1, maxLength: 5 }).map((pieces) => pieces.join(''));
const allowList = fc.constantFrom(/^dss-/, /^dss-ns-/, /.*/, /^(dss|team)-/, /dss/, /^$/, /^kube-/, /^default$/, /^open/, /-/);
const adminProperties = fc.record({ ns: hostileValue, team: hostileValue }, { requiredKeys: [] });

// ---- namespaces ----

describe('namespaces from logins and templates', () => {
  const input = fc.record({ login: hostileLogin, template, allowed: allowList, properties: adminProperties });

  it('are valid, allowed, non-system DNS-1123 labels, or refused with exit 65/78 — never another exception', () => {
    fc.assert(
      fc.property(input, ({ login, template, allowed, properties }) => {
        figures.namespaceInputs++;
        const outcome = attempt(() =>
          resolveNamespace(profile({ targetNamespace: template, allowedNamespaces: allowed }), { login, adminProperties: properties }),
        );
        const ns = expectValueOrCliError(outcome, new Set([ExitCode.refused, ExitCode.config]), { login, template, properties });
        if (ns === undefined) return;
        expect(isDnsLabel(ns), ns).toBe(true);
        expect(ns.length).toBeLessThanOrEqual(63);
        expect(ns.search(allowed), `${ns} vs ${allowed}`).toBeGreaterThanOrEqual(0);
        expect(isSystemNamespace(ns), ns).toBe(false);
      }),
      { seed: SEED, numRuns: 30_000 },
    );
  });

  it('never resolve to a system namespace, even when the allow-list allows everything', () => {
    const system = fc.oneof(
      fc.constantFrom('default', 'kube-system', 'kube-public', 'kube-node-lease', 'openshift', 'openshift-config'),
      fc.stringMatching(/^kube-[a-z0-9-]{0,20}[a-z0-9]$/),
    );
    // The system namespace is assembled from admin properties in three ways.
    const ways: [string, (ns: string) => Record<string, string>][] = [
      ['${adminProperty:ns}', (ns) => ({ ns })],
      ['kube-${adminProperty:ns}', (ns) => ({ ns: ns.replace(/^kube-/, '') })],
      ['${adminProperty:ns}${adminProperty:team}', (ns) => ({ ns: ns.slice(0, 3), team: ns.slice(3) })],
    ];
    fc.assert(
      fc.property(system, hostileLogin, fc.constantFrom(...ways), (value, login, [tpl, props]) => {
        figures.namespaceInputs++;
        const outcome = attempt(() => resolveNamespace(profile({ targetNamespace: tpl, allowedNamespaces: /.*/ }), { login, adminProperties: props(value) }));
        const ns = expectValueOrCliError(outcome, new Set([ExitCode.refused, ExitCode.config]), { value, tpl });
        if (ns !== undefined) expect(isSystemNamespace(ns), ns).toBe(false);
      }),
      { seed: SEED, numRuns: 5_000 },
    );
  });

  it('are refused with one line: no input can add a line to the error message', () => {
    const input = fc.record({ login: hostileLogin, template, allowed: allowList, properties: adminProperties });
    fc.assert(
      fc.property(input, ({ login, template, allowed, properties }) => {
        figures.namespaceInputs++;
        const outcome = attempt(() =>
          resolveNamespace(profile({ targetNamespace: template, allowedNamespaces: allowed }), { login, adminProperties: properties }),
        );
        expect(isOneLine(outcome), 'cliError' in outcome ? JSON.stringify(outcome.cliError.message) : '').toBe(true);
      }),
      { seed: SEED, numRuns: 10_000 },
    );
  });

  it('job ids: accepted as DNS labels or refused with one line, exit 64', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 70 }), fc.stringMatching(/^[a-z0-9-]{1,70}$/), fc.constantFrom('a\nb', 'ok\n', '-x', 'x-')), (id) => {
        figures.namespaceInputs++;
        const outcome = attempt(() => validateJobId(id));
        const value = expectValueOrCliError(outcome, new Set([ExitCode.usage]), id);
        if (value !== undefined) expect(isDnsLabel(value)).toBe(true);
        expect(isOneLine(outcome), 'cliError' in outcome ? JSON.stringify(outcome.cliError.message) : '').toBe(true);
      }),
      { seed: SEED, numRuns: 5_000 },
    );
  });
});

// ---- slugs: distinct logins never collide ----

/** A small deterministic PRNG (mulberry32), so a family is a pure function of its seed. */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Look-alikes of `base`: case, separators, unicode, length around the slug's cut points (30 and 40). */
function family(base: string, seed: number, size: number): string[] {
  const random = prng(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const variants = new Set<string>([base]);
  const list = [base];
  const mutate = (login: string): string => {
    const chars = [...login];
    const at = Math.floor(random() * (chars.length + 1));
    switch (Math.floor(random() * 9)) {
      case 0: // flip the case of one character
        if (chars[at]) chars[at] = chars[at] === chars[at]!.toUpperCase() ? chars[at]!.toLowerCase() : chars[at]!.toUpperCase();
        return chars.join('');
      case 1: {
        // replace a separator by another run of separators
        const i = chars.findIndex((c, k) => k >= at && /[._@-]/.test(c));
        if (i >= 0) chars.splice(i, 1, pick(SEPARATORS));
        else chars.splice(at, 0, pick(SEPARATORS));
        return chars.join('');
      }
      case 2: // a separator at either end
        return random() < 0.5 ? pick(SEPARATORS) + login : login + pick(SEPARATORS);
      case 3: {
        // a unicode look-alike
        const i = chars.findIndex((c, k) => k >= at && LOOK_ALIKES[c.toLowerCase()]);
        if (i >= 0) chars[i] = pick(LOOK_ALIKES[chars[i]!.toLowerCase()]!);
        return chars.join('');
      }
      case 4: // cut to a length near a cut point
        return chars.slice(0, pick([1, 8, 29, 30, 31, 38, 39, 40, 41, 42, at])).join('') || login;
      case 5: // pad to a length near a cut point
        return (login + 'x'.repeat(45)).slice(0, Math.max(login.length, pick([29, 30, 31, 39, 40, 41, 63, 64])));
      case 6: // a digit
        return login + Math.floor(random() * 10);
      case 7: // all one case
        return random() < 0.5 ? login.toUpperCase() : login.toLowerCase();
      default: // double a character
        if (chars[at]) chars.splice(at, 0, chars[at]!);
        return chars.join('');
    }
  };
  for (let tries = 0; variants.size < size && tries < size * 20; tries++) {
    let login = pick(list);
    for (let steps = 1 + Math.floor(random() * 3); steps > 0; steps--) login = mutate(login);
    if (login !== '' && !variants.has(login)) {
      variants.add(login);
      list.push(login);
    }
  }
  return list;
}

const baseLogin = fc.oneof(
  fc.stringMatching(/^[a-z][a-z0-9]{1,10}([._-][a-z0-9]{1,10}){0,2}$/),
  fc.stringMatching(/^[a-z][a-z0-9.]{27,44}$/),
  fc.constantFrom('john.doe', 'John.Doe', 'jdoe', 'j.doe@corp.example', 'marie-claire.dupont-de-la-tour', 'admin', 'a', 'x'.repeat(40)),
);

describe('slugs of look-alike logins', () => {
  it('never collide: every pair inside families of similar logins (case, separators, unicode, length)', () => {
    const FAMILY_SIZE = 400;
    const started = Date.now();
    fc.assert(
      fc.property(baseLogin, fc.integer(), (base, seed) => {
        const logins = family(base, seed, FAMILY_SIZE);
        const slugs = logins.map((login) => loginToSlug(login));
        figures.loginsInFamilies += logins.length;
        for (let i = 0; i < slugs.length; i++) {
          const slug = slugs[i]!;
          if (!isDnsLabel(slug) || slug.length > 40)
            throw new Error(`slug ${JSON.stringify(slug)} of ${JSON.stringify(logins[i])} is not a DNS label of at most 40`);
          for (let j = i + 1; j < slugs.length; j++) {
            figures.pairsCompared++;
            if (slug === slugs[j]) {
              figures.collisions++;
              throw new Error(`${JSON.stringify(logins[i])} and ${JSON.stringify(logins[j])} share the slug ${slug}`);
            }
          }
        }
      }),
      { seed: SEED, numRuns: 200 },
    );
    figures.familySeconds = (Date.now() - started) / 1000;
    expect(figures.pairsCompared).toBeGreaterThanOrEqual(1_000_000);
  });

  it('keep clean logins as they are, and hash every other', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/), (login) => {
        figures.loginsInFamilies++;
        const slug = loginToSlug(login);
        if (!login.includes('--')) expect(slug).toBe(login);
        else expect(slug).toMatch(/--[a-z2-7]{16}$/);
      }),
      { seed: SEED, numRuns: 10_000 },
    );
  });

  // An adversary who can choose a login (self-service directory, SSO-provisioned accounts) picks look-alikes of
  // a victim's login: same slug head, so only the 8 hex digits (32 bits) of the hash tell them apart. A
  // birthday search among 2^18 look-alikes of "john.doe" — case and runs of ".", "_", "-" — takes about a second.
  it('never collide for logins an adversary picks: 2^18 look-alikes of "john.doe" (case and separators only)', () => {
    const seen = new Map<string, string>();
    const collisions: [string, string, string][] = [];
    const separators = ['.', '_', '-'];
    const letters = 'johndoe';
    const count = 2 ** 18;
    for (let i = 0; i < count; i++) {
      const caseMask = i & 0x7f;
      let rest = i >>> 7;
      let sep = '';
      do {
        sep += separators[rest % 3];
        rest = Math.floor(rest / 3);
      } while (rest > 0);
      const cased = [...letters].map((c, k) => ((caseMask >> k) & 1 ? c.toUpperCase() : c));
      const login = `${cased.slice(0, 4).join('')}${sep}${cased.slice(4).join('')}`;
      const slug = loginToSlug(login);
      const earlier = seen.get(slug);
      if (earlier !== undefined && earlier !== login) collisions.push([earlier, login, slug]);
      else seen.set(slug, login);
    }
    figures.adversarialLogins += count;
    figures.adversarialPairsCovered += (count * (count - 1)) / 2;
    figures.adversarialCollisions += collisions.length;
    expect(
      collisions.map(([a, b, slug]) => `${a} and ${b} both become ${slug}, namespace dss-ns-${slug}`),
      'distinct logins sharing a namespace',
    ).toEqual([]);
  });
});

// ---- configuration files ----

const VALID_CONFIGS = [
  `defaultProfile: default
profiles:
  default:
    targetNamespace: "dss-ns-\${dssUserLogin}"
    autoCreateNamespace: true
    sparkSubmit: /opt/spark/bin/spark-submit
    sparkConf:
      spark.kubernetes.container.image: registry.example.com/spark:4.0.1
      spark.executor.instances: 2
    tokenTtl: 1h
    allowedNamespaces: "^dss-"
    allowedUserGroups: [dss-spark-users]
    minUid: 1000
    labels: { team: data }
    annotations: { "example.com/owner": "platform" }
    kubeconfig: /home/dssuser/.kube/config
    context: prod
    tempDir: /tmp
    podSecurity: { enforce: baseline, audit: restricted, warn: restricted }
    leaseRenewSeconds: 30
    tokenRotation: 48m
    killGrace: 10s
    apiTimeout: 30s
`,
  `profiles:
  team:
    targetNamespace: "\${adminProperty:k8sNS}"
    sparkSubmit: /opt/spark/bin/spark-submit
    adminPropertiesFile: /etc/dss-spark-k8s/admin-properties.yaml
    allowedNamespaces: "^dss-team-"
  default:
    sparkSubmit: /usr/local/bin/spark-submit
`,
  `{"profiles": {"default": {"sparkSubmit": "/opt/spark/bin/spark-submit", "apiTimeout": 5, "labels": {}}}}`,
];

const HOSTILE_SCALARS = [
  '',
  '~',
  'null',
  '-1',
  '1e400',
  '0x10',
  '0o17',
  '.inf',
  '.nan',
  'true',
  'yes',
  '[]',
  '{}',
  '[1, 2]',
  '"a\\nb"',
  '!!binary aGVsbG8=',
  '!!js/function "x"',
  '*nope',
  '&a x',
  '"${dssUserLogin}"',
  "'(unclosed'",
  '999999999999999999999',
  'relative/path',
  '//x',
  '"\\u2028"',
  '"${adminProperty:x}"',
  '1h30m',
  '2d',
  '0s',
  '61s',
  '9007199254740993',
  '-0',
  '"kube-system"',
  "'^(a+)+$'",
  '{ "__proto__": { "polluted": "yes" } }',
  '[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]',
];
const HOSTILE_KEYS = [
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  'prototype',
  'targetNamespce',
  'profiles',
  'default',
  '',
  '"a\\nb"',
  '? complex',
];
const HOSTILE_CHARS = [
  ':',
  '-',
  ' ',
  '\t',
  '\n',
  '#',
  '&',
  '*',
  '!',
  '|',
  '>',
  '%',
  '@',
  '`',
  '{',
  '}',
  '[',
  ']',
  ',',
  '?',
  '"',
  "'",
  '\\',
  '\u0000',
  '\u2028',
  'é',
  '${',
  '~',
  '\r',
];

const textMutation = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.oneof(fc.constantFrom(...HOSTILE_CHARS), fc.string({ maxLength: 6 })) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 12 }) }),
  fc.record({ kind: fc.constant('value' as const), at: fc.nat(), text: fc.constantFrom(...HOSTILE_SCALARS) }),
  fc.record({ kind: fc.constant('key' as const), at: fc.nat(), text: fc.constantFrom(...HOSTILE_KEYS) }),
  fc.record({ kind: fc.constant('line' as const), at: fc.nat(), op: fc.constantFrom('duplicate', 'drop', 'indent', 'dedent', 'swap') }),
  fc.record({
    kind: fc.constant('append' as const),
    at: fc.nat(),
    text: fc.constantFrom('\n---\nprofiles: {}\n', '\n...\n', '\nprofiles: {}\n', '\n  extra: 1\n', '\n\t\n', '\n# comment\n'),
  }),
);

function applyMutation(text: string, m: { kind: string; at: number; [k: string]: unknown }): string {
  const lines = text.split('\n');
  const lineAt = m.at % lines.length;
  switch (m.kind) {
    case 'insert': {
      const at = m.at % (text.length + 1);
      return text.slice(0, at) + String(m.text) + text.slice(at);
    }
    case 'delete': {
      const at = m.at % (text.length + 1);
      return text.slice(0, at) + text.slice(at + Number(m.length));
    }
    case 'value': {
      const line = lines[lineAt]!;
      const colon = line.indexOf(': ');
      lines[lineAt] = colon >= 0 ? `${line.slice(0, colon)}: ${String(m.text)}` : `${line} ${String(m.text)}`;
      return lines.join('\n');
    }
    case 'key': {
      const line = lines[lineAt]!;
      lines[lineAt] = line.replace(/^(\s*)[^:\s][^:]*:/, `$1${String(m.text)}:`);
      return lines.join('\n');
    }
    case 'line': {
      const line = lines[lineAt]!;
      if (m.op === 'duplicate') lines.splice(lineAt, 0, line);
      else if (m.op === 'drop') lines.splice(lineAt, 1);
      else if (m.op === 'indent') lines[lineAt] = `  ${line}`;
      else if (m.op === 'dedent') lines[lineAt] = line.replace(/^ {1,2}/, '');
      else lines.splice(lineAt, 2, ...lines.slice(lineAt, lineAt + 2).reverse());
      return lines.join('\n');
    }
    default:
      return text + String(m.text);
  }
}

/** Profiles with random values of every JSON type under the known keys (and a few others), as JSON. */
const structuralConfig = fc
  .record({
    base: fc.constantFrom(...VALID_CONFIGS.slice(0, 1)),
    values: fc.dictionary(
      fc.constantFrom(
        'targetNamespace',
        'autoCreateNamespace',
        'sparkSubmit',
        'sparkConf',
        'tokenTtl',
        'allowedNamespaces',
        'allowedUserGroups',
        'minUid',
        'labels',
        'annotations',
        'kubeconfig',
        'context',
        'tempDir',
        'adminPropertiesFile',
        'podSecurity',
        'leaseRenewSeconds',
        'tokenRotation',
        'killGrace',
        'apiTimeout',
        '__proto__',
        'extra',
      ),
      fc.oneof(fc.anything({ maxDepth: 3 }), fc.constantFrom(...HOSTILE_SCALARS), fc.string()),
      { maxKeys: 4 },
    ),
    profileName: fc.oneof(fc.constant('default'), fc.string({ maxLength: 12 })),
  })
  .map(({ values, profileName }) => JSON.stringify({ profiles: { [profileName]: { sparkSubmit: '/opt/spark/bin/spark-submit', ...values } } }));

const mutatedConfig = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.constantFrom(...VALID_CONFIGS), fc.array(textMutation, { minLength: 1, maxLength: 4 }))
      .map(([text, mutations]) => mutations.reduce((t, m) => applyMutation(t, m), text)),
  },
  { weight: 1, arbitrary: structuralConfig },
);

const CTX = {
  jobId: 'adv0001',
  login: 'alice',
  uid: 1001,
  adminProperties: { k8sNS: 'dss-team-a' },
  host: 'host',
  pid: 1,
  processStart: '2026-11-28T00:00:00.000Z',
  now: new Date('2026-11-28T00:00:00Z'),
};

describe('mutated configuration files', () => {
  it('the valid configs this starts from are valid', () => {
    for (const text of VALID_CONFIGS) expect(() => parseConfig(text, 'valid.yaml')).not.toThrow();
  });

  it('are valid, or refused with a ConfigError (exit 78) within 1 s — never another exception; a valid one plans or is refused with a documented code', () => {
    let slowest = 0;
    fc.assert(
      fc.property(mutatedConfig, (text) => {
        figures.configInputs++;
        const started = performance.now();
        const outcome = attempt(() => parseConfig(text, '/etc/dss-spark-k8s/config.yaml'));
        slowest = Math.max(slowest, performance.now() - started);
        const config = expectValueOrCliError(outcome, new Set([ExitCode.config]), text);
        if (!config) return;
        for (const p of Object.values(config.profiles)) {
          const planned = attempt(() => planJob(p, CTX, { apiServer: 'https://127.0.0.1:6443', callerArgs: ['app.py'] }));
          expectValueOrCliError(planned, DOCUMENTED_ERROR_CODES, { text, profile: p.name });
        }
      }),
      { seed: SEED, numRuns: 20_000 },
    );
    expect(slowest, 'slowest parse in ms').toBeLessThan(1_000);
  });

  it('are refused with one line, whether the file or the plan made from it is refused', () => {
    fc.assert(
      fc.property(mutatedConfig, (text) => {
        figures.configInputs++;
        const outcome = attempt(() => parseConfig(text, '/etc/dss-spark-k8s/config.yaml'));
        expect(isOneLine(outcome), 'cliError' in outcome ? JSON.stringify(outcome.cliError.message) : '').toBe(true);
        if (!('value' in outcome)) return;
        for (const p of Object.values(outcome.value.profiles)) {
          const planned = attempt(() => planJob(p, CTX, { apiServer: 'https://127.0.0.1:6443', callerArgs: ['app.py'] }));
          expect(isOneLine(planned), 'cliError' in planned ? JSON.stringify(planned.cliError.message) : '').toBe(true);
        }
      }),
      { seed: SEED, numRuns: 5_000 },
    );
  });

  // YAML aliases share one object; an error message that prints the value expands every reference.
  it('refuses a YAML alias bomb of a few hundred bytes within 1 s', () => {
    const defs = [`&a [${Array(10).fill('"xxxxxxxx"').join(',')}]`];
    for (let i = 1; i < 9; i++)
      defs.push(
        `&${String.fromCharCode(97 + i)} [${Array(10)
          .fill(`*${String.fromCharCode(96 + i)}`)
          .join(',')}]`,
      );
    // Level 8 (10^8 strings) keeps this test at seconds; level 9 (441 bytes) takes about a minute.
    const text = `defaultProfile: [${defs.slice(0, 8).join(', ')}]\nprofiles:\n  default:\n    sparkSubmit: /x\n    minUid: *h\n`;
    figures.configInputs++;
    const started = performance.now();
    const outcome = attempt(() => parseConfig(text, 'bomb.yaml'));
    const took = performance.now() - started;
    expectValueOrCliError(outcome, new Set([ExitCode.config]), 'alias bomb');
    expect(took, `ms to refuse a ${text.length}-byte config`).toBeLessThan(1_000);
  });
});

// ---- spark-submit arguments ----

// Spark 4.3's SparkSubmitOptionParser (read from spark-launcher_2.13-4.3.0.jar): options with a value, and switches.
const SPARK_OPTIONS_WITH_VALUE = new Set([
  '--archives',
  '--class',
  '--conf',
  '-c',
  '--deploy-mode',
  '--driver-class-path',
  '--driver-cores',
  '--driver-default-class-path',
  '--driver-java-options',
  '--driver-library-path',
  '--driver-memory',
  '--executor-cores',
  '--executor-memory',
  '--files',
  '--jars',
  '--keytab',
  '--kill',
  '--master',
  '--remote',
  '--name',
  '--num-executors',
  '--packages',
  '--exclude-packages',
  '--principal',
  '--properties-file',
  '--extra-properties-file',
  '--proxy-user',
  '--py-files',
  '--queue',
  '--repositories',
  '--status',
  '--total-executor-cores',
]);
const SPARK_SWITCHES = new Set(['--help', '-h', '--supervise', '--usage-error', '--verbose', '-v', '--version', '--load-spark-defaults']);

/** java.lang.Character.isWhitespace for the code points that matter here. */
function isJavaWhitespace(c: string): boolean {
  const code = c.codePointAt(0)!;
  if ((code >= 0x09 && code <= 0x0d) || (code >= 0x1c && code <= 0x20)) return true;
  if (code === 0xa0 || code === 0x2007 || code === 0x202f) return false; // non-breaking spaces are not
  return /[\u1680\u2000-\u2006\u2008-\u200a\u2028\u2029\u205f\u3000]/.test(c);
}

/** Spark's CommandBuilderUtils.parseOptionString: how driver JVM options are split (quotes, backslashes). */
function parseOptionString(s: string): string[] | 'invalid' {
  const opts: string[] = [];
  let opt = '';
  let inOpt = false;
  let inSingle = false;
  let inDouble = false;
  let escapeNext = false;
  let hasData = false;
  for (const c of s) {
    if (escapeNext) {
      opt += c;
      escapeNext = false;
    } else if (inOpt) {
      if (c === '\\') {
        if (inSingle) opt += c;
        else escapeNext = true;
      } else if (c === "'") {
        if (inDouble) opt += c;
        else inSingle = !inSingle;
      } else if (c === '"') {
        if (inSingle) opt += c;
        else inDouble = !inDouble;
      } else if (!isJavaWhitespace(c) || inSingle || inDouble) opt += c;
      else {
        opts.push(opt);
        opt = '';
        inOpt = false;
        hasData = false;
      }
    } else if (c === "'") {
      inSingle = inOpt = hasData = true;
    } else if (c === '"') {
      inDouble = inOpt = hasData = true;
    } else if (c === '\\') {
      escapeNext = inOpt = hasData = true;
    } else if (!isJavaWhitespace(c)) {
      inOpt = hasData = true;
      opt += c;
    }
  }
  if (inSingle || inDouble || escapeNext) return 'invalid';
  if (hasData) opts.push(opt);
  return opts;
}

function isManagedKey(key: string): boolean {
  // Spark does not trim conf keys: exactly these names.
  return MANAGED_SPARK_CONFS.includes(key) || MANAGED_SPARK_CONF_PREFIXES.some((prefix) => key.startsWith(prefix));
}

/** The driver JVM options' effect: system properties (-D) and option files the JVM reads (@argfile, VMOptionsFile). */
function javaOptionEffects(options: string, touched: string[]) {
  const tokens = parseOptionString(options);
  if (tokens === 'invalid') return; // spark-submit fails: nothing runs
  for (const token of tokens) {
    if (token.startsWith('-D')) {
      const key = token.slice(2).split('=')[0]!;
      if (isManagedKey(key)) touched.push(`-D${key}`);
    } else if (token.startsWith('@') || token.startsWith('-XX:VMOptionsFile=')) touched.push(`JVM options file ${token}`);
  }
}

/**
 * What the caller's arguments set, read as Spark 4.3 reads them: the managed settings they touch, or
 * 'rejected' when spark-submit itself would refuse them (then nothing runs).
 */
function sparkReading(args: string[]): string[] | 'rejected' {
  const touched: string[] = [];
  for (let i = 0; i < args.length; i++) {
    let arg = args[i]!;
    let value: string | undefined;
    const eq = /^(--[^=]+)=(.+)$/s.exec(arg);
    if (eq) {
      arg = eq[1]!;
      value = eq[2]!;
    }
    if (SPARK_OPTIONS_WITH_VALUE.has(arg)) {
      if (value === undefined) {
        if (i === args.length - 1) return 'rejected';
        value = args[++i]!;
      }
      switch (arg) {
        case '--conf':
        case '-c': {
          const at = value.indexOf('=');
          if (at < 0) return 'rejected';
          const key = value.slice(0, at);
          if (isManagedKey(key)) touched.push(key);
          if (key === 'spark.driver.extraJavaOptions' || key === 'spark.driver.defaultJavaOptions') javaOptionEffects(value.slice(at + 1), touched);
          break;
        }
        case '--master':
          touched.push('spark.master');
          break;
        case '--remote':
          touched.push('spark.remote');
          break;
        case '--deploy-mode':
          if (value !== 'client') touched.push('spark.submit.deployMode');
          break;
        case '--driver-java-options':
          javaOptionEffects(value, touched);
          break;
        case '--properties-file':
        case '--extra-properties-file':
          touched.push(`${arg} (any setting)`);
          break;
        case '--proxy-user':
        case '--principal':
        case '--keytab':
        case '--kill':
        case '--status':
          touched.push(arg);
          break;
      }
      continue;
    }
    if (SPARK_SWITCHES.has(arg)) continue;
    if (arg.startsWith('-')) return 'rejected'; // "Unrecognized option"
    break; // the application: what follows is its own
  }
  return touched;
}

const MANAGED_KEYS_TO_TRY = [
  ...MANAGED_SPARK_CONFS,
  'spark.kubernetes.authenticate.oauthToken',
  'spark.kubernetes.authenticate.oauthTokenFile',
  'spark.kubernetes.authenticate.caCertFile',
  'spark.kubernetes.authenticate.clientKeyFile',
  'spark.kubernetes.authenticate.driver.serviceAccountName',
  'spark.kubernetes.authenticate.executor.serviceAccountName',
];
/** Ways to write a key that a naive check might miss. */
const disguisedKey = fc
  .tuple(
    fc.constantFrom(...MANAGED_KEYS_TO_TRY, 'spark.executor.instances', 'spark.app.name'),
    fc.nat(),
    fc.constantFrom('plain', 'space', 'case', 'backslash', 'quote', 'zero-width'),
  )
  .map(([key, at, how]) => {
    const i = 1 + (at % (key.length - 1));
    switch (how) {
      case 'space':
        return ` ${key} `;
      case 'case':
        return key.toUpperCase();
      case 'backslash':
        return `${key.slice(0, i)}\\${key.slice(i)}`;
      case 'quote':
        return `${key.slice(0, i)}"${key.slice(i)}"`;
      case 'zero-width':
        return `${key.slice(0, i)}\u200b${key.slice(i)}`;
      default:
        return key;
    }
  });
const javaOptions = fc
  .array(
    fc.oneof(
      disguisedKey.map((key) => `-D${key}=x`),
      disguisedKey.map((key) => `"-D${key}=x y"`),
      disguisedKey.map((key) => `'-D${key}'=x`),
      fc.constantFrom('-Xmx1g', '-XX:+UseG1GC', '@/home/alice/jvm.args', '-XX:VMOptionsFile=/home/alice/vm.opts', '-Dfoo=bar', '-Dspark.app.name=x'),
    ),
    { minLength: 1, maxLength: 3 },
  )
  .chain((parts) => fc.constantFrom(' ', '\t', '\n', '\u001f', '\u00a0', '  ').map((sep) => parts.join(sep)));
const submitArgument = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom('--conf', '-c'), disguisedKey).map(([opt, key]) => [opt, `${key}=value`]) },
  { weight: 2, arbitrary: disguisedKey.map((key) => [`--conf=${key}=value`]) },
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.constantFrom('--driver-java-options', '--conf spark.driver.extraJavaOptions', '--conf spark.driver.defaultJavaOptions'), javaOptions)
      .map(([opt, value]) => (opt.startsWith('--conf ') ? ['--conf', `${opt.slice(7)}=${value}`] : [opt, value])),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom(...SPARK_OPTIONS_WITH_VALUE), fc.constantFrom('x', 'client', 'cluster', 'local[*]', '--conf', '-c', 'spark.master=local', ''))
      .map(([opt, value]) => [opt, value]),
  },
  { weight: 1, arbitrary: fc.constantFrom(...SPARK_SWITCHES).map((s) => [s]) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(
        ['--kubernetes-namespace', 'x'],
        ['--foo'],
        ['--deploy-mode=cluster'],
        ['--master='],
        ['--'],
        ['-c=spark.master=x'],
        ['--deploy-mode', 'cluster\nx'],
      )
      .map((a) => [...a]),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }).map((s) => [s]) },
);
const argumentList = fc
  .tuple(fc.array(submitArgument, { maxLength: 5 }), fc.boolean(), fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }))
  .map(([options, withApp, appArgs]) => [...options.flat(), ...(withApp ? ['app.py', ...appArgs] : [])]);

const SUBMIT_INPUT = {
  apiServer: 'https://127.0.0.1:6443',
  namespace: 'dss-ns-alice',
  caCertFile: '/tmp/job/ca.crt',
  executorServiceAccount: 'dss-spark-alice-job-exec',
  labels: { 'app.kubernetes.io/managed-by': 'dss-spark-k8s', 'dss-spark-k8s.dataiku.io/job-id': 'job', 'dss-spark-k8s.dataiku.io/user': 'alice' },
  podNamePrefix: 'dss-spark-alice-job',
  profileConf: { 'spark.kubernetes.container.image': 'spark:4', 'spark.master': 'never-applied' },
  podTemplateFile: '/tmp/job/executor-pod.json',
};

describe('spark-submit argument lists', () => {
  it('are accepted, or refused with a UsageError (exit 64) — never another exception', () => {
    fc.assert(
      fc.property(argumentList, (args) => {
        figures.argumentLists++;
        expectValueOrCliError(
          attempt(() => checkCallerArgs(args)),
          new Set([ExitCode.usage]),
          args,
        );
        const built = attempt(() => buildSparkSubmitArgs({ ...SUBMIT_INPUT, callerArgs: args }));
        const value = expectValueOrCliError(built, new Set([ExitCode.usage]), args);
        if (value) expect(value.slice(value.length - args.length), 'the caller arguments come last, unchanged').toEqual(args);
      }),
      { seed: SEED, numRuns: 30_000 },
    );
  });

  it('are refused with one line: no argument can add a line to the error message', () => {
    fc.assert(
      fc.property(argumentList, (args) => {
        figures.argumentLists++;
        const outcome = attempt(() => checkCallerArgs(args));
        expect(isOneLine(outcome), 'cliError' in outcome ? JSON.stringify(outcome.cliError.message) : '').toBe(true);
      }),
      { seed: SEED, numRuns: 10_000 },
    );
  });

  it('never override a managed setting, read the way Spark 4.3 and the JVM read them', () => {
    // Every accepted override is collected (not only the first), grouped by how it gets through.
    const found = new Map<string, string>();
    fc.assert(
      fc.property(argumentList, (args) => {
        figures.argumentLists++;
        if ('cliError' in attempt(() => checkCallerArgs(args))) return;
        const touched = sparkReading(args);
        if (touched === 'rejected' || touched.length === 0) return;
        figures.overridesAccepted.add(JSON.stringify(args));
        // Per way through, the shortest example found.
        for (const item of touched) {
          const how = item.startsWith('JVM options file @')
            ? 'an @argfile in the driver JVM options'
            : item.startsWith('JVM options file')
              ? 'a -XX:VMOptionsFile in the driver JVM options'
              : item.startsWith('-D')
                ? 'a -D system property the check does not see'
                : item;
          const example = `${JSON.stringify(args)} sets ${item}`;
          const shortest = found.get(how);
          if (!shortest || example.length < shortest.length) found.set(how, example);
        }
      }),
      { seed: SEED, numRuns: 30_000 },
    );
    expect(
      [...found.entries()].map(([how, example]) => `${how}: ${example}`),
      'accepted argument lists that set a managed setting',
    ).toEqual([]);
  });

  // Each of these was run through the real spark-submit 4.3.0 (local master, a PySpark app printing its conf):
  // the driver's SparkConf then holds the managed key with the caller's value.
  it.each([
    ['a backslash inside the key (Spark drops it)', '-Dspark.kubernetes.authen\\ticate.oauthTokenFile=/home/alice/token'],
    [
      'a separator Java takes for whitespace and JavaScript does not (U+001F)',
      '-XX:+UseG1GC\u001f-Dspark.kubernetes.authenticate.oauthTokenFile=/home/alice/token',
    ],
    ['an @argfile the JVM expands', '@/home/alice/jvm.args'],
    ['a -XX:VMOptionsFile the JVM reads', '-XX:VMOptionsFile=/home/alice/vm.opts'],
  ])('refuses driver JVM options that set a managed key through %s', (_how, options) => {
    figures.argumentLists++;
    expect(sparkReading(['--driver-java-options', options, 'app.py'])).not.toEqual([]);
    expect(() => checkCallerArgs(['--driver-java-options', options, 'app.py'])).toThrow(CliError);
  });

  it('the model of Spark agrees with the tool on plain overrides (so a disagreement above is the tool, not the model)', () => {
    for (const args of [
      ['--master', 'local', 'app'],
      ['--conf', 'spark.master=x', 'app'],
      ['--driver-java-options', '-Dspark.master=x', 'app'],
      ['--conf=spark.kubernetes.namespace=x', 'app'],
      ['--properties-file', 'f', 'app'],
    ]) {
      expect(sparkReading(args)).not.toEqual([]);
      expect(() => checkCallerArgs(args)).toThrow(CliError);
    }
    for (const args of [
      ['--name', 'x', 'app', '--master', 'y'],
      ['--conf', 'spark.executor.instances=2', 'app'],
      ['--driver-java-options', '-Xmx1g -Dfoo=bar', 'app'],
      ['--deploy-mode', 'client', 'app'],
    ]) {
      expect(sparkReading(args)).toEqual([]);
      expect(() => checkCallerArgs(args)).not.toThrow();
    }
  });
});

// A cross-check of the hash the slugs use, so that the adversarial search above is about this code's hash.
it('slugs use 16 base32 characters of SHA-256 (80 bits) when hashed', () => {
  expect(loginToSlug('John.Doe')).toMatch(/^john-doe--[a-z2-7]{16}$/);
});
