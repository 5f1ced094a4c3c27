// spark-submit runs as the end user through `sudo -n` (never a password prompt, never a hang), with the
// job kubeconfig in KUBECONFIG (the sudoers rule keeps it) and its output streamed to ours unchanged.
import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import type { ResultPromise } from 'execa';
import { ImpersonationError } from '../errors.ts';

// execa takes ~10 ms to load: loaded while the job is provisioned, off the path every job waits on.
const execaLoaded = import('execa');
execaLoaded.catch(() => {}); // awaited (and any failure reported) when spark-submit starts

export function sudoArgs(login: string, sparkSubmit: string, args: string[]): string[] {
  return ['-n', '-u', login, '--', sparkSubmit, ...args];
}

/** Fails before anything is created when spark-submit is missing or sudo would refuse to run it. */
export async function checkImpersonation(login: string, sparkSubmit: string): Promise<void> {
  try {
    await access(sparkSubmit, constants.X_OK);
  } catch {
    throw new ImpersonationError(`spark-submit ${sparkSubmit} does not exist or is not executable; fix sparkSubmit in the profile`);
  }
  const refusal = await new Promise<{ code?: unknown; stderr: string } | undefined>((resolve) => {
    const child = execFile('sudo', ['-n', '-l', '-u', login, '--', sparkSubmit], (error, _stdout, stderr) => resolve(error ? { code: (error as NodeJS.ErrnoException).code, stderr } : undefined));
    child.stdin?.end();
  });
  if (refusal) {
    const reason = refusal.code === 'ENOENT' ? 'sudo is not installed' : (refusal.stderr || 'not permitted').split('\n')[0];
    throw new ImpersonationError(
      `sudo refuses to run ${sparkSubmit} as "${login}" without a password (${reason}); add the sudoers rule of the README for this user`,
    );
  }
}

export interface SparkSubmitExit {
  exitCode?: number;
  signal?: string;
}

export interface RunningSparkSubmit {
  exited: Promise<SparkSubmitExit>;
  /** Forwards a signal (sudo relays it to spark-submit). */
  signal(signal: NodeJS.Signals): void;
}

export async function startSparkSubmit(login: string, sparkSubmit: string, args: string[], kubeconfig: string): Promise<RunningSparkSubmit> {
  const { execa } = await execaLoaded;
  const child: ResultPromise = execa('sudo', sudoArgs(login, sparkSubmit, args), {
    stdio: 'inherit',
    reject: false,
    env: { KUBECONFIG: kubeconfig },
  });
  const exited = child.then((result) => ({
    exitCode: typeof result.exitCode === 'number' ? result.exitCode : undefined,
    signal: result.signal ?? undefined,
  }));
  return { exited, signal: (signal) => child.kill(signal) };
}
