// namespaces prune, pure parts: --idle, the last-used patch, which namespaces are idle and what keeps them.
import type { V1Namespace } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { provision, type ProvisionClient } from '../../src/apply/provision.ts';
import { KubernetesError, UsageError } from '../../src/errors.ts';
import {
  candidates,
  decide,
  formatIdle,
  idleSince,
  isBeingDeleted,
  isToolPerUserNamespace,
  lastUsedAnnotations,
  parseIdle,
  PRUNE_SELECTOR,
  renderRows,
  type NamespaceContents,
} from '../../src/namespaces/prune.ts';
import { perUserNamespacePattern } from '../../src/plan/names.ts';
import { planJob } from '../../src/plan/plan.ts';
import { fixtureContext, fixtureProfile } from './fixtures.ts';

const HOUR = 3600;
const DAY = 24 * HOUR;
const now = new Date('2026-12-10T12:00:00Z');
const pattern = perUserNamespacePattern('dss-ns-${dssUserLogin}');
const toolLabels = { 'app.kubernetes.io/managed-by': 'dss-spark-k8s', 'dss-spark-k8s.dataiku.io/managed': 'true', 'dss-spark-k8s.dataiku.io/user': 'alice' };

function namespace(name: string, created: string, options: { lastUsed?: string; labels?: Record<string, string>; deleting?: boolean } = {}): V1Namespace {
  return {
    metadata: {
      name,
      uid: `uid-${name}`,
      resourceVersion: '42',
      creationTimestamp: new Date(created),
      labels: options.labels ?? toolLabels,
      ...(options.lastUsed ? { annotations: { 'dss-spark-k8s.dataiku.io/last-used': options.lastUsed } } : {}),
      ...(options.deleting ? { deletionTimestamp: new Date(created) } : {}),
    },
    status: { phase: options.deleting ? 'Terminating' : 'Active' },
  };
}

const empty: NamespaceContents = { leases: [], jobAccounts: [], pods: [], claims: [] };

describe('--idle', () => {
  it.each([
    ['90m', 90 * 60],
    ['12h', 12 * HOUR],
    ['7d', 7 * DAY],
    ['2w', 14 * DAY],
    ['1w2d', 9 * DAY],
    ['1d12h', 36 * HOUR],
    ['3600s', HOUR],
    [' 1h ', HOUR],
  ])('%s is %i seconds', (text, seconds) => {
    expect(parseIdle(text)).toBe(seconds);
  });

  it.each([
    ['30m', '--idle "30m": at least 1h (a shorter time deletes namespaces between the jobs of one session and leaves no margin for the hosts\' clock skew)'],
    ['90s', '--idle "90s": at least 1h (a shorter time deletes namespaces between the jobs of one session and leaves no margin for the hosts\' clock skew)'],
    ['7 days', '--idle "7 days": expected a duration such as 90s, 30m, 12h, 7d or 2w'],
    ['w', '--idle "w": expected a duration such as 90s, 30m, 12h, 7d or 2w'],
    ['', '--idle "": expected a duration such as 90s, 30m, 12h, 7d or 2w'],
    ['-1d', '--idle "-1d": expected a duration such as 90s, 30m, 12h, 7d or 2w'],
    [undefined, '--idle <duration> is required: how long a namespace must have held no job, e.g. --idle 7d'],
  ])('refuses %j in one line (exit 64)', (text, message) => {
    const error = (() => {
      try {
        parseIdle(text);
      } catch (caught) {
        return caught as UsageError;
      }
      throw new Error('accepted');
    })();
    expect(error).toBeInstanceOf(UsageError);
    expect(error.exitCode).toBe(64);
    expect(error.message).toBe(message);
  });
});

describe('the last-used patch', () => {
  it("is one annotation, RFC 3339 UTC to the second (what dssuser's policy admits)", () => {
    expect(lastUsedAnnotations(new Date('2026-12-03T13:50:07.891Z'))).toEqual({ 'dss-spark-k8s.dataiku.io/last-used': '2026-12-03T13:50:07Z' });
    expect(Object.values(lastUsedAnnotations(new Date()))[0]).toMatch(/^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$/);
  });
});

describe('which namespaces are the tool’s per-user ones', () => {
  it('the selector asks for managed-by, managed=true and a user label', () => {
    expect(PRUNE_SELECTOR).toBe('app.kubernetes.io/managed-by=dss-spark-k8s,dss-spark-k8s.dataiku.io/managed=true,dss-spark-k8s.dataiku.io/user');
  });

  it.each([
    ['all three labels', toolLabels, true],
    ['no user label (a team namespace the tool made)', { ...toolLabels, 'dss-spark-k8s.dataiku.io/user': '' }, false],
    ['managed only (an administrator’s team namespace)', { 'dss-spark-k8s.dataiku.io/managed': 'true' }, false],
    ['managed-by another tool', { ...toolLabels, 'app.kubernetes.io/managed-by': 'helm' }, false],
    ['managed=false', { ...toolLabels, 'dss-spark-k8s.dataiku.io/managed': 'false' }, false],
  ])('%s: %s', (_, labels, expected) => {
    expect(isToolPerUserNamespace(namespace('dss-ns-alice', '2026-12-01T00:00:00Z', { labels }))).toBe(expected);
  });

  it('a namespace with a deletion time or phase Terminating is being deleted', () => {
    expect(isBeingDeleted(namespace('dss-ns-a', '2026-12-01T00:00:00Z', { deleting: true }))).toBe(true);
    expect(isBeingDeleted({ metadata: { name: 'x' }, status: { phase: 'Terminating' } })).toBe(true);
    expect(isBeingDeleted(namespace('dss-ns-a', '2026-12-01T00:00:00Z'))).toBe(false);
  });
});

describe('idle since', () => {
  it.each([
    ['last-used, when later than the creation', { lastUsed: '2026-12-05T08:00:00Z' }, '2026-12-05T08:00:00.000Z'],
    [
      'the creation, when last-used is earlier (a back-dated annotation makes nothing look older)',
      { lastUsed: '2026-11-01T00:00:00Z' },
      '2026-12-01T00:00:00.000Z',
    ],
    ['the creation, without last-used', {}, '2026-12-01T00:00:00.000Z'],
    ['the creation, when last-used is not a time', { lastUsed: 'yesterday' }, '2026-12-01T00:00:00.000Z'],
    ['last-used up to an hour ahead of the clock (a job host running fast)', { lastUsed: '2026-12-10T12:59:00Z' }, '2026-12-10T12:59:00.000Z'],
    [
      'the creation, when last-used is further in the future (it would keep the namespace forever)',
      { lastUsed: '9999-12-31T23:59:59Z' },
      '2026-12-01T00:00:00.000Z',
    ],
  ])('is %s', (_, options, expected) => {
    expect(idleSince(namespace('dss-ns-a', '2026-12-01T00:00:00Z', options), new Date('2026-12-10T12:00:00Z')).toISOString()).toBe(expected);
  });
});

describe('candidates', () => {
  const listed = [
    namespace('dss-ns-recent', '2026-11-01T00:00:00Z', { lastUsed: '2026-12-10T11:00:00Z' }),
    namespace('dss-ns-old', '2026-11-01T00:00:00Z'),
    namespace('dss-ns-used', '2026-11-01T00:00:00Z', { lastUsed: '2026-12-02T12:00:00Z' }),
    namespace('dss-ns-new', '2026-12-10T10:00:00Z'),
    namespace('dss-ns-going', '2026-11-01T00:00:00Z', { deleting: true }),
    namespace('dss-team-a', '2026-11-01T00:00:00Z'),
    namespace('dss-ns-team', '2026-11-01T00:00:00Z', { labels: { 'dss-spark-k8s.dataiku.io/managed': 'true' } }),
  ];

  it('are the profile’s per-user namespaces idle for at least --idle, oldest first, with the uid and resourceVersion read', () => {
    expect(candidates(listed, pattern, now, 7 * DAY)).toEqual([
      { name: 'dss-ns-old', uid: 'uid-dss-ns-old', resourceVersion: '42', idleSince: new Date('2026-11-01T00:00:00Z'), idleSeconds: 39 * DAY + 12 * HOUR },
      { name: 'dss-ns-used', uid: 'uid-dss-ns-used', resourceVersion: '42', idleSince: new Date('2026-12-02T12:00:00Z'), idleSeconds: 8 * DAY },
    ]);
  });

  it('exactly --idle is idle; a second less is not', () => {
    expect(candidates(listed, pattern, now, 8 * DAY).map((c) => c.name)).toEqual(['dss-ns-old', 'dss-ns-used']);
    expect(candidates(listed, pattern, now, 8 * DAY + 1).map((c) => c.name)).toEqual(['dss-ns-old']);
  });

  it('never a namespace outside the pattern, without the labels or being deleted, whatever its age', () => {
    expect(candidates(listed, pattern, now, HOUR).map((c) => c.name)).toEqual(['dss-ns-old', 'dss-ns-used', 'dss-ns-new', 'dss-ns-recent']);
    expect(candidates([namespace('dss-ns-x', '2026-11-01T00:00:00Z')], perUserNamespacePattern('dss-${dssUserLogin}-spark'), now, HOUR)).toEqual([]);
  });
});

describe('decide', () => {
  const [candidate] = candidates([namespace('dss-ns-old', '2026-11-01T00:00:00Z')], pattern, now, DAY);
  const row = { namespace: 'dss-ns-old', idleSince: '2026-11-01T00:00:00.000Z', idleSeconds: 39 * DAY + 12 * HOUR };

  it.each([
    ['nothing: would delete', empty, false, { state: 'would delete' }],
    [
      'a Lease: has a job',
      { ...empty, leases: ['dss-spark-alice-j1'] },
      true,
      { state: 'has a job', detail: "Lease dss-spark-alice-j1: a running job, or a crashed one's (cleanup --orphans removes those)" },
    ],
    [
      'a job ServiceAccount without a Lease (a starting or crashed job): has a job',
      { ...empty, jobAccounts: ['dss-spark-alice-j1', 'dss-spark-alice-j1-exec'], claims: ['data'] },
      true,
      {
        state: 'has a job',
        detail:
          "ServiceAccount dss-spark-alice-j1, ServiceAccount dss-spark-alice-j1-exec: a running job, or a crashed one's (cleanup --orphans removes those)",
      },
    ],
    ['a pod: has pods', { ...empty, pods: ['a', 'b', 'c', 'd', 'e'] }, true, { state: 'has pods', detail: 'Pod a, Pod b, Pod c and 2 more' }],
    [
      'a claim: has volumes',
      { ...empty, claims: ['data'] },
      false,
      { state: 'has volumes', detail: 'PersistentVolumeClaim data; --include-volumes deletes them with the namespace' },
    ],
    [
      'a claim with --include-volumes: would delete',
      { ...empty, claims: ['data'] },
      true,
      { state: 'would delete', detail: 'with PersistentVolumeClaim data' },
    ],
  ])('%s', (_, contents, includeVolumes, expected) => {
    expect(decide(candidate!, contents, includeVolumes)).toEqual({ ...row, ...expected });
  });
});

describe('output', () => {
  it('formats the idle time in its two largest units', () => {
    expect([formatIdle(59), formatIdle(45 * 60), formatIdle(5 * HOUR + 12 * 60), formatIdle(8 * DAY + 3 * HOUR + 59)]).toEqual(['0m', '45m', '5h12m', '8d3h']);
  });

  it('is a table with a footer without --yes, one line when nothing is idle', () => {
    const rows = [
      { namespace: 'dss-ns-old', idleSince: '', idleSeconds: 9 * DAY, state: 'would delete' as const },
      { namespace: 'dss-ns-bob', idleSince: '', idleSeconds: 8 * DAY + HOUR, state: 'has volumes' as const, detail: 'PersistentVolumeClaim data' },
    ];
    expect(renderRows(rows, false, '7d')).toBe(
      [
        'NAMESPACE   IDLE FOR  STATE         DETAIL',
        'dss-ns-old  9d0h      would delete',
        'dss-ns-bob  8d1h      has volumes   PersistentVolumeClaim data',
        '1 would be deleted; run again with --yes to delete it',
        '',
      ].join('\n'),
    );
    expect(renderRows([{ ...rows[0]!, state: 'deleted' }], true, '7d')).not.toMatch(/--yes/);
    expect(renderRows([], false, '7d')).toBe('no per-user namespace idle for 7d or more\n');
  });
});

describe("provision's last-used record (the namespace read, then one patch, before any job object)", () => {
  const plan = planJob(fixtureProfile({ targetNamespace: 'dss-ns-${dssUserLogin}', autoCreateNamespace: true }), fixtureContext(), {
    apiServer: 'https://127.0.0.1:6443',
    callerArgs: ['app.py'],
  });
  const existing = (options: { labels?: Record<string, string>; deleting?: boolean } = {}) =>
    namespace(plan.namespace, '2026-11-01T00:00:00Z', { labels: options.labels ?? toolLabels, deleting: options.deleting ?? false });

  /** A client that records its calls; `patch` is what the namespace patch answers. */
  function client(read: V1Namespace | undefined, patch: (annotations: Record<string, string>) => Promise<V1Namespace>) {
    const calls: string[] = [];
    const made = <T>(what: string, value: T) => {
      calls.push(what);
      return Promise.resolve(value);
    };
    const kube: ProvisionClient = {
      getNamespace: (name) => made(`get ${name}`, read),
      createNamespace: (body) => made('create namespace', body),
      annotateNamespace: (name, annotations) => {
        calls.push(`annotate ${name} ${JSON.stringify(annotations)}`);
        return patch(annotations);
      },
      createResourceQuota: (body) => made('create quota', body),
      createLimitRange: (body) => made('create limits', body),
      createNetworkPolicy: (body) => made('create networkpolicy', body),
      createServiceAccount: (body) => made(`create serviceaccount ${body.metadata?.name}`, { ...body, metadata: { ...body.metadata, uid: 'u' } }),
      createSecret: (body) => made('create secret', { ...body, metadata: { ...body.metadata, uid: 'u' } }),
      createRoleBinding: (body) => made('create rolebinding', body),
      createLease: (body) => made('create lease', body),
      requestToken: () => made('token', { token: 'e30.e30.sig', expiresAt: new Date() }),
    };
    return { kube, calls };
  }

  it('patches last-used on an existing per-user namespace the tool made, before the first job object', async () => {
    const { kube, calls } = client(existing(), async (annotations) => ({ ...existing(), metadata: { ...existing().metadata, annotations } }));
    const provisioned = await provision(kube, plan, []);
    expect(calls[0]).toBe(`get ${plan.namespace}`);
    expect(calls[1]).toMatch(
      new RegExp(`^annotate ${plan.namespace} \\{"dss-spark-k8s.dataiku.io/last-used":"\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ"\\}$`),
    );
    expect(calls.slice(2).every((call) => call.startsWith('create') || call === 'token')).toBe(true);
    expect(provisioned.warnings).toBeUndefined();
  });

  it('does not patch a namespace without the tool’s per-user labels, a new one, or in a dry run', async () => {
    for (const [read, dryRun] of [
      [existing({ labels: { 'dss-spark-k8s.dataiku.io/managed': 'true' } }), undefined],
      [undefined, undefined],
      [existing(), 'server'],
    ] as const) {
      const { kube, calls } = client(read, () => Promise.reject(new Error('patched')));
      await provision(kube, plan, [], dryRun);
      expect(calls.filter((call) => call.startsWith('annotate'))).toEqual([]);
    }
  });

  it('a 403 (a manifest without the right) is a warning; the job goes on', async () => {
    const { kube, calls } = client(existing(), () => Promise.reject(new KubernetesError('annotate Namespace dss-ns-x failed (403 Forbidden): no', 403)));
    const provisioned = await provision(kube, plan, []);
    expect(provisioned.warnings).toEqual([
      `could not record the job's start on namespace ${plan.namespace} (namespaces prune reads it): annotate Namespace dss-ns-x failed (403 Forbidden): no`,
    ]);
    expect(calls).toContain('token');
  });

  it.each([
    ['found being deleted', existing({ deleting: true }), () => Promise.reject(new Error('not asked'))],
    ['deleted before the patch (its answer has a deletion time)', existing(), async () => existing({ deleting: true })],
    ['gone before the patch (404)', existing(), () => Promise.reject(new KubernetesError('annotate Namespace failed (404 NotFound): gone', 404))],
  ])('a namespace %s fails the job in one line, before any job object (exit 69)', async (_, read, patch) => {
    const { kube, calls } = client(read, patch);
    const failure = await provision(kube, plan, []).then(
      () => undefined,
      (error: KubernetesError) => error,
    );
    expect(failure).toBeInstanceOf(KubernetesError);
    expect(failure!.exitCode).toBe(69);
    expect(failure!.message).toBe(`namespace ${plan.namespace} is being deleted (namespaces prune); run the job again in a minute`);
    expect(calls.filter((call) => call.startsWith('create'))).toEqual([]);
  });

  it("turns NamespaceLifecycle's refusal of a create in a terminating namespace into the same line", async () => {
    const { kube } = client(existing(), async () => existing());
    kube.createLease = () =>
      Promise.reject(
        new KubernetesError(
          `create Lease ${plan.namespace}/x failed (403 Forbidden): leases "x" is forbidden: unable to create new content in namespace ${plan.namespace} because it is being terminated`,
          403,
        ),
      );
    await expect(provision(kube, plan, [])).rejects.toThrow(`namespace ${plan.namespace} is being deleted (namespaces prune); run the job again in a minute`);
  });
});
