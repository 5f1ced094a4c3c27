// Attribution end to end: a real `run` (dssuser identity, fake spark-submit making real API calls as the end
// user), then `dss-spark-k8s audit` over the local kube-apiserver's audit log finds every request of that
// job — the job token's, each carrying the credential id the `provisioned` event announced, and dssuser's
// about the job's objects — and nothing of another job.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { AuditedRequest } from '../../src/audit/log.ts';
import { jobBaseName, loginToSlug } from '../../src/plan/names.ts';
import { Annotation, MAX_CREDENTIAL_IDS } from '../../src/plan/types.ts';
import { teardown } from '../../src/teardown/teardown.ts';
import { dssuserDir, runCli, startCli, uniqueJobId, writeConfig } from '../support/cli.ts';
import { adminCore, dssuserKube, uniqueName } from '../support/kube.ts';
import { profileWith } from '../support/profile.ts';
import { dssuserApi, provisionJob, REFUSED_BY, type Job } from '../support/redteam.ts';

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
    // The job policies' audit annotations on the job token's pod create: its account (isolation), and from that
    // account's ServiceAccount its job id, user and login (attribution), one value each although the other job's
    // accounts in the same namespace were parameters of the same evaluation.
    expect(byJob.find((r) => r.verb === 'create' && r.resource === 'pods')?.annotations).toMatchObject({
      'dss-spark-k8s-job-isolation/job-account': baseName,
      'dss-spark-k8s-job-attribution/job-id': jobId,
      'dss-spark-k8s-job-attribution/user': loginToSlug(alice.name),
      'dss-spark-k8s-job-attribution/login': alice.name,
    });
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

/** The JSON lines of an --events file (those written so far). */
function eventsOf(file: string): Record<string, unknown>[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

async function eventually<T>(read: () => Promise<T> | T, done: (value: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

describe("the credential ids on the job's ServiceAccount", () => {
  it("records every token's credential id on the job ServiceAccount", { timeout: 120_000 }, async () => {
    const config = writeConfig({ tokenRotation: '10s' });
    const jobId = uniqueJobId('jti');
    const events = join(dssuserDir(), 'events.jsonl');
    const job = startCli(['run', '--user', alice.name, '--config', config.path, '--job-id', jobId, '--events', events, '--', 'app', 'sleep', '16']);
    await job.waitForEvent('started');
    const provisioned = eventsOf(events).find((e) => e.event === 'provisioned')!;
    const baseName = String(provisioned.serviceAccount);
    const annotation = () =>
      adminCore()
        .readNamespacedServiceAccount({ namespace: String(provisioned.namespace), name: baseName })
        .then((sa) => sa.metadata?.annotations?.[Annotation.credentialIds]);
    expect(await annotation()).toBe(provisioned.credentialId);
    const rotated = await eventually(
      () => eventsOf(events).find((e) => e.event === 'rotated'),
      (e) => e !== undefined,
    );
    expect(rotated, 'no rotated event within 30 s').toBeDefined();
    expect(rotated).toMatchObject({ jobId, user: alice.name, credentialId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(rotated!.credentialId).not.toBe(provisioned.credentialId);
    const expected = `${provisioned.credentialId},${rotated!.credentialId}`;
    expect(await eventually(annotation, (value) => value === expected, 10_000)).toBe(expected);
    // The login and the job id, on the same account.
    const sa = await adminCore().readNamespacedServiceAccount({ namespace: String(provisioned.namespace), name: baseName });
    expect(sa.metadata?.annotations?.[Annotation.login]).toBe(alice.name);
    expect(sa.metadata?.labels?.['dss-spark-k8s.dataiku.io/job-id']).toBe(jobId);
    const result = await job.result;
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).not.toMatch(/could not record/);
  });

  describe('what dssuser may not change on a ServiceAccount (server-side dry runs)', () => {
    let job: Job;
    let unlabelled: string;
    beforeAll(async () => {
      job = await provisionJob(profileWith({ autoCreateNamespace: true }), alice.name);
      unlabelled = uniqueName('team-ci');
      await adminCore().createNamespacedServiceAccount({ namespace: job.namespace, body: { metadata: { name: unlabelled } } });
    }, 60_000);
    afterAll(async () => {
      const dssuser = dssuserKube();
      await teardown(dssuser, job.namespace, { baseName: job.base }, job.created, { driverMayHaveRun: false }).finally(() => dssuser.close());
      await adminCore().deleteNamespacedServiceAccount({ namespace: job.namespace, name: unlabelled });
    });

    const OWN_ACCOUNTS = /update only its own Leases and job ServiceAccounts/;
    const ids = { [Annotation.credentialIds]: '0b3c2a9e-3f4d-4a5b-9c6d-7e8f9a0b1c2d' };
    it('patch of the credential ids of a job ServiceAccount (what the tool does)', async () => {
      const outcome = await dssuserApi().patch('serviceaccounts', job.namespace, job.base, { metadata: { annotations: ids } });
      expect(outcome.status, outcome.message).toBe(200);
    });

    const FORGERIES: { name: string; target: () => string; patch: Record<string, unknown>; rule?: RegExp }[] = [
      { name: 'patch of a job ServiceAccount label', target: () => job.base, patch: { metadata: { labels: { team: 'other' }, annotations: ids } } },
      {
        name: 'patch of another annotation of a job ServiceAccount',
        target: () => job.base,
        patch: { metadata: { annotations: { ...ids, [Annotation.login]: 'bob' } } },
      },
      {
        name: 'patch adding a cloud workload identity to a job ServiceAccount',
        target: () => job.base,
        patch: { metadata: { annotations: { ...ids, 'eks.amazonaws.com/role-arn': 'arn:aws:iam::1:role/admin' } } },
      },
      {
        name: 'patch writing 33 credential ids (the policy admits the newest 32, a bounded size)',
        target: () => job.base,
        patch: { metadata: { annotations: { [Annotation.credentialIds]: Array.from({ length: 33 }, () => ids[Annotation.credentialIds]).join(',') } } },
      },
      {
        name: 'patch turning on token automount of a job ServiceAccount',
        target: () => job.base,
        patch: { metadata: { annotations: ids }, automountServiceAccountToken: true },
      },
      {
        name: 'patch writing what is no token id into the credential ids',
        target: () => job.base,
        patch: { metadata: { annotations: { [Annotation.credentialIds]: 'see bob for details' } } },
      },
      {
        name: 'patch adding a finalizer to a job ServiceAccount',
        target: () => job.base,
        patch: { metadata: { annotations: ids, finalizers: ['example.com/keep'] } },
      },
      {
        name: 'patch of the credential ids of an executor ServiceAccount',
        target: () => job.executorAccount,
        patch: { metadata: { annotations: ids } },
        rule: OWN_ACCOUNTS,
      },
      {
        name: 'patch of the credential ids of an unlabelled ServiceAccount',
        target: () => unlabelled,
        patch: { metadata: { annotations: ids } },
        rule: OWN_ACCOUNTS,
      },
    ];
    it('patch of 32 credential ids of a job ServiceAccount (what the tool keeps at most)', async () => {
      const value = Array.from({ length: MAX_CREDENTIAL_IDS }, () => ids[Annotation.credentialIds]).join(',');
      const outcome = await dssuserApi().patch('serviceaccounts', job.namespace, job.base, {
        metadata: { annotations: { [Annotation.credentialIds]: value } },
      });
      expect(outcome.status, outcome.message).toBe(200);
    });

    for (const forgery of FORGERIES) {
      it(forgery.name, async () => {
        const outcome = await dssuserApi().patch('serviceaccounts', job.namespace, forgery.target(), forgery.patch);
        expect(outcome.status, outcome.message).toBe(403);
        expect(outcome.message).toMatch(REFUSED_BY.dssuserPolicy);
        expect(outcome.message).toMatch(forgery.rule ?? /may only change the annotation dss-spark-k8s\.dataiku\.io\/credential-ids/);
      });
    }
  });
});
