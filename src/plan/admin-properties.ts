// Per-user admin properties, for the namespace template's `${adminProperty:NAME}` (team mode). Two sources:
//   - `--admin-property NAME=VALUE` (repeatable), passed by the job runner (DSS) with the user's live values;
//   - the profile's `adminPropertiesFile`, for jobs started by hand: YAML mapping each login to its properties,
//       alice: { k8sNS: dss-team-analytics }
//       bob:   { k8sNS: dss-team-finance }
// A flag wins over the file for the same NAME: the job runner passes the value it holds now, the file may lag.
// Whatever the value, the namespace it makes is validated like any other (DNS-1123, allowedNamespaces, never a
// system namespace): a property cannot send a job into kube-system.

import { readFileSync, statSync } from 'node:fs';
import { readYaml } from '../config/yaml.ts';
import { adminPropertiesFileSchema, parseWith } from '../config/schema.ts';
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

/** `{ <login>: { <NAME>: <string> } }` (src/config/schema.ts); an empty file has no properties. */
export function parseAdminPropertiesFile(text: string, source: string): Record<string, AdminProperties> {
  const fail = (where: string, message: string) => new ConfigError(`${source}: ${where === '' ? '' : `${where}: `}${message}`.replace(/[\r\n]+/g, ' '));
  if (text.trim() === '') return {};
  const read = readYaml(text);
  if ('problem' in read) throw fail('', read.problem);
  if (!read.document) throw fail('', 'expected a map of logins to maps of admin properties, got a scalar');
  return parseWith(adminPropertiesFileSchema, read.document, fail);
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
