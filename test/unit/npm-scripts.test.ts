// Every npm script runs on the project's Node.js (Node 24 from .toolchain where the machine's is older than 22),
// not on whatever `node` comes first on the caller's PATH.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const scripts: Record<string, string> = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts;

describe('npm scripts', () => {
  it('each start through scripts/with-node.sh or a bash script of scripts/ that provides Node itself', () => {
    for (const [name, command] of Object.entries(scripts)) {
      for (const step of command.split(' && ')) {
        expect(step, `npm run ${name}`).toMatch(/^(sh scripts\/with-node\.sh |bash scripts\/(test|cluster|demo)\.sh\b)/);
      }
    }
  });

  it("with-node.sh runs the command and the shims it calls on the project's Node, never on an older one first on PATH", () => {
    // A PATH whose first `node` is a stand-in for an old Node.js.
    const dir = mkdtempSync(join(tmpdir(), 'with-node-'));
    writeFileSync(join(dir, 'node'), '#!/bin/sh\necho 20\n');
    chmodSync(join(dir, 'node'), 0o755);
    symlinkSync(join(root, 'node_modules/.bin/vitest'), join(dir, 'vitest'));
    const env = { PATH: `${dir}:/usr/bin:/bin` };
    const withNode = (...args: string[]) => spawnSync('sh', [join(root, 'scripts/with-node.sh'), ...args], { env, encoding: 'utf8' });
    if (existsSync(join(root, '.toolchain/node'))) {
      expect(Number(withNode('node', '-p', 'process.versions.node').stdout.trim().split('.')[0])).toBeGreaterThanOrEqual(22);
      // A node_modules/.bin shim (#!/usr/bin/env node) finds node through the same PATH.
      expect(withNode('vitest', '--version').stdout).toMatch(/vitest\/\d+\.\d+\.\d+ .*node-v(2[2-9]|[3-9]\d)\./);
    } else {
      // No project Node (the machine's own is new enough): an older one first on PATH makes it install Node 24
      // (with-node-install.test.ts tests that in a scratch copy).
      expect(Number(withNode('node', '-p', 'process.versions.node').stdout.trim().split('.')[0])).toBeGreaterThanOrEqual(22);
    }
  });
});
