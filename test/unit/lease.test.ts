// Lease renewal against a fake apiserver that keeps a Lease the way the real one does (a resourceVersion
// per write, 409 on a stale one, 404 once deleted) and a fake clock: conflicts, lost answers, a Lease or
// ServiceAccount deleted or taken over under a running job, transient errors, and a stop during a renewal.
import type { V1ServiceAccount } from '@kubernetes/client-node';
import { beforeEach, describe, expect, it } from 'vitest';
import { KubernetesError } from '../../src/errors.ts';
import { startLeaseRenewal, type LeaseClient, type Timers } from '../../src/apply/lease.ts';
import { buildLease, microTime } from '../../src/plan/objects.ts';
import type { JobLease } from '../../src/plan/types.ts';

const NAMESPACE = 'dss-alice';
const NAME = 'dss-spark-alice-abc123';
const HOLDER = 'dss-host/4242/2025-01-02T03:04:05.000Z';
const INTERVAL_SECONDS = 30;

interface FakeTimer {
  at: number;
  every?: number;
  callback: () => void;
  handle: { unref(): unknown };
}

/** A clock whose timers run only when the test moves it on. */
function fakeClock(start = Date.parse('2026-01-01T00:00:00.000Z')) {
  let time = start;
  const timers = new Set<FakeTimer>();
  const add = (callback: () => void, ms: number, every?: number) => {
    const handle = { unref: () => handle };
    timers.add({ at: time + ms, every, callback, handle });
    return handle;
  };
  const remove = (handle: unknown) => {
    for (const timer of timers) if (timer.handle === handle) timers.delete(timer);
  };
  const api: Timers = { setInterval: (callback, ms) => add(callback, ms, ms), clearInterval: remove, now: () => new Date(time) };
  return {
    timers: api,
    now: () => new Date(time),
    /** How many timers are set. */
    get pending() {
      return timers.size;
    },
    /** Moves to the next timer, runs it and lets what it started finish (the fake apiserver answers at once). */
    async tick(): Promise<void> {
      const next = [...timers].sort((a, b) => a.at - b.at)[0];
      if (!next) throw new Error('no timer is set');
      time = next.at;
      if (next.every) next.at += next.every;
      else timers.delete(next);
      next.callback();
      await settle();
    },
  };
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

type Fault = { status: number } | 'answer-lost';

/** The apiserver's side of one job: its Lease and its ServiceAccount. */
class FakeApiserver implements LeaseClient {
  lease: JobLease | undefined;
  account: V1ServiceAccount | undefined = { metadata: { name: NAME, namespace: NAMESPACE, uid: 'sa-uid-1' } };
  /** Faults for the next PUTs of the Lease, in order. */
  putFaults: Fault[] = [];
  /** Faults for the next GETs of the ServiceAccount, in order. */
  accountFaults: Fault[] = [];
  /** PUTs that changed the stored Lease. */
  renewals = 0;
  requests: string[] = [];
  private version = 1;

  constructor() {
    const lease = buildLease(NAME, NAMESPACE, {}, {}, HOLDER, 4 * INTERVAL_SECONDS, new Date('2025-12-31T23:59:00.000Z'));
    this.lease = this.stored({ ...lease, metadata: { ...lease.metadata, uid: 'lease-uid-1' } });
  }

  /** The Lease as created by provisioning (the object the job starts renewing from). */
  created(): JobLease {
    return structuredClone(this.lease!);
  }

  /** An administrator's write to the Lease (a new resourceVersion). */
  edit(change: (lease: JobLease) => void) {
    const lease = structuredClone(this.lease!);
    change(lease);
    this.lease = this.stored(lease);
  }

  async replaceLease<T>(body: T): Promise<T> {
    const lease = body as JobLease;
    this.requests.push(`PUT rv=${lease.metadata?.resourceVersion}`);
    const fault = this.putFaults.shift();
    if (fault && fault !== 'answer-lost') throw new KubernetesError(`renew Lease ${NAMESPACE}/${NAME} failed (${fault.status})`, fault.status);
    // As the real apiserver: a PUT of a deleted object is 409 when the body carries its uid (a failed precondition).
    if (!this.lease && lease.metadata?.uid)
      throw new KubernetesError(`renew Lease ${NAMESPACE}/${NAME} failed (409 Conflict): Precondition failed: UID in precondition`, 409);
    if (!this.lease) throw new KubernetesError(`renew Lease ${NAMESPACE}/${NAME} failed (404 NotFound): not found`, 404);
    // A body without a resourceVersion is an unconditional update.
    if (lease.metadata?.resourceVersion && lease.metadata.resourceVersion !== this.lease.metadata?.resourceVersion) {
      throw new KubernetesError(`renew Lease ${NAMESPACE}/${NAME} failed (409 Conflict): the object has been modified`, 409);
    }
    this.lease = this.stored(lease);
    this.renewals += 1;
    // The write happened; the answer never reached the client (a timeout, a reset connection).
    if (fault === 'answer-lost') throw new KubernetesError(`renew Lease ${NAMESPACE}/${NAME} failed: the request timed out`);
    return structuredClone(this.lease) as T;
  }

  async getLease(): Promise<JobLease | undefined> {
    this.requests.push('GET lease');
    return structuredClone(this.lease);
  }

  async getServiceAccount(): Promise<V1ServiceAccount | undefined> {
    const fault = this.accountFaults.shift();
    if (fault)
      throw new KubernetesError(
        `get ServiceAccount ${NAMESPACE}/${NAME} failed${fault === 'answer-lost' ? ': the request timed out' : ` (${fault.status})`}`,
        fault === 'answer-lost' ? undefined : fault.status,
      );
    return structuredClone(this.account);
  }

  private stored(lease: JobLease): JobLease {
    this.version += 1;
    return { ...structuredClone(lease), metadata: { ...lease.metadata, resourceVersion: String(this.version) } };
  }
}

let server: FakeApiserver;
let clock: ReturnType<typeof fakeClock>;
let warnings: string[];
let lost: string[];

function start() {
  return startLeaseRenewal(
    server,
    server.created(),
    INTERVAL_SECONDS,
    { warn: (m) => warnings.push(m), lost: (r) => lost.push(r) },
    { namespace: NAMESPACE, name: NAME },
    clock.timers,
  );
}

beforeEach(() => {
  server = new FakeApiserver();
  clock = fakeClock();
  warnings = [];
  lost = [];
});

describe('Lease renewal', () => {
  it('renews at every interval with the current time', async () => {
    const stop = start();
    await clock.tick();
    expect(server.lease!.spec!.renewTime).toBe(microTime(clock.now()));
    await clock.tick();
    expect(server.lease!.spec!.renewTime).toBe(microTime(clock.now()));
    expect(server.renewals).toBe(2);
    expect([warnings, lost]).toEqual([[], []]);
    await stop();
    expect(clock.pending).toBe(0);
  });

  it("goes on after someone else's update (409): it re-reads the Lease and keeps that update", async () => {
    const stop = start();
    await clock.tick();
    server.edit((lease) => (lease.metadata!.annotations = { 'example.com/audited': 'yes' }));
    await clock.tick();
    await clock.tick();
    expect(server.renewals).toBe(3);
    expect(server.lease!.metadata!.annotations).toEqual({ 'example.com/audited': 'yes' });
    expect([warnings, lost]).toEqual([[], []]);
    await stop();
  });

  it('goes on after a lost answer: the PUT applied, the next one is 409 on the old version, re-read, renewed', async () => {
    const stop = start();
    server.putFaults.push('answer-lost');
    await clock.tick();
    expect(server.renewals).toBe(1);
    expect(warnings).toEqual([`renew Lease ${NAMESPACE}/${NAME} failed: the request timed out`]);

    const before = server.renewals;
    await clock.tick();
    expect(server.renewals).toBe(before + 1);
    await clock.tick();
    expect(server.renewals).toBe(before + 2);
    expect(server.requests.filter((r) => r === 'GET lease')).toHaveLength(1);
    expect(warnings).toHaveLength(1);
    expect(lost).toEqual([]);
    await stop();
  });

  it('reports once that the Lease is gone, and stops renewing', async () => {
    const stop = start();
    await clock.tick();
    server.lease = undefined;
    await clock.tick();
    expect(lost).toEqual([`its Lease ${NAMESPACE}/${NAME}`]);
    expect(clock.pending).toBe(0);
    const requests = server.requests.length;
    await expect(clock.tick()).rejects.toThrow('no timer is set');
    expect(server.requests).toHaveLength(requests);
    await stop();
    expect(lost).toHaveLength(1);
    expect(warnings).toEqual([]);
  });

  it('reports a Lease gone also when renewing from the planned Lease (no uid: the PUT is 404, not 409)', async () => {
    const planned = server.created();
    delete planned.metadata!.uid;
    delete planned.metadata!.resourceVersion;
    const stop = startLeaseRenewal(
      server,
      planned,
      INTERVAL_SECONDS,
      { warn: (m) => warnings.push(m), lost: (r) => lost.push(r) },
      { namespace: NAMESPACE, name: NAME },
      clock.timers,
    );
    server.lease = undefined;
    await clock.tick();
    expect(server.requests).toEqual(['PUT rv=undefined', 'GET lease']);
    expect(lost).toEqual([`its Lease ${NAMESPACE}/${NAME}`]);
    await stop();
  });

  it('reports once that the ServiceAccount is gone, and stops renewing', async () => {
    const stop = start();
    await clock.tick();
    server.account = undefined;
    await clock.tick();
    expect(lost).toEqual([`its ServiceAccount ${NAMESPACE}/${NAME}`]);
    expect(clock.pending).toBe(0);
    await stop();
    expect(lost).toHaveLength(1);
  });

  it('reports a ServiceAccount replaced by another of the same name (the job token is bound to the old one)', async () => {
    const stop = start();
    await clock.tick();
    server.account = { metadata: { name: NAME, namespace: NAMESPACE, uid: 'sa-uid-2' } };
    await clock.tick();
    expect(lost).toEqual([`its ServiceAccount ${NAMESPACE}/${NAME} (replaced by another of that name)`]);
    await stop();
  });

  it('reports once that the Lease and the ServiceAccount are both gone (a cleanup of the whole job)', async () => {
    const stop = start();
    await clock.tick();
    server.lease = undefined;
    server.account = undefined;
    await clock.tick();
    expect(lost).toHaveLength(1);
    expect(clock.pending).toBe(0);
    await stop();
  });

  it('reports a Lease that another holder took, and never overwrites it', async () => {
    const stop = start();
    await clock.tick();
    server.edit((lease) => (lease.spec!.holderIdentity = 'other-host/1/2026-01-01T00:00:00.000Z'));
    const taken = structuredClone(server.lease);
    await clock.tick();
    expect(lost).toEqual([`its Lease ${NAMESPACE}/${NAME} (now held by other-host/1/2026-01-01T00:00:00.000Z)`]);
    expect(server.lease).toEqual(taken);
    expect(clock.pending).toBe(0);
    await stop();
  });

  it('warns about a transient error (500, a lost answer of the ServiceAccount check) and goes on', async () => {
    const stop = start();
    server.putFaults.push({ status: 500 });
    await clock.tick();
    expect(server.renewals).toBe(0);
    expect(warnings).toEqual([`renew Lease ${NAMESPACE}/${NAME} failed (500)`]);
    server.accountFaults.push('answer-lost');
    await clock.tick();
    expect(server.renewals).toBe(1); // the failed check did not hold back the renewal
    expect(warnings).toEqual([`renew Lease ${NAMESPACE}/${NAME} failed (500)`, `get ServiceAccount ${NAMESPACE}/${NAME} failed: the request timed out`]);
    await clock.tick();
    expect(server.renewals).toBe(2);
    expect(lost).toEqual([]);
    await stop();
  });

  it('stop waits for a renewal in flight, and what it finds then is not reported lost (teardown is deleting the job)', async () => {
    let answer!: () => void;
    const slow: LeaseClient = {
      replaceLease: (body) =>
        new Promise((resolve, reject) => {
          answer = () => {
            server.lease = undefined;
            server.replaceLease(body).then(resolve, reject);
          };
        }),
      getLease: () => server.getLease(),
      getServiceAccount: () => server.getServiceAccount(),
    };
    const stop = startLeaseRenewal(
      slow,
      server.created(),
      INTERVAL_SECONDS,
      { warn: (m) => warnings.push(m), lost: (r) => lost.push(r) },
      { namespace: NAMESPACE, name: NAME },
      clock.timers,
    );
    await clock.tick();
    let stopped = false;
    const stopping = stop().then(() => (stopped = true));
    await settle();
    expect(stopped).toBe(false);
    answer();
    await stopping;
    expect(lost).toEqual([]);
    expect(clock.pending).toBe(0);
  });

  it('never starts a renewal while one is in flight', async () => {
    const held: (() => void)[] = [];
    const slow: LeaseClient = {
      replaceLease: (body) => new Promise((resolve, reject) => held.push(() => void server.replaceLease(body).then(resolve, reject))),
      getLease: () => server.getLease(),
      getServiceAccount: () => server.getServiceAccount(),
    };
    const stop = startLeaseRenewal(
      slow,
      server.created(),
      INTERVAL_SECONDS,
      { warn: (m) => warnings.push(m), lost: (r) => lost.push(r) },
      { namespace: NAMESPACE, name: NAME },
      clock.timers,
    );
    await clock.tick();
    await clock.tick();
    await clock.tick();
    expect(held).toHaveLength(1);
    held[0]!();
    await stop();
    expect(server.renewals).toBe(1);
    expect([warnings, lost]).toEqual([[], []]);
  });
});
