// Reads and validates the configuration file. Every failure is a ConfigError with a one-line message
// naming the file, the key path and what was expected.

import { readFileSync } from 'node:fs';
import { load as loadYaml } from 'js-yaml';
import { ConfigError } from '../errors.ts';
import { isPerUserTemplate, perUserNamespacePattern } from '../plan/names.ts';
import type { Config, PodSecurityLevels, Profile } from './types.ts';

export const DEFAULT_CONFIG_PATH = '/etc/dss-spark-k8s/config.yaml';
export const CONFIG_ENV_VAR = 'DSS_SPARK_K8S_CONFIG';

const DEFAULT_TARGET_NAMESPACE = 'dss-ns-${dssUserLogin}';
const TOP_LEVEL_KEYS = ['defaultProfile', 'profiles'];
const PROFILE_KEYS = [
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
  'resourceQuota',
  'limitRange',
  'allowedImagePullSecrets',
  'executorRunAsUser',
  'leaseRenewSeconds',
  'tokenRotation',
  'killGrace',
  'apiTimeout',
];
const POD_SECURITY_KEYS = ['enforce', 'audit', 'warn'] as const;
// Never privileged: dssuser's admission policy refuses such a namespace (a job there could reach the node).
const POD_SECURITY_LEVELS = ['baseline', 'restricted'];

const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const DAY = 86400;
const DURATION_EXPECTED = 'expected a duration such as 600, 90s, 10m, 1h or 1h30m';

/** `--config`, else $DSS_SPARK_K8S_CONFIG, else /etc/dss-spark-k8s/config.yaml (empty values count as unset). */
export function resolveConfigPath(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return flag || env[CONFIG_ENV_VAR] || DEFAULT_CONFIG_PATH;
}

export function loadConfig(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    // Node appends ", open '<path>'" to the message; the path already starts our line.
    const reason = String((err as Error).message).replace(/, \w+ '.*'$/s, '');
    throw configError(`${path}: cannot read the configuration file (${reason}); create it or pass --config`);
  }
  return parseConfig(text, path);
}

export function parseConfig(text: string, source: string): Config {
  const expected = 'expected a map with a "profiles" key at the top level';
  const top: MapReader = new MapReader(source, '', parseYaml(text, source), expected);
  top.rejectUnknownKeys(TOP_LEVEL_KEYS);

  if (top.get('profiles') === undefined) top.fail('profiles', 'required; expected a non-empty map of profile names to settings');
  const profilesReader = top.map('profiles', 'expected a non-empty map of profile names to settings');
  const names = Object.keys(profilesReader.obj);
  if (names.length === 0) top.fail('profiles', 'expected a non-empty map of profile names to settings, got {}');

  const profiles: Record<string, Profile> = Object.fromEntries(names.map((name) => [name, parseProfile(profilesReader, name)]));
  // Every per-user namespace this configuration can give (the default template's too): none may be a team namespace.
  const perUser = [...new Set([DEFAULT_TARGET_NAMESPACE, ...Object.values(profiles).map((p) => p.targetNamespace)])].filter(isPerUserTemplate);
  for (const profile of Object.values(profiles)) profile.perUserNamespaces = perUser.map(perUserNamespacePattern);

  const explicitDefault = top.string('defaultProfile');
  // An implicit "default" that does not exist is only an error when a job relies on it (see selectProfile).
  if (explicitDefault !== undefined && !Object.hasOwn(profiles, explicitDefault)) {
    top.fail('defaultProfile', `${show(explicitDefault)} is not a profile; known profiles: ${names.join(', ')}`);
  }
  return { source, defaultProfile: explicitDefault ?? 'default', profiles };
}

/** The named profile, else the configuration's default profile. */
export function selectProfile(config: Config, name: string | undefined): Profile {
  const wanted = name ?? config.defaultProfile;
  const profile = Object.hasOwn(config.profiles, wanted) ? config.profiles[wanted] : undefined;
  if (profile === undefined) {
    const which = name === undefined ? ` (the default profile; pass --profile or set defaultProfile)` : '';
    const known = Object.keys(config.profiles).join(', ');
    throw configError(`${config.source}: unknown profile ${show(wanted)}${which}; known profiles: ${known}`);
  }
  return profile;
}

/** Seconds from a number of seconds or a string such as "600", "90s", "10m", "1h", "1h30m", "2d". */
export function parseDuration(value: string | number, key: string, source: string): number {
  const fail = (): never => {
    throw configError(`${source}: ${key}: ${DURATION_EXPECTED}, got ${show(value)}`);
  };
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) fail();
    return value;
  }
  if (typeof value !== 'string') return fail();
  const text = value.trim();
  if (/^\d+$/.test(text)) {
    const seconds = Number(text);
    return Number.isSafeInteger(seconds) ? seconds : fail();
  }
  const match = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text);
  if (text === '' || match === null) return fail();
  const [days, hours, minutes, seconds] = match.slice(1).map((part) => Number(part ?? 0)) as [number, number, number, number];
  const total = days * DAY + hours * 3600 + minutes * 60 + seconds;
  return Number.isSafeInteger(total) ? total : fail();
}

function parseProfile(profiles: MapReader, name: string): Profile {
  if (!PROFILE_NAME.test(name)) {
    profiles.fail(name, 'invalid profile name; expected letters, digits, "_", "." or "-", starting with a letter or digit');
  }
  const p: MapReader = profiles.map(name, 'expected a map of profile settings');
  p.rejectUnknownKeys(PROFILE_KEYS);

  const sparkSubmit = p.absolutePath('sparkSubmit');
  if (sparkSubmit === undefined) p.fail('sparkSubmit', 'required; expected the absolute path of spark-submit');

  const tokenTtlSeconds = durationSetting(p, 'tokenTtl', 3600, {
    min: 600,
    minReason: 'Kubernetes minimum for TokenRequest',
    max: DAY,
  });
  const tokenRotationSeconds = durationSetting(p, 'tokenRotation', undefined, { min: 10, max: 2 * DAY });
  if (tokenRotationSeconds !== undefined && tokenRotationSeconds >= tokenTtlSeconds) {
    p.fail('tokenRotation', `must be less than tokenTtl (${tokenTtlSeconds}s), got ${tokenRotationSeconds}s`);
  }

  const profile: Profile = {
    name,
    source: p.source,
    targetNamespace: p.string('targetNamespace') ?? DEFAULT_TARGET_NAMESPACE,
    perUserNamespaces: [],
    autoCreateNamespace: p.boolean('autoCreateNamespace') ?? false,
    sparkSubmit,
    sparkConf: p.stringMap('sparkConf', { coerceScalars: true }) ?? {},
    tokenTtlSeconds,
    allowedNamespaces: p.regExp('allowedNamespaces') ?? /^dss-/,
    allowedUserGroups: p.stringList('allowedUserGroups') ?? [],
    minUid: p.nonNegativeInteger('minUid') ?? 1000,
    labels: p.stringMap('labels', { checkKey: isQualifiedName, checkValue: isLabelValue }) ?? {},
    annotations: p.stringMap('annotations', { checkKey: isQualifiedName }) ?? {},
    podSecurity: parsePodSecurity(p),
    allowedImagePullSecrets: p.stringList('allowedImagePullSecrets', { checkItem: isDnsSubdomain }) ?? [],
    executorRunAsUser: p.nonNegativeInteger('executorRunAsUser') ?? 185,
    // Timers above ~24.8 days overflow setTimeout, so these stay within a day.
    leaseRenewSeconds: durationSetting(p, 'leaseRenewSeconds', 30, { min: 1, max: DAY }),
    killGraceSeconds: durationSetting(p, 'killGrace', 10, { min: 0, max: DAY }),
    apiTimeoutSeconds: durationSetting(p, 'apiTimeout', 30, { min: 1, max: DAY }),
  };
  const kubeconfig = p.string('kubeconfig');
  const context = p.string('context');
  const tempDir = p.absolutePath('tempDir');
  const adminPropertiesFile = p.absolutePath('adminPropertiesFile');
  if (kubeconfig !== undefined) profile.kubeconfig = kubeconfig;
  if (context !== undefined) profile.context = context;
  if (tempDir !== undefined) profile.tempDir = tempDir;
  if (adminPropertiesFile !== undefined) profile.adminPropertiesFile = adminPropertiesFile;
  if (tokenRotationSeconds !== undefined) profile.tokenRotationSeconds = tokenRotationSeconds;
  // Passed to Kubernetes as they are: the apiserver validates them when the namespace is created.
  const resourceQuota = specSetting(p, 'resourceQuota', 'expected a ResourceQuota spec, e.g. {hard: {pods: "50"}}');
  const limitRange = specSetting(p, 'limitRange', 'expected a LimitRange spec, e.g. {limits: [{type: Container, default: {cpu: "1"}}]}');
  if (resourceQuota !== undefined) profile.resourceQuota = resourceQuota;
  if (limitRange !== undefined) profile.limitRange = limitRange;
  return profile;
}

function specSetting(p: MapReader, key: string, expected: string): Record<string, unknown> | undefined {
  const value = p.get(key);
  if (value === undefined) return undefined;
  p.map(key, expected); // fails, naming the key, unless it is a map
  return value as Record<string, unknown>;
}

function parsePodSecurity(profile: MapReader): PodSecurityLevels {
  const levels: PodSecurityLevels = { enforce: 'restricted', audit: 'restricted', warn: 'restricted' };
  if (profile.get('podSecurity') === undefined) return levels;
  const ps: MapReader = profile.map('podSecurity', 'expected a map with enforce, audit and/or warn');
  ps.rejectUnknownKeys([...POD_SECURITY_KEYS]);
  for (const mode of POD_SECURITY_KEYS) levels[mode] = ps.oneOf(mode, POD_SECURITY_LEVELS) ?? levels[mode];
  return levels;
}

function durationSetting<D extends number | undefined>(
  p: MapReader,
  key: string,
  fallback: D,
  range: { min: number; minReason?: string; max: number },
): number | D {
  const seconds = p.duration(key);
  if (seconds === undefined) return fallback;
  if (seconds < range.min) {
    const why = range.minReason === undefined ? '' : ` (${range.minReason})`;
    p.fail(key, `must be at least ${range.min}s${why}, got ${seconds}s`);
  }
  if (seconds > range.max) p.fail(key, `must be at most ${range.max}s, got ${seconds}s`);
  return seconds;
}

function parseYaml(text: string, source: string): unknown {
  let document: unknown;
  try {
    document = loadYaml(text);
  } catch (err) {
    const { name, mark, reason, message } = err as { name?: string; mark?: { line?: number }; reason?: string; message?: string };
    if (name === 'YAMLException') {
      const why = reason ?? String(message).split('\n')[0];
      // No mark for whole-stream problems: an empty file, several documents.
      const where = typeof mark?.line === 'number' ? ` at line ${mark.line + 1}` : '';
      throw configError(`${source}: invalid YAML${where}: ${why}`);
    }
    throw err;
  }
  // A falsy document: an empty file, "null", "0", "false".
  if (!document) throw configError(`${source}: expected a map with a "profiles" key at the top level, got a scalar`);
  return document;
}

type RawMap = Record<string, unknown>;

/** One map of the file (top level, a profile, podSecurity) with typed accessors that fail with the key path. */
class MapReader {
  readonly source: string;
  readonly path: string;
  readonly obj: RawMap;

  // No parameter properties: this file must stay runnable by Node's type stripping.
  constructor(source: string, path: string, value: unknown, expected: string) {
    if (!isMap(value)) throw configError(`${source}: ${path === '' ? '' : `${path}: `}${expected}, got ${show(value)}`);
    this.source = source;
    this.path = path;
    this.obj = value;
  }

  keyPath(key: string): string {
    const plain = key.length <= 60 && /^[A-Za-z_][A-Za-z0-9_]*$/.test(key);
    const part = plain ? key : `[${show(key)}]`;
    if (this.path === '') return part;
    return part.startsWith('[') ? `${this.path}${part}` : `${this.path}.${part}`;
  }

  fail(key: string, message: string): never {
    return this.failAt(this.keyPath(key), message);
  }

  failAt(keyPath: string, message: string): never {
    throw configError(`${this.source}: ${keyPath}: ${message}`);
  }

  /** The value, with YAML null (an empty value such as `labels:`) treated as unset. */
  get(key: string): unknown {
    const value = Object.hasOwn(this.obj, key) ? this.obj[key] : undefined;
    return value === null ? undefined : value;
  }

  rejectUnknownKeys(known: string[]): void {
    for (const key of Object.keys(this.obj)) {
      if (!known.includes(key)) this.fail(key, `unknown key; known keys: ${known.join(', ')}`);
    }
  }

  map(key: string, expected: string): MapReader {
    return new MapReader(this.source, this.keyPath(key), this.obj[key], expected);
  }

  string(key: string): string | undefined {
    const value = this.get(key);
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || value === '') this.fail(key, `expected a non-empty string, got ${show(value)}`);
    return value;
  }

  absolutePath(key: string): string | undefined {
    const value = this.get(key);
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || !value.startsWith('/')) this.fail(key, `expected an absolute path, got ${show(value)}`);
    return value;
  }

  boolean(key: string): boolean | undefined {
    const value = this.get(key);
    if (value === undefined) return undefined;
    if (typeof value !== 'boolean') this.fail(key, `expected true or false, got ${show(value)}`);
    return value;
  }

  nonNegativeInteger(key: string): number | undefined {
    const value = this.get(key);
    if (value === undefined) return undefined;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      this.fail(key, `expected a non-negative integer, got ${show(value)}`);
    }
    return value;
  }

  oneOf(key: string, choices: string[]): string | undefined {
    const value = this.get(key);
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || !choices.includes(value)) {
      this.fail(key, `expected one of ${choices.join(', ')}, got ${show(value)}`);
    }
    return value;
  }

  duration(key: string): number | undefined {
    const value = this.get(key);
    if (value === undefined) return undefined;
    if (typeof value !== 'string' && typeof value !== 'number') this.fail(key, `${DURATION_EXPECTED}, got ${show(value)}`);
    return parseDuration(value, this.keyPath(key), this.source);
  }

  regExp(key: string): RegExp | undefined {
    const pattern = this.string(key);
    if (pattern === undefined) return undefined;
    try {
      return new RegExp(pattern);
    } catch (err) {
      // V8 says "Invalid regular expression: /<pattern>/: <reason>"; keep the reason only.
      const message = (err as Error).message;
      const prefix = `Invalid regular expression: /${pattern}/: `;
      const reason = message.startsWith(prefix) ? message.slice(prefix.length) : message;
      return this.fail(key, `invalid regular expression ${show(pattern)}: ${reason}`);
    }
  }

  stringList(key: string, opts: { checkItem?: (item: string) => boolean } = {}): string[] | undefined {
    const value = this.get(key);
    if (value === undefined) return undefined;
    if (!Array.isArray(value)) this.fail(key, `expected a list of strings, got ${show(value)}`);
    return value.map((item: unknown, i) => {
      if (typeof item !== 'string' || item === '') this.failAt(`${this.keyPath(key)}[${i}]`, `expected a non-empty string, got ${show(item)}`);
      if (opts.checkItem && !opts.checkItem(item)) this.failAt(`${this.keyPath(key)}[${i}]`, `expected a Kubernetes object name, got ${show(item)}`);
      return item;
    });
  }

  stringMap(
    key: string,
    opts: { coerceScalars?: boolean; checkKey?: (k: string) => boolean; checkValue?: (v: string) => boolean } = {},
  ): Record<string, string> | undefined {
    if (this.get(key) === undefined) return undefined;
    const m: MapReader = this.map(key, 'expected a map of strings to strings');
    // Object.fromEntries defines own properties, so a "__proto__" key cannot reach the prototype.
    return Object.fromEntries(
      Object.entries(m.obj).map(([k, v]) => {
        if (opts.checkKey && !opts.checkKey(k)) {
          m.fail(k, 'invalid key; expected an optional DNS-subdomain prefix and "/", then up to 63 alphanumerics, "-", "_" or "."');
        }
        const coerced = opts.coerceScalars && (typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) ? String(v) : v;
        if (typeof coerced !== 'string') m.fail(k, `expected a string, got ${show(v)}`);
        if (opts.checkValue && !opts.checkValue(coerced)) {
          m.fail(k, `invalid value ${show(coerced)}; expected up to 63 alphanumerics, "-", "_" or ".", starting and ending with an alphanumeric`);
        }
        return [k, coerced];
      }),
    );
  }
}

function isMap(value: unknown): value is RawMap {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** A Kubernetes label or annotation key: `[prefix/]name`. */
/** A Kubernetes object name (DNS-1123 subdomain): what a Secret or PersistentVolume may be called. */
function isDnsSubdomain(name: string): boolean {
  return name.length <= 253 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(name);
}

function isQualifiedName(key: string): boolean {
  const slash = key.indexOf('/');
  const prefix = slash === -1 ? undefined : key.slice(0, slash);
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) return false;
  return name.length <= 63 && LABEL_NAME.test(name);
}

function isLabelValue(value: string): boolean {
  return value === '' || (value.length <= 63 && LABEL_NAME.test(value));
}

/** A value for a message: JSON-quoted, one line, truncated (a config value could be huge). */
function show(value: unknown): string {
  // Lists and maps are named, not printed: YAML aliases can make a few bytes expand into gigabytes.
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object' && value !== null) return 'a map';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** The message is one line even if the file path itself holds a newline. */
function configError(message: string): ConfigError {
  return new ConfigError(message.replace(/[\r\n]+/g, ' '));
}
