// Every failure the CLI reports is one of these; main.ts turns it into one stderr line and an exit code.

export const ExitCode = {
  ok: 0,
  usage: 64, // bad flags or a spark-submit argument that would override a managed setting
  refused: 65, // the user or the namespace is not permitted
  kubernetes: 69, // the Kubernetes API failed or denied us while provisioning (what was created is rolled back)
  internal: 70,
  impersonation: 71, // sudo refused, or spark-submit missing / not executable
  teardownIncomplete: 75, // some job objects could not be deleted; the message lists them
  jobLost: 76, // the job's Lease or ServiceAccount was deleted while it ran (the driver was stopped)
  config: 78, // the configuration file or profile is invalid
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** A failure with a one-line, user-facing message that says what is wrong and how to fix it. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    // One line whatever a message quotes: control characters (a newline in a login or an argument could
    // forge a second line) are shown escaped.
    super(message.replace(/[\u0000-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1)));
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

export class UsageError extends CliError {
  constructor(message: string) {
    super(message, ExitCode.usage);
  }
}

export class RefusedError extends CliError {
  constructor(message: string) {
    super(message, ExitCode.refused);
  }
}

export class ConfigError extends CliError {
  constructor(message: string) {
    super(message, ExitCode.config);
  }
}

export class KubernetesError extends CliError {
  /** The HTTP status; undefined when no answer came (network, timeout). */
  readonly status?: number;
  /** Seconds the apiserver asked to wait before retrying (Retry-After). */
  readonly retryAfterSeconds?: number;
  constructor(message: string, status?: number, retryAfterSeconds?: number) {
    super(message, ExitCode.kubernetes);
    this.status = status;
    if (retryAfterSeconds !== undefined) this.retryAfterSeconds = retryAfterSeconds;
  }
}

export class ImpersonationError extends CliError {
  constructor(message: string) {
    super(message, ExitCode.impersonation);
  }
}

export class TeardownError extends CliError {
  constructor(message: string) {
    super(message, ExitCode.teardownIncomplete);
  }
}

/** The job's own Lease or ServiceAccount disappeared while it ran: someone else tore it down. */
export class JobLostError extends CliError {
  constructor(message: string) {
    super(message, ExitCode.jobLost);
  }
}

/** The process was asked to stop; exit 128 + signal number once teardown is done. */
export class SignalledError extends CliError {
  readonly signal: NodeJS.Signals;
  constructor(signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`, 128 + signalNumber(signal));
    this.signal = signal;
  }
}

const signalNumbers: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
export function signalNumber(signal: NodeJS.Signals): number {
  return signalNumbers[signal] ?? 1;
}

/** The first line of an error's message: never a stack or a multi-line dump in a one-line error. */
export function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0]!;
}
