// Our own output: status lines for people on stderr (never stdout: that is the driver's), and one JSON
// line per phase for the job runner on --events (a file or an inherited file descriptor).
import { closeSync, openSync, writeSync } from 'node:fs';
import { Chalk } from 'chalk';
import { UsageError } from './errors.ts';

export interface Reporter {
  status(message: string): void;
  warn(message: string): void;
  event(name: string, fields: Record<string, unknown>): void;
  close(): void;
}

// chalk looks at FORCE_COLOR and the terminal only; NO_COLOR (no-color.org) is honoured here.
const chalk = new Chalk(process.env.NO_COLOR ? { level: 0 } : {});

export function createReporter(options: { quiet?: boolean; events?: string; jobId: string }, started = Date.now()): Reporter {
  const fd = options.events === undefined ? undefined : openEvents(options.events);
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(2)}s`;
  return {
    status(message) {
      if (!options.quiet) process.stderr.write(`${chalk.cyan('dss-spark-k8s')} ${chalk.dim(elapsed())} ${message}\n`);
    },
    warn(message) {
      if (!options.quiet) process.stderr.write(`${chalk.yellow('dss-spark-k8s warning:')} ${message}\n`);
    },
    event(name, fields) {
      if (fd === undefined) return;
      const line = { event: name, jobId: options.jobId, time: new Date().toISOString(), elapsedMs: Date.now() - started, ...fields };
      writeSync(fd, `${JSON.stringify(line)}\n`);
    },
    close() {
      if (fd !== undefined && !/^\d+$/.test(options.events!)) closeSync(fd);
    },
  };
}

function openEvents(target: string): number {
  if (/^\d+$/.test(target)) return Number(target);
  try {
    return openSync(target, 'a', 0o600);
  } catch (error) {
    throw new UsageError(`--events ${target}: cannot open (${(error as NodeJS.ErrnoException).code}); give a writable file or an open file descriptor number`);
  }
}
