// 1. The configuration file and the profile.
import { loadConfig, selectProfile } from '../config/load.ts';
import type { Profile } from '../config/types.ts';
import { CliError } from '../errors.ts';
import { result, type CheckResult } from './result.ts';

export function checkConfig(path: string, profileName: string | undefined): { result: CheckResult; profile?: Profile } {
  const title = 'configuration';
  try {
    const profile = selectProfile(loadConfig(path), profileName);
    const mode = isTeamMode(profile) ? 'team namespaces' : 'per-user namespaces';
    return { result: result('config', title, 'pass', `profile "${profile.name}" of ${path} (${mode}: ${profile.targetNamespace})`), profile };
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    return { result: result('config', title, 'fail', error.message, 'correct the file or pick another profile with --profile') };
  }
}

export function isTeamMode(profile: Pick<Profile, 'targetNamespace'>): boolean {
  return profile.targetNamespace.includes('${adminProperty:');
}
