// The end user: looked up through NSS (getent), so LDAP/SSSD users count as they do for sudo.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Profile } from '../config/types.ts';
import { RefusedError } from '../errors.ts';

const run = promisify(execFile);

export interface EndUser {
  login: string;
  uid: number;
  gid: number;
  home: string;
  groups: string[];
}

// Portable login characters plus '@' (LDAP/SSSD logins); never a leading '-' (it would read as an option).
const LOGIN_PATTERN = /^[A-Za-z0-9._@][A-Za-z0-9._@-]{0,255}$/;

export async function lookupEndUser(login: string): Promise<EndUser> {
  if (!LOGIN_PATTERN.test(login)) {
    throw new RefusedError(`user "${login.slice(0, 64)}" is not a valid login (letters, digits, '.', '_', '@', '-'; not starting with '-'); pass the end user's Unix login to --user`);
  }
  const [passwd, groupList] = await Promise.allSettled([run('getent', ['passwd', login]), run('id', ['-Gn', '--', login])]);
  if (passwd.status === 'rejected' || groupList.status === 'rejected') {
    throw new RefusedError(`user "${login}" does not exist on this host (getent passwd); check --user`);
  }
  const [, , uid, gid, , home] = passwd.value.stdout.trim().split('\n')[0]!.split(':');
  const groups = groupList.value.stdout.trim().split(/\s+/);
  return { login, uid: Number(uid), gid: Number(gid), home: home ?? '', groups };
}

/** Whether the profile lets dssuser (uid `invokingUid`) run jobs as this user. */
export function checkEndUser(user: EndUser, profile: Profile, invokingUid: number): void {
  if (user.uid === 0) throw new RefusedError(`user "${user.login}" is root; jobs never run as root`);
  if (user.uid === invokingUid) {
    throw new RefusedError(`user "${user.login}" is the account running dss-spark-k8s; jobs run as another end user`);
  }
  if (user.uid < profile.minUid) {
    throw new RefusedError(`user "${user.login}" has uid ${user.uid}, below minUid ${profile.minUid} of profile "${profile.name}" (system accounts are refused)`);
  }
  const allowed = profile.allowedUserGroups;
  if (allowed.length > 0 && !user.groups.some((group) => allowed.includes(group))) {
    throw new RefusedError(`user "${user.login}" is in none of the groups allowed by profile "${profile.name}" (${allowed.join(', ')}); add the user to one of them`);
  }
}
