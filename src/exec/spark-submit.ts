// spark-submit runs as the end user through `sudo -n` (never a password prompt, never a hang), with the
// job kubeconfig in KUBECONFIG (the sudoers rule keeps it) and its output streamed to ours unchanged.
// sudo gets an environment of ours alone: whatever it is given and its keep list names (DISPLAY, XAUTHORITY,
// KRB5CCNAME, LANG, TZ... on Debian) would reach the end user's driver, so none of dssuser's variables is given.
import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import type { ResultPromise } from 'execa';
import { ImpersonationError } from '../errors.ts';

// execa takes ~10 ms to load: loaded while the job is provisioned, off the path every job waits on.
const execaLoaded = import('execa');
execaLoaded.catch(() => {}); // awaited (and any failure reported) when spark-submit starts

/**
 * The driver's whole environment: KUBECONFIG, and what sudo (env_reset) sets: PATH (secure_path, else ours),
 * the target user's HOME, LOGNAME, USER, SHELL, MAIL, TERM=unknown and SUDO_* (SUDO_HOME from sudo 1.9.16).
 * A host's PAM configuration (pam_env: /etc/environment, /etc/default/locale) may add its own.
 */
export const DRIVER_ENV_FROM_SUDO = ['HOME', 'LOGNAME', 'MAIL', 'PATH', 'SHELL', 'SUDO_COMMAND', 'SUDO_GID', 'SUDO_HOME', 'SUDO_UID', 'SUDO_USER', 'TERM', 'USER'] as const;

/** Where sudo is found; it also reaches the driver as PATH when sudoers sets no secure_path. */
const SUDO_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function sudoEnv(kubeconfig?: string): Record<string, string> {
  return { PATH: SUDO_PATH, ...(kubeconfig === undefined ? {} : { KUBECONFIG: kubeconfig }) };
}

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
    const child = execFile('sudo', ['-n', '-l', '-u', login, '--', sparkSubmit], { env: sudoEnv() }, (error, _stdout, stderr) => resolve(error ? { code: (error as NodeJS.ErrnoException).code, stderr } : undefined));
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
    extendEnv: false,
    env: sudoEnv(kubeconfig),
  });
  const exited = child.then((result) => ({
    exitCode: typeof result.exitCode === 'number' ? result.exitCode : undefined,
    signal: result.signal ?? undefined,
  }));
  return { exited, signal: (signal) => child.kill(signal) };
}
