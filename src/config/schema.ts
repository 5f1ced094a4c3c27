// The schemas of every file the tool reads (the configuration, the admin properties file, a job directory's
// owner.json), written with valibot. Each schema carries its own messages, so that the first issue becomes one
// line: "<file>: <key path>: <what is expected>, got <value>". The defaults live here and nowhere else, and
// config.schema.json is generated from the same schemas (src/config/json-schema.ts).

import * as v from 'valibot';
import { isIP } from 'node:net';
import { readYaml } from './yaml.ts';
import { isDnsLabel } from '../plan/names.ts';
import { checkPodTemplate } from '../plan/pod-template.ts';

const DAY = 86400;
export const DEFAULT_TARGET_NAMESPACE = 'dss-ns-${dssUserLogin}';
const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const PROPERTY_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Control characters (a newline...) could split an error message that quotes the value. */
const CONTROL = /[\u0000-\u001f\u007f]/;
// Never privileged: dssuser's admission policy refuses such a namespace (a job there could reach the node).
const POD_SECURITY_LEVELS = ['baseline', 'restricted'] as const;
export const DURATION_EXPECTED = 'expected a duration such as 600, 90s, 10m, 1h or 1h30m';

/** The JSON Schema of the leaves valibot cannot describe (checks written as functions); read by json-schema.ts. */
export const jsonSchemaOf = new WeakMap<object, Record<string, unknown>>();

/** Registers the JSON Schema of a leaf: a custom() schema, or a pipe that starts with one. */
function leaf<S extends v.GenericSchema>(schema: S, jsonSchema: Record<string, unknown>): S {
  const first = 'pipe' in schema ? (schema.pipe as object[])[0]! : schema;
  jsonSchemaOf.set(first, jsonSchema);
  return schema;
}

/** A value for a message: JSON-quoted, one line, truncated (a config value could be huge). */
export function show(value: unknown): string {
  // Lists and maps are named, not printed: YAML aliases can make a few bytes expand into gigabytes.
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object' && value !== null) return 'a map';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

const got = (expected: string) => (issue: v.BaseIssue<unknown>) => `${expected}, got ${show(issue.input)}`;

type RawMap = Record<string, unknown>;

function isMap(value: unknown): value is RawMap {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const keyItem = (input: RawMap, key: string): v.ObjectPathItem => ({ type: 'object', origin: 'key', input, key, value: input[key] });

// valibot's records skip these keys silently; a setting that vanishes is worse than a refusal.
const RESERVED_KEYS = ['__proto__', 'constructor', 'prototype'];

/** A YAML map of free keys (labels, sparkConf, profiles, logins): any reserved key is refused, not dropped. */
function map(expected: string) {
  return v.pipe(
    v.custom<RawMap>(isMap, got(expected)),
    v.rawCheck<RawMap>(({ dataset, addIssue }) => {
      if (!dataset.typed) return;
      for (const key of Object.keys(dataset.value)) {
        if (RESERVED_KEYS.includes(key)) addIssue({ message: 'reserved key; use another name', path: [keyItem(dataset.value, key)] });
      }
    }),
  );
}

/**
 * A map of settings: unknown keys are refused first (naming the known ones), a YAML null counts as unset, and
 * `required` gives the message of each key that must be there.
 */
function settings<E extends v.ObjectEntries>(expected: string, entries: E, required: Partial<Record<keyof E, string>> = {}) {
  const known = Object.keys(entries);
  return v.pipe(
    v.custom<RawMap>(isMap, got(expected)),
    v.rawCheck<RawMap>(({ dataset, addIssue }) => {
      if (!dataset.typed) return;
      for (const key of Object.keys(dataset.value)) {
        if (!known.includes(key)) addIssue({ message: `unknown key; known keys: ${known.join(', ')}`, path: [keyItem(dataset.value, key)] });
      }
    }),
    v.transform((input: RawMap) => Object.fromEntries(Object.entries(input).filter(([, value]) => value !== null))),
    // The object's own message is only ever about a missing key: custom() and rawCheck() above have checked the
    // type and the keys. Strict, so that config.schema.json says additionalProperties: false.
    v.strictObject(entries, (issue) => required[(issue.path?.[0]?.key ?? '') as keyof E] ?? `required; ${expected}`),
  );
}

/** A key's documentation: shown by editors (config.schema.json) and read here instead of a comment. */
const doc = <S extends v.GenericSchema>(text: string, schema: S) => v.pipe(schema, v.description(text));

const nonEmptyString = leaf(
  v.custom<string>((x) => typeof x === 'string' && x !== '', got('expected a non-empty string')),
  {
    type: 'string',
    minLength: 1,
  },
);

const absolutePath = leaf(
  v.custom<string>((x) => typeof x === 'string' && x.startsWith('/'), got('expected an absolute path')),
  {
    type: 'string',
    pattern: '^/',
  },
);

const flag = v.boolean(got('expected true or false'));

const nonNegativeInteger = leaf(
  v.custom<number>((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0, got('expected a non-negative integer')),
  { type: 'integer', minimum: 0 },
);

/** Seconds from a number of seconds or a string such as "600", "90s", "10m", "1h", "1h30m", "2d"; undefined if not one. */
export function durationSeconds(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) {
    const seconds = Number(text);
    return Number.isSafeInteger(seconds) ? seconds : undefined;
  }
  const match = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text);
  if (text === '' || match === null) return undefined;
  const [days, hours, minutes, seconds] = match.slice(1).map((part) => Number(part ?? 0)) as [number, number, number, number];
  const total = days * DAY + hours * 3600 + minutes * 60 + seconds;
  return Number.isSafeInteger(total) ? total : undefined;
}

const DURATION_JSON = {
  anyOf: [
    { type: 'integer', minimum: 0 },
    { type: 'string', pattern: '^\\s*(\\d+|(\\d+d)?(\\d+h)?(\\d+m)?(\\d+s)?)\\s*$' },
  ],
};

/** A duration in seconds within [min, max]; `minReason` says why the minimum is what it is. */
function duration(min: number, max: number, minReason?: string) {
  const why = minReason === undefined ? '' : ` (${minReason})`;
  return leaf(
    v.pipe(
      v.custom<string | number>((x) => durationSeconds(x) !== undefined, got(DURATION_EXPECTED)),
      v.transform((x) => durationSeconds(x) as number),
      v.minValue(min, (issue) => `must be at least ${min}s${why}, got ${issue.input}s`),
      v.maxValue(max, (issue) => `must be at most ${max}s, got ${issue.input}s`),
    ),
    { ...DURATION_JSON, description: `seconds, or a duration such as 90s, 10m, 1h30m; from ${min}s to ${max}s` },
  );
}

const regExp = leaf(
  v.pipe(
    v.custom<string>((x) => typeof x === 'string' && x !== '', got('expected a non-empty string')),
    v.rawTransform(({ dataset, addIssue, NEVER }) => {
      try {
        return new RegExp(dataset.value);
      } catch (error) {
        // V8 says "Invalid regular expression: /<pattern>/: <reason>"; keep the reason only.
        const message = (error as Error).message;
        const prefix = `Invalid regular expression: /${dataset.value}/: `;
        const reason = message.startsWith(prefix) ? message.slice(prefix.length) : message;
        addIssue({ message: `invalid regular expression ${show(dataset.value)}: ${reason}` });
        return NEVER;
      }
    }),
  ),
  { type: 'string', format: 'regex', minLength: 1 },
);

/** A Kubernetes label or annotation key: `[prefix/]name`. */
export function isQualifiedName(key: string): boolean {
  const slash = key.indexOf('/');
  const prefix = slash === -1 ? undefined : key.slice(0, slash);
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) return false;
  return name.length <= 63 && LABEL_NAME.test(name);
}

export function isLabelValue(value: string): boolean {
  return value === '' || (value.length <= 63 && LABEL_NAME.test(value));
}

/** A Kubernetes object name (DNS-1123 subdomain): what a Secret or PersistentVolume may be called. */
function isDnsSubdomain(name: string): boolean {
  return name.length <= 253 && DNS_SUBDOMAIN.test(name);
}

export const QUALIFIED_NAME_EXPECTED = 'expected an optional DNS-subdomain prefix and "/", then up to 63 alphanumerics, "-", "_" or "."';
export const LABEL_VALUE_EXPECTED = 'expected up to 63 alphanumerics, "-", "_" or ".", starting and ending with an alphanumeric';

const qualifiedNameKey = v.pipe(v.string(), v.check(isQualifiedName, `invalid key; ${QUALIFIED_NAME_EXPECTED}`));
const stringValue = v.string(got('expected a string'));

function stringMap<K extends v.GenericSchema<string, string>, V extends v.GenericSchema<unknown, string>>(key: K, value: V) {
  return v.pipe(map('expected a map of strings to strings'), v.record(key, value));
}

const labels = stringMap(
  qualifiedNameKey,
  v.pipe(
    stringValue,
    v.check(isLabelValue, (issue) => `invalid value ${show(issue.input)}; ${LABEL_VALUE_EXPECTED}`),
  ),
);
const annotations = stringMap(qualifiedNameKey, stringValue);

// Spark reads every conf as text: YAML's numbers and booleans (instances: 2) are written back as text.
const sparkConfValue = leaf(
  v.pipe(
    v.custom<string | number | boolean>(
      (x) => typeof x === 'string' || typeof x === 'boolean' || (typeof x === 'number' && Number.isFinite(x)),
      got('expected a string'),
    ),
    v.transform(String),
  ),
  { type: ['string', 'number', 'boolean'] },
);

function stringList(item: v.GenericSchema<unknown, string>) {
  return v.array(item, got('expected a list of strings'));
}

const imagePullSecretName = v.pipe(nonEmptyString, v.check(isDnsSubdomain, got('expected a Kubernetes object name')));

/** A Kubernetes spec passed as it is: the apiserver validates it when the namespace is created. */
function spec(expected: string) {
  return leaf(v.custom<RawMap>(isMap, got(expected)), { type: 'object' });
}

/**
 * An executor pod template: a Pod as a map, or as YAML text (what DSS's "Executor pod YAML" field holds). The
 * refusals (src/plan/pod-template.ts) name the field, e.g. executorPodTemplate.spec.volumes[0].hostPath.
 */
const executorPodTemplate = leaf(
  v.pipe(
    v.custom<RawMap | string>((x) => isMap(x) || typeof x === 'string', got('expected a Pod, as a map or as YAML text')),
    v.rawTransform(({ dataset, addIssue, NEVER }) => {
      let pod: unknown = dataset.value;
      if (typeof pod === 'string') {
        const read = readYaml(pod, 'its line');
        if ('problem' in read) {
          addIssue({ message: read.problem });
          return NEVER;
        }
        pod = read.document;
      }
      const refusal = checkPodTemplate(pod);
      if (refusal === undefined) return pod as RawMap;
      const [first, ...rest] = refusal.path.map((key): v.UnknownPathItem => ({ type: 'unknown', origin: 'value', input: pod, key, value: undefined }));
      addIssue({ message: refusal.reason, ...(first ? { path: [first, ...rest] } : {}) });
      return NEVER;
    }),
  ),
  {
    anyOf: [
      { type: 'object', description: 'a Pod' },
      { type: 'string', description: 'a Pod as YAML text' },
    ],
  },
);

/** An IPv4 or IPv6 CIDR such as 192.0.2.10/32 or 10.0.0.0/8 (what a NetworkPolicy ipBlock takes). */
export function isCidr(text: string): boolean {
  const [address, bits, ...rest] = text.split('/');
  if (rest.length > 0 || address === undefined || bits === undefined || !/^\d{1,3}$/.test(bits)) return false;
  const family = isIP(address);
  return family !== 0 && Number(bits) <= (family === 4 ? 32 : 128);
}

const cidr = v.pipe(nonEmptyString, v.check(isCidr, got('expected a CIDR such as 192.0.2.10/32')));
const cidrList = v.array(cidr, got('expected a list of CIDRs'));
const port = leaf(
  v.custom<number>((x) => Number.isSafeInteger(x) && (x as number) >= 1 && (x as number) <= 65535, got('expected a port, 1 to 65535')),
  {
    type: 'integer',
    minimum: 1,
    maximum: 65535,
  },
);

/** "40000-40127" or one port: the range the tool takes spark.driver.port and spark.blockManager.port from. */
export function parsePortRange(value: unknown): { from: number; to: number } | undefined {
  const text = typeof value === 'number' ? String(value) : value;
  if (typeof text !== 'string') return undefined;
  const match = /^\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?$/.exec(text);
  if (match === null) return undefined;
  const from = Number(match[1]);
  const to = Number(match[2] ?? match[1]);
  return from >= 1024 && to <= 65535 && from <= to ? { from, to } : undefined;
}

const portRange = leaf(
  v.pipe(
    v.custom<string | number>((x) => parsePortRange(x) !== undefined, got('expected ports such as 40000-40127 (from 1024 to 65535)')),
    v.transform((x) => parsePortRange(x) as { from: number; to: number }),
  ),
  {
    anyOf: [
      { type: 'string', pattern: '^\\s*\\d{4,5}\\s*(-\\s*\\d{4,5}\\s*)?$' },
      { type: 'integer', minimum: 1024, maximum: 65535 },
    ],
  },
);

const egressRule = settings(
  'expected a map with cidr and ports',
  {
    cidr: doc('where executors may connect', cidr),
    ports: v.optional(doc('TCP ports (default: all)', v.array(port, got('expected a list of ports'))), []),
  },
  { cidr: 'required; expected a CIDR such as 10.1.0.0/16' },
);

/** The NetworkPolicies of auto-created namespaces (src/plan/network-policy.ts builds them). */
const networkPolicy = settings('expected a map with enabled, driverAddresses, driverPorts and/or egress', {
  enabled: v.optional(doc('create the NetworkPolicies on auto-created namespaces', flag), true),
  driverAddresses: v.optional(
    doc(
      "where drivers run (the DSS hosts), as CIDRs; default: spark.driver.host of the profile's sparkConf (not a loopback one), else this host's addresses",
      cidrList,
    ),
  ),
  driverPorts: v.optional(doc('the ports of the drivers (spark.driver.port, spark.blockManager.port, managed by the tool)', portRange), '40000-40127'),
  egress: v.optional(
    doc(
      'where else executors may connect (default: DNS, the driver and their own namespace only)',
      v.array(egressRule, got('expected a list of {cidr, ports}')),
    ),
    [],
  ),
});

const podSecurityLevel = v.picklist(POD_SECURITY_LEVELS, got(`expected one of ${POD_SECURITY_LEVELS.join(', ')}`));

const podSecurity = settings('expected a map with enforce, audit and/or warn', {
  enforce: v.optional(podSecurityLevel, 'restricted'),
  audit: v.optional(podSecurityLevel, 'restricted'),
  warn: v.optional(podSecurityLevel, 'restricted'),
});

/** One profile as written in the file; keys in the order the "known keys" message lists them. */
const profileEntries = {
  targetNamespace: v.optional(
    doc('namespace template: ${dssUserLogin} (one namespace per user), ${adminProperty:NAME} (per team) and literal text', nonEmptyString),
    DEFAULT_TARGET_NAMESPACE,
  ),
  autoCreateNamespace: v.optional(doc('create the namespace (with its guardrails) when it does not exist', flag), false),
  sparkSubmit: doc('absolute path of spark-submit, run as the end user', absolutePath),
  sparkConf: v.optional(
    doc("default Spark confs (e.g. spark.kubernetes.container.image); the caller's --conf wins", stringMap(v.string(), sparkConfValue)),
    {},
  ),
  tokenTtl: v.optional(doc('requested TokenRequest lifetime; the server may grant less', duration(600, DAY, 'Kubernetes minimum for TokenRequest')), 3600),
  allowedNamespaces: v.optional(doc('a regular expression every target namespace must match', regExp), '^dss-'),
  allowedUserGroups: v.optional(doc('when not empty, the end user must belong to one of these Unix groups', stringList(nonEmptyString)), []),
  minUid: v.optional(doc('end users below this uid are refused', nonNegativeInteger), 1000),
  labels: v.optional(doc("extra labels on every object of a job; the tool's own labels always win", labels), {}),
  annotations: v.optional(doc("extra annotations on every object of a job; the tool's own always win", annotations), {}),
  kubeconfig: v.optional(doc("dssuser's own kubeconfig (default: KUBECONFIG, ~/.kube/config, in-cluster)", nonEmptyString)),
  context: v.optional(doc("the context of dssuser's kubeconfig to use", nonEmptyString)),
  tempDir: v.optional(doc('where per-job directories are made (default: the OS temp directory)', absolutePath)),
  adminPropertiesFile: v.optional(doc('YAML file mapping each login to its admin properties, for ${adminProperty:NAME}', absolutePath)),
  podSecurity: v.optional(doc('Pod Security Admission levels of auto-created namespaces (never privileged)', podSecurity), {}),
  resourceQuota: v.optional(doc('ResourceQuota spec given to auto-created namespaces', spec('expected a ResourceQuota spec, e.g. {hard: {pods: "50"}}'))),
  limitRange: v.optional(
    doc('LimitRange spec given to auto-created namespaces', spec('expected a LimitRange spec, e.g. {limits: [{type: Container, default: {cpu: "1"}}]}')),
  ),
  networkPolicy: v.optional(
    doc('NetworkPolicies of auto-created namespaces: no ingress from other namespaces, egress to DNS and the driver', networkPolicy),
    {},
  ),
  allowedImagePullSecrets: v.optional(
    doc('image pull secrets executor pods may name (written on auto-created namespaces for the isolation policy)', stringList(imagePullSecretName)),
    [],
  ),
  executorPodTemplate: v.optional(
    doc('executor pod template (nodeSelector, tolerations, resources...) merged under the managed one, which always wins', executorPodTemplate),
  ),
  executorRunAsUser: v.optional(doc('uid of the executor containers (restricted Pod Security needs a numeric non-root user)', nonNegativeInteger), 185),
  // Timers above ~24.8 days overflow setTimeout, so these stay within a day.
  leaseRenewSeconds: v.optional(doc('liveness Lease renewal interval; a Lease not renewed for 4 intervals marks an orphan', duration(1, DAY)), 30),
  tokenRotation: v.optional(doc('rotate the token after this long (default: 80 % of the granted lifetime)', duration(10, 2 * DAY))),
  killGrace: v.optional(doc('grace period between forwarding a signal to spark-submit and killing it', duration(0, DAY)), 10),
  apiTimeout: v.optional(doc('timeout of each Kubernetes API request', duration(1, DAY)), 30),
};

const profileSettings = v.pipe(
  settings('expected a map of profile settings', profileEntries, { sparkSubmit: 'required; expected the absolute path of spark-submit' }),
  v.forward(
    v.check(
      (p) => p.tokenRotation === undefined || p.tokenRotation < p.tokenTtl,
      (issue) => {
        const p = issue.input as { tokenRotation: number; tokenTtl: number };
        return `must be less than tokenTtl (${p.tokenTtl}s), got ${p.tokenRotation}s`;
      },
    ),
    ['tokenRotation'],
  ),
  // The file's names of durations are short; the program's say their unit.
  v.transform(({ tokenTtl, tokenRotation, killGrace, apiTimeout, ...rest }) => {
    const durations: { tokenTtlSeconds: number; tokenRotationSeconds?: number; killGraceSeconds: number; apiTimeoutSeconds: number } = {
      tokenTtlSeconds: tokenTtl,
      killGraceSeconds: killGrace,
      apiTimeoutSeconds: apiTimeout,
    };
    if (tokenRotation !== undefined) durations.tokenRotationSeconds = tokenRotation;
    return { ...rest, ...durations };
  }),
);

const PROFILES_EXPECTED = 'expected a non-empty map of profile names to settings';
const profileName = v.pipe(
  v.string(),
  v.regex(PROFILE_NAME, 'invalid profile name; expected letters, digits, "_", "." or "-", starting with a letter or digit'),
);

export const configFileSchema = settings(
  'expected a map with a "profiles" key at the top level',
  {
    defaultProfile: v.optional(doc('the profile of a job run without --profile (default: "default")', nonEmptyString)),
    profiles: v.pipe(
      map(PROFILES_EXPECTED),
      v.check((profiles) => Object.keys(profiles).length > 0, `${PROFILES_EXPECTED}, got {}`),
      v.record(profileName, profileSettings),
    ),
  },
  { profiles: `required; ${PROFILES_EXPECTED}` },
);

/** A profile's settings once read: the file's keys, the defaults filled in, durations in seconds. */
export type ProfileSettings = v.InferOutput<typeof profileSettings>;
export type ConfigFile = v.InferOutput<typeof configFileSchema>;

/** `{ <login>: { <NAME>: <string> } }`: what `${adminProperty:NAME}` reads for jobs started by hand. */
export const adminPropertiesFileSchema = v.pipe(
  map('expected a map of logins to maps of admin properties'),
  v.record(
    v.string(),
    v.nullish(
      v.pipe(
        map('expected a map of admin property names to values'),
        v.record(
          v.pipe(v.string(), v.regex(PROPERTY_NAME, 'invalid admin property name; use letters, digits, "_", "." or "-"'), v.maxLength(253)),
          // Numbers and booleans are refused, not converted: YAML would turn 0123 or 1e3 into another text.
          v.pipe(
            v.string((issue) => `expected a string, got ${show(issue.input)}; quote the value`),
            v.check((value) => !CONTROL.test(value), 'the value contains a control character (a newline?)'),
          ),
        ),
      ),
      () => ({}),
    ),
  ),
);

/** owner.json in a job directory: the process that runs the job, and the job. Extra keys are ignored. */
export const jobOwnerSchema = v.pipe(
  v.custom<RawMap>(isMap, got('expected a JSON object')),
  v.object(
    {
      jobId: nonEmptyString,
      host: v.string(got('expected a string')),
      pid: v.pipe(v.number(got('expected an integer')), v.safeInteger(got('expected an integer'))),
      processStart: v.string(got('expected a string')),
      namespace: v.string(got('expected a string')),
      /** The job's account (base name), which names the job in the cluster; absent in directories of older versions. */
      serviceAccount: v.optional(v.pipe(v.string(got('expected a ServiceAccount name')), v.check(isDnsLabel, got('expected a ServiceAccount name')))),
    },
    'required; owner.json names the jobId, host, pid, processStart and namespace of its job',
  ),
);

export type JobOwner = v.InferOutput<typeof jobOwnerSchema>;

/** The key path of an issue as a reader writes it: profiles.default.labels["a/b"], allowedUserGroups[0]. */
export function keyPath(issue: v.BaseIssue<unknown>): string {
  let path = '';
  for (const item of issue.path ?? []) {
    const key = item.key;
    if (typeof key === 'number') path += `[${key}]`;
    else if (typeof key === 'string' && key.length <= 60 && /^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) path += path === '' ? key : `.${key}`;
    else path += `[${show(key)}]`;
  }
  return path;
}

/** The value `schema` reads from `input`, or a one-line error made by `fail` from the first issue. */
export function parseWith<S extends v.GenericSchema>(schema: S, input: unknown, fail: (where: string, message: string) => Error): v.InferOutput<S> {
  const result = v.safeParse(schema, input, { abortEarly: true, abortPipeEarly: true });
  if (result.success) return result.output;
  const issue = result.issues[0];
  throw fail(keyPath(issue), issue.message);
}
