// The CLI once src/main.ts has checked the Node.js version, and the one error boundary: every failure becomes
// one stderr line and a documented exit code. `--version` answers before anything heavy is loaded (it is
// called by scripts).
import { existsSync, statSync } from 'node:fs';
import module from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CliError, ExitCode } from './errors.ts';
import { VERSION } from './version.ts';

// A reader that went away (EPIPE) or a closed descriptor is reported on the stream, not thrown: without a
// listener it would end the process before the job's teardown. What cannot be written is lost, nothing more.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  process.stdout.write(`${VERSION}\n`);
} else {
  enableCompileCache();
  try {
    const { runCli } = await import('./cli.ts');
    process.exitCode = await runCli(process.argv);
  } catch (error) {
    process.exitCode = reportError(error);
  }
}

// V8's code cache for the bundle halves the start-up of every later run. It lives in the running user's
// own home, never in a shared directory another user could fill with poisoned cache entries.
function enableCompileCache() {
  const home = homedir();
  if (!home || !existsSync(home) || statSync(home).uid !== process.getuid?.()) return;
  try {
    module.enableCompileCache?.(join(home, '.cache', 'dss-spark-k8s', 'node-compile-cache'));
  } catch {
    // a cache is an optimisation only
  }
}

function reportError(error: unknown): number {
  if (error instanceof CliError) {
    say(`dss-spark-k8s: ${error.message}\n`);
    return error.exitCode;
  }
  // An unexpected failure: one line, never an object dump (it could carry request headers).
  const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
  say(`dss-spark-k8s: internal error: ${message}; please report it\n`);
  return ExitCode.internal;
}

function say(line: string) {
  try {
    process.stderr.write(line);
  } catch {
    // nobody is left to read it
  }
}
