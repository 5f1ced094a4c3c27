// Reads and validates the configuration file. Every failure is a ConfigError with a one-line message
// naming the file, the key path and what was expected.

import { readFileSync } from 'node:fs';
import { readYaml } from './yaml.ts';
import { ConfigError } from '../errors.ts';
import { isPerUserTemplate, perUserNamespacePattern } from '../plan/names.ts';
import { configFileSchema, DEFAULT_TARGET_NAMESPACE, DURATION_EXPECTED, durationSeconds, parseWith, show } from './schema.ts';
import type { Config, Profile } from './types.ts';

export const DEFAULT_CONFIG_PATH = '/etc/dss-spark-k8s/config.yaml';
export const CONFIG_ENV_VAR = 'DSS_SPARK_K8S_CONFIG';

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
  const file = parseWith(configFileSchema, parseYaml(text, source), (where, message) =>
    configError(`${source}: ${where === '' ? '' : `${where}: `}${message}`),
  );
  const names = Object.keys(file.profiles);
  // Every per-user namespace this configuration can give (the default template's too): none may be a team namespace.
  const templates = new Set([DEFAULT_TARGET_NAMESPACE, ...Object.values(file.profiles).map((p) => p.targetNamespace)]);
  const perUser = [...templates].filter(isPerUserTemplate);
  const profiles: Record<string, Profile> = Object.fromEntries(
    Object.entries(file.profiles).map(([name, settings]) => [name, { ...settings, name, source, perUserNamespaces: perUser.map(perUserNamespacePattern) }]),
  );
  // An implicit "default" that does not exist is only an error when a job relies on it (see selectProfile).
  if (file.defaultProfile !== undefined && !Object.hasOwn(profiles, file.defaultProfile)) {
    throw configError(`${source}: defaultProfile: ${show(file.defaultProfile)} is not a profile; known profiles: ${names.join(', ')}`);
  }
  return { source, defaultProfile: file.defaultProfile ?? 'default', profiles };
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
  const seconds = durationSeconds(value);
  if (seconds === undefined) throw configError(`${source}: ${key}: ${DURATION_EXPECTED}, got ${show(value)}`);
  return seconds;
}

function parseYaml(text: string, source: string): unknown {
  const read = readYaml(text);
  if ('problem' in read) throw configError(`${source}: ${read.problem}`);
  // A falsy document: an empty file, "null", "0", "false".
  if (!read.document) throw configError(`${source}: expected a map with a "profiles" key at the top level, got a scalar`);
  return read.document;
}

/** The message is one line even if the file path itself holds a newline. */
function configError(message: string): ConfigError {
  return new ConfigError(message.replace(/[\r\n]+/g, ' '));
}
