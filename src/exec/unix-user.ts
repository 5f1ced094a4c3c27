// The end user: looked up through NSS (`id`), so LDAP/SSSD users count as they do for sudo.
import type { Profile } from '../config/types.ts';
import { RefusedError } from '../errors.ts';
import { runCommand } from './process.ts';

const ID_TIMEOUT_MS = 10_000;

export interface EndUser {
  login: string;
  uid: number;
  groups: string[];
}

// Portable login characters plus '@' (LDAP/SSSD logins); never a leading '-' (it would read as an option).
const LOGIN_PATTERN = /^[A-Za-z0-9._@][A-Za-z0-9._@-]{0,255}$/;

export async function lookupEndUser(login: string): Promise<EndUser> {
  if (!LOGIN_PATTERN.test(login)) {
    throw new RefusedError(
      `user "${login.slice(0, 64)}" is not a valid login (letters, digits, '.', '_', '@', '-'; not starting with '-'); pass the end user's Unix login to --user`,
    );
  }
  // One process for the uid and every group (its output is parsed: C locale).
  const id = await runCommand('id', ['--', login], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' }, timeoutMs: ID_TIMEOUT_MS });
  if (id.code !== 0) throw new RefusedError(`user "${login}" does not exist on this host (id); check --user`);
  return parseId(login, id.stdout);
}

/** `uid=1001(alice) gid=1001(alice) groups=1001(alice),27(sudo)`; a group without a name shows as its number. */
export function parseId(login: string, output: string): EndUser {
  const uid = /^uid=(\d+)/.exec(output.trim())?.[1];
  const groupList = / groups=(.*)$/.exec(output.trim())?.[1];
  if (uid === undefined || groupList === undefined) throw new RefusedError(`user "${login}": unexpected output of id: ${output.trim().slice(0, 100)}`);
  const groups = groupList.split(',').map((entry) => /^\d+\((.*)\)$/.exec(entry)?.[1] ?? entry);
  return { login, uid: Number(uid), groups };
}

/** Whether the profile lets dssuser (uid `invokingUid`) run jobs as this user. */
export function checkEndUser(user: EndUser, profile: Profile, invokingUid: number): void {
  if (user.uid === 0) throw new RefusedError(`user "${user.login}" is root; jobs never run as root`);
  if (user.uid === invokingUid) {
    throw new RefusedError(`user "${user.login}" is the account running dss-spark-k8s; jobs run as another end user`);
  }
  if (user.uid < profile.minUid) {
    throw new RefusedError(
      `user "${user.login}" has uid ${user.uid}, below minUid ${profile.minUid} of profile "${profile.name}" (system accounts are refused)`,
    );
  }
  const allowed = profile.allowedUserGroups;
  if (allowed.length > 0 && !user.groups.some((group) => allowed.includes(group))) {
    throw new RefusedError(
      `user "${user.login}" is in none of the groups allowed by profile "${profile.name}" (${allowed.join(', ')}); add the user to one of them`,
    );
  }
}
