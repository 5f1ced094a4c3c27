// Names of everything a job creates: user slugs, namespaces, job ids and object base names. Pure functions.

import { createHash } from 'node:crypto';
import type { Profile } from '../config/types.ts';
import { ConfigError, RefusedError, UsageError } from '../errors.ts';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_LABEL_MAX = 63;
// 80 bits: a login chosen to collide with another user's would take ~2^80 hashes.
const HASH_LENGTH = 16;
/** Separates a slug from its hash. A slug never contains "--" otherwise (runs collapse to one "-"). */
const HASH_SEPARATOR = '--';
/** Spark refuses an executor pod name prefix longer than 47 characters; the base name is used as that prefix. */
export const BASE_NAME_MAX = 47;
const BASE_PREFIX = 'dss-spark-';
const JOB_ID_LENGTH = 10;

/** The first `length` base32 characters (5 bits each, DNS-safe) of sha256(text). */
function sha256Base32(text: string, length: number): string {
  let bits = 0n;
  for (const byte of createHash('sha256')
    .update(text, 'utf8')
    .digest()
    .subarray(0, Math.ceil((length * 5) / 8)))
    bits = (bits << 8n) | BigInt(byte);
  const total = BigInt(Math.ceil((length * 5) / 8) * 8);
  let out = '';
  for (let i = 1; i <= length; i++) out += BASE32[Number((bits >> (total - BigInt(i * 5))) & 31n)];
  return out;
}

function trimDashes(text: string): string {
  return text.replace(/^-+/, '').replace(/-+$/, '');
}

export function isDnsLabel(text: string): boolean {
  return text.length <= DNS_LABEL_MAX && DNS_LABEL.test(text);
}

/**
 * A DNS-1123 friendly slug of a login. A login that is already a clean slug is kept as is; any other login gets
 * "--" + 16 base32 characters (80 bits) of sha256(login) appended. Clean slugs never contain "--", so a hashed slug can never equal the slug
 * of another, clean login (`John.Doe`, `john.doe` and `john-doe` all differ).
 */
export function loginToSlug(login: string, maxLength = 40): string {
  const slug = trimDashes(login.toLowerCase().replace(/[^a-z0-9]+/g, '-'));
  if (slug === login && slug.length > 0 && slug.length <= maxLength) return slug;
  const room = maxLength - HASH_SEPARATOR.length - HASH_LENGTH;
  if (room < 1) throw new Error(`loginToSlug: maxLength ${maxLength} leaves no room for the hash`);
  // "x" keeps the separator when nothing usable is left, so a bare hash can never equal a login.
  const head = trimDashes(slug.slice(0, room)) || 'x';
  return `${head}${HASH_SEPARATOR}${sha256Base32(login, HASH_LENGTH)}`;
}

export interface TemplateVars {
  login: string;
  adminProperties: Record<string, string>;
}

/** Expands `${dssUserLogin}` (slugged) and `${adminProperty:NAME}` (as is) in one pass. */
export function expandNamespaceTemplate(template: string, vars: TemplateVars): string {
  let out = '';
  let pos = 0;
  for (;;) {
    const start = template.indexOf('${', pos);
    if (start < 0) return out + template.slice(pos);
    const end = template.indexOf('}', start + 2);
    if (end < 0) {
      throw new ConfigError(`namespace template "${template}": "\${" at position ${start} is not closed; write \${dssUserLogin} or \${adminProperty:NAME}`);
    }
    out += template.slice(pos, start) + expandVariable(template, template.slice(start + 2, end), vars);
    pos = end + 1;
  }
}

function expandVariable(template: string, variable: string, vars: TemplateVars): string {
  if (variable === 'dssUserLogin') return loginToSlug(vars.login);
  const property = /^adminProperty:(.+)$/.exec(variable)?.[1];
  if (property === undefined) {
    throw new ConfigError(`namespace template "${template}": unknown variable "\${${variable}}"; use \${dssUserLogin} or \${adminProperty:NAME}`);
  }
  const value = Object.hasOwn(vars.adminProperties, property) ? vars.adminProperties[property] : undefined;
  if (!value) {
    throw new RefusedError(
      `user "${vars.login}" has no admin property "${property}" (needed by the namespace template "${template}"); ` +
        `set it for this user or pass --admin-property ${property}=VALUE`,
    );
  }
  return value;
}

function isSystemNamespace(ns: string): boolean {
  return ns === 'default' || ns.startsWith('kube-') || ns === 'openshift' || ns.startsWith('openshift-');
}

/** Refuses a namespace that is not a DNS-1123 label, is a system namespace, or is not allowed by the profile. */
export function validateNamespace(ns: string, allowed: RegExp, source: string): string {
  if (ns.length > DNS_LABEL_MAX) {
    throw new RefusedError(
      `namespace "${ns}" (from ${source}) is ${ns.length} characters long, more than 63; shorten the namespace template or the admin property it uses`,
    );
  }
  if (!DNS_LABEL.test(ns)) {
    throw new RefusedError(
      `namespace "${ns}" (from ${source}) is not a valid Kubernetes namespace name; use lowercase letters, digits and '-', starting and ending with a letter or digit`,
    );
  }
  if (isSystemNamespace(ns)) {
    throw new RefusedError(
      `namespace "${ns}" (from ${source}) is a system namespace and may not run jobs; point the namespace template at a dedicated namespace`,
    );
  }
  // search() ignores the g flag and lastIndex, unlike test().
  if (ns.search(allowed) < 0) {
    throw new RefusedError(`namespace "${ns}" does not match the allowed pattern ${allowed} of ${source}; change the namespace template or allowedNamespaces`);
  }
  return ns;
}

export function resolveNamespace(profile: Profile, ctx: TemplateVars): string {
  const ns = expandNamespaceTemplate(profile.targetNamespace, ctx);
  const source = `profile "${profile.name}" in ${profile.source}`;
  validateNamespace(ns, profile.allowedNamespaces, source);
  // A property names a team namespace: it may never name a user's own (another user's private namespace).
  if (!isPerUserTemplate(profile.targetNamespace)) {
    const reserved = profile.perUserNamespaces.find((pattern) => pattern.test(ns));
    if (reserved) {
      throw new RefusedError(
        `namespace "${ns}" (from ${source}) has the shape of a per-user namespace (${reserved}) and may not be a team namespace; give the team a namespace outside that pattern`,
      );
    }
  }
  return ns;
}

const LOGIN_VARIABLE = '${dssUserLogin}';

/** A template with the login in it gives each user a namespace of their own. */
export function isPerUserTemplate(template: string): boolean {
  return template.includes(LOGIN_VARIABLE);
}

/** The namespaces a per-user template can give: any slug for the login, anything for an admin property. */
export function perUserNamespacePattern(template: string): RegExp {
  const parts = template.split(/(\$\{[^}]*\})/).map((part) => {
    if (part === LOGIN_VARIABLE) return '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
    if (part.startsWith('${')) return '.+';
    return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  });
  return new RegExp(`^${parts.join('')}$`);
}

export function validateJobId(id: string): string {
  if (!isDnsLabel(id)) {
    throw new UsageError(`--job-id "${id}": must be lowercase letters, digits and '-', at most 63 characters`);
  }
  // Job accounts are named <base> and executor accounts <base>-exec: an id ending in "exec" could make one
  // job's account the executor account of another user's job.
  if (id === 'exec' || id.endsWith('-exec')) throw new UsageError(`--job-id "${id}": must not be "exec" or end in "-exec" (reserved for executor accounts)`);
  return id;
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** 10 lowercase base32 characters (50 bits) from at least 7 random bytes. */
export function generateJobId(randomBytes: Buffer): string {
  if (randomBytes.length < 7) throw new Error(`generateJobId needs 7 random bytes, got ${randomBytes.length}`);
  let bits = 0n;
  for (const byte of randomBytes.subarray(0, 7)) bits = (bits << 8n) | BigInt(byte);
  let id = '';
  for (let i = 0; i < JOB_ID_LENGTH; i++) {
    id += BASE32[Number(bits & 31n)];
    bits >>= 5n;
  }
  return id;
}

/**
 * `dss-spark-<hash>-<user>-<job>`: a DNS-1123 label of at most BASE_NAME_MAX characters, used for the job
 * ServiceAccount, RoleBinding, Lease, anchor Secrets (`<base>-t<n>`) and as Spark's executor pod name prefix.
 * `<hash>` is 16 base32 characters (80 bits) of sha256(user slug, job id) at a fixed position: distinct
 * (login, job id) pairs get distinct names, and no name, nor any name derived from it (`<base>-exec`,
 * `<base>-exec-<n>`, `<base>-t<n>`), is a prefix of another job's unless both hashes are equal. The user and
 * job part after it is only there for people and may be cut.
 */
export function jobBaseName(userSlug: string, jobId: string): string {
  const hash = sha256Base32(`${userSlug}/${jobId}`, HASH_LENGTH);
  const readable = trimDashes(`${userSlug}-${jobId}`.replace(/-+/g, '-').slice(0, BASE_NAME_MAX - BASE_PREFIX.length - HASH_LENGTH - 1));
  return readable ? `${BASE_PREFIX}${hash}-${readable}` : `${BASE_PREFIX}${hash}`;
}

export function executorServiceAccountName(baseName: string): string {
  return `${baseName}-exec`;
}
