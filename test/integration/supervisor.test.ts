// No etcd or kube-apiserver outlives the run that started it, even a run that is killed outright.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    if (condition()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return condition();
}

describe('control-plane supervisor', () => {
  it('stops etcd and kube-apiserver and removes their directory when the owner is SIGKILLed', async () => {
    const owner = spawn('sleep', ['600'], { stdio: 'ignore' });
    const dir = mkdtempSync('/tmp/dss-spark-k8s-test-owned-');
    rmSync(dir, { recursive: true });
    const state = JSON.parse(
      execFileSync('bash', [`${root}/scripts/cluster.sh`, 'up', '--dir', dir, '--owner-pid', String(owner.pid), '--no-node'], { encoding: 'utf8' }),
    );
    expect(alive(state.apiserverPid)).toBe(true);
    expect(alive(state.etcdPid)).toBe(true);

    owner.kill('SIGKILL');
    expect(await until(() => !alive(state.apiserverPid) && !alive(state.etcdPid), 20_000)).toBe(true);
    expect(await until(() => !existsSync(dir), 5_000)).toBe(true);
  });
});
