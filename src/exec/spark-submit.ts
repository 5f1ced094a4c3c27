// spark-submit runs as the end user through `sudo -n` (never a password prompt, never a hang), with the
// job kubeconfig in KUBECONFIG (the sudoers rule keeps it) and its output streamed to ours unchanged.
// sudo gets an environment of ours alone: whatever it is given and its keep list names (DISPLAY, XAUTHORITY,
// KRB5CCNAME, LANG, TZ... on Debian) would reach the end user's driver, so none of dssuser's variables is given.
import { access, constants } from 'node:fs/promises';
import { ImpersonationError } from '../errors.ts';
import { preload, runCommand, startStreaming, type ProcessExit, type StreamingProcess } from './process.ts';

// Loaded while the job is provisioned, off the path every job waits on.
preload();

const SUDO_CHECK_TIMEOUT_MS = 10_000;

/**
 * The driver's whole environment: KUBECONFIG, and what sudo (env_reset) sets: PATH (secure_path, else ours),
 * the target user's HOME, LOGNAME, USER, SHELL, MAIL, TERM=unknown and SUDO_* (SUDO_HOME from sudo 1.9.16).
 * A host's PAM configuration (pam_env: /etc/environment, /etc/default/locale) may add its own.
 */
export const DRIVER_ENV_FROM_SUDO = [
  'HOME',
  'LOGNAME',
  'MAIL',
  'PATH',
  'SHELL',
  'SUDO_COMMAND',
  'SUDO_GID',
  'SUDO_HOME',
  'SUDO_UID',
  'SUDO_USER',
  'TERM',
  'USER',
] as const;

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
  const probe = await runCommand('sudo', ['-n', '-l', '-u', login, '--', sparkSubmit], { env: sudoEnv(), timeoutMs: SUDO_CHECK_TIMEOUT_MS });
  if (probe.code !== 0) {
    const reason = probe.failure === 'ENOENT' ? 'sudo is not installed' : (probe.failure ?? (probe.stderr || 'not permitted')).split('\n')[0];
    throw new ImpersonationError(
      `sudo refuses to run ${sparkSubmit} as "${login}" without a password (${reason}); add the sudoers rule of the README for this user`,
    );
  }
}

export type SparkSubmitExit = ProcessExit;

/** spark-submit as it runs; signals go to sudo, which relays them. */
export type RunningSparkSubmit = StreamingProcess;

export function startSparkSubmit(login: string, sparkSubmit: string, args: string[], kubeconfig: string): Promise<RunningSparkSubmit> {
  return startStreaming('sudo', sudoArgs(login, sparkSubmit, args), { env: sudoEnv(kubeconfig) });
}
