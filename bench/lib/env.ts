// Everything the bench needs, made for this run and removed after it (also on Ctrl-C): its own control
// plane, bench Unix users (a dssuser account and end users, with a prefix of this run), a sudoers rule
// allowing /bin/true (a spark-submit that does nothing) as the end users, the CLI bundled from the current
// sources and staged where the dssuser account can run it, dssuser's kubeconfig (the restricted identity of
// deploy/rbac/per-user-namespaces.yaml, CA embedded) and a configuration file.
import { chmodSync, chownSync, copyFileSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { bundleFile, cliEntry } from '../../scripts/bundle.mjs';
import { Api } from './api.ts';
import { type Account, sh, trySh } from './proc.ts';

export const root = resolve(import.meta.dirname, '../..');

export interface ClusterState {
  server: string;
  caFile: string;
  adminKubeconfig: string;
  dssuserKubeconfig: string;
  kubectl: string;
  dir: string;
  node: { name: string; executorImage: string } | null;
}

export interface BenchEnv {
  prefix: string;
  /** /tmp/<prefix>: everything on disk the bench makes (removed at the end). */
  workDir: string;
  cluster: ClusterState;
  caPem: string;
  /** The bench's administrator (creates orphans, counts what is left) and the restricted dssuser identity. */
  admin: Api;
  dss: Api;
  dssuser: Account;
  /** The end user of B1/B2/B3 (its namespace exists after the warm-up) and the fresh one of B4. */
  user: Account;
  freshUser: Account;
  /** The staged bin shim and bundle. */
  cli: string;
  bundle: string;
  /** dssuser's files: its kubeconfig, the configuration, the per-job temp directory and scratch space. */
  kubeconfig: string;
  config: string;
  tempDir: string;
  scratch: string;
  /** Namespace of `user` (template dss-ns-${dssUserLogin}). */
  namespace: string;
  versions: { node: string; kubectl: string; apiserver: string };
  /** The bench cluster's node (B5 only) and the real spark-submit the sudoers rule allows (B5). */
  node: ClusterState['node'];
  sparkSubmit: string;
}

/** Clean-up steps, run in reverse order once, by the finally of the bench or by a signal handler. */
const cleanups: { what: string; run: () => void }[] = [];

export function onCleanup(what: string, run: () => void): void {
  cleanups.push({ what, run });
}

export function cleanupAll(log: (line: string) => void = () => {}): void {
  while (cleanups.length > 0) {
    const step = cleanups.pop()!;
    try {
      step.run();
    } catch (error) {
      log(`bench clean-up: ${step.what} failed: ${(error as Error).message.split('\n')[0]}`);
    }
  }
}

function addUser(name: string, group?: string): Account {
  sh('useradd', ['--create-home', '--user-group', '--shell', '/bin/bash', ...(group ? ['-G', group] : []), name]);
  onCleanup(`remove user ${name}`, () => sh('userdel', ['--remove', name]));
  const [, , uid, gid, , home] = sh('getent', ['passwd', name]).trim().split(':');
  return { name, uid: Number(uid), gid: Number(gid), home: home! };
}

function ownedDir(path: string, owner: Account, mode = 0o755): string {
  mkdirSync(path, { recursive: true });
  chownSync(path, owner.uid, owner.gid);
  chmodSync(path, mode);
  return path;
}

/** With `node`, the bench cluster gets the machine's one node (B5 runs real executors); B1–B4 need none. */
export async function setUp(log: (line: string) => void, { node }: { node: boolean }): Promise<BenchEnv> {
  if (process.getuid?.() !== 0) throw new Error('the bench must run as root: it creates Unix users, a sudoers rule and its own control plane');
  for (const tool of ['sudo', 'setfacl', 'useradd', 'visudo', 'openssl', 'curl']) {
    if (!trySh('sh', ['-c', `command -v ${tool}`])) throw new Error(`'${tool}' is missing; run 'bash scripts/setup.sh' first`);
  }
  const prefix = `dssb${Math.random().toString(36).slice(2, 6)}`;
  const workDir = `/tmp/${prefix}`;
  mkdirSync(workDir, { mode: 0o755 });
  chmodSync(workDir, 0o755);
  onCleanup(`remove ${workDir}`, () => rmSync(workDir, { recursive: true, force: true }));

  log('bench: bundling the CLI from the current sources');
  const cliDir = join(workDir, 'cli');
  const bundle = join(cliDir, 'dist/dss-spark-k8s.mjs');
  await bundleFile(cliEntry, bundle, { splitting: true });
  mkdirSync(join(cliDir, 'bin'), { recursive: true });
  mkdirSync(join(cliDir, '.toolchain'));
  copyFileSync(join(root, 'bin/dss-spark-k8s'), join(cliDir, 'bin/dss-spark-k8s'));
  chmodSync(join(cliDir, 'bin/dss-spark-k8s'), 0o755);
  symlinkSync(process.execPath, join(cliDir, '.toolchain/node'));
  sh('chmod', ['-R', 'a+rX', cliDir]);

  log(`bench: starting a control plane of its own${node ? ' with a node' : ''}`);
  const clusterDir = join(workDir, 'cluster');
  onCleanup('stop the control plane', () => sh('bash', [join(root, 'scripts/cluster.sh'), 'down', '--dir', clusterDir]));
  const cluster = JSON.parse(
    sh('bash', [join(root, 'scripts/cluster.sh'), 'up', '--dir', clusterDir, '--owner-pid', String(process.pid), ...(node ? [] : ['--no-node'])]),
  ) as ClusterState;
  const sparkSubmit = node ? sh('bash', [join(root, 'scripts/install-pyspark.sh')]).trim() : '/bin/true';
  const caPem = readFileSync(cluster.caFile, 'utf8');
  const admin = new Api(cluster.server, caPem, readFileSync(join(clusterDir, 'admin.token'), 'utf8').trim());
  const dssToken = readFileSync(join(clusterDir, 'dssuser.token'), 'utf8').trim();
  const dss = new Api(cluster.server, caPem, dssToken);
  onCleanup('close API connections', () => {
    void admin.close();
    void dss.close();
  });

  log('bench: creating bench Unix users and the sudoers rule');
  const group = `${prefix}-spark`;
  sh('groupadd', [group]);
  onCleanup(`remove group ${group}`, () => sh('groupdel', [group]));
  const dssuser = addUser(`${prefix}-dss`);
  const user = addUser(`${prefix}-u1`, group);
  const freshUser = addUser(`${prefix}-u4`, group);
  const sudoers = `/etc/sudoers.d/dss-spark-k8s-bench-${prefix}`;
  const commands = node ? `/bin/true, ${sparkSubmit}` : '/bin/true';
  const rule = `Defaults:${dssuser.name} env_keep += "KUBECONFIG"\n${dssuser.name} ALL = (%${group}) NOPASSWD: ${commands}\n`;
  writeFileSync(`${workDir}/sudoers.tmp`, rule, { mode: 0o440 });
  sh('visudo', ['-c', '-q', '-f', `${workDir}/sudoers.tmp`]);
  onCleanup(`remove ${sudoers}`, () => rmSync(sudoers, { force: true }));
  sh('mv', [`${workDir}/sudoers.tmp`, sudoers]);

  // dssuser's own files, in its home and in a directory it owns.
  const kubeconfig = join(dssuser.home, 'dssuser.kubeconfig');
  writeFileSync(
    kubeconfig,
    `${JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'local', cluster: { server: cluster.server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
      users: [{ name: 'dssuser', user: { token: dssToken } }],
      contexts: [{ name: 'dssuser@local', context: { cluster: 'local', user: 'dssuser' } }],
      'current-context': 'dssuser@local',
    })}\n`,
    { mode: 0o600 },
  );
  chownSync(kubeconfig, dssuser.uid, dssuser.gid);
  const dssDir = ownedDir(join(workDir, 'dssuser'), dssuser);
  const tempDir = ownedDir(join(dssDir, 'tmp'), dssuser);
  const scratch = ownedDir(join(dssDir, 'scratch'), dssuser);
  const config = join(dssDir, 'config.yaml');
  writeFileSync(
    config,
    `${JSON.stringify({ profiles: { default: { sparkSubmit: '/bin/true', kubeconfig, autoCreateNamespace: true, tempDir } } }, null, 2)}\n`,
  );
  chownSync(config, dssuser.uid, dssuser.gid);

  const apiserver = ((await admin.must('GET', '/version')) as { gitVersion: string }).gitVersion;
  const kubectl = (JSON.parse(sh(cluster.kubectl, ['version', '--client', '-o', 'json'])) as { clientVersion: { gitVersion: string } }).clientVersion
    .gitVersion;
  return {
    prefix,
    workDir,
    cluster,
    caPem,
    admin,
    dss,
    dssuser,
    user,
    freshUser,
    cli: join(cliDir, 'bin/dss-spark-k8s'),
    bundle,
    kubeconfig,
    config,
    tempDir,
    scratch,
    namespace: `dss-ns-${user.name}`,
    versions: { node: process.version, kubectl, apiserver },
    node: cluster.node,
    sparkSubmit,
  };
}

/** A namespace dssuser may write in, made by the administrator (as an auto-create or an admin would). */
export async function createManagedNamespace(env: BenchEnv, name: string): Promise<void> {
  await env.admin.must(
    'POST',
    '/api/v1/namespaces',
    { metadata: { name, labels: { 'dss-spark-k8s.dataiku.io/managed': 'true', 'app.kubernetes.io/managed-by': 'dss-spark-k8s' } } },
    [409],
  );
}
