// Test Unix users and the sudoers rule the README documents, created for the run and removed after it.
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';

// A prefix of its own per run, so that runs side by side never share or remove each other's users.
export const TEST_PREFIX = `dsst${Math.random().toString(36).slice(2, 6)}`;
export const sudoersFile = `/etc/sudoers.d/dss-spark-k8s-test-${TEST_PREFIX}`;
const group = `${TEST_PREFIX}-spark`;
const endUserNames = [`${TEST_PREFIX}-alice`, `${TEST_PREFIX}-bob`];
const allNames = [`${TEST_PREFIX}-dssuser`, ...endUserNames, `${TEST_PREFIX}-mallory`];

export interface UnixUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

function run(file: string, args: string[]) {
  return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function lookupUser(name: string): UnixUser {
  const [, , uid, gid, , home] = run('getent', ['passwd', name]).trim().split(':');
  return { name, uid: Number(uid), gid: Number(gid), home: home! };
}

function exists(name: string) {
  try {
    run('getent', ['passwd', name]);
    return true;
  } catch {
    return false;
  }
}

export function ensureUnixUsers() {
  try {
    run('getent', ['group', group]);
  } catch {
    run('groupadd', [group]);
  }
  for (const name of allNames) {
    if (!exists(name)) {
      const groups = endUserNames.includes(name) ? ['-G', group] : [];
      run('useradd', ['--create-home', '--user-group', '--shell', '/bin/bash', ...groups, name]);
    }
  }
  return {
    dssuser: lookupUser(allNames[0]!),
    endUsers: endUserNames.map(lookupUser),
    outsider: lookupUser(allNames[3]!),
    group,
  };
}

export function removeUnixUsers() {
  for (const name of allNames) {
    if (exists(name)) run('userdel', ['--remove', name]);
    // The JVMs of the Spark tests leave their perf data behind.
    rmSync(`/tmp/hsperfdata_${name}`, { recursive: true, force: true });
  }
  try {
    run('groupdel', [group]);
  } catch {
    // already gone
  }
}

/** The rule of the README, with the test users and the test spark-submit executables. */
export function installSudoersRule(users: { dssuser: UnixUser }, commands: string[]) {
  const rule = [`Defaults:${users.dssuser.name} env_keep += "KUBECONFIG"`, `${users.dssuser.name} ALL = (%${group}) NOPASSWD: ${commands.join(', ')}`, ''].join(
    '\n',
  );
  const staged = `${sudoersFile}.tmp`;
  writeFileSync(staged, rule, { mode: 0o440 });
  run('visudo', ['-c', '-q', '-f', staged]);
  execFileSync('mv', [staged, sudoersFile]);
  return sudoersFile;
}

export function removeSudoersRule() {
  rmSync(sudoersFile, { force: true });
}
