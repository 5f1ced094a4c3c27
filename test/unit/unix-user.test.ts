// The end user as `id` reports it, and who the profile lets dssuser run jobs as.
import { describe, expect, it } from 'vitest';
import { RefusedError } from '../../src/errors.ts';
import { checkEndUser, parseId } from '../../src/exec/unix-user.ts';
import { profileWith } from '../support/profile.ts';

describe('parseId', () => {
  it('reads the uid and every group name, a nameless group as its number', () => {
    expect(parseId('alice', 'uid=1001(alice) gid=1001(alice) groups=1001(alice),27(sudo),4242,5000(data scientists)\n')).toEqual({
      login: 'alice',
      uid: 1001,
      groups: ['alice', 'sudo', '4242', 'data scientists'],
    });
    expect(parseId('j.doe@corp', 'uid=70001(j.doe@corp) gid=70001(domain users@corp) groups=70001(domain users@corp)')).toMatchObject({
      uid: 70001,
      groups: ['domain users@corp'],
    });
  });

  it('refuses output it does not understand rather than guess a uid', () => {
    expect(() => parseId('alice', 'id: alice: no such user')).toThrow(RefusedError);
    expect(() => parseId('alice', 'uid=1001(alice) gid=1001(alice)')).toThrow(/unexpected output of id/);
  });
});

describe('checkEndUser', () => {
  const profile = profileWith({ minUid: 1000, allowedUserGroups: ['dss-users'] });
  const user = (uid: number, groups: string[]) => ({ login: 'u', uid, groups });

  it('accepts a user of an allowed group at or above minUid', () => {
    expect(() => checkEndUser(user(1000, ['u', 'dss-users']), profile, 999)).not.toThrow();
  });

  it.each([
    ['root', user(0, ['dss-users']), /is root; jobs never run as root/],
    ['the account running the tool', user(1500, ['dss-users']), /is the account running dss-spark-k8s/],
    ['a system account', user(999, ['dss-users']), /has uid 999, below minUid 1000/],
    ['a user of no allowed group', user(1200, ['u', 'sudo']), /is in none of the groups allowed/],
  ])('refuses %s', (_, endUser, message) => {
    expect(() => checkEndUser(endUser, profile, 1500)).toThrow(message);
  });
});
