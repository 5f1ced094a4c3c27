// spark-submit runs as the end user through `sudo -n` (never a password prompt, never a hang), with the
// job kubeconfig in KUBECONFIG (the sudoers rule keeps it) and its output streamed to ours unchanged.
import { access, constants } from 'node:fs/promises';
import { execa, type ResultPromise } from 'execa';
import { ImpersonationError } from '../errors.ts';

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
  const check = await execa('sudo', ['-n', '-l', '-u', login, '--', sparkSubmit], { reject: false, stdin: 'ignore' });
  if (check.exitCode !== 0) {
    const reason = check.code === 'ENOENT' ? 'sudo is not installed' : (check.stderr || 'not permitted').split('\n')[0];
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

export function startSparkSubmit(login: string, sparkSubmit: string, args: string[], kubeconfig: string): RunningSparkSubmit {
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
