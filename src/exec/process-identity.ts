// A process is identified by host, pid and start time: the start time tells a live job from a pid that
// the kernel has since given to another process.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

const CLOCK_TICKS_PER_SECOND = 100; // USER_HZ, 100 on every Linux architecture Node runs on

let bootTimeSeconds: number | undefined;

/** The start time of a process on this host as an ISO string, or undefined when it does not exist. */
export function processStartTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may contain spaces and parentheses: fields after it follow the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const startTicks = Number(fields[19]);
  bootTimeSeconds ??= Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]);
  return new Date((bootTimeSeconds + startTicks / CLOCK_TICKS_PER_SECOND) * 1000).toISOString();
}

export function thisProcess(): { host: string; pid: number; processStart: string } {
  return { host: hostname(), pid: process.pid, processStart: processStartTime(process.pid) ?? new Date().toISOString() };
}

/** Whether the process that wrote (host, pid, processStart) is still running on this host. */
export function isProcessAlive(owner: { host: string; pid: number; processStart: string }): boolean {
  return owner.host === hostname() && processStartTime(owner.pid) === owner.processStart;
}
