// Per-user admin properties, for the namespace template's `${adminProperty:NAME}` (team mode). Two sources:
//   - `--admin-property NAME=VALUE` (repeatable), passed by the job runner (DSS) with the user's live values;
//   - the profile's `adminPropertiesFile`, for jobs started by hand: YAML mapping each login to its properties,
//       alice: { k8sNS: dss-team-analytics }
//       bob:   { k8sNS: dss-team-finance }
// A flag wins over the file for the same NAME: the job runner passes the value it holds now, the file may lag.
// Whatever the value, the namespace it makes is validated like any other (DNS-1123, allowedNamespaces, never a
// system namespace): a property cannot send a job into kube-system.

import { readFileSync, statSync } from 'node:fs';
import { load as loadYaml } from 'js-yaml';
import type { Profile } from '../config/types.ts';
import { ConfigError, UsageError } from '../errors.ts';

/** Letters, digits, "_", "." and "-", starting with a letter or digit (what DSS admin property names use). */
const PROPERTY_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const NAME_MAX = 253;

export type AdminProperties = Record<string, string>;

/** Control characters (a newline...) could split an error message that quotes the value. */
const CONTROL = /[\u0000-\u001f\u007f]/;

function isPropertyName(name: string): boolean {
  return name.length <= NAME_MAX && PROPERTY_NAME.test(name);
}

/** Parses `--admin-property NAME=VALUE` flags. The value may be empty and may contain "=". */
export function parseAdminPropertyFlags(flags: readonly string[]): AdminProperties {
  const properties: AdminProperties = {};
  for (const flag of flags) {
    const eq = flag.indexOf('=');
    const name = eq < 0 ? flag : flag.slice(0, eq);
    if (eq < 0 || !isPropertyName(name)) {
      // Only the name is echoed: values are the runner's business.
      throw new UsageError(`--admin-property ${JSON.stringify(name.slice(0, 60))}: expected NAME=VALUE, NAME made of letters, digits, "_", "." or "-"`);
    }
    if (Object.hasOwn(properties, name)) throw new UsageError(`--admin-property ${name} is given twice; pass each property once`);
    const value = flag.slice(eq + 1);
    if (CONTROL.test(value)) throw new UsageError(`--admin-property ${name}: the value contains a control character (a newline?)`);
    properties[name] = value;
  }
  return properties;
}

/** The properties of one login in an admin properties file; the whole file is checked, whoever asks. */
export function loadAdminPropertiesFile(path: string, login: string): AdminProperties {
  const all = parseAdminPropertiesFile(readPropertiesFile(path), path);
  return Object.hasOwn(all, login) ? all[login]! : {};
}

function readPropertiesFile(path: string): string {
  try {
    // Whoever can write this file chooses other users' namespaces: refuse one that anybody can write.
    if ((statSync(path).mode & 0o002) !== 0) {
      throw new ConfigError(`${path}: the admin properties file is writable by every user; make it writable by its owner only (chmod o-w)`);
    }
    return readFileSync(path, 'utf8');
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    const reason = String((error as Error).message).replace(/, \w+ '.*'$/s, '');
    throw new ConfigError(`${path}: cannot read the admin properties file (${reason}); create it or remove adminPropertiesFile from the profile`);
  }
}

/** `{ <login>: { <NAME>: <string> } }`; an empty file has no properties. */
export function parseAdminPropertiesFile(text: string, source: string): Record<string, AdminProperties> {
  const fail = (where: string, message: string): never => {
    throw new ConfigError(`${source}: ${where}${message}`.replace(/[\r\n]+/g, ' '));
  };
  if (text.trim() === '') return {};
  let document: unknown;
  try {
    document = loadYaml(text);
  } catch (error) {
    const { name, mark, reason } = error as { name?: string; mark?: { line?: number }; reason?: string };
    if (name === 'YAMLException') {
      const where = typeof mark?.line === 'number' ? ` at line ${mark.line + 1}` : '';
      return fail('', `invalid YAML${where}: ${reason ?? 'parse error'}`);
    }
    throw error;
  }
  if (!document) return fail('', 'expected a map of logins to maps of admin properties, got a scalar');
  if (!isMap(document)) return fail('', `expected a map of logins to maps of admin properties, got ${describe(document)}`);
  const result: [string, AdminProperties][] = [];
  for (const [login, properties] of Object.entries(document)) {
    const at = `${JSON.stringify(login.slice(0, 60))}: `;
    if (properties === null) {
      result.push([login, {}]);
      continue;
    }
    if (!isMap(properties)) return fail(at, `expected a map of admin property names to values, got ${describe(properties)}`);
    const own: AdminProperties = {};
    for (const [name, value] of Object.entries(properties)) {
      if (!isPropertyName(name))
        return fail(`${at}${JSON.stringify(name.slice(0, 60))}: `, 'invalid admin property name; use letters, digits, "_", "." or "-"');
      // Numbers and booleans are refused, not converted: YAML would turn 0123 or 1e3 into another text.
      if (typeof value !== 'string') return fail(`${at}${name}: `, `expected a string, got ${describe(value)}; quote the value`);
      if (CONTROL.test(value)) return fail(`${at}${name}: `, 'the value contains a control character (a newline?)');
      own[name] = value;
    }
    result.push([login, own]);
  }
  // fromEntries defines own properties: a login such as "__proto__" cannot reach the prototype.
  return Object.fromEntries(result);
}

/**
 * The admin properties of `login`: the profile's file, overridden name by name by `--admin-property` flags.
 * The file is read only when the profile names one.
 */
export function resolveAdminProperties(login: string, flags: readonly string[], profile: Pick<Profile, 'adminPropertiesFile'>): AdminProperties {
  const fromFlags = parseAdminPropertyFlags(flags);
  const fromFile = profile.adminPropertiesFile ? loadAdminPropertiesFile(profile.adminPropertiesFile, login) : {};
  return { ...fromFile, ...fromFlags };
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (value === null) return 'nothing';
  return typeof value === 'object' ? 'a map' : `${typeof value} ${JSON.stringify(value)}`.slice(0, 60);
}
