// A profile as the configuration loader makes it from a minimal file (so its defaults are the loader's own),
// with the given settings on top.
import { parseConfig } from '../../src/config/load.ts';
import type { Profile } from '../../src/config/types.ts';

export function profileWith(overrides: Partial<Profile> = {}): Profile {
  const minimal = JSON.stringify({ profiles: { default: { sparkSubmit: '/opt/spark/bin/spark-submit' } } });
  return { ...parseConfig(minimal, overrides.source ?? 'test').profiles.default!, ...overrides };
}
