// One check's outcome, and the report of them all: text (✓ / ! / ✗ / -) or JSON.
import type { ChalkInstance } from 'chalk';

export type Status = 'pass' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  id: 'config' | 'cluster' | 'namespace' | 'rights' | 'driver-role' | 'policy' | 'sudo' | 'spark';
  title: string;
  status: Status;
  /** Nothing to fix: the check passed, or passed with a warning. A skipped check was not verified. */
  ok: boolean;
  detail: string;
  /** What to do: a YAML snippet, sudoers lines, a command or a config key. Only under a failure or warning. */
  fix?: string;
}

type Id = CheckResult['id'];

export function result(id: Id, title: string, status: Status, detail: string, fix?: string): CheckResult {
  return { id, title, status, ok: status === 'pass' || status === 'warn', detail, ...(fix === undefined ? {} : { fix }) };
}

export function allOk(results: CheckResult[]): boolean {
  return results.every((r) => r.ok);
}

export function formatJson(results: CheckResult[]): string {
  return `${JSON.stringify({ ok: allOk(results), checks: results }, null, 2)}\n`;
}

export function formatText(results: CheckResult[], chalk: ChalkInstance): string {
  const mark: Record<Status, string> = { pass: chalk.green('✓'), warn: chalk.yellow('!'), fail: chalk.red('✗'), skip: chalk.dim('-') };
  const lines = results.flatMap((r) => [
    `${mark[r.status]} ${chalk.bold(r.title)}: ${r.detail}`,
    ...(r.fix === undefined ? [] : r.fix.split('\n').map((line) => `    ${chalk.cyan(line)}`)),
  ]);
  const failed = results.filter((r) => !r.ok).length;
  const summary =
    failed === 0
      ? chalk.green(`all ${results.length} checks passed`)
      : chalk.red(`${failed} of ${results.length} checks failed or could not run; apply the fixes above and run doctor again`);
  return `${[...lines, summary].join('\n')}\n`;
}
