// Timed child processes: wall time from spawn to exit (hrtime), optionally CPU time and peak RSS through
// GNU time, and as another Unix account (uid/gid), the way DSS runs the CLI as dssuser.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

export interface Account {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export interface TimedResult {
  /** Wall time from spawn() to the exit event, in ms. */
  ms: number;
  /** Date.now() at spawn, to relate the child's own timestamps to its start. */
  spawnedAt: number;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** user + system CPU of the process and every descendant it waited for (GNU time). */
  cpuMs?: number;
  /** Peak resident set size in KiB (GNU time %M, or VmHWM polling). */
  maxRssKb?: number;
}

export interface TimedOptions {
  as?: Account;
  env?: Record<string, string>;
  /** A file the account can write: GNU time writes "user sys maxrss" there. */
  rusageFile?: string;
  /** Where stdout goes: captured (default), discarded, or an open file descriptor. */
  stdout?: 'pipe' | 'ignore' | number;
  /** Poll /proc/<pid>/status for VmHWM (peak RSS) when GNU time is not used. */
  pollRss?: boolean;
  timeoutMs?: number;
}

export const GNU_TIME = '/usr/bin/time';

/** Children still running, so that an interrupted bench can stop exactly those (by pid) before clean-up. */
const running = new Set<number>();

/** Sends a signal to every child this bench started that is still running; resolves when they are gone. */
export async function stopRunningChildren(signal: NodeJS.Signals = 'SIGTERM', waitMs = 15_000): Promise<void> {
  for (const pid of running) {
    try {
      process.kill(pid, signal);
    } catch {
      running.delete(pid);
    }
  }
  const deadline = Date.now() + waitMs;
  while (running.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}
const SAFE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function accountEnv(account?: Account): Record<string, string> {
  if (!account) return { PATH: SAFE_PATH, HOME: '/root', NO_COLOR: '1' };
  return { PATH: SAFE_PATH, HOME: account.home, USER: account.name, LOGNAME: account.name, NO_COLOR: '1' };
}

export function timed(file: string, args: readonly string[], options: TimedOptions = {}): Promise<TimedResult> {
  const [command, argv] = options.rusageFile ? [GNU_TIME, ['-f', '%U %S %M', '-o', options.rusageFile, file, ...args]] : [file, [...args]];
  if (options.rusageFile) rmSync(options.rusageFile, { force: true });
  const spawnedAt = Date.now();
  const start = performance.now();
  const child = spawn(command, argv, {
    ...(options.as ? { uid: options.as.uid, gid: options.as.gid, cwd: options.as.home } : {}),
    env: { ...accountEnv(options.as), ...options.env },
    stdio: ['ignore', options.stdout ?? 'pipe', 'pipe'],
  });
  if (child.pid !== undefined) running.add(child.pid);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let peakKb = 0;
  const poller = options.pollRss
    ? setInterval(() => {
        try {
          const match = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
          if (match) peakKb = Math.max(peakKb, Number(match[1]));
        } catch {
          // exited
        }
      }, 20)
    : undefined;
  const timer = options.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), options.timeoutMs) : undefined;
  return new Promise((resolve, reject) => {
    let ms = 0;
    let exit: { code: number | null; signal: NodeJS.Signals | null } = { code: null, signal: null };
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      ms = performance.now() - start;
      if (child.pid !== undefined) running.delete(child.pid);
      exit = { code, signal };
    });
    child.on('close', () => {
      if (poller) clearInterval(poller);
      if (timer) clearTimeout(timer);
      const result: TimedResult = { ms, spawnedAt, exitCode: exit.code, signal: exit.signal, stdout, stderr };
      if (options.rusageFile && existsSync(options.rusageFile)) {
        // GNU time prints "Command exited with non-zero status N" first when the command fails.
        const last = readFileSync(options.rusageFile, 'utf8').trim().split('\n').at(-1) ?? '';
        const [user, sys, rss] = last.split(' ').map(Number);
        if (Number.isFinite(user) && Number.isFinite(sys)) result.cpuMs = (user! + sys!) * 1000;
        if (Number.isFinite(rss)) result.maxRssKb = rss!;
      }
      if (options.pollRss && peakKb > 0) result.maxRssKb = peakKb;
      resolve(result);
    });
  });
}

/** A synchronous command for set-up and checks; throws with its stderr on failure. */
export function sh(file: string, args: readonly string[], input?: string): string {
  return execFileSync(file, [...args], { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 1 << 28 });
}

export function trySh(file: string, args: readonly string[]): string | undefined {
  try {
    return sh(file, args);
  } catch {
    return undefined;
  }
}

/** Throws with the command's output when a timed run failed. */
export function expectExit(result: TimedResult, what: string, expected = 0): void {
  if (result.exitCode !== expected) {
    throw new Error(`${what} exited with ${result.exitCode ?? result.signal} (expected ${expected}); stderr: ${result.stderr.trim().slice(-2000)}`);
  }
}
