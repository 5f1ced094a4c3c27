// How doctor runs sudo and spark-submit: a function it is given (tests pass their own).
import { runCommand, type ProcessResult } from '../exec/process.ts';
import { sudoEnv } from '../exec/spark-submit.ts';

export type { ProcessResult } from '../exec/process.ts';

export type RunProcess = (file: string, args: string[], options: { timeoutMs: number }) => Promise<ProcessResult>;

/** In /, with the environment `run` gives sudo (nothing of the caller's), in the C locale (sudo's messages are parsed). */
export const runProcess: RunProcess = (file, args, { timeoutMs }) => runCommand(file, args, { timeoutMs, cwd: '/', env: { ...sudoEnv(), LC_ALL: 'C' } });
