// One real control plane, the dssuser identity, test Unix users and the documented sudoers rule for the
// whole run. Missing prerequisites fail the run with a message; nothing here is ever skipped.
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { bundleFile } from '../../scripts/bundle.mjs';
import type { TestProject } from 'vitest/node';
import type { ClusterState, UnixFixture } from './env.ts';
import { applyManifest, waitForAdmissionPolicy, writeTokenKubeconfig, externalDssuserIdentity } from './cluster.ts';
import { ensureUnixUsers, removeUnixUsers, installSudoersRule, removeSudoersRule } from './unix.ts';

const root = resolve(import.meta.dirname, '../..');
const sharedClusterDir = '/tmp/dss-spark-k8s-cluster';

function sh(file: string, args: string[], input?: string): string {
  return execFileSync(file, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'inherit'] });
}

function requireTool(name: string, why: string) {
  try {
    sh('sh', ['-c', `command -v ${name}`]);
  } catch {
    throw new Error(`test set-up: '${name}' is missing (${why}); run 'bash scripts/setup.sh' first`);
  }
}

function startCluster(): { state: Omit<ClusterState, 'dssuserKubeconfig' | 'dssuserName'>; stop: () => void } {
  // A local cluster started beforehand (scripts/matrix.sh: another Kubernetes version, --no-node), reused as it is.
  const clusterDir = process.env.TEST_CLUSTER_DIR;
  if (clusterDir) {
    const running = tryJson(() => sh('bash', [join(root, 'scripts/cluster.sh'), 'status', '--dir', clusterDir]));
    if (!running)
      throw new Error(
        `test set-up: no cluster runs in TEST_CLUSTER_DIR=${clusterDir}; start it with 'bash scripts/cluster.sh up --no-node --dir ${clusterDir}'`,
      );
    return { state: { ...running, local: true, node: running.node && withSelectedSpark(running.node, running.kubectl) }, stop: () => {} };
  }
  const external = process.env.TEST_KUBECONFIG;
  if (external) {
    return {
      state: {
        server: '',
        caFile: '',
        adminKubeconfig: resolve(external),
        kubectl: kubectlPath(),
        auditLog: '',
        dir: '',
        local: false,
        // An external cluster's nodes run the image its administrator names (imported or pullable there).
        node: process.env.TEST_EXECUTOR_IMAGE ? { name: '', ip: '', executorImage: process.env.TEST_EXECUTOR_IMAGE } : null,
      },
      stop: () => {},
    };
  }
  // A cluster left running in the shared directory is reused when it has a node (the executor tests need one).
  const cached = tryJson(() => sh('bash', [join(root, 'scripts/cluster.sh'), 'status', '--dir', sharedClusterDir]));
  if (cached?.node) return { state: { ...cached, local: true, node: withSelectedSpark(cached.node, cached.kubectl) }, stop: () => {} };
  const dir = mkdtempSync('/tmp/dss-spark-k8s-test-cluster-');
  rmSync(dir, { recursive: true });
  const state = JSON.parse(sh('bash', [join(root, 'scripts/cluster.sh'), 'up', '--dir', dir, '--owner-pid', String(process.pid)]));
  return {
    state: { ...state, local: true },
    stop: () => sh('bash', [join(root, 'scripts/cluster.sh'), 'down', '--dir', dir]),
  };
}

/**
 * With PYSPARK_VERSION (another Spark than the node's image was built from), the executor image of that Spark,
 * built once by build-executor-image.sh and imported into the running node's containerd: executors must run
 * the driver's Spark.
 */
function withSelectedSpark(node: NonNullable<ClusterState['node']>, kubectl: string): NonNullable<ClusterState['node']> {
  if (!process.env.PYSPARK_VERSION) return node;
  const [image, layout] = sh('bash', [join(root, 'scripts/build-executor-image.sh')])
    .trim()
    .split('\n');
  if (image === node.executorImage) return node;
  const binDir = dirname(kubectl);
  const ctr = join(binDir, readdirSync(binDir).find((name) => name.startsWith('containerd-'))!, 'ctr');
  const socket = '/run/dss-spark-k8s-node/containerd.sock';
  const imported = sh(ctr, ['--address', socket, '-n', 'k8s.io', 'images', 'ls', '-q']).split('\n');
  if (!imported.includes(image!)) {
    execFileSync(
      'sh',
      [
        '-c',
        `tar -C "$1" -cf - oci-layout index.json blobs | "$2" --address "$3" -n k8s.io images import --local --discard-unpacked-layers - >/dev/null`,
        'import',
        layout!,
        ctr,
        socket,
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
  }
  return { ...node, executorImage: image! };
}

function kubectlPath(): string {
  const binDir = sh('bash', [join(root, 'scripts/build-controlplane.sh')]).trim();
  return join(binDir, 'kubectl');
}

function tryJson(f: () => string) {
  try {
    return JSON.parse(f());
  } catch {
    return undefined;
  }
}

/** The CLI and test executables, staged where the test Unix users can read and run them. */
function stageSharedDir(): { sharedDir: string; cli: string } {
  const sharedDir = mkdtempSync('/tmp/dss-spark-k8s-test-shared-');
  chmodSync(sharedDir, 0o755);
  const cliDir = join(sharedDir, 'cli');
  mkdirSync(join(cliDir, '.toolchain'), { recursive: true });
  cpSync(join(root, 'bin'), join(cliDir, 'bin'), { recursive: true });
  cpSync(join(root, 'dist'), join(cliDir, 'dist'), { recursive: true });
  symlinkSync(process.execPath, join(cliDir, '.toolchain/node'));
  execFileSync('chmod', ['-R', 'a+rX', sharedDir]);
  return { sharedDir, cli: join(cliDir, 'bin/dss-spark-k8s') };
}

async function bundleTestExecutables(sharedDir: string) {
  for (const name of ['fake-spark-submit']) {
    await bundleFile(join(root, `test/support/${name}.ts`), join(sharedDir, `${name}.mjs`));
    writeFileSync(join(sharedDir, name), `#!/bin/sh\nexec ${process.execPath} ${join(sharedDir, `${name}.mjs`)} "$@"\n`, { mode: 0o755 });
  }
  execFileSync('chmod', ['-R', 'a+rX', sharedDir]);
}

// Test files make their scratch directories in /tmp with these prefixes; the global teardown removes the
// ones this run made, so that a run leaves nothing behind either.
const SCRATCH_PREFIXES = ['dss-spark-k8s-test-', 'dss-spark-k8s-fault-'];

function removeScratchSince(startedMs: number) {
  for (const name of readdirSync('/tmp')) {
    if (!SCRATCH_PREFIXES.some((prefix) => name.startsWith(prefix))) continue;
    const path = join('/tmp', name);
    try {
      if (statSync(path).birthtimeMs >= startedMs) rmSync(path, { recursive: true, force: true });
    } catch {
      // gone meanwhile
    }
  }
}

export default async function setup(project: TestProject) {
  const startedMs = Date.now() - 1000;
  if (process.getuid?.() !== 0) {
    throw new Error('test set-up: the tests must run as root (they create test Unix users and a sudoers rule; CI runs as root)');
  }
  if (Number(process.versions.node.split('.')[0]) < 22) {
    throw new Error(`test set-up: Node ${process.version} is too old; run the tests through 'bash scripts/test.sh' (it provides Node 24)`);
  }
  for (const [tool, why] of [
    ['sudo', 'the CLI impersonates end users with sudo'],
    ['setfacl', 'the kubeconfig is shared with the end user through a POSIX ACL'],
    ['openssl', 'the local control plane generates its certificates'],
    ['useradd', 'test Unix users'],
    ['curl', 'the local control plane start-up waits on /readyz'],
  ] as const)
    requireTool(tool, why);

  // The tests always run the current sources.
  execFileSync(process.execPath, [join(root, 'scripts/bundle.mjs')], { stdio: 'inherit' });

  const cluster = startCluster();
  const cleanups: (() => void)[] = [() => removeScratchSince(startedMs), cluster.stop];
  try {
    const admin = cluster.state.adminKubeconfig;
    const identity = cluster.state.local
      ? { name: 'dssuser', kubeconfig: join(cluster.state.dir, 'dssuser.kubeconfig') }
      : await externalDssuserIdentity(admin);
    applyManifest(cluster.state.kubectl, admin, join(root, 'deploy/rbac/per-user-namespaces.yaml'), identity.name);
    await waitForAdmissionPolicy(cluster.state.kubectl, identity.kubeconfig);

    const users = ensureUnixUsers();
    cleanups.push(removeUnixUsers);
    const { sharedDir, cli } = stageSharedDir();
    cleanups.push(() => rmSync(sharedDir, { recursive: true, force: true }));
    await bundleTestExecutables(sharedDir);
    const dssuserKubeconfig = join(users.dssuser.home, 'dssuser.kubeconfig');
    writeTokenKubeconfig(identity.kubeconfig, dssuserKubeconfig, users.dssuser);
    const sparkSubmit = sh('bash', [join(root, 'scripts/install-pyspark.sh')]).trim();
    const sudoersFile = installSudoersRule(users, [join(sharedDir, 'fake-spark-submit'), sparkSubmit]);
    cleanups.push(removeSudoersRule);

    const clusterState: ClusterState = { ...cluster.state, dssuserKubeconfig: identity.kubeconfig, dssuserName: identity.name };
    const unix: UnixFixture = { ...users, cli, node: process.execPath, sharedDir, dssuserKubeconfig, sudoersFile };
    project.provide('cluster', clusterState);
    project.provide('unix', unix);
  } catch (error) {
    for (const cleanup of cleanups.reverse()) cleanup();
    throw error;
  }
  return () => {
    for (const cleanup of cleanups.reverse()) {
      try {
        cleanup();
      } catch (error) {
        console.error('test teardown:', error);
      }
    }
  };
}
