// `node src/main.ts` on a Node.js older than 22 (this machine's /usr/bin/node is 20) says so in one line and
// exits 78, instead of Node's loader error; the project's Node still runs the sources.
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const oldNode = process.env.OLD_NODE ?? '/usr/bin/node';

function run(node: string, args: string[]) {
  return spawnSync(node, args, { cwd: root, encoding: 'utf8', timeout: 30_000 });
}

describe('src/main.ts and the Node.js version', () => {
  it(`${oldNode}, older than 22, prints the friendly message and exits 78`, () => {
    const version = run(oldNode, ['--version']);
    if (version.error || !/^v\d+\./.test(version.stdout))
      throw new Error(`${oldNode} does not run (set OLD_NODE to a Node.js older than 22): ${version.error?.message ?? version.stderr}`);
    const major = Number(version.stdout.slice(1).split('.')[0]);
    if (major >= 22) throw new Error(`${oldNode} is ${version.stdout.trim()}, not older than 22: set OLD_NODE to a Node.js older than 22`);
    for (const args of [
      ['src/main.ts', '--version'],
      ['src/main.ts', 'run', '--user', 'alice', '--', 'app.py'],
    ]) {
      const result = run(oldNode, args);
      expect(result.stderr).toBe(`dss-spark-k8s: Node.js ${version.stdout.trim()} is too old; Node.js 22 or newer is required\n`);
      expect(result.stdout).toBe('');
      expect(result.status).toBe(78);
    }
  });

  it('the project Node runs the sources: --version, and a usage error in one line', () => {
    expect(run(process.execPath, ['src/main.ts', '--version'])).toMatchObject({ status: 0, stdout: '0.0.0-dev\n', stderr: '' });
    const usage = run(process.execPath, ['src/main.ts', 'no-such-command']);
    expect(usage.status).toBe(64);
    expect(usage.stderr).toMatch(/^dss-spark-k8s: unknown command 'no-such-command'.*\n$/);
  });
});
