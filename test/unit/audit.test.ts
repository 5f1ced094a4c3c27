import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { auditCredentialId, tokenJti } from '../../src/audit/credential-id.ts';
import { jobRequest, renderTable } from '../../src/audit/log.ts';
import { auditCommand, validate } from '../../src/commands/audit.ts';
import { UsageError } from '../../src/errors.ts';
import { jobBaseName } from '../../src/plan/names.ts';

const base = jobBaseName('alice', 'job1');
const jwt = (claims: object) => `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.c2ln`;

function event(overrides: Record<string, unknown>): string {
  return JSON.stringify({
    kind: 'Event',
    apiVersion: 'audit.k8s.io/v1',
    stage: 'ResponseComplete',
    verb: 'list',
    requestReceivedTimestamp: '2026-12-02T20:00:00.000000Z',
    user: { username: `system:serviceaccount:dss-alice:${base}` },
    objectRef: { resource: 'pods', namespace: 'dss-alice' },
    responseStatus: { code: 200 },
    ...overrides,
  });
}

describe('tokenJti', () => {
  it('reads the jti of a JWT payload, and nothing from what is not one', () => {
    expect(tokenJti(jwt({ jti: 'abc-123', sub: 'x' }))).toBe('abc-123');
    expect(tokenJti(jwt({ sub: 'x' }))).toBeUndefined();
    expect(tokenJti('not-a-jwt')).toBeUndefined();
    expect(tokenJti('a.%%%.b')).toBeUndefined();
    expect(auditCredentialId('abc-123')).toBe('JTI=abc-123');
  });
});

describe('jobRequest', () => {
  const exact = validate({ job: 'job1', user: 'alice', auditLog: '-', output: 'table' });

  it("keeps the job's own requests (final stage only) with time, verb, resource, name and code", () => {
    expect(
      jobRequest(event({ objectRef: { resource: 'pods', subresource: 'log', namespace: 'dss-alice', name: 'p1' }, responseStatus: { code: 403 } }), exact),
    ).toEqual({
      time: '2026-12-02T20:00:00.000000Z',
      by: 'job',
      verb: 'list',
      resource: 'pods/log',
      namespace: 'dss-alice',
      name: 'p1',
      code: 403,
    });
    expect(jobRequest(event({ stage: 'RequestReceived' }), exact)).toBeUndefined();
    expect(jobRequest(event({ user: { username: `system:serviceaccount:dss-alice:${base}-exec` } }), exact)?.by).toBe('job');
  });

  it("leaves out other jobs' accounts, even ones whose name has this job's as a prefix", () => {
    expect(jobRequest(event({ user: { username: `system:serviceaccount:dss-alice:${base}x` } }), exact)).toBeUndefined();
    expect(jobRequest(event({ user: { username: `system:serviceaccount:dss-bob:${jobBaseName('bob', 'job1')}` } }), exact)).toBeUndefined();
    expect(jobRequest(event({ user: { username: 'system:kube-controller-manager' } }), exact)).toBeUndefined();
  });

  it("keeps dssuser's requests about the job's objects, not about another job's", () => {
    const byDssuser = (name: string) =>
      event({ user: { username: 'dssuser' }, verb: 'create', objectRef: { resource: 'secrets', namespace: 'dss-alice', name } });
    expect(jobRequest(byDssuser(`${base}-t0`), exact)).toMatchObject({ by: 'dssuser', verb: 'create', name: `${base}-t0` });
    expect(jobRequest(byDssuser(`${base}-t0x`), exact)).toBeUndefined();
    expect(jobRequest(byDssuser(jobBaseName('alice', 'job2')), exact)).toBeUndefined();
    const collection = (selector: string) =>
      event({
        user: { username: 'dssuser' },
        verb: 'deletecollection',
        requestURI: `/api/v1/namespaces/dss-alice/pods?labelSelector=${encodeURIComponent(selector)}`,
        objectRef: { resource: 'pods', namespace: 'dss-alice' },
      });
    expect(jobRequest(collection(`dss-spark-k8s.dataiku.io/owner=${base}`), exact)?.verb).toBe('deletecollection');
    expect(jobRequest(collection(`dss-spark-k8s.dataiku.io/owner=${base}-exec2`), exact)).toBeUndefined();
  });

  it('matches by credential id and keeps it, with the policy annotations', () => {
    const matcher = validate({ job: 'job9', auditLog: '-', output: 'table', credentialId: ['abc'] });
    const line = event({
      user: { username: 'system:serviceaccount:ns:other', extra: { 'authentication.kubernetes.io/credential-id': ['JTI=abc'] } },
      annotations: { 'authorization.k8s.io/decision': 'allow', 'dss-spark-k8s-job-isolation.dss-spark-k8s.dataiku.io/job': 'job9' },
    });
    expect(jobRequest(line, matcher)).toMatchObject({
      by: 'job',
      credentialId: 'JTI=abc',
      annotations: { 'dss-spark-k8s-job-isolation.dss-spark-k8s.dataiku.io/job': 'job9' },
    });
  });

  it('without --user, matches job accounts ending in -<job id> only', () => {
    const loose = validate({ job: 'job1', auditLog: '-', output: 'table' });
    expect(jobRequest(event({}), loose)?.by).toBe('job');
    expect(jobRequest(event({ user: { username: `system:serviceaccount:dss-alice:${jobBaseName('alice', 'xjob1')}` } }), loose)).toBeUndefined();
    expect(jobRequest(event({ user: { username: 'system:serviceaccount:default:app-job1' } }), loose)).toBeUndefined();
  });

  it('ignores lines that are not audit events', () => {
    expect(jobRequest('', exact)).toBeUndefined();
    expect(jobRequest('{"kind":"Event",', exact)).toBeUndefined();
  });
});

describe('audit command', () => {
  it('refuses a bad job id or credential id in one line (exit 64)', () => {
    expect(() => validate({ job: 'Bad_Id', auditLog: '-', output: 'table' })).toThrow(UsageError);
    expect(() => validate({ job: 'ok', auditLog: '-', output: 'table', credentialId: ['a b'] })).toThrow(/--credential-id/);
    expect(new UsageError('x').exitCode).toBe(64);
  });

  it('streams a file into a table or JSON, and says when the file cannot be read', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'audit-test-'));
    const file = join(dir, 'audit.log');
    writeFileSync(
      file,
      [event({ verb: 'get', objectRef: { resource: 'pods', namespace: 'dss-alice', name: 'p\n1' } }), event({ user: { username: 'other' } }), 'garbage'].join(
        '\n',
      ),
    );
    let out = '';
    await auditCommand({ job: 'job1', user: 'alice', auditLog: file, output: 'table' }, { stdout: (t) => (out += t) });
    const lines = out.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^TIME\s+BY\s+VERB\s+RESOURCE\s+NAMESPACE\s+NAME\s+CODE$/);
    expect(lines[1]).toMatch(/job\s+get\s+pods\s+dss-alice\s+p\\n1\s+200$/);
    out = '';
    await auditCommand({ job: 'job1', user: 'alice', auditLog: file, output: 'json' }, { stdout: (t) => (out += t) });
    expect(JSON.parse(out)).toHaveLength(1);
    await expect(auditCommand({ job: 'job1', auditLog: join(dir, 'missing'), output: 'table' })).rejects.toThrow(
      /--audit-log .*missing: cannot read it \(ENOENT\)/,
    );
    expect(renderTable([])).toMatch(/^TIME/);
  });
});
