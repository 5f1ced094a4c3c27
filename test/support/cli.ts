// Runs the staged CLI as the dssuser Unix account, as DSS does, with a config file of the test's own.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoordinationV1Api, CoreV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { inject } from 'vitest';
import { adminKubeConfig } from './kube.ts';

export interface CliResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunningCli {
  child: ChildProcess;
  /** Resolves with the first stdout JSON line whose `event` is `name`. */
  waitForEvent(name: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  result: Promise<CliResult>;
}

/** A directory owned by the dssuser Unix account (config files, temp dirs, --events files). */
export function dssuserDir(prefix = 'dss-spark-k8s-test-'): string {
  const { dssuser } = inject('unix');
  const dir = mkdtempSync(join('/tmp', prefix));
  chownSync(dir, dssuser.uid, dssuser.gid);
  chmodSync(dir, 0o755);
  return dir;
}

export interface TestProfile {
  [key: string]: unknown;
}

/** Writes a config file with one profile "default" (and any others), readable by dssuser. */
export function writeConfig(profile: TestProfile, extraProfiles: Record<string, TestProfile> = {}): { path: string; tempDir: string } {
  const unix = inject('unix');
  const dir = dssuserDir('dss-spark-k8s-test-config-');
  const tempDir = join(dir, 'tmp');
  mkdirSync(tempDir);
  chownSync(tempDir, unix.dssuser.uid, unix.dssuser.gid);
  const defaults = {
    sparkSubmit: join(unix.sharedDir, 'fake-spark-submit'),
    kubeconfig: unix.dssuserKubeconfig,
    autoCreateNamespace: true,
    tempDir,
    killGrace: '5s',
  };
  const config = {
    profiles: { default: { ...defaults, ...profile }, ...Object.fromEntries(Object.entries(extraProfiles).map(([k, v]) => [k, { ...defaults, ...v }])) },
  };
  const path = join(dir, 'config.yaml');
  writeFileSync(path, JSON.stringify(config, null, 2));
  chownSync(path, unix.dssuser.uid, unix.dssuser.gid);
  return { path, tempDir };
}

export function startCli(args: string[], env: Record<string, string> = {}): RunningCli {
  const unix = inject('unix');
  const child = spawn(unix.cli, args, {
    uid: unix.dssuser.uid,
    gid: unix.dssuser.gid,
    cwd: unix.dssuser.home,
    env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: unix.dssuser.home, USER: unix.dssuser.name, NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const waiters: { name: string; resolve: (e: Record<string, unknown>) => void }[] = [];
  child.stdout!.on('data', (chunk: Buffer) => {
    const before = stdout;
    stdout += chunk.toString();
    const fresh = stdout
      .slice(before.lastIndexOf('\n') + 1)
      .split('\n')
      .slice(0, -1);
    for (const line of fresh) {
      const event = parseJson(line);
      if (!event) continue;
      for (const waiter of waiters.filter((w) => w.name === event.event)) waiter.resolve(event);
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const result = new Promise<CliResult>((resolve) => {
    child.on('close', (exitCode, signal) => resolve({ exitCode, signal, stdout, stderr }));
  });
  return {
    child,
    result,
    waitForEvent(name, timeoutMs = 60_000) {
      const seen = stdout
        .split('\n')
        .map(parseJson)
        .find((e) => e?.event === name);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no "${name}" event within ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
        waiters.push({
          name,
          resolve: (e) => {
            clearTimeout(timer);
            resolve(e);
          },
        });
        void result.then(() => setTimeout(() => reject(new Error(`CLI ended without a "${name}" event; stderr: ${stderr}`)), 100));
      });
    },
  };
}

export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return startCli(args, env).result;
}

/** A JSON object on one line, or undefined for any other line. */
export function parseJson(line: string): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(line);
    return typeof value === 'object' && value !== null ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Every object labelled with the job id, of every kind the tool or Spark creates, in all namespaces. */
export async function jobObjects(jobId: string): Promise<string[]> {
  const kc = adminKubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  const coordination = kc.makeApiClient(CoordinationV1Api);
  const labelSelector = `dss-spark-k8s.dataiku.io/job-id=${jobId}`;
  const lists = await Promise.all([
    core.listPodForAllNamespaces({ labelSelector }).then((l) => l.items.map((o) => `pod/${o.metadata?.name}`)),
    core.listServiceForAllNamespaces({ labelSelector }).then((l) => l.items.map((o) => `service/${o.metadata?.name}`)),
    core.listConfigMapForAllNamespaces({ labelSelector }).then((l) => l.items.map((o) => `configmap/${o.metadata?.name}`)),
    core.listPersistentVolumeClaimForAllNamespaces({ labelSelector }).then((l) => l.items.map((o) => `pvc/${o.metadata?.name}`)),
    core.listServiceAccountForAllNamespaces({ labelSelector }).then((l) => l.items.map((o) => `serviceaccount/${o.metadata?.name}`)),
    rbac.listRoleForAllNamespaces({ labelSelector }).then((l) => l.items.map((o) => `role/${o.metadata?.name}`)),
    rbac.listRoleBindingForAllNamespaces({ labelSelector }).then((l) => l.items.map((o) => `rolebinding/${o.metadata?.name}`)),
    coordination.listLeaseForAllNamespaces({ labelSelector }).then((l) => l.items.map((o) => `lease/${o.metadata?.name}`)),
    core.listSecretForAllNamespaces({ labelSelector }).then((l) => l.items.map((o) => `secret/${o.metadata?.name}`)),
  ]);
  return lists.flat();
}

export function dirEntries(dir: string): string[] {
  return readdirSync(dir);
}

export function uniqueJobId(prefix = 'job'): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
}
