// scripts/with-node.sh on a machine whose Node is older than 22 and that has no project Node yet (a fresh
// checkout: `npm ci && npm run test:unit`): it installs Node 24 itself (lib.sh's ensure_node), links it at
// .toolchain/node and runs the command on it. In a scratch copy of the two scripts, with the machine's cache of
// Node 24 (filled by setup.sh or an earlier run), so that the test downloads nothing.
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const scratch = mkdtempSync(join(tmpdir(), 'with-node-install-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('with-node.sh without a project Node', () => {
  it('installs Node 24 into .toolchain and runs the command on it; an old node first on PATH is not used', () => {
    const project = join(scratch, 'project');
    mkdirSync(join(project, 'scripts'), { recursive: true });
    for (const name of ['with-node.sh', 'lib.sh']) cpSync(join(root, 'scripts', name), join(project, 'scripts', name));
    const fakeBin = join(scratch, 'bin');
    mkdirSync(fakeBin);
    // The machine's node, as Node 20 answers the version question.
    writeFileSync(join(fakeBin, 'node'), '#!/bin/sh\necho 20\n');
    chmodSync(join(fakeBin, 'node'), 0o755);
    const npmDir = spawnSync('sh', ['-c', 'dirname "$(command -v npm)"'], { encoding: 'utf8' }).stdout.trim();
    const run = spawnSync('sh', [join(project, 'scripts/with-node.sh'), 'node', '-p', 'process.versions.node'], {
      env: {
        PATH: `${fakeBin}:${npmDir}:/usr/bin:/bin`,
        HOME: process.env.HOME ?? '/root',
        ...(process.env.DSS_SPARK_K8S_CACHE ? { DSS_SPARK_K8S_CACHE: process.env.DSS_SPARK_K8S_CACHE } : {}),
      },
      encoding: 'utf8',
      timeout: 110_000,
    });
    expect(run.stderr).not.toMatch(/with-node: .*failed/);
    expect(Number(run.stdout.trim().split('.')[0])).toBe(24);
    expect(run.status).toBe(0);
    expect(existsSync(join(project, '.toolchain/node'))).toBe(true);
    expect(readlinkSync(join(project, '.toolchain/node'))).toMatch(/\/node-24\/node_modules\/node\/bin\/node$/);
  }, 120_000);
});
