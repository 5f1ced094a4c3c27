// The job flow without a cluster: a recording fake of dssuser's client, of the job directory, of spark-submit
// and of the signals. What the integration tests show on the real apiserver, these show for every order and
// failure in milliseconds: rollback after a lost create answer, revoke → wait → delete → Lease last, rotation
// order, signals.
import { EventEmitter } from 'node:events';
import type { V1Secret, V1ServiceAccount } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { ExitCode, JobLostError, KubernetesError, SignalledError, TeardownError } from '../../src/errors.ts';
import type { JobFiles } from '../../src/exec/job-dir.ts';
import { SignalWatcher } from '../../src/exec/signals.ts';
import type { RunningSparkSubmit, SparkSubmitExit } from '../../src/exec/spark-submit.ts';
import { runJob, type JobFlowClient, type JobFlowDeps, type JobTokenClient } from '../../src/job-flow.ts';
import type { AccessAttributes, ObjectWithMeta } from '../../src/k8s/client.ts';
import type { LabelledKind } from '../../src/plan/kinds.ts';
import { tokenAnchorName } from '../../src/plan/objects.ts';
import { planJob } from '../../src/plan/plan.ts';
import { Annotation, MAX_CREDENTIAL_IDS } from '../../src/plan/types.ts';
import type { Reporter } from '../../src/output.ts';
import { fixtureContext, fixtureProfile } from './fixtures.ts';

const profile = fixtureProfile({ leaseRenewSeconds: 30, killGraceSeconds: 5 });
const ctx = fixtureContext();
const plan = (files?: { caFile?: string; podTemplate: string }) =>
  planJob(profile, ctx, { apiServer: 'https://127.0.0.1:6443', callerArgs: ['app.py'], ...(files ? { podTemplateFile: files.podTemplate } : {}) });
const draft = plan();
const base = draft.baseName;
const ns = draft.namespace;
const anchor = (generation: number) => tokenAnchorName(base, generation);

/** A lost answer: the request may have been applied. */
const lostAnswer = (action: string) => new KubernetesError(`${action} failed: the request timed out`);
const refused = (action: string) => new KubernetesError(`${action} failed (403 Forbidden): denied`, 403);

interface FakeOptions {
  /** Methods (by name) whose call fails after being applied (the answer is lost), or is refused. */
  lose?: string[];
  refuse?: string[];
  /** Deletes that fail (by "kind name" or "kind *" for a deletecollection). */
  failDeletes?: string[];
  /** The ServiceAccount disappears once the lease renewal has run this many times. */
  accountGoneAfter?: number;
  /** Tokens are JWTs whose jti is jti-<n> (the n-th token), as a real apiserver's. */
  jwtTokens?: boolean;
}

const jwt = (claims: object) => `e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;

/** dssuser's client: records every call in order. */
function fakeCluster(options: FakeOptions = {}) {
  const calls: string[] = [];
  let uid = 0;
  let renewals = 0;
  let tokens = 0;
  const answer = <T>(method: string, call: string, value: T): Promise<T> => {
    calls.push(call);
    if (options.refuse?.includes(method)) return Promise.reject(refused(call));
    if (options.lose?.includes(method)) return Promise.reject(lostAnswer(call));
    return Promise.resolve(value);
  };
  const withUid = <T extends ObjectWithMeta>(body: T): T => ({ ...body, metadata: { ...body.metadata, uid: `uid-${++uid}` } });
  const deleted = (kind: LabelledKind, what: string) => {
    calls.push(`delete ${kind} ${what}`);
    return options.failDeletes?.includes(`${kind} ${what}`) ? Promise.reject(refused(`delete ${kind} ${what}`)) : Promise.resolve();
  };
  const kube: JobFlowClient = {
    endpoint: { server: 'https://127.0.0.1:6443', skipTlsVerify: false },
    getNamespace: (name) => answer('getNamespace', `get namespace ${name}`, { metadata: { name } }),
    createNamespace: (body) => answer('createNamespace', `create namespace ${body.metadata?.name}`, body),
    annotateNamespace: (name, annotations) => answer('annotateNamespace', `annotate namespace ${name}`, { metadata: { name, annotations } }),
    createResourceQuota: (body) => answer('createResourceQuota', 'create resourcequota', body),
    createLimitRange: (body) => answer('createLimitRange', 'create limitrange', body),
    createNetworkPolicy: (body) => answer('createNetworkPolicy', 'create networkpolicy', body),
    createServiceAccount: (body) => answer('createServiceAccount', `create serviceaccount ${body.metadata?.name}`, withUid(body)),
    createSecret: (body: V1Secret) => answer('createSecret', `create secret ${body.metadata?.name}`, withUid(body)),
    createRoleBinding: (body) => answer('createRoleBinding', `create rolebinding ${body.metadata?.name}`, body),
    createLease: (body) => answer('createLease', `create lease ${body.metadata?.name}`, body),
    requestToken: (_namespace, serviceAccount, body) =>
      answer('requestToken', `token for ${serviceAccount} bound to ${body.spec?.boundObjectRef?.name}`, {
        token: options.jwtTokens ? jwt({ jti: `jti-${++tokens}` }) : `token-${calls.length}`,
        expiresAt: new Date(Date.now() + 3600_000),
      }),
    replaceLease: (body) => {
      renewals += 1;
      return answer('replaceLease', 'renew lease', body);
    },
    getLease: async () => undefined,
    getServiceAccount: async (namespace, name): Promise<V1ServiceAccount | undefined> =>
      options.accountGoneAfter !== undefined && renewals >= options.accountGoneAfter ? undefined : { metadata: { namespace, name, uid: 'uid-1' } },
    deleteNamespaced: (kind, _namespace, name) => deleted(kind, name),
    deleteCollection: (kind) => deleted(kind, '*'),
    annotateServiceAccount: (_namespace, name, annotations) =>
      answer('annotateServiceAccount', `annotate serviceaccount ${name} ${JSON.stringify(annotations)}`, { metadata: { name, annotations } }),
  };
  return { kube, calls };
}

/** spark-submit as a promise the test settles, recording the signals it gets. */
function fakeSpark() {
  const signals: NodeJS.Signals[] = [];
  let finish: (exit: SparkSubmitExit) => void = () => {};
  let started: (running: RunningSparkSubmit) => void = () => {};
  // Settles once runJob has the driver (its signal forwarding set up: a few ticks after start).
  const running = new Promise<RunningSparkSubmit>((resolve) => (started = resolve)).then(async (handle) => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    return handle;
  });
  const start = async (): Promise<RunningSparkSubmit> => {
    const exited = new Promise<SparkSubmitExit>((resolve) => (finish = resolve));
    const handle = { exited, signal: (signal: NodeJS.Signals) => void signals.push(signal) };
    started(handle);
    return handle;
  };
  return { start, signals, running, exit: (exit: SparkSubmitExit) => finish(exit) };
}

function recordingReporter() {
  const lines: string[] = [];
  const events: string[] = [];
  const fields: Record<string, Record<string, unknown>> = {};
  const reporter: Reporter = {
    status: (message) => void lines.push(message),
    warn: (message) => void lines.push(`warning: ${message}`),
    event: (name, eventFields) => {
      events.push(name);
      fields[name] = eventFields;
    },
    close: () => {},
  };
  return { reporter, lines, events, fields };
}

/** Manual timers for the Lease renewal and the token rotation. */
function manualTimers() {
  const intervals: (() => void)[] = [];
  const timeouts: (() => void)[] = [];
  return {
    lease: { setInterval: (callback: () => void) => intervals.push(callback), clearInterval: () => {}, now: () => new Date() },
    rotation: { setTimeout: (callback: () => void) => timeouts.push(callback), clearTimeout: () => {}, now: () => new Date() },
    renew: () => {
      for (const callback of intervals) callback();
    },
    rotate: () => {
      for (const callback of timeouts.splice(0)) callback();
    },
  };
}

interface Setup {
  cluster?: FakeOptions;
  /** The job token's answers to "may I create pods?" in turn (then: no). */
  tokenMayCreate?: boolean[];
  /** Runs while the job directory is made (before any request). */
  whileMakingDir?: (emitter: EventEmitter) => void;
}

function setup({ cluster: clusterOptions, tokenMayCreate = [], whileMakingDir }: Setup = {}) {
  const cluster = fakeCluster(clusterOptions);
  const spark = fakeSpark();
  const out = recordingReporter();
  const timers = manualTimers();
  const emitter = new EventEmitter();
  const signals = new SignalWatcher(emitter);
  const files: JobFiles = { dir: '/tmp/job', kubeconfig: '/tmp/job/kubeconfig', podTemplate: '/tmp/job/executor-pod.json' };
  const written: string[] = [];
  const later: (() => void)[] = [];
  const answers = [...tokenMayCreate];
  const jobToken: JobTokenClient = {
    canI: async (attributes: AccessAttributes) => {
      cluster.calls.push(`job token: may I ${attributes.verb} ${attributes.resource}?`);
      return answers.shift() ?? false;
    },
    dryRunPod: async (body) => body,
    close: async () => {},
  };
  const deps: JobFlowDeps = {
    kube: cluster.kube,
    jobClient: () => jobToken,
    jobDir: {
      create: async () => {
        cluster.calls.push('create job directory');
        whileMakingDir?.(emitter);
        return files;
      },
      writeKubeconfig: async (_files, _uid, _endpoint, _namespace, token) => {
        written.push(token);
        cluster.calls.push('write kubeconfig');
      },
      remove: async () => void cluster.calls.push('remove job directory'),
    },
    spark: { start: spark.start },
    signals,
    reporter: out.reporter,
    leaseTimers: timers.lease,
    rotationTimers: timers.rotation,
    sleep: async () => {},
    later: (callback) => void later.push(callback),
  };
  const run = () =>
    runJob({ settings: profile, user: { login: 'alice', uid: 1001, groups: [] }, ctx, draft, plan, impersonation: Promise.resolve() }, deps).finally(() =>
      signals.dispose(),
    );
  return { ...cluster, spark, out, timers, emitter, written, later, run };
}

const indexOf = (calls: string[], call: string) => {
  const index = calls.indexOf(call);
  if (index < 0) throw new Error(`no call "${call}" among:\n${calls.join('\n')}`);
  return index;
};

describe('runJob', () => {
  it('provisions, runs spark-submit, then revokes, waits until the token is refused, deletes what it made and the Lease last', async () => {
    const job = setup({ tokenMayCreate: [true, true] });
    const running = job.run();
    (await job.spark.running) && job.spark.exit({ exitCode: 0 });
    expect(await running).toBe(0);
    const { calls } = job;
    const revokes = [`delete secrets ${anchor(0)}`, `delete rolebindings ${base}`, `delete serviceaccounts ${base}`, `delete serviceaccounts ${base}-exec`].map(
      (c) => indexOf(calls, c),
    );
    const checks = calls.flatMap((c, i) => (c.startsWith('job token: may I create pods') ? [i] : []));
    const tokenMade = ['delete pods *', 'delete persistentvolumeclaims *'].map((c) => indexOf(calls, c));
    const lease = indexOf(calls, `delete leases ${base}`);
    expect(checks).toHaveLength(3); // refused at the third question
    expect(Math.max(...revokes)).toBeLessThan(Math.min(...checks));
    expect(Math.max(...checks)).toBeLessThan(Math.min(...tokenMade));
    expect(Math.max(...tokenMade)).toBeLessThan(lease);
    expect(lease).toBeLessThan(indexOf(calls, 'remove job directory'));
    expect(job.out.events).toEqual(['provisioned', 'started', 'exited', 'torn-down']);
  });

  it("exits with spark-submit's code, or 128 + the signal that ended it", async () => {
    for (const [exit, code] of [
      [{ exitCode: 3 }, 3],
      [{ signal: 'SIGKILL' }, 137],
    ] as const) {
      const job = setup();
      const running = job.run();
      (await job.spark.running) && job.spark.exit(exit);
      expect(await running).toBe(code);
    }
  });

  it('rolls back a create whose answer was lost (it may have been applied), and never starts spark-submit', async () => {
    const job = setup({ cluster: { lose: ['createRoleBinding'] } });
    await expect(job.run()).rejects.toThrow(`create rolebinding ${base} failed: the request timed out`);
    // Deleted by name although its create failed; the other creates of the batch were answered and go too.
    for (const call of [
      `delete rolebindings ${base}`,
      `delete serviceaccounts ${base}`,
      `delete serviceaccounts ${base}-exec`,
      `delete secrets ${anchor(0)}`,
      `delete leases ${base}`,
    ])
      indexOf(job.calls, call);
    expect(job.calls.filter((c) => c.startsWith('token for'))).toEqual([]);
    expect(job.calls).not.toContain('delete pods *'); // the driver never ran: nothing of its token to delete
    expect(job.calls.at(-1)).toBe('remove job directory');
  });

  it('does not delete what a refused create did not make (a 4xx: an object of that name is not ours)', async () => {
    const job = setup({ cluster: { refuse: ['createRoleBinding'] } });
    await expect(job.run()).rejects.toThrow(/403 Forbidden/);
    expect(job.calls).not.toContain(`delete rolebindings ${base}`);
    indexOf(job.calls, `delete serviceaccounts ${base}`);
  });

  it('keeps the Lease when a revoking delete failed, does not wait for a revocation never sent, and exits 75', async () => {
    const job = setup({ cluster: { failDeletes: [`rolebindings ${base}`] }, tokenMayCreate: [true] });
    const running = job.run();
    (await job.spark.running) && job.spark.exit({ exitCode: 0 });
    const error = await running.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TeardownError);
    expect((error as TeardownError).exitCode).toBe(ExitCode.teardownIncomplete);
    expect((error as Error).message).toContain(`leases ${ns}/${base}: kept, so that cleanup --orphans finds this job`);
    expect(job.calls).not.toContain(`delete leases ${base}`);
    expect(job.calls.filter((c) => c.startsWith('job token'))).toEqual([]);
    indexOf(job.calls, 'delete pods *'); // what the token made goes all the same
  });

  it('rotates in order: a new anchor, its token, the kubeconfig replaced, then the superseded anchor deleted', async () => {
    const job = setup();
    const running = job.run();
    await job.spark.running;
    const before = job.calls.length;
    job.timers.rotate();
    await new Promise((resolve) => setTimeout(resolve, 10));
    const rotation = job.calls.slice(before);
    expect(rotation).toEqual([`create secret ${anchor(1)}`, `token for ${base} bound to ${anchor(1)}`, 'write kubeconfig', `delete secrets ${anchor(0)}`]);
    expect(job.written).toHaveLength(2);
    expect(job.written[1]).not.toBe(job.written[0]);
    job.spark.exit({ exitCode: 0 });
    expect(await running).toBe(0);
    // Teardown deletes the live anchor, not the one rotation already deleted.
    indexOf(job.calls.slice(before + rotation.length), `delete secrets ${anchor(1)}`);
    expect(job.calls.slice(before + rotation.length)).not.toContain(`delete secrets ${anchor(0)}`);
  });

  it("records each token's credential id on the job ServiceAccount, before spark-submit and after each rotation", async () => {
    const job = setup({ cluster: { jwtTokens: true } });
    const running = job.run();
    await job.spark.running;
    const annotate = (ids: string) => `annotate serviceaccount ${base} ${JSON.stringify({ [Annotation.credentialIds]: ids })}`;
    indexOf(job.calls, annotate('jti-1'));
    expect(job.out.fields.provisioned).toMatchObject({ credentialId: 'jti-1', user: 'alice' });
    job.timers.rotate();
    await new Promise((resolve) => setTimeout(resolve, 10));
    indexOf(job.calls, annotate('jti-1,jti-2'));
    // The reporter adds the job id to every event: the rotated event does not carry it again.
    expect(job.out.fields.rotated).toEqual({ generation: 1, tokenExpiresAt: expect.any(String), user: 'alice', credentialId: 'jti-2' });
    job.spark.exit({ exitCode: 0 });
    expect(await running).toBe(0);
    expect(job.calls.filter((c) => c.startsWith('annotate'))).toHaveLength(2);
    expect(indexOf(job.calls, annotate('jti-1,jti-2'))).toBeLessThan(indexOf(job.calls, `delete serviceaccounts ${base}`));
  });

  it(`keeps the newest ${MAX_CREDENTIAL_IDS} credential ids on the account (the bound of dssuser's policy) after many rotations`, async () => {
    const job = setup({ cluster: { jwtTokens: true } });
    const running = job.run();
    await job.spark.running;
    for (let i = 0; i < MAX_CREDENTIAL_IDS + 2; i++) {
      job.timers.rotate();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const last = job.calls.filter((c) => c.startsWith('annotate')).at(-1)!;
    const ids = (JSON.parse(last.slice(last.indexOf('{'))) as Record<string, string>)[Annotation.credentialIds]!.split(',');
    expect(ids).toHaveLength(MAX_CREDENTIAL_IDS);
    expect(ids.at(-1)).toBe(`jti-${MAX_CREDENTIAL_IDS + 3}`);
    expect(ids[0]).toBe('jti-4');
    job.spark.exit({ exitCode: 0 });
    expect(await running).toBe(0);
  });

  it('runs the job all the same when the credential id cannot be recorded, with a warning', async () => {
    const job = setup({ cluster: { jwtTokens: true, refuse: ['annotateServiceAccount'] } });
    const running = job.run();
    await job.spark.running;
    job.spark.exit({ exitCode: 0 });
    expect(await running).toBe(0);
    expect(job.out.lines).toContainEqual(
      expect.stringMatching(new RegExp(`^warning: could not record the token's credential id on service account ${base}: .*403`)),
    );
  });

  it('stops at the next step on a signal during provisioning: spark-submit never starts, everything made is torn down, 128 + 15', async () => {
    const job = setup({ whileMakingDir: (emitter) => emitter.emit('SIGTERM', 'SIGTERM') });
    const error = await job.run().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SignalledError);
    expect((error as SignalledError).exitCode).toBe(143);
    expect(job.out.events).not.toContain('started');
    expect(job.calls).not.toContain('write kubeconfig');
    for (const call of [`delete serviceaccounts ${base}`, `delete rolebindings ${base}`, `delete secrets ${anchor(0)}`, `delete leases ${base}`])
      indexOf(job.calls, call);
    expect(job.calls.at(-1)).toBe('remove job directory');
  });

  it('forwards a signal to spark-submit, kills it after the grace period, and tears down before exiting 128 + n', async () => {
    const job = setup();
    const running = job.run();
    await job.spark.running;
    job.emitter.emit('SIGINT', 'SIGINT');
    job.emitter.emit('SIGINT', 'SIGINT'); // a second Ctrl-C does not interrupt anything
    expect(job.spark.signals).toEqual(['SIGINT']);
    job.spark.exit({ signal: 'SIGINT' });
    const error = await running.catch((e: unknown) => e);
    expect((error as SignalledError).exitCode).toBe(130);
    indexOf(job.calls, `delete leases ${base}`);
  });

  it('stops the driver when its ServiceAccount is deleted by someone else, and exits 76 after tearing down', async () => {
    const job = setup({ cluster: { accountGoneAfter: 1 } });
    const running = job.run();
    await job.spark.running;
    job.timers.renew();
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(job.spark.signals).toEqual(['SIGTERM']);
    expect(job.later).toHaveLength(1); // the SIGKILL after the grace period
    job.later[0]!();
    expect(job.spark.signals).toEqual(['SIGTERM', 'SIGKILL']);
    job.spark.exit({ signal: 'SIGKILL' });
    const error = await running.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(JobLostError);
    expect((error as JobLostError).exitCode).toBe(ExitCode.jobLost);
    expect(job.out.events).toContain('lost');
    indexOf(job.calls, `delete serviceaccounts ${base}`);
  });
});
