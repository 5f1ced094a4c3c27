// What cleanup --orphans prints: the jobs as a table or JSON on stdout, a progress line on a terminal's stderr.
import { formatColumns } from '../columns.ts';
import { formatAge, objectCount, type Job, type JobReport } from './model.ts';

export interface Output {
  write(text: string): unknown;
  isTTY?: boolean;
}

export function renderTable(reports: JobReport[], now: Date, withResult: boolean): string {
  const header = ['JOB', 'USER', 'NAMESPACE', 'AGE', 'STATE', 'REASON', 'OBJECTS', ...(withResult ? ['RESULT'] : [])];
  const rows = reports.map((r) => {
    const job = r.job;
    const objects = `${objectCount(job)}${job.tempDir ? ' +dir' : ''}`;
    const row = [job.jobId, job.login ?? job.userSlug ?? '-', job.namespace, age(job, now), r.decision.state, r.decision.reason, objects];
    return withResult ? [...row, r.result ?? '-'] : row;
  });
  return `${formatColumns([header, ...rows]).join('\n')}\n`;
}

export function renderJson(reports: JobReport[], now: Date): string {
  const jobs = reports.map(({ job, decision, result, errors }) => ({
    jobId: job.jobId,
    namespace: job.namespace,
    user: job.login ?? job.userSlug ?? null,
    createdAt: job.createdAt?.toISOString() ?? null,
    ageSeconds: job.createdAt ? Math.floor((now.getTime() - job.createdAt.getTime()) / 1000) : null,
    state: decision.state,
    reason: decision.reason,
    objects: Object.entries(job.objects).flatMap(([kind, names]) => names.map((name) => ({ kind, name }))),
    tempDir: job.tempDir?.path ?? null,
    ...(result ? { result } : {}),
    ...(errors ? { errors } : {}),
  }));
  return `${JSON.stringify(jobs, null, 2)}\n`;
}

function age(job: Job, now: Date): string {
  return job.createdAt ? formatAge(now.getTime() - job.createdAt.getTime()) : '-';
}

/** One self-overwriting status line on stderr, only when stderr is a terminal. */
export function progressLine(stderr: Output) {
  let shown = false;
  let last = 0;
  return {
    update(text: string) {
      if (!stderr.isTTY || Date.now() - last < 100) return;
      last = Date.now();
      shown = true;
      stderr.write(`\r\x1b[K${text}`);
    },
    done() {
      if (shown) stderr.write('\r\x1b[K');
      shown = false;
    },
  };
}
