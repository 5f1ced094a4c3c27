// `npm run package`'s two artifacts as an administrator gets them: the standalone executable runs with no
// Node.js on PATH and no node_modules near it (--version, a client dry run, a real job as the dssuser account
// with the restricted identity), and the Debian package installs with dpkg, its units pass systemd-analyze
// verify, doctor runs from /usr/bin, and removal keeps the administrator's edited configuration until purge.
//
// The artifacts are built once per set of inputs into the cache, in the background from the start of the run
// (test/support/package-artifacts.ts). The package is purged after the tests, also when one fails.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { dssuserDir, jobObjects, parseJson, uniqueJobId, writeConfig, type CliResult } from '../support/cli.ts';
import { packagedArtifacts, type Artifacts } from '../support/package-artifacts.ts';

const root = resolve(import.meta.dirname, '../..');
const unix = inject('unix');
const alice = unix.endUsers[0]!;
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
const PACKAGE = 'dss-spark-k8s';

// ---------------------------------------------------------------------------------------------------------
// Running a command as the dssuser account, with a PATH that has no node

/** A PATH directory holding only the programs the CLI starts: no node anywhere on it. */
function pathWithoutNode(): string {
  const dir = join(dssuserDir('dss-spark-k8s-test-pkgpath-'), 'bin');
  mkdirSync(dir);
  for (const tool of ['id', 'sudo', 'setfacl']) {
    const found = execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
    symlinkSync(found, join(dir, tool));
  }
  chmodSync(dir, 0o755);
  return dir;
}

function runAs(file: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const child = spawn(file, args, {
    uid: unix.dssuser.uid,
    gid: unix.dssuser.gid,
    cwd: unix.dssuser.home,
    env: { HOME: unix.dssuser.home, USER: unix.dssuser.name, NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.on('close', (exitCode, signal) => resolve({ exitCode, signal, stdout, stderr })));
}

const sh = (file: string, args: string[]) => spawnSync(file, args, { encoding: 'utf8' });

// ---------------------------------------------------------------------------------------------------------

let artifacts: Artifacts;
let noNode: string;

beforeAll(async () => {
  const installed = sh('dpkg-query', ['-W', '-f', '${Status}', PACKAGE]);
  if (installed.status === 0 && installed.stdout.trim() !== '') {
    throw new Error(
      `${PACKAGE} is already installed on this machine (${installed.stdout.trim()}); remove it with 'dpkg -P ${PACKAGE}' before running this test`,
    );
  }
  for (const tool of ['dpkg', 'dpkg-deb', 'systemd-analyze', 'visudo']) {
    if (sh('sh', ['-c', `command -v ${tool}`]).status !== 0)
      throw new Error(`test set-up: '${tool}' is missing (Debian's dpkg, systemd and sudo packages); run 'bash scripts/setup.sh'`);
  }
  const started = Date.now();
  artifacts = await packagedArtifacts();
  console.log(
    `package.test: artifacts ${artifacts.built ? `built by this run, ready ${Date.now() - started} ms after this file began` : 'from the cache'}: ${dirname(artifacts.deb)}`,
  );
  noNode = pathWithoutNode();
}, 900_000);

describe('the standalone executable, with no Node.js on PATH', () => {
  it('has no node on its PATH and no node_modules near it, and embeds what it runs', () => {
    expect(sh('/bin/sh', ['-c', 'PATH="$1" command -v node', 'sh', noNode]).status).not.toBe(0);
    expect(existsSync(join(dirname(artifacts.executable), 'node_modules'))).toBe(false);
    expect(existsSync(join(unix.dssuser.home, 'node_modules'))).toBe(false);
    // One file: ELF, executable by anyone, ~100 MB (Node.js and the bundle with its code cache).
    expect(readFileSync(artifacts.executable).subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    expect(statSync(artifacts.executable).mode & 0o555).toBe(0o555);
  });

  it('prints its version, and its help without any warning', async () => {
    const v = await runAs(artifacts.executable, ['--version'], { PATH: noNode });
    expect(v).toMatchObject({ exitCode: 0, stdout: `${version}\n`, stderr: '' });
    for (const command of [[], ['run'], ['cleanup'], ['doctor'], ['policy', 'show']]) {
      const help = await runAs(artifacts.executable, [...command, '--help'], { PATH: noNode });
      expect(help.exitCode, help.stderr).toBe(0);
      expect(help.stdout).toMatch(/^Usage: dss-spark-k8s/);
      expect(help.stderr).toBe('');
    }
  });

  it('says what is wrong in one line with the documented exit code (bad flag: 64, bad config: 78)', async () => {
    const badFlag = await runAs(artifacts.executable, ['run', '--user', alice.name, '--no-such-flag'], { PATH: noNode });
    expect(badFlag.exitCode).toBe(64);
    expect(badFlag.stderr).toMatch(/^dss-spark-k8s: .*--no-such-flag.*\n$/);
    const missing = await runAs(artifacts.executable, ['run', '--user', alice.name, '--config', '/nonexistent/config.yaml', '--dry-run=client'], {
      PATH: noNode,
    });
    expect(missing.exitCode).toBe(78);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('plans a job with --dry-run=client', async () => {
    const config = writeConfig({});
    const jobId = uniqueJobId('pkg-dry');
    const result = await runAs(
      artifacts.executable,
      ['run', '--user', alice.name, '--config', config.path, '--job-id', jobId, '--dry-run=client', '-o', 'json'],
      { PATH: noNode },
    );
    expect(result.exitCode, result.stderr).toBe(0);
    const plan = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(JSON.stringify(plan)).toContain(`dss-ns-${alice.name}`);
    expect(JSON.stringify(plan)).toContain(jobId);
    expect(result.stdout).not.toMatch(/eyJ[A-Za-z0-9_-]{20,}/); // no token in a client dry run
    expect(await jobObjects(jobId)).toEqual([]);
  });

  it('runs a real job as dssuser: the end user gets its namespace corner, and nothing is left after', async () => {
    const config = writeConfig({});
    const jobId = uniqueJobId('pkg-run');
    const result = await runAs(
      artifacts.executable,
      ['run', '--user', alice.name, '--config', config.path, '--job-id', jobId, '--', 'app', 'probe', 'marker', 'done'],
      { PATH: noNode },
    );
    expect(result.exitCode, result.stderr).toBe(0);
    const events = result.stdout
      .split('\n')
      .map(parseJson)
      .filter((e) => e !== undefined);
    const probe = events.find((e) => e.event === 'probe');
    expect(probe).toMatchObject({ createPod: 200, listPodsOtherNamespace: 403, listSecrets: 403, createNamespace: 403 });
    expect(events.some((e) => e.event === 'marker')).toBe(true);
    expect(result.stderr).toContain(`torn down job ${jobId}: nothing left`);
    expect(await jobObjects(jobId)).toEqual([]);
  });
});

describe('the Debian package, installed with dpkg', () => {
  const unitDir = '/usr/lib/systemd/system';
  const units = ['dss-spark-k8s-cleanup.service', 'dss-spark-k8s-cleanup.timer'].map((unit) => join(unitDir, unit));
  const config = '/etc/dss-spark-k8s/config.yaml';

  beforeAll(() => {
    const install = sh('dpkg', ['-i', artifacts.deb]);
    if (install.status !== 0) throw new Error(`dpkg -i ${artifacts.deb} failed: ${install.stderr}`);
  }, 120_000);
  // Restores the machine whatever happened above.
  afterAll(() => {
    sh('dpkg', ['-P', PACKAGE]);
  }, 120_000);

  it('installs the executable, the example configuration as a conffile, the manifests, the sudoers example and the man pages', () => {
    expect(sh('dpkg-query', ['-W', '-f', '${Status} ${Version}', PACKAGE]).stdout).toBe(`install ok installed ${version}`);
    expect(execFileSync('/usr/bin/dss-spark-k8s', ['--version'], { encoding: 'utf8', env: { PATH: noNode } })).toBe(`${version}\n`);
    expect(sh('dpkg-query', ['-W', '-f', '${Conffiles}', PACKAGE]).stdout).toContain(config);
    for (const manifest of readdirSync(join(root, 'deploy/rbac'))) {
      expect(readFileSync(join('/usr/share/dss-spark-k8s/rbac', manifest), 'utf8')).toBe(readFileSync(join(root, 'deploy/rbac', manifest), 'utf8'));
    }
    const visudo = sh('visudo', ['-cf', '/usr/share/dss-spark-k8s/sudoers.example']);
    expect(visudo.status, visudo.stderr).toBe(0);
    expect(readFileSync('/usr/share/dss-spark-k8s/sudoers.example', 'utf8')).toContain('Defaults:dssuser env_keep += "KUBECONFIG"');
    for (const page of ['dss-spark-k8s', 'dss-spark-k8s-run', 'dss-spark-k8s-cleanup', 'dss-spark-k8s-doctor', 'dss-spark-k8s-policy']) {
      const roff = gunzipSync(readFileSync(`/usr/share/man/man1/${page}.1.gz`)).toString();
      expect(roff).toMatch(new RegExp(`^\\.TH ${page.toUpperCase()} 1 `));
      expect(roff).toContain('Usage: dss-spark-k8s');
    }
    expect(readFileSync('/usr/share/doc/dss-spark-k8s/copyright', 'utf8')).toMatch(/^Format: .*\n[\s\S]*commander [\d.]+ \(MIT\)/);
    expect(readFileSync('/usr/share/dss-spark-k8s/config.schema.json', 'utf8')).toBe(readFileSync(join(root, 'config.schema.json'), 'utf8'));
    expect(readFileSync(config, 'utf8').startsWith('# yaml-language-server: $schema=/usr/share/dss-spark-k8s/config.schema.json\n')).toBe(true);
  });

  it('ships an example configuration that loads as it is and with every commented key uncommented', () => {
    expect(loadConfig(config).profiles.default!.sparkSubmit).toBe('/opt/spark/bin/spark-submit');
    const uncommented = readFileSync(config, 'utf8').replace(/^(\s*)# (\s*[A-Za-z][\w.]*:)/gm, '$1$2');
    const path = join(dssuserDir('dss-spark-k8s-test-pkgconf-'), 'all-keys.yaml');
    writeFileSync(path, uncommented);
    const all = loadConfig(path);
    expect(all.defaultProfile).toBe('default');
    expect(all.profiles.default).toMatchObject({
      minUid: 1000,
      tokenTtlSeconds: 3600,
      executorRunAsUser: 185,
      kubeconfig: '/home/dssuser/.kube/config',
      tempDir: '/tmp',
    });
    expect(all.profiles.default!.sparkConf).toEqual({ 'spark.kubernetes.container.image': 'registry.example.com/spark:4.0.1' });
  });

  it('installs a cleanup service and timer that systemd-analyze verify accepts, left disabled', () => {
    const verify = sh('systemd-analyze', ['verify', '--man=no', ...units]);
    expect(verify.status, verify.stderr).toBe(0);
    expect(verify.stderr).toBe('');
    const service = readFileSync(units[0]!, 'utf8');
    expect(service).toMatch(/^ExecStart=\/usr\/bin\/dss-spark-k8s cleanup --orphans --yes$/m);
    expect(service).toMatch(/^User=dssuser$/m);
    expect(existsSync('/etc/systemd/system/timers.target.wants/dss-spark-k8s-cleanup.timer')).toBe(false);
    expect(sh('systemctl', ['is-enabled', 'dss-spark-k8s-cleanup.timer']).stdout.trim()).toBe('disabled');
  });

  it('runs doctor from /usr/bin as dssuser against the real cluster', async () => {
    const { path } = writeConfig({});
    const result = await runAs('/usr/bin/dss-spark-k8s', ['doctor', '--config', path, '--user', alice.name, '-o', 'json'], { PATH: noNode });
    const { checks } = JSON.parse(result.stdout) as { checks: { id: string; status: string; detail: string }[] };
    const status = Object.fromEntries(checks.map((c) => [c.id, c.status]));
    expect(status, result.stdout).toMatchObject({ config: 'pass', cluster: 'pass', rights: 'pass', policy: 'pass', sudo: 'pass' });
    expect(checks.find((c) => c.id === 'cluster')!.detail).toContain(inject('cluster').dssuserName);
    // The installed example configuration, with dssuser's kubeconfig from the environment: it loads and
    // reaches the cluster; only Spark, which this machine has elsewhere, is missing.
    const example = await runAs('/usr/bin/dss-spark-k8s', ['doctor', '--user', alice.name, '-o', 'json'], { PATH: noNode, KUBECONFIG: unix.dssuserKubeconfig });
    const exampleChecks = (JSON.parse(example.stdout) as { checks: { id: string; status: string }[] }).checks;
    const exampleStatus = Object.fromEntries(exampleChecks.map((c) => [c.id, c.status]));
    expect(exampleStatus, example.stdout).toMatchObject({ config: 'pass', cluster: 'pass', spark: 'fail' });
    expect(example.exitCode).toBe(78);
  });

  it('dpkg -r removes it and keeps the edited configuration; dpkg -P then removes that too', () => {
    appendFileSync(config, '# edited by the administrator\n');
    const remove = sh('dpkg', ['-r', PACKAGE]);
    expect(remove.status, remove.stderr).toBe(0);
    expect(existsSync('/usr/bin/dss-spark-k8s')).toBe(false);
    expect(units.some((unit) => existsSync(unit))).toBe(false);
    expect(readFileSync(config, 'utf8')).toMatch(/# edited by the administrator\n$/);
    expect(sh('dpkg-query', ['-W', '-f', '${Status}', PACKAGE]).stdout).toBe('deinstall ok config-files');
    const purge = sh('dpkg', ['-P', PACKAGE]);
    expect(purge.status, purge.stderr).toBe(0);
    expect(existsSync(config)).toBe(false);
    expect(existsSync('/etc/dss-spark-k8s')).toBe(false);
    expect(sh('dpkg-query', ['-W', PACKAGE]).status).not.toBe(0);
  });
});
