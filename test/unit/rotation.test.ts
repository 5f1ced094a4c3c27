// Token rotation against a fake apiserver that keeps Secrets by name (409 for a name taken) and a fake
// clock: every attempt a fresh generation, a failed attempt's anchor deleted (or kept in `created` for
// teardown when that delete fails), every older anchor deleted after a success, a stop during a rotation.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuthenticationV1TokenRequest, V1Secret } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KubernetesError } from '../../src/errors.ts';
import { writeJobKubeconfig, type JobFiles } from '../../src/exec/job-dir.ts';
import type { CreatedObject } from '../../src/apply/provision.ts';
import { ROTATION_RETRY_SECONDS, startTokenRotation, type RotationClient, type RotationTimers } from '../../src/apply/rotation.ts';
import { planJob } from '../../src/plan/plan.ts';
import type { JobPlan } from '../../src/plan/types.ts';
import { fixtureContext, fixtureProfile } from './fixtures.ts';

const ROTATION_SECONDS = 600;

interface FakeTimer {
  at: number;
  callback: () => void;
  handle: { unref(): unknown };
}

/** A clock whose timers run only when the test moves it on. */
function fakeClock(start = Date.parse('2026-01-01T00:00:00.000Z')) {
  let time = start;
  const timers = new Set<FakeTimer>();
  const api: RotationTimers = {
    setTimeout: (callback, ms) => {
      const handle = { unref: () => handle };
      timers.add({ at: time + ms, callback, handle });
      return handle;
    },
    clearTimeout: (handle) => {
      for (const timer of timers) if (timer.handle === handle) timers.delete(timer);
    },
    now: () => new Date(time),
  };
  return {
    timers: api,
    /** The delays (ms from now) of the timers that are set. */
    get pending(): number[] {
      return [...timers].map((t) => t.at - time);
    },
    /** Moves to the next timer and runs it; the ms it waited. */
    fire(): number {
      const next = [...timers].sort((a, b) => a.at - b.at)[0];
      if (!next) throw new Error('no timer is set');
      const waited = next.at - time;
      time = next.at;
      timers.delete(next);
      next.callback();
      return waited;
    },
  };
}

/** Waits (without timers: the clock under test may be the global one) until `condition` holds. */
async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`not reached within ${timeoutMs} ms: ${condition.toString()}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

type Fault = { status: number } | 'answer-lost';
const fail = (action: string, fault: Fault) =>
  fault === 'answer-lost'
    ? new KubernetesError(`${action} failed: the request timed out`)
    : new KubernetesError(`${action} failed (${fault.status})`, fault.status);

/** The apiserver's side: the Secrets of the namespace and the tokens it issued, each bound to one. */
class FakeApiserver implements RotationClient {
  secrets = new Map<string, { uid: string; labels: Record<string, string> }>();
  tokens: { token: string; anchor: string }[] = [];
  createFaults: Fault[] = [];
  tokenFaults: Fault[] = [];
  /** Faults for deletes, by Secret name. */
  deleteFaults = new Map<string, Fault>();
  requests: string[] = [];
  private uids = 0;

  async createSecret(body: V1Secret): Promise<V1Secret> {
    const name = body.metadata!.name!;
    this.requests.push(`create ${name}`);
    const fault = this.createFaults.shift();
    if (fault && fault !== 'answer-lost') throw fail(`create Secret ${name}`, fault);
    if (this.secrets.has(name)) throw new KubernetesError(`create Secret ${name} failed (409 AlreadyExists): secrets "${name}" already exists`, 409);
    const uid = `uid-${++this.uids}`;
    this.secrets.set(name, { uid, labels: { ...body.metadata!.labels } });
    if (fault) throw fail(`create Secret ${name}`, fault);
    return { ...body, metadata: { ...body.metadata, uid } };
  }

  async requestToken(_namespace: string, serviceAccount: string, body: AuthenticationV1TokenRequest): Promise<{ token: string; expiresAt: Date }> {
    const anchor = body.spec!.boundObjectRef!;
    this.requests.push(`token ${anchor.name}`);
    const fault = this.tokenFaults.shift();
    if (fault && fault !== 'answer-lost') throw fail(`request a token for ServiceAccount ${serviceAccount}`, fault);
    if (this.secrets.get(anchor.name!)?.uid !== anchor.uid) throw new KubernetesError('request a token failed (404)', 404);
    const token = `token-of-${anchor.name}`;
    this.tokens.push({ token, anchor: anchor.name! });
    if (fault) throw fail(`request a token for ServiceAccount ${serviceAccount}`, fault);
    return { token, expiresAt: new Date(Date.parse('2027-01-01T00:00:00.000Z')) };
  }

  async deleteNamespaced(kind: string, _namespace: string, name: string): Promise<void> {
    this.requests.push(`delete ${name}`);
    const fault = this.deleteFaults.get(name);
    if (fault) {
      this.deleteFaults.delete(name);
      throw fail(`delete ${kind} ${name}`, fault);
    }
    this.secrets.delete(name);
  }

  /** Tokens that still authenticate: their anchor Secret is there. */
  liveTokens(): string[] {
    return this.tokens.filter((t) => this.secrets.has(t.anchor)).map((t) => t.token);
  }
}

const plan: JobPlan = planJob(fixtureProfile(), fixtureContext(), { apiServer: 'https://127.0.0.1:6443', callerArgs: [] });
const anchor = (generation: number) => `${plan.baseName}-t${generation}`;

let server: FakeApiserver;
let clock: ReturnType<typeof fakeClock>;
let created: CreatedObject[];
let rotated: number[];
let failures: string[];
let dir: string;
let files: JobFiles;

beforeEach(async () => {
  server = new FakeApiserver();
  clock = fakeClock();
  rotated = [];
  failures = [];
  dir = mkdtempSync(join(tmpdir(), 'dss-spark-k8s-rotation-test-'));
  files = { dir, kubeconfig: join(dir, 'kubeconfig'), podTemplate: join(dir, 'executor-pod.json') };
  // What provisioning leaves: the first anchor, recorded with the job's other objects, and its token.
  created = [
    { kind: 'serviceaccounts', namespace: plan.namespace, name: plan.baseName },
    { kind: 'rolebindings', namespace: plan.namespace, name: plan.baseName },
    { kind: 'leases', namespace: plan.namespace, name: plan.baseName },
  ];
  await server.createSecret({ ...plan.tokenAnchor });
  created.push({ kind: 'secrets', namespace: plan.namespace, name: anchor(0) });
  server.tokens.push({ token: `token-of-${anchor(0)}`, anchor: anchor(0) });
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

function start() {
  return startTokenRotation(
    {
      kube: server,
      plan,
      writeToken: (token) => writeJobKubeconfig(files, process.getuid!(), { server: 'https://127.0.0.1:6443', skipTlsVerify: false }, plan.namespace, token),
      created,
    },
    ROTATION_SECONDS,
    new Date('2026-01-01T01:00:00.000Z'),
    { rotated: (generation) => rotated.push(generation), failed: (message) => failures.push(message) },
    clock.timers,
  );
}

/** Runs the next rotation attempt and waits until it is over (the next one is scheduled). */
async function attempt(): Promise<number> {
  const waited = clock.fire();
  await until(() => clock.pending.length === 1);
  return waited;
}

const anchorsIn = (objects: CreatedObject[]) => objects.filter((o) => o.kind === 'secrets').map((o) => o.name);
const kubeconfigToken = () => (JSON.parse(readFileSync(files.kubeconfig, 'utf8')) as { users: { user: { token: string } }[] }).users[0]!.user.token;

describe('token rotation', () => {
  it('replaces the token, then deletes the superseded anchor (which revokes its token)', async () => {
    const stop = start();
    expect(await attempt()).toBe(ROTATION_SECONDS * 1000);
    expect(rotated).toEqual([1]);
    expect(kubeconfigToken()).toBe(`token-of-${anchor(1)}`);
    expect([...server.secrets.keys()]).toEqual([anchor(1)]);
    expect(anchorsIn(created)).toEqual([anchor(1)]);
    expect(server.liveTokens()).toEqual([`token-of-${anchor(1)}`]);
    expect(created.filter((o) => o.kind !== 'secrets')).toHaveLength(3);
    expect(clock.pending).toEqual([ROTATION_SECONDS * 1000]);
    await stop();
    expect(failures).toEqual([]);
  });

  it('recovers from a TokenRequest that failed after the anchor was created: that anchor goes, the next attempt is a new generation', async () => {
    const stop = start();
    server.tokenFaults.push({ status: 500 });
    await attempt();
    expect(failures).toEqual([`request a token for ServiceAccount ${plan.baseName} failed (500)`]);
    expect(server.requests).toEqual([`create ${anchor(0)}`, `create ${anchor(1)}`, `token ${anchor(1)}`, `delete ${anchor(1)}`]);
    expect([...server.secrets.keys()]).toEqual([anchor(0)]);
    expect(anchorsIn(created)).toEqual([anchor(0)]);
    expect(kubeconfigToken).toThrow(); // the driver goes on with the first token, from provisioning
    expect(clock.pending).toEqual([ROTATION_RETRY_SECONDS * 1000]);

    expect(await attempt()).toBe(ROTATION_RETRY_SECONDS * 1000);
    expect(rotated).toEqual([2]);
    expect(kubeconfigToken()).toBe(`token-of-${anchor(2)}`);
    expect([...server.secrets.keys()]).toEqual([anchor(2)]);
    expect(anchorsIn(created)).toEqual([anchor(2)]);
    expect(failures).toHaveLength(1);
    await stop();
  });

  it('revokes the token whose answer was lost: the failed attempt deletes the anchor it was bound to', async () => {
    const stop = start();
    server.tokenFaults.push('answer-lost');
    await attempt();
    expect(server.tokens.map((t) => t.anchor)).toEqual([anchor(0), anchor(1)]);
    expect(server.liveTokens()).toEqual([`token-of-${anchor(0)}`]);
    await attempt();
    expect(server.liveTokens()).toEqual([`token-of-${anchor(2)}`]);
    expect(rotated).toEqual([2]);
    await stop();
  });

  it("keeps a failed attempt's anchor in `created` when it cannot be deleted; the next success deletes it with the superseded one", async () => {
    const stop = start();
    server.tokenFaults.push({ status: 500 });
    server.deleteFaults.set(anchor(1), { status: 503 });
    await attempt();
    expect([...server.secrets.keys()]).toEqual([anchor(0), anchor(1)]);
    expect(anchorsIn(created)).toEqual([anchor(0), anchor(1)]);

    await attempt();
    expect(rotated).toEqual([2]);
    expect([...server.secrets.keys()]).toEqual([anchor(2)]);
    expect(anchorsIn(created)).toEqual([anchor(2)]);
    await stop();
  });

  it('treats a create whose answer was lost as made: its anchor is recorded and deleted, the next attempt takes a new name', async () => {
    const stop = start();
    server.createFaults.push('answer-lost');
    await attempt();
    expect(failures).toEqual([`create Secret ${anchor(1)} failed: the request timed out`]);
    expect([...server.secrets.keys()]).toEqual([anchor(0)]);
    expect(anchorsIn(created)).toEqual([anchor(0)]);
    await attempt();
    expect(rotated).toEqual([2]);
    expect([...server.secrets.keys()]).toEqual([anchor(2)]);
    await stop();
  });

  it('goes past a name someone else took (409) without deleting that object', async () => {
    server.secrets.set(anchor(1), { uid: 'squatter', labels: {} });
    const stop = start();
    await attempt();
    expect(failures).toEqual([`create Secret ${anchor(1)} failed (409 AlreadyExists): secrets "${anchor(1)}" already exists`]);
    expect(server.requests).not.toContain(`delete ${anchor(1)}`);
    expect(anchorsIn(created)).toEqual([anchor(0)]);
    await attempt();
    expect(rotated).toEqual([2]);
    expect([...server.secrets.keys()].sort()).toEqual([anchor(1), anchor(2)]);
    expect(server.secrets.get(anchor(1))!.uid).toBe('squatter');
    expect(anchorsIn(created)).toEqual([anchor(2)]);
    await stop();
  });

  it('reports a superseded anchor it could not delete, keeps it for teardown, and tries again soon', async () => {
    server.deleteFaults.set(anchor(0), { status: 503 });
    const stop = start();
    await attempt();
    expect(rotated).toEqual([1]);
    expect(kubeconfigToken()).toBe(`token-of-${anchor(1)}`);
    expect(failures).toEqual([`the superseded token anchor could not be deleted: delete secrets ${anchor(0)} failed (503)`]);
    expect(anchorsIn(created)).toEqual([anchor(0), anchor(1)]);
    expect(clock.pending).toEqual([ROTATION_RETRY_SECONDS * 1000]);
    await attempt();
    expect(rotated).toEqual([1, 2]);
    expect([...server.secrets.keys()]).toEqual([anchor(2)]);
    expect(anchorsIn(created)).toEqual([anchor(2)]);
    await stop();
  });

  it('stop waits for a rotation in flight: teardown then finds its anchor in `created`, and nothing more is scheduled', async () => {
    let answer!: () => void;
    const slow: RotationClient = {
      createSecret: (body) => new Promise((resolve, reject) => (answer = () => void server.createSecret(body).then(resolve, reject))),
      requestToken: (namespace, serviceAccount, body) => server.requestToken(namespace, serviceAccount, body),
      deleteNamespaced: (...args) => server.deleteNamespaced(...args),
    };
    const stop = startTokenRotation(
      {
        kube: slow,
        plan,
        writeToken: (token) => writeJobKubeconfig(files, process.getuid!(), { server: 'https://127.0.0.1:6443', skipTlsVerify: false }, plan.namespace, token),
        created,
      },
      ROTATION_SECONDS,
      new Date('2026-01-01T01:00:00.000Z'),
      { rotated: (generation) => rotated.push(generation), failed: (message) => failures.push(message) },
      clock.timers,
    );
    clock.fire();
    await until(() => answer !== undefined);
    let stopped = false;
    const stopping = stop().then(() => (stopped = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(stopped).toBe(false);
    answer();
    await stopping;
    expect(anchorsIn(created)).toEqual([...server.secrets.keys()]);
    expect(clock.pending).toEqual([]);
  });

  it('takes the next rotation at 80 % of the granted lifetime when no interval is configured', async () => {
    const stop = startTokenRotation(
      {
        kube: server,
        plan,
        writeToken: (token) => writeJobKubeconfig(files, process.getuid!(), { server: 'https://127.0.0.1:6443', skipTlsVerify: false }, plan.namespace, token),
        created,
      },
      undefined,
      new Date('2026-01-01T01:00:00.000Z'),
      { rotated: (generation) => rotated.push(generation), failed: (message) => failures.push(message) },
      clock.timers,
    );
    expect(clock.pending).toEqual([0.8 * 3600 * 1000]);
    await stop();
  });
});
