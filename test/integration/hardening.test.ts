// Attacks on the CLI's own process, replayed through the real CLI as dssuser with the real sudo: dssuser's
// environment must not reach the driver, a closed stderr must not skip teardown, and --events must not
// write through another user's symlink.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, lchownSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DRIVER_ENV_FROM_SUDO } from '../../src/exec/spark-submit.ts';
import { dirEntries, dssuserDir, jobObjects, startCli, uniqueJobId, writeConfig } from '../support/cli.ts';

const unix = inject('unix');
const alice = unix.endUsers[0]!;

describe("the driver's environment", () => {
  // A spark-submit of the test's own that saves the environment it was started with (a /bin/sh wrapper
  // would add PWD), allowed by a sudoers drop-in beside the documented rule.
  const sudoers = `${unix.sudoersFile}-envdump`;
  let drop: string;
  let envDump: string;

  beforeAll(() => {
    drop = dssuserDir('dss-spark-k8s-test-envdump-');
    chownSync(drop, alice.uid, alice.gid);
    envDump = join(unix.sharedDir, 'env-dump');
    writeFileSync(envDump, `#!${unix.node}\nrequire('node:fs').writeFileSync(${JSON.stringify(join(drop, 'env.json'))}, JSON.stringify(process.env));\n`, {
      mode: 0o755,
    });
    const staged = `${sudoers}.tmp`;
    writeFileSync(staged, `${unix.dssuser.name} ALL = (%${unix.group}) NOPASSWD: ${envDump}\n`, { mode: 0o440 });
    execFileSync('visudo', ['-c', '-q', '-f', staged]);
    execFileSync('mv', [staged, sudoers]);
  });
  afterAll(() => rmSync(sudoers, { force: true }));

  it("is what sudo sets plus KUBECONFIG: nothing of dssuser's", async () => {
    const config = writeConfig({ sparkSubmit: envDump });
    const leaky = {
      KRB5CCNAME: 'FILE:/tmp/krb5cc_dssuser',
      DISPLAY: ':42',
      XAUTHORITY: '/home/dssuser/.Xauthority',
      LANG: 'dssuser-lang',
      TZ: 'dssuser-tz',
      SECRET_X: 'dssuser-secret',
    };
    const cli = startCli(['run', '--user', alice.name, '--config', config.path, '--job-id', uniqueJobId('env'), '--', 'app'], leaky);
    const result = await cli.result;
    expect(result.exitCode, result.stderr).toBe(0);

    const env = JSON.parse(readFileSync(join(drop, 'env.json'), 'utf8')) as Record<string, string>;
    for (const [name, value] of Object.entries(leaky)) {
      expect(env[name], name).not.toBe(value);
      expect(Object.values(env)).not.toContain(value);
    }
    // SUDO_HOME is set by sudo 1.9.16 and later only.
    const expected = ['KUBECONFIG', ...DRIVER_ENV_FROM_SUDO].filter((name) => name !== 'SUDO_HOME' || 'SUDO_HOME' in env);
    expect(Object.keys(env).sort()).toEqual(expected.sort());
    expect(env).toMatchObject({ USER: alice.name, LOGNAME: alice.name, HOME: alice.home, SUDO_USER: unix.dssuser.name });
    expect(env.KUBECONFIG).toMatch(new RegExp(`^${config.tempDir}/dss-spark-k8s-env-`));
  });
});

describe('a closed stderr', () => {
  it("does not stop teardown: nothing of the job is left and the exit code is the driver's", async () => {
    const config = writeConfig({});
    const jobId = uniqueJobId('epipe');
    const cli = startCli(['run', '--user', alice.name, '--config', config.path, '--job-id', jobId, '--', 'app', 'sleep', '2', 'exit', '7']);
    cli.child.stderr!.destroy();
    const result = await cli.result;
    expect(result.exitCode).toBe(7);
    expect(result.stdout).toContain('"event":"started"');
    expect(await jobObjects(jobId)).toEqual([]);
    expect(dirEntries(config.tempDir)).toEqual([]);
  });
});

describe('--events FILE', () => {
  it('never writes through a symlink another user planted (exit 64, the target untouched)', async () => {
    const config = writeConfig({});
    const target = join(unix.dssuser.home, `.profile-${Math.random().toString(36).slice(2, 8)}`);
    writeFileSync(target, 'export PATH=$HOME/bin:$PATH\n');
    chownSync(target, unix.dssuser.uid, unix.dssuser.gid);
    // A shared directory the attacker can write into, where the job runner puts its events file.
    const shared = dssuserDir('dss-spark-k8s-test-events-');
    chmodSync(shared, 0o777);
    const link = join(shared, 'events.jsonl');
    symlinkSync(target, link);
    lchownSync(link, unix.outsider.uid, unix.outsider.gid);

    const jobId = uniqueJobId('events');
    const result = await startCli(['run', '--user', alice.name, '--config', config.path, '--job-id', jobId, '--events', link, '--', 'app', 'exit', '0']).result;
    try {
      expect(result.exitCode, result.stderr).toBe(64);
      expect(result.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^dss-spark-k8s: --events .*events\.jsonl: is a symbolic link; /)]);
      expect(readFileSync(target, 'utf8')).toBe('export PATH=$HOME/bin:$PATH\n');
      expect(result.stdout).not.toContain('"event":"started"');
      expect(await jobObjects(jobId)).toEqual([]);
    } finally {
      rmSync(target, { force: true });
    }
  });
});

describe('a tempDir with a default ACL (red team 2, M1)', () => {
  it("gives nobody but the end user (and dssuser) access to the job's kubeconfig, whatever the directory hands down", async () => {
    const config = writeConfig({});
    // An administrator's share: every new file in it grants the outsider rwx.
    execFileSync('setfacl', ['-m', `d:u:${unix.outsider.uid}:rwx`, config.tempDir]);
    const jobId = uniqueJobId('acl');
    const cli = startCli(['run', '--user', alice.name, '--config', config.path, '--job-id', jobId, '--', 'app', 'marker', 'ready', 'sleep', '5']);
    try {
      await cli.waitForEvent('marker');
      const [dir] = dirEntries(config.tempDir);
      const kubeconfig = join(config.tempDir, dir!, 'kubeconfig');
      for (const path of [join(config.tempDir, dir!), kubeconfig]) {
        const acl = execFileSync('getfacl', ['-c', '-n', '-p', path], { encoding: 'utf8' });
        expect(acl, path).not.toContain(`user:${unix.outsider.uid}:`);
        expect(acl, path).not.toContain('default:');
      }
      // The outsider cannot read it; the end user can.
      const read = (user: string) => {
        try {
          execFileSync('sudo', ['-n', '-u', user, 'cat', kubeconfig], { stdio: ['ignore', 'pipe', 'pipe'] });
          return 'read';
        } catch {
          return 'denied';
        }
      };
      expect([read(unix.outsider.name), read(alice.name)]).toEqual(['denied', 'read']);
    } finally {
      cli.child.kill('SIGTERM');
      await cli.result;
    }
    expect(await jobObjects(jobId)).toEqual([]);
  });
});
