// Every process the tool starts is started here: without a shell, in an environment the caller spells out
// (nothing of ours is inherited by accident), with the output captured for short commands (`id`, `setfacl`,
// `sudo -l`, `spark-submit --version`) or streamed for the driver.
import { execFile } from 'node:child_process';

export interface ProcessResult {
  /** Exit code; null when the process could not start, timed out or died of a signal. */
  code: number | null;
  stdout: string;
  stderr: string;
  /** Why there is no exit code: "ENOENT", "timed out after 30 s"... */
  failure?: string;
  ms: number;
}

export interface CommandOptions {
  env: Record<string, string>;
  timeoutMs: number;
  cwd?: string;
}

const MAX_OUTPUT_BYTES = 4 << 20;

/** Runs a short command to its end, its output captured; never throws. stdin is closed at once. */
export function runCommand(file: string, args: readonly string[], options: CommandOptions): Promise<ProcessResult> {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = execFile(
      file,
      args,
      { cwd: options.cwd, timeout: options.timeoutMs, env: options.env, maxBuffer: MAX_OUTPUT_BYTES },
      (error, stdout, stderr) => {
        const ms = Date.now() - started;
        if (!error) return resolve({ code: 0, stdout, stderr, ms });
        const e = error as NodeJS.ErrnoException & { code?: number | string; killed?: boolean; signal?: string };
        if (typeof e.code === 'number') return resolve({ code: e.code, stdout, stderr, ms });
        const failure =
          e.killed && ms >= options.timeoutMs ? `timed out after ${Math.round(options.timeoutMs / 1000)} s` : String(e.code ?? e.signal ?? e.message);
        resolve({ code: null, stdout, stderr, failure, ms });
      },
    );
    child.stdin?.end();
  });
}

export interface ProcessExit {
  exitCode?: number;
  signal?: string;
}

export interface StreamingProcess {
  exited: Promise<ProcessExit>;
  /** Sends a signal to the process. */
  signal(signal: NodeJS.Signals): void;
}

// execa takes ~10 ms to load: preload() starts it off the path a job waits on.
let execaLoading: Promise<typeof import('execa')> | undefined;

/** Starts loading the streaming runner (execa) now; awaited, and any failure reported, by startStreaming. */
export function preload(): void {
  execaLoading ??= import('execa');
  execaLoading.catch(() => {});
}

/** Starts a long-running process whose stdin, stdout and stderr are ours (the driver's output streamed live). */
export async function startStreaming(file: string, args: readonly string[], options: { env: Record<string, string> }): Promise<StreamingProcess> {
  preload();
  const { execa } = await execaLoading!;
  const child = execa(file, args, { stdio: 'inherit', reject: false, extendEnv: false, env: options.env });
  const exited = child.then((result) => ({
    ...(typeof result.exitCode === 'number' ? { exitCode: result.exitCode } : {}),
    ...(result.signal ? { signal: result.signal } : {}),
  }));
  return { exited, signal: (signal) => child.kill(signal) };
}

/** The line of a failed program's output that says why: the first that looks like an error, else the last. */
export function reasonLine(text: string): string {
  const lines = text
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
  const reason = lines.find((line) => /could not|error|exception|not found|no such file|not set/i.test(line)) ?? lines.at(-1) ?? '';
  return reason.length > 200 ? `${reason.slice(0, 197)}...` : reason;
}
