// Attribution end to end: a real `run` (dssuser identity, fake spark-submit making real API calls as the end
// user), then `dss-spark-k8s audit` over the local kube-apiserver's audit log finds every request of that
// job — the job token's, each carrying the credential id the `provisioned` event announced, and dssuser's
// about the job's objects — and nothing of another job.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import type { AuditedRequest } from '../../src/audit/log.ts';
import { jobBaseName, loginToSlug } from '../../src/plan/names.ts';
import { dssuserDir, runCli, uniqueJobId, writeConfig } from '../support/cli.ts';

const unix = inject('unix');
const cluster = inject('cluster');
const alice = unix.endUsers[0]!;

/** `audit` as an administrator (root: the audit log is readable by root only). */
function audit(args: string[]) {
  const result = spawnSync(unix.cli, ['audit', ...args], { encoding: 'utf8', env: { PATH: '/usr/local/bin:/usr/bin:/bin', NO_COLOR: '1' } });
  return { exitCode: result.status, stdout: result.stdout, stderr: result.stderr };
}

async function auditedEventually(args: string[], done: (requests: AuditedRequest[]) => boolean): Promise<AuditedRequest[]> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const result = audit([...args, '--audit-log', cluster.auditLog, '-o', 'json']);
    expect(result.exitCode, result.stderr).toBe(0);
    const requests = JSON.parse(result.stdout) as AuditedRequest[];
    if (done(requests) || Date.now() > deadline) return requests;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

describe('audit: every API call of a job, from the apiserver audit log', () => {
  it('lists the job token requests (with its credential id) and dssuser requests about the job', { timeout: 120_000 }, async () => {
    if (!cluster.auditLog || !existsSync(cluster.auditLog))
      throw new Error(`this control plane writes no audit log (auditLog: "${cluster.auditLog}"): run the tests on the local cluster of scripts/cluster.sh`);
    const config = writeConfig({});
    const jobId = uniqueJobId('audit');
    const otherJobId = uniqueJobId('audit');
    const events = join(dssuserDir(), 'events.jsonl');
    const run = (id: string, extra: string[] = []) =>
      runCli(['run', '--user', alice.name, '--config', config.path, '--job-id', id, ...extra, '--', 'app', 'probe']);
    const [result, otherResult] = await Promise.all([run(jobId, ['--events', events]), run(otherJobId)]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(otherResult.exitCode, otherResult.stderr).toBe(0);
    const provisioned = readFileSync(events, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((e) => e.event === 'provisioned')!;

    const baseName = jobBaseName(loginToSlug(alice.name), jobId);
    expect(provisioned).toMatchObject({ jobId, user: alice.name, serviceAccount: baseName, credentialId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    const credentialId = `JTI=${provisioned.credentialId}`;

    const requests = await auditedEventually(['--job', jobId, '--user', alice.name], (r) =>
      r.some((q) => q.by === cluster.dssuserName && q.verb === 'delete' && q.resource === 'serviceaccounts'),
    );
    const byJob = requests.filter((r) => r.by === 'job');
    // The probe's writes (the local audit policy, scripts/cluster.sh, logs no reads): a pod created, a namespace refused.
    expect(byJob).toContainEqual(expect.objectContaining({ verb: 'create', resource: 'pods', code: 201 }));
    expect(byJob).toContainEqual(expect.objectContaining({ verb: 'create', resource: 'namespaces', code: 403 }));
    for (const request of byJob) expect(request.credentialId, JSON.stringify(request)).toBe(credentialId);
    // dssuser's provisioning and teardown of the job's own objects.
    expect(requests).toContainEqual(
      expect.objectContaining({ by: cluster.dssuserName, verb: 'create', resource: 'serviceaccounts', name: baseName, code: 201 }),
    );
    expect(requests).toContainEqual(
      expect.objectContaining({ by: cluster.dssuserName, verb: 'create', resource: 'serviceaccounts/token', name: baseName, code: 201 }),
    );
    expect(requests).toContainEqual(expect.objectContaining({ by: cluster.dssuserName, verb: 'delete', resource: 'serviceaccounts', name: baseName }));
    expect(requests).toContainEqual(
      expect.objectContaining({ by: cluster.dssuserName, verb: 'deletecollection', resource: 'pods', namespace: provisioned.namespace }),
    );
    // Nothing of the other job (same user, same namespace).
    const otherBase = jobBaseName(loginToSlug(alice.name), otherJobId);
    expect(requests.filter((r) => r.name.startsWith(otherBase) || JSON.stringify(r).includes(otherJobId))).toEqual([]);

    // The credential id alone finds the same token's requests.
    const byCredential = await auditedEventually(['--job', 'unknown', '--credential-id', String(provisioned.credentialId)], (r) => r.length >= byJob.length);
    expect(byCredential.map((r) => `${r.time} ${r.verb} ${r.resource}`)).toEqual(byJob.map((r) => `${r.time} ${r.verb} ${r.resource}`));

    const table = audit(['--job', jobId, '--user', alice.name, '--audit-log', cluster.auditLog]);
    expect(table.exitCode, table.stderr).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^TIME\s+BY\s+VERB\s+RESOURCE\s+NAMESPACE\s+NAME\s+CODE$/);
    expect(table.stdout).toMatch(/\bjob\s+create\s+pods\s/);
  });

  it('refuses an unreadable audit log and a bad job id in one line, exit 64', () => {
    const missing = audit(['--job', 'x1', '--audit-log', '/nonexistent/audit.log']);
    expect([missing.exitCode, missing.stdout, missing.stderr.trimEnd().split('\n').length]).toEqual([64, '', 1]);
    expect(missing.stderr).toMatch(/--audit-log \/nonexistent\/audit\.log: cannot read it \(ENOENT\)/);
    const bad = audit(['--job', 'Bad_Id', '--audit-log', '/dev/null']);
    expect([bad.exitCode, bad.stderr.trimEnd().split('\n').length]).toEqual([64, 1]);
  });
});
