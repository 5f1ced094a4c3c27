import { describe, expect, it } from 'vitest';
import { reasonLine, runCommand, startStreaming } from '../../src/exec/process.ts';

const env = { PATH: '/usr/bin:/bin' };

describe('runCommand', () => {
  it('gives the process exactly the environment it is given, nothing of ours', async () => {
    process.env.DSS_SPARK_K8S_LEAK_CHECK = 'leaked';
    try {
      const ran = await runCommand('env', [], { env: { ...env, ONLY: 'this' }, timeoutMs: 5000 });
      expect(ran.code).toBe(0);
      expect(ran.stdout.trim().split('\n').sort()).toEqual(['ONLY=this', 'PATH=/usr/bin:/bin']);
    } finally {
      delete process.env.DSS_SPARK_K8S_LEAK_CHECK;
    }
  });

  it('reports an exit code, a program that does not exist and a timeout, and never throws', async () => {
    expect(await runCommand('sh', ['-c', 'echo out; echo err >&2; exit 3'], { env, timeoutMs: 5000 })).toMatchObject({
      code: 3,
      stdout: 'out\n',
      stderr: 'err\n',
    });
    expect(await runCommand('/no/such/program', [], { env, timeoutMs: 5000 })).toMatchObject({ code: null, failure: 'ENOENT' });
    const slow = await runCommand('sleep', ['5'], { env, timeoutMs: 200 });
    expect(slow).toMatchObject({ code: null, failure: 'timed out after 0 s' });
    expect(slow.ms).toBeLessThan(4000);
  });

  it('closes stdin: a program that reads it ends', async () => {
    expect(await runCommand('cat', [], { env, timeoutMs: 5000 })).toMatchObject({ code: 0, stdout: '' });
  });
});

describe('startStreaming', () => {
  it('resolves with the exit code, or the signal that ended the process', async () => {
    expect(await (await startStreaming('sh', ['-c', 'exit 7'], { env })).exited).toEqual({ exitCode: 7 });
    const running = await startStreaming('sleep', ['30'], { env });
    running.signal('SIGTERM');
    expect(await running.exited).toEqual({ signal: 'SIGTERM' });
  });
});

describe('reasonLine', () => {
  it('takes the line that says why, else the last, at most 200 characters', () => {
    expect(reasonLine('Using Spark\nError: JAVA_HOME is not set\nbye\n')).toBe('Error: JAVA_HOME is not set');
    expect(reasonLine('a\nb\n')).toBe('b');
    expect(reasonLine(`error ${'x'.repeat(300)}`)).toHaveLength(200);
  });
});
