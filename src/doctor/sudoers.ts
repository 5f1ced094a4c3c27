// 5. The sudoers rule: dssuser may run spark-submit as the end user, without a password, with env_reset.
import type { Profile } from '../config/types.ts';
import type { RunProcess } from './process.ts';
import { result, type CheckResult } from './result.ts';

const SUDO_TIMEOUT_MS = 10_000;

/**
 * env_reset and env_keep as the Defaults that `sudo -l` lists for the caller leave them (global and
 * runas/command-specific alike, in order).
 */
export function sudoEnvDefaults(listing: string): { reset: boolean; keep: Set<string> } {
  let reset = true;
  let keep = new Set<string>();
  for (const entry of sudoDefaults(listing)) {
    const m = /^(!?)(\w+)\s*(?:([+-]?=)\s*(.*))?$/.exec(entry);
    if (!m) continue;
    const [, negated, name, op, raw = ''] = m;
    if (name === 'env_reset') reset = negated !== '!';
    if (name !== 'env_keep') continue;
    const vars = raw
      .replace(/^"(.*)"$/, '$1')
      .split(/\s+/)
      .filter(Boolean);
    if (negated === '!') keep = new Set();
    else if (op === '=') keep = new Set(vars);
    else if (op === '+=') for (const v of vars) keep.add(v);
    else if (op === '-=') for (const v of vars) keep.delete(v);
  }
  return { reset, keep };
}

/** The entries of the "Matching Defaults entries" and "Runas and Command-specific defaults" blocks of `sudo -l`. */
export function sudoDefaults(listing: string): string[] {
  let text = '';
  let inBlock = false;
  for (const line of listing.split('\n')) {
    if (/^(Matching Defaults entries|Runas and Command-specific defaults) for /.test(line)) inBlock = true;
    else if (line.trim() === '') inBlock = false;
    else if (inBlock) text += ` ${line.trim()}`;
  }
  // Runas/command-specific lines start with "Defaults>x", "Defaults!cmd"...: a separator like a comma.
  text = text.replace(/(^|\s)Defaults\S*/g, ',');
  const entries: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\\' && i + 1 < text.length) current += c + text[++i];
    else if (c === '"') {
      quoted = !quoted;
      current += c;
    } else if (c === ',' && !quoted) {
      entries.push(current);
      current = '';
    } else current += c;
  }
  entries.push(current);
  return entries.map((e) => e.trim()).filter(Boolean);
}

/** The sudoers lines of the README with the real names: the runas list is the profile's groups, else the sample user. */
export function sudoersLines(
  dssuser: string,
  user: string,
  profile: Pick<Profile, 'allowedUserGroups' | 'sparkSubmit'>,
  need: { keep: boolean; allow: boolean },
): string {
  const runas = profile.allowedUserGroups.length > 0 ? profile.allowedUserGroups.map((g) => `%${g}`).join(', ') : user;
  return [
    '# in /etc/sudoers.d/dss-spark-k8s (edit with: visudo -f /etc/sudoers.d/dss-spark-k8s)',
    ...(need.keep ? [`Defaults:${dssuser} env_keep += "KUBECONFIG"`] : []),
    ...(need.allow ? [`${dssuser} ALL = (${runas}) NOPASSWD: ${profile.sparkSubmit}`] : []),
  ].join('\n');
}

export async function checkSudo(run: RunProcess, me: string, user: string | undefined, profile: Profile, sparkSubmitExists: boolean): Promise<CheckResult> {
  const title = 'sudoers rule';
  if (user === undefined) return result('sudo', title, 'fail', 'needs a sample end user', 'pass --user LOGIN (an end user who runs Spark jobs)');
  if (!sparkSubmitExists) return result('sudo', title, 'skip', `${profile.sparkSubmit} does not exist (see spark-submit below)`);
  const probe = await run('sudo', ['-n', '-l', '-u', user, profile.sparkSubmit], { timeoutMs: SUDO_TIMEOUT_MS });
  if (probe.failure === 'ENOENT') return result('sudo', title, 'fail', 'sudo is not installed', 'install sudo (apt-get install sudo)');
  const why = (probe.stderr.split('\n').find((line) => line.trim()) ?? '').trim().replace(/^sudo: /, '');
  if (/unknown user/.test(why)) return result('sudo', title, 'fail', `sudo: ${why}`, 'pass --user with the login of an existing end user');
  const allow = probe.code === 0;
  const listing = await run('sudo', ['-n', '-l'], { timeoutMs: SUDO_TIMEOUT_MS });
  const env = listing.code === 0 ? sudoEnvDefaults(listing.stdout) : undefined;
  // Whether KUBECONFIG is kept once the environment is reset, as it must be.
  const keep = env?.keep.has('KUBECONFIG');
  if (allow && env?.reset && keep) return result('sudo', title, 'pass', `${me} may run ${profile.sparkSubmit} as ${user} without a password, KUBECONFIG kept`);
  if (allow && env === undefined) {
    return result(
      'sudo',
      title,
      'warn',
      `${me} may run spark-submit as ${user}, but sudo -l needs a password: cannot see whether KUBECONFIG is kept`,
      sudoersLines(me, user, profile, { keep: true, allow: false }),
    );
  }
  const noReset = env?.reset === false;
  const problems = [
    ...(allow ? [] : [`${me} may not run ${profile.sparkSubmit} as ${user} without a password${why ? ` (${why})` : ''}`]),
    ...(noReset ? [`sudo keeps ${me}'s environment (!env_reset), which would reach the end user's driver`] : []),
    ...(keep === false && !noReset ? ['KUBECONFIG does not reach spark-submit (no env_keep)'] : []),
  ];
  // When sudo -l cannot tell (no rule at all), the Defaults line is in the fix too: it is part of the rule.
  const lines = keep !== true || !allow ? [sudoersLines(me, user, profile, { keep: keep !== true, allow: !allow })] : [];
  const fix = [
    ...(noReset ? [`# remove "!env_reset" from sudoers (find it with: grep -rn env_reset /etc/sudoers /etc/sudoers.d); sudo must reset the environment`] : []),
    ...lines,
  ];
  return result('sudo', title, 'fail', problems.join('; '), fix.join('\n'));
}
