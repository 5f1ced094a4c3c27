// Our own output: status lines for people on stderr (never stdout: that is the driver's), and one JSON
// line per phase for the job runner on --events (a file or an inherited file descriptor).
// No write of ours may end the job early: a reader that went away (EPIPE), a closed fd (EBADF) or a full
// disk lose that line only, and teardown still runs (main.ts catches the streams' asynchronous errors).
import { closeSync, constants, fstatSync, lstatSync, openSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
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
      if (!options.quiet) writeStderr(`${chalk.cyan('dss-spark-k8s')} ${chalk.dim(elapsed())} ${message}\n`);
    },
    warn(message) {
      if (!options.quiet) writeStderr(`${chalk.yellow('dss-spark-k8s warning:')} ${message}\n`);
    },
    event(name, fields) {
      if (fd === undefined) return;
      const line = { event: name, jobId: options.jobId, time: new Date().toISOString(), elapsedMs: Date.now() - started, ...fields };
      try {
        writeSync(fd, `${JSON.stringify(line)}\n`);
      } catch {
        // the job runner stopped reading, or its file cannot grow: the job goes on
      }
    },
    close() {
      if (fd === undefined || /^\d+$/.test(options.events!)) return;
      try {
        closeSync(fd);
      } catch {
        // nothing left to lose
      }
    },
  };
}

/** process.stderr.write that never throws (its asynchronous errors are caught in main.ts). */
export function writeStderr(text: string): void {
  try {
    process.stderr.write(text);
  } catch {
    // stderr is gone: nobody is left to tell
  }
}

// Never through a symlink (O_NOFOLLOW; and no directory on the way is a link planted by another user), never
// into a file someone else owns or that is also linked elsewhere, never a FIFO that would block us (O_NONBLOCK).
function openEvents(target: string): number {
  if (/^\d+$/.test(target)) return Number(target);
  const refuse = (what: string) =>
    new UsageError(`--events ${target}: ${what}; give a path to a new or existing regular file of your own, not a link, or an open file descriptor number`);
  const uid = process.getuid!();
  const link = plantedDirectoryLink(resolve(target), uid);
  if (link) throw refuse(`${link} on its path is a symbolic link owned by another user`);
  let fd: number;
  try {
    fd = openSync(target, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw refuse('is a symbolic link');
    if (code === 'EISDIR') throw refuse('is a directory');
    if (code === 'ENXIO') throw refuse('is a FIFO, not a regular file');
    throw new UsageError(`--events ${target}: cannot open (${code}); give a writable file or an open file descriptor number`);
  }
  const stat = fstatSync(fd);
  const problem = !stat.isFile()
    ? 'is not a regular file'
    : stat.uid !== uid
      ? `is owned by uid ${stat.uid}, not by you (uid ${uid})`
      : stat.nlink > 1
        ? 'has other hard links'
        : undefined;
  if (problem) {
    closeSync(fd);
    throw refuse(problem);
  }
  return fd;
}

/** The first directory of the path that is a symlink owned by neither root nor us (another user could point it anywhere). */
function plantedDirectoryLink(path: string, uid: number): string | undefined {
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    try {
      const stat = lstatSync(dir);
      if (stat.isSymbolicLink() && stat.uid !== 0 && stat.uid !== uid) return dir;
    } catch {
      // a missing directory fails the open with its own error
    }
    if (dirname(dir) === dir) return undefined;
  }
}
