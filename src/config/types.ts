// A validated profile: what one "managed K8s configuration" of the platform says about a job. The settings'
// types derive from the schema (src/config/schema.ts), which documents each key and holds its default.

import type { ProfileSettings } from './schema.ts';

export type PodSecurityLevels = ProfileSettings['podSecurity'];

export type Profile = ProfileSettings & {
  /** The profile's name in the configuration file. */
  name: string;
  /** Where the configuration came from, for error messages. */
  source: string;
  /** The namespaces the configuration's per-user templates can give: a team namespace may match none of them. */
  perUserNamespaces: RegExp[];
};

export interface Config {
  source: string;
  defaultProfile: string;
  profiles: Record<string, Profile>;
}
