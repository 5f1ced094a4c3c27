// The fault matrix: `run` on the real control plane, as the dssuser Unix account with the restricted identity,
// with faults injected from outside at every phase of a job — the apiserver refusing connections (killed) or
// hung (SIGSTOPped), through test/support/fault-proxy.ts, and SIGINT, SIGTERM, SIGHUP and SIGKILL to the CLI —
// plus sudo refused, spark-submit missing or not executable, a temp directory that cannot be written, an
// invalid dssuser credential, and adversarial configs and arguments.
//
// Every cell asserts: the CLI ends within a bound computed from its configured timeouts (apiTimeout, the
// teardown's retry policy, killGrace) with the documented exit code; its error is one line, with no stack
// trace and no token; afterwards — after `cleanup --orphans --yes` run through the real CLI where the
// apiserver was unreachable during teardown or the CLI was SIGKILLed — nothing labelled with the job remains
// (as admin, all kinds, Secrets included), the temp directory is empty, and every token the apiserver issued
// (seen by the proxy, or saved by the fake spark-submit) gets 401.
//
// Cells run concurrently; each has its own proxy, config, namespace and temp directory.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuthenticationV1Api, CoordinationV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, describe, inject, it, type ExpectStatic } from 'vitest';
import { dirEntries, dssuserDir, jobObjects, parseJson, writeConfig } from '../support/cli.ts';
import { phase, startFaultProxy, type FaultProxy, type RequestInfo, type Trigger } from '../support/fault-proxy.ts';
import { auditLines, auditMark } from '../support/audit-log.ts';
import { adminKubeConfig, statusEventually, tokenKubeConfig } from '../support/kube.ts';

const cluster = inject('cluster');
const unix = inject('unix');
const alice = unix.endUsers[0]!;
const RUN = Math.random().toString(36).slice(2, 6);

// The profile every fault cell uses: short timeouts so that the matrix stays within minutes.
const API_TIMEOUT_S = 2;
const LEASE_RENEW_S = 1; // Lease duration = 4 × 1 s: a dead job's Lease expires 4 s after its last renewal
const KILL_GRACE_S = 2;
// The teardown's retry policy (src/k8s/retry.ts): 4 attempts, pauses of at most 0.2 s, 0.6 s, 1.8 s, each drawn
// between half and all of that (jitter): the four attempts of a request span between 1.3 s and 2.6 s.
const RETRY_ATTEMPTS = 4;
const RETRY_BACKOFF_S = 0.2 + 0.6 + 1.8;
const RETRY_SPAN_MIN_MS = 100 + 300 + 900;
/** Start-up, sudo, id, node: allowance on a loaded 2-core machine on top of the configured timeouts. */
const SLACK_S = 12;

const SIGNAL_CODES = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 } as const;

type Phase = 'before the namespace' | 'during the creates' | 'after the creates' | 'during the token request' | 'during spark-submit' | 'during teardown';
type Fault = 'apiserver unreachable' | 'apiserver hung' | 'SIGINT' | 'SIGTERM' | 'SIGHUP' | 'SIGKILL';
const PHASES: Phase[] = [
  'before the namespace',
  'during the creates',
  'after the creates',
  'during the token request',
  'during spark-submit',
  'during teardown',
];
const FAULTS: Fault[] = ['apiserver unreachable', 'apiserver hung', 'SIGINT', 'SIGTERM', 'SIGHUP', 'SIGKILL'];

/** Where each phase begins, as the proxy sees it. */
const TRIGGERS: Record<Exclude<Phase, 'during spark-submit'>, Omit<Trigger, 'mode'>> = {
  'before the namespace': { match: phase.namespaceGet, at: 'request' },
  // The RoleBinding goes out with the service accounts, the Lease and the token anchor: the fault hits while
  // some of them may be created and unanswered (a process that dies then leaves no Lease behind).
  'during the creates': { match: phase.duringCreates, at: 'request' },
  // The TokenRequest follows once every create is answered.
  'after the creates': { match: phase.tokenRequest, at: 'request', afterCompleted: phase.createRoleBinding },
  // The apiserver issues the token; the fault hits its response.
  'during the token request': { match: phase.tokenRequest, at: 'response', afterCompleted: phase.createRoleBinding },
  'during teardown': { match: phase.teardown, at: 'request' },
};

// ---- figures ----
const figures = {
  cells: 0,
  cliRuns: 0,
  cleanupRuns: 0,
  tokensIssued: 0,
  tokensRejected: 0,
  cellsWithLeaks: 0,
  leakedItems: [] as string[],
  slowestExitAfterFaultMs: 0,
  failedCells: [] as string[],
};

afterAll(() => {
  const leaks = figures.leakedItems.length;
  console.log(
    `reliability faults: ${figures.cells - figures.failedCells.length}/${figures.cells} cells passed; ${figures.cliRuns} CLI runs, ${figures.cleanupRuns} cleanup runs; ` +
      `tokens issued ${figures.tokensIssued}, rejected (401) afterwards ${figures.tokensRejected}; ` +
      `leaks found: ${leaks} item(s) in ${figures.cellsWithLeaks} cell(s)${leaks ? ` (${[...new Set(figures.leakedItems.map((l) => l.replace(/dss-spark-[a-z0-9-]+/, '<job>')))].join(', ')})` : ''}; ` +
      `slowest exit after a fault ${(figures.slowestExitAfterFaultMs / 1000).toFixed(1)} s` +
      (figures.failedCells.length ? `; failed: ${figures.failedCells.join(' | ')}` : ''),
  );
});

// ---- running the CLI ----

interface Launched {
  child: ChildProcess;
  readonly stdout: string;
  readonly stderr: string;
  startedAt: number;
  /** Resolves with the first JSON line on stdout (the fake spark-submit's reports) whose event is `name`. */
  stdoutEvent(name: string): Promise<Record<string, unknown>>;
  exited: Promise<{ exitCode: number | null; signal: NodeJS.Signals | null; at: number }>;
}

/** The staged CLI as the dssuser Unix account, in its own process group (so a SIGKILLed CLI's sudo and driver can be ended). */
function launch(args: string[]): Launched {
  figures.cliRuns++;
  const child = spawn(unix.cli, args, {
    uid: unix.dssuser.uid,
    gid: unix.dssuser.gid,
    cwd: unix.dssuser.home,
    env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: unix.dssuser.home, USER: unix.dssuser.name, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  const waiters: { name: string; resolve: (event: Record<string, unknown>) => void }[] = [];
  const parsed: Record<string, unknown>[] = [];
  let partial = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    partial += chunk.toString();
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      const event = parseJson(line);
      if (!event) continue;
      parsed.push(event);
      for (const waiter of waiters.filter((w) => w.name === event.event)) waiter.resolve(event);
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  // 'exit', not 'close': a SIGKILLed CLI's driver keeps the pipes open.
  const exited = new Promise<{ exitCode: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) => {
    child.on('exit', (exitCode, signal) => {
      const at = Date.now();
      // Let the last output arrive: at 'close' (pipes drained), or after 2 s when a survivor holds them.
      const done = () => resolve({ exitCode, signal, at });
      child.on('close', done);
      setTimeout(done, 2000);
    });
  });
  return {
    child,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    startedAt: Date.now(),
    stdoutEvent(name) {
      const seen = parsed.find((e) => e.event === name);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve) => waiters.push({ name, resolve }));
    },
    exited,
  };
}

/** Ends what a cell started and left running (a SIGKILLed CLI's sudo and driver): its process group, by id. */
function endProcessGroup(child: ChildProcess) {
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    // already gone
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves with the value, or with `undefined` once `ms` have passed. */
function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  return Promise.race([promise, sleep(ms).then(() => undefined)]);
}

// ---- per-cell environment ----

interface CellEnv {
  proxy: FaultProxy;
  namespace: string;
  jobId: string;
  config: { path: string; tempDir: string };
  /** A directory the end user's driver can write (the saved token) and the test can read. */
  drop: string;
}

let cellIndex = 0;

/** dssuser's kubeconfig, pointed at the proxy, readable by the dssuser Unix account only. */
function proxiedKubeconfig(proxy: FaultProxy, token?: string): string {
  const source = new KubeConfig();
  source.loadFromFile(unix.dssuserKubeconfig);
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: source.clusters.map((c) => ({ ...c, server: proxy.url })),
    users: token ? source.users.map((u) => ({ ...u, token })) : source.users,
    contexts: source.contexts,
    currentContext: source.currentContext,
  });
  const path = join(dssuserDir('dss-spark-k8s-fault-kc-'), 'dssuser.kubeconfig');
  writeFileSync(path, kc.exportConfig(), { mode: 0o600 });
  chownSync(path, unix.dssuser.uid, unix.dssuser.gid);
  return path;
}

async function cellEnv(profile: Record<string, unknown> = {}, options: { token?: string } = {}): Promise<CellEnv> {
  if (!cluster.local) throw new Error('the fault matrix needs the local control plane: its proxy presents the apiserver certificate (unset TEST_KUBECONFIG)');
  const i = ++cellIndex;
  const proxy = await startFaultProxy({
    server: cluster.server,
    caFile: cluster.caFile,
    certFile: join(cluster.dir, 'apiserver.crt'),
    keyFile: join(cluster.dir, 'apiserver.key'),
  });
  const namespace = `dss-flt-${RUN}-${i}`;
  const config = writeConfig({
    targetNamespace: namespace,
    kubeconfig: proxiedKubeconfig(proxy, options.token),
    apiTimeout: `${API_TIMEOUT_S}s`,
    leaseRenewSeconds: `${LEASE_RENEW_S}s`,
    killGrace: `${KILL_GRACE_S}s`,
    ...profile,
  });
  const drop = dssuserDir('dss-spark-k8s-fault-drop-');
  chownSync(drop, alice.uid, alice.gid);
  return { proxy, namespace, jobId: `f${RUN}-${i}`, config, drop };
}

/** Waits until the job's Lease (if any) has expired, so that cleanup takes the job for an orphan. */
async function waitForLeaseExpiry(namespace: string, jobId: string) {
  const coordination = adminKubeConfig().makeApiClient(CoordinationV1Api);
  const leases = await coordination.listNamespacedLease({ namespace, labelSelector: `dss-spark-k8s.dataiku.io/job-id=${jobId}` }).catch(() => ({ items: [] }));
  let latest = 0;
  for (const lease of leases.items) {
    const renewed = new Date(lease.spec?.renewTime ?? lease.spec?.acquireTime ?? lease.metadata?.creationTimestamp ?? 0).getTime();
    latest = Math.max(latest, renewed + (lease.spec?.leaseDurationSeconds ?? 0) * 1000);
  }
  const wait = latest + 1500 - Date.now();
  if (wait > 0) await sleep(wait);
}

async function runCleanup(env: CellEnv) {
  figures.cleanupRuns++;
  const cleanup = launch(['cleanup', '--orphans', '--yes', '-n', env.namespace, '--config', env.config.path, '-o', 'json']);
  const result = await within(cleanup.exited, 120_000);
  endProcessGroup(cleanup.child);
  return { exitCode: result?.exitCode ?? null, stdout: cleanup.stdout, stderr: cleanup.stderr };
}

interface Aftermath {
  leftovers: string[];
  tempFiles: string[];
  tokens: string[];
  liveTokens: string[];
}

/** What is left once the cell is over: labelled objects (as admin), temp files, tokens that still work. */
async function aftermath(env: CellEnv): Promise<Aftermath> {
  const saved = join(env.drop, 'token');
  const tokens = [...new Set([...env.proxy.tokens, ...(existsSync(saved) ? [readFileSync(saved, 'utf8').trim()] : [])])].filter(Boolean);
  const statuses = await Promise.all(
    tokens.map((token) => statusEventually(() => tokenKubeConfig(token).makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: {} }), 401, 15_000)),
  );
  const liveTokens = tokens.filter((_, i) => statuses[i] !== 401);
  figures.tokensIssued += tokens.length;
  figures.tokensRejected += tokens.length - liveTokens.length;
  const leftovers = await jobObjects(env.jobId);
  const tempFiles = dirEntries(env.config.tempDir);
  recordLeaks([...leftovers, ...tempFiles.map((f) => `temp file ${f}`), ...liveTokens.map(() => 'a token that still authenticates')]);
  return { leftovers, tempFiles, tokens, liveTokens };
}

function recordLeaks(leaks: string[]) {
  if (leaks.length === 0) return;
  figures.cellsWithLeaks++;
  figures.leakedItems.push(...leaks);
}

/** Our own error lines ("dss-spark-k8s: …"), apart from status lines ("dss-spark-k8s 1.2s …") and warnings. */
function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line.startsWith('dss-spark-k8s: '));
}

function expectCleanOutput(expect: ExpectStatic, stdout: string, stderr: string, tokens: string[]) {
  expect.soft(stderr, 'no stack trace').not.toMatch(/^\s+at .+:\d+/m);
  expect.soft(stderr).not.toMatch(/internal error/);
  for (const token of tokens) {
    expect.soft(stdout.includes(token) || stderr.includes(token), 'a token in the output').toBe(false);
  }
}

/** Counts the cell and records its outcome for the summary (soft assertions included). */
function cell(name: string, body: (expect: ExpectStatic) => Promise<void>, timeoutMs = 150_000) {
  it.concurrent(
    name,
    async ({ expect, onTestFailed }) => {
      figures.cells++;
      onTestFailed(() => {
        figures.failedCells.push(name);
      });
      await body(expect);
    },
    timeoutMs,
  );
}

// ---- the matrix ----

interface Expected {
  /** Exit code, or 'SIGKILL' for a CLI killed by it. */
  exit: number | 'SIGKILL';
  /** Whether `cleanup --orphans --yes` must run before nothing is left. */
  cleanup: boolean;
  /** Upper bound of the time from the fault to the CLI's exit, from the configured timeouts. */
  boundS: number;
}

/** Teardown under a hung apiserver: two rounds of deletes (bindings, then the rest), each retried. */
const HUNG_TEARDOWN_S = 2 * (RETRY_ATTEMPTS * API_TIMEOUT_S + RETRY_BACKOFF_S);
const REFUSED_TEARDOWN_S = 2 * RETRY_BACKOFF_S;
/** How long spark-submit runs in the cells that fault during it, and how long the apiserver is away then. */
const JOB_SECONDS = 6;
const OUTAGE_MS = 3_000;

function expected(p: Phase, fault: Fault): Expected {
  const provisioningFault = p !== 'during spark-submit' && p !== 'during teardown';
  if (fault === 'SIGKILL') return { exit: 'SIGKILL', cleanup: true, boundS: SLACK_S };
  if (fault === 'SIGINT' || fault === 'SIGTERM' || fault === 'SIGHUP') {
    return { exit: SIGNAL_CODES[fault], cleanup: false, boundS: SLACK_S + (p === 'during spark-submit' ? KILL_GRACE_S : 0) };
  }
  const hung = fault === 'apiserver hung';
  if (p === 'before the namespace') return { exit: 69, cleanup: false, boundS: SLACK_S + (hung ? API_TIMEOUT_S : 0) };
  // The apiserver comes back after OUTAGE_MS, while the job still runs: the job ends with its own code.
  if (p === 'during spark-submit') return { exit: 0, cleanup: false, boundS: SLACK_S + JOB_SECONDS };
  // Unreachable until the CLI ends: provisioning fails, teardown cannot delete what was made.
  return {
    exit: 75,
    cleanup: true,
    boundS: SLACK_S + (provisioningFault && hung ? API_TIMEOUT_S : 0) + (hung ? HUNG_TEARDOWN_S + API_TIMEOUT_S : REFUSED_TEARDOWN_S),
  };
}

function driverActions(p: Phase, fault: Fault, drop: string): string[] {
  const seconds = p === 'during spark-submit' ? (fault === 'SIGKILL' ? 20 : fault.startsWith('apiserver') ? JOB_SECONDS : 30) : 1;
  return ['app', 'save-token', join(drop, 'token'), 'marker', 'running', 'sleep', String(seconds)];
}

describe.concurrent('faults at every phase of a job', () => {
  for (const p of PHASES) {
    for (const fault of FAULTS) {
      const want = expected(p, fault);
      cell(`${fault} ${p}: exit ${want.exit}${want.cleanup ? ', cleanup --orphans' : ''}, nothing left, tokens dead`, async (expect) => {
        const env = await cellEnv();
        const args = ['run', '--user', alice.name, '--config', env.config.path, '--job-id', env.jobId, '--', ...driverActions(p, fault, env.drop)];
        const isSignal = fault.startsWith('SIG');
        const proxyMode = fault === 'apiserver unreachable' ? 'refuse' : 'hang'; // signals: hold the phase's request
        let reached: Promise<RequestInfo | 'driver'>;
        let cli: Launched;
        if (p === 'during spark-submit') {
          cli = launch(args);
          reached = cli.stdoutEvent('marker').then(() => 'driver' as const);
        } else {
          reached = env.proxy.arm({ ...TRIGGERS[p], mode: proxyMode });
          cli = launch(args);
        }
        try {
          const hit = await within(Promise.race([reached, cli.exited.then(() => undefined)]), 60_000);
          expect(hit, `phase "${p}" was never reached; stderr: ${cli.stderr}`).toBeTruthy();
          const faultAt = Date.now();
          if (p === 'during spark-submit' && !isSignal) {
            await env.proxy.setMode(proxyMode);
            await sleep(OUTAGE_MS);
            await env.proxy.setMode('pass');
          } else if (isSignal) {
            process.kill(cli.child.pid!, fault);
            if (fault === 'SIGKILL') await cli.exited;
            else await sleep(500); // let the handler run (the CLI is idle, waiting for the held request) before the phase goes on
            await env.proxy.setMode('pass');
          }
          const exit = await within(cli.exited, (want.boundS + 30) * 1000);
          expect(exit, `the CLI did not end; stderr: ${cli.stderr}`).toBeDefined();
          await env.proxy.setMode('pass');
          const tookMs = exit!.at - faultAt;
          figures.slowestExitAfterFaultMs = Math.max(figures.slowestExitAfterFaultMs, tookMs);

          let cleanup: Awaited<ReturnType<typeof runCleanup>> | undefined;
          if (want.cleanup) {
            await waitForLeaseExpiry(env.namespace, env.jobId);
            cleanup = await runCleanup(env);
          }
          const after = await aftermath(env);

          if (want.exit === 'SIGKILL') expect.soft(exit!.signal, cli.stderr).toBe('SIGKILL');
          else expect.soft(exit!.exitCode, cli.stderr).toBe(want.exit);
          expect.soft(tookMs / 1000, `seconds from the fault to the exit (bound ${want.boundS} s)`).toBeLessThanOrEqual(want.boundS);
          expectCleanOutput(expect, cli.stdout, cli.stderr, after.tokens);
          if (want.exit !== 'SIGKILL' && want.exit !== 0) {
            expect.soft(errorLines(cli.stderr), cli.stderr).toHaveLength(1);
            if (want.exit === 75) expect.soft(cli.stderr).toContain('cleanup --orphans --yes');
            if (isSignal) expect.soft(cli.stderr).toContain(`interrupted by ${fault}`);
          }
          if (cleanup) expect.soft(cleanup.exitCode, `cleanup: ${cleanup.stderr}`).toBe(0);
          expect.soft(after.leftovers, 'job-labelled objects left').toEqual([]);
          expect.soft(after.tempFiles, 'temp files left').toEqual([]);
          expect.soft(after.liveTokens, 'issued tokens that still authenticate').toEqual([]);
          if (p === 'during the token request' && !isSignal)
            expect.soft(after.tokens.length, 'the apiserver issued a token the CLI never got').toBeGreaterThan(0);
        } finally {
          endProcessGroup(cli.child);
          await env.proxy.close();
        }
      });
    }
  }
});

describe.concurrent('faults around the flow', () => {
  /** A run whose failure comes before any cluster write: exit code, one line, nothing contacted or left. */
  async function refusedEarly(expect: ExpectStatic, env: CellEnv, user: string, code: number, message: RegExp) {
    try {
      const cli = launch(['run', '--user', user, '--config', env.config.path, '--job-id', env.jobId, '--', 'app', 'marker', 'never']);
      const exit = await within(cli.exited, (SLACK_S + API_TIMEOUT_S) * 1000);
      expect(exit, 'the CLI did not end').toBeDefined();
      const after = await aftermath(env);
      expect(exit!.exitCode, cli.stderr).toBe(code);
      expect(errorLines(cli.stderr), cli.stderr).toHaveLength(1);
      expect(cli.stderr).toMatch(message);
      expect(cli.stdout).not.toContain('"event":"started"');
      expectCleanOutput(expect, cli.stdout, cli.stderr, after.tokens);
      expect(
        env.proxy.log.filter((r) => phase.anyWrite(r)),
        'cluster writes',
      ).toEqual([]);
      expect(after.leftovers).toEqual([]);
      expect(after.tempFiles).toEqual([]);
      return cli;
    } finally {
      await env.proxy.close();
    }
  }

  cell('sudo refuses the end user: exit 71 before any cluster write', async (expect) => {
    await refusedEarly(expect, await cellEnv(), unix.outsider.name, 71, /sudo refuses/);
  });

  cell('spark-submit missing: exit 71 before any cluster write', async (expect) => {
    await refusedEarly(expect, await cellEnv({ sparkSubmit: '/nonexistent/bin/spark-submit' }), alice.name, 71, /does not exist or is not executable/);
  });

  cell('spark-submit not executable: exit 71 before any cluster write', async (expect) => {
    const dir = dssuserDir('dss-spark-k8s-fault-bin-');
    const script = join(dir, 'spark-submit');
    writeFileSync(script, '#!/bin/sh\nexit 0\n', { mode: 0o644 });
    chmodSync(script, 0o644);
    await refusedEarly(expect, await cellEnv({ sparkSubmit: script }), alice.name, 71, /does not exist or is not executable/);
  });

  cell('temp directory not writable: exit 70 before any cluster write', async (expect) => {
    const locked = join(dssuserDir('dss-spark-k8s-fault-locked-'), 'root-only');
    mkdirSync(locked, { mode: 0o755 }); // owned by root: dssuser cannot create the job directory in it
    const env = await cellEnv({ tempDir: locked });
    env.config.tempDir = locked;
    await refusedEarly(expect, env, alice.name, 70, /cannot create the job directory/);
  });

  cell('temp directory missing: exit 70 before any cluster write', async (expect) => {
    const missing = join(dssuserDir('dss-spark-k8s-fault-missing-'), 'no-such-dir');
    const env = await cellEnv({ tempDir: missing });
    try {
      const cli = launch(['run', '--user', alice.name, '--config', env.config.path, '--job-id', env.jobId, '--', 'app']);
      const exit = await within(cli.exited, SLACK_S * 1000);
      expect(exit?.exitCode, cli.stderr).toBe(70);
      expect(errorLines(cli.stderr), cli.stderr).toHaveLength(1);
      expect(env.proxy.log.filter((r) => phase.anyWrite(r))).toEqual([]);
      expect(await jobObjects(env.jobId)).toEqual([]);
      expect(existsSync(missing)).toBe(false);
    } finally {
      await env.proxy.close();
    }
  });

  cell("dssuser's own credential invalid: exit 69, one line, nothing written, the bad token never printed", async (expect) => {
    const badToken = `bad-${Math.random().toString(36).slice(2)}-token-value`;
    const env = await cellEnv({}, { token: badToken });
    const cli = await refusedEarly(expect, env, alice.name, 69, /401|Unauthorized/);
    expect(cli.stderr + cli.stdout).not.toContain(badToken);
  });

  cell('the apiserver restarts during teardown: the retries absorb it, exit 0, nothing left', async (expect) => {
    const env = await cellEnv();
    // Down 0.3 s from the first DELETE, timed by the proxy: less than the retries' first two pauses (at least
    // 0.1 s + 0.3 s), so the third attempt at the latest gets through.
    const reached = env.proxy.arm({ match: phase.teardown, at: 'request', mode: 'refuse', restoreAfterMs: 300 });
    const cli = launch([
      'run',
      '--user',
      alice.name,
      '--config',
      env.config.path,
      '--job-id',
      env.jobId,
      '--',
      'app',
      'save-token',
      join(env.drop, 'token'),
      'marker',
      'ok',
    ]);
    try {
      expect(await within(reached, 60_000), cli.stderr).toBeDefined();
      const exit = await within(cli.exited, (SLACK_S + REFUSED_TEARDOWN_S) * 1000);
      const after = await aftermath(env);
      // An outage as long as the retries (a stalled test process) would not test what this cell says.
      expect(env.proxy.outagesMs, 'how long the apiserver was away (ms)').toEqual([expect.any(Number)]);
      expect(env.proxy.outagesMs[0], "the outage outlasted the retries' span").toBeLessThan(RETRY_SPAN_MIN_MS);
      expect(exit?.exitCode, cli.stderr).toBe(0);
      expect(
        env.proxy.log.some((r) => r.outcome === 'refused'),
        'a delete was refused',
      ).toBe(true);
      expect(after.leftovers).toEqual([]);
      expect(after.tempFiles).toEqual([]);
      expect(after.liveTokens).toEqual([]);
    } finally {
      endProcessGroup(cli.child);
      await env.proxy.close();
    }
  });

  cell('the apiserver stalls for less than apiTimeout during the creates: the job runs, exit 0', async (expect) => {
    const env = await cellEnv();
    const reached = env.proxy.arm({ match: phase.duringCreates, at: 'request', mode: 'hang', restoreAfterMs: (API_TIMEOUT_S * 1000) / 4 });
    const cli = launch([
      'run',
      '--user',
      alice.name,
      '--config',
      env.config.path,
      '--job-id',
      env.jobId,
      '--',
      'app',
      'save-token',
      join(env.drop, 'token'),
      'marker',
      'ok',
    ]);
    try {
      expect(await within(reached, 60_000), cli.stderr).toBeDefined();
      const exit = await within(cli.exited, SLACK_S * 1000);
      const after = await aftermath(env);
      expect(env.proxy.outagesMs, 'how long the apiserver hung (ms)').toEqual([expect.any(Number)]);
      expect(env.proxy.outagesMs[0], 'the stall outlasted apiTimeout').toBeLessThan(API_TIMEOUT_S * 1000);
      expect(exit?.exitCode, cli.stderr).toBe(0);
      expect(cli.stdout).toContain('"event":"marker"');
      expect(after.leftovers).toEqual([]);
      expect(after.tempFiles).toEqual([]);
      expect(after.tokens.length).toBeGreaterThan(0);
      expect(after.liveTokens).toEqual([]);
    } finally {
      endProcessGroup(cli.child);
      await env.proxy.close();
    }
  });

  // The apiserver did the work but the CLI never heard back: the service accounts, RoleBinding, Lease and token
  // anchor exist, and the CLI's record of what it created is empty.
  cell('the apiserver dies while answering the service-account creates: exit 69 means rolled back, so nothing may be left', async (expect) => {
    const env = await cellEnv();
    const reached = env.proxy.arm({ match: (r) => r.method === 'POST' && /\/serviceaccounts(\?|$)/.test(r.path), at: 'response', mode: 'refuse' });
    const cli = launch(['run', '--user', alice.name, '--config', env.config.path, '--job-id', env.jobId, '--', 'app', 'marker', 'never']);
    try {
      expect(await within(reached, 60_000), cli.stderr).toBeDefined();
      const exit = await within(cli.exited, (SLACK_S + REFUSED_TEARDOWN_S) * 1000);
      await env.proxy.setMode('pass');
      expect(exit, 'the CLI did not end').toBeDefined();
      const left = await jobObjects(env.jobId);
      expect.soft(errorLines(cli.stderr), cli.stderr).toHaveLength(1);
      // Exit 69 says "what was created has been rolled back"; exit 75 lists what is left.
      expect.soft([69, 75], cli.stderr).toContain(exit!.exitCode);
      if (exit!.exitCode === 69) {
        expect.soft(left, 'exit 69 claims a rollback, yet these exist').toEqual([]);
        if (left.length) recordLeaks(left);
      }
      if (exit!.exitCode === 75) {
        const plural: Record<string, string> = { serviceaccount: 'serviceaccounts', rolebinding: 'rolebindings', lease: 'leases', secret: 'secrets' };
        const unlisted = left.filter((o) => {
          const [kind, name] = o.split('/') as [string, string];
          return !cli.stderr.includes(`${plural[kind] ?? kind} ${env.namespace}/${name}:`);
        });
        expect.soft(unlisted, 'left in the cluster but missing from the teardown message').toEqual([]);
        if (unlisted.length) recordLeaks(unlisted);
      }
      expect.soft(dirEntries(env.config.tempDir)).toEqual([]);
    } finally {
      endProcessGroup(cli.child);
      await env.proxy.close();
    }
  });

  // RoleBinding and TokenRequest go out together; the TokenRequest is denied at once while the RoleBinding's
  // answer is still on its way (the apiserver has created it): teardown must not start before every create
  // has settled, or the binding is recorded after teardown has passed it by.
  cell('token request denied while the RoleBinding create is still in flight: exit 69, nothing left', async (expect) => {
    const env = await cellEnv();
    env.proxy.addRule({
      match: phase.tokenRequest,
      respond: { status: 403, reason: 'Forbidden', message: 'serviceaccounts "x" is forbidden: injected by the test' },
    });
    env.proxy.addRule({ match: phase.createRoleBinding, delayResponseMs: 1_500 });
    const cli = launch(['run', '--user', alice.name, '--config', env.config.path, '--job-id', env.jobId, '--', 'app', 'marker', 'never']);
    try {
      const exit = await within(cli.exited, (SLACK_S + API_TIMEOUT_S) * 1000);
      expect(exit, 'the CLI did not end').toBeDefined();
      const after = await aftermath(env);
      expect(
        env.proxy.log.filter((r) => phase.createRoleBinding(r)).map((r) => r.outcome),
        'the RoleBinding was created',
      ).toEqual([201]);
      expect.soft(exit!.exitCode, cli.stderr).toBe(69);
      expect.soft(errorLines(cli.stderr), cli.stderr).toHaveLength(1);
      expect.soft(after.leftovers, 'exit 69 claims a rollback, yet these exist').toEqual([]);
      expect.soft(after.tempFiles).toEqual([]);
    } finally {
      endProcessGroup(cli.child);
      await env.proxy.close();
    }
  });
});

// ---- adversarial input through the real CLI: never a cluster write ----

/** Writes by dssuser in the audit log, after `mark` (auditMark), that concern any of these job ids or namespaces. */
async function auditWrites(mark: number, jobIds: string[], namespaces: string[]): Promise<string[]> {
  if (!cluster.auditLog || !existsSync(cluster.auditLog)) throw new Error('no audit log on this control plane');
  const hits: string[] = [];
  for (const line of await auditLines(cluster.auditLog, mark, cluster.dssuserName)) {
    if (!jobIds.some((id) => line.includes(id)) && !namespaces.some((ns) => line.includes(ns))) continue;
    const event = parseJson(line) as { user?: { username?: string }; verb?: string; requestURI?: string } | undefined;
    if (event?.user?.username === cluster.dssuserName && !['get', 'list', 'watch'].includes(event.verb ?? '')) hits.push(`${event.verb} ${event.requestURI}`);
  }
  return hits;
}

describe.concurrent('adversarial input through the real CLI', () => {
  // Configs that a random mutation of a valid one produces (each invalid, each for a different reason).
  const MUTATED_CONFIGS: [string, (base: Record<string, unknown>) => string, number][] = [
    ['broken YAML', (b) => `${JSON.stringify({ profiles: { default: b } }, null, 2).slice(0, -3)}\n  bad: [\n`, 78],
    ['a misspelt key', (b) => JSON.stringify({ profiles: { default: { ...b, targetNamespce: b.targetNamespace } } }), 78],
    ['a negative timeout', (b) => JSON.stringify({ profiles: { default: { ...b, apiTimeout: -5 } } }), 78],
    ['a bad allow-list regex', (b) => JSON.stringify({ profiles: { default: { ...b, allowedNamespaces: '(dss-' } } }), 78],
    [
      'a label trying to replace managed-by',
      (b) => JSON.stringify({ profiles: { default: { ...b, labels: { 'app.kubernetes.io/managed-by': 'not ours' } } } }),
      78,
    ],
    ['a token lifetime below the minimum', (b) => JSON.stringify({ profiles: { default: { ...b, tokenTtl: '9m' } } }), 78],
    ['a system namespace', (b) => JSON.stringify({ profiles: { default: { ...b, targetNamespace: 'kube-system', allowedNamespaces: '.*' } } }), 65],
    ['a namespace template with an unknown variable', (b) => JSON.stringify({ profiles: { default: { ...b, targetNamespace: 'dss-${dssUserHome}' } } }), 78],
  ];
  const HOSTILE_ARGS: string[][] = [
    ['--master', 'local[*]', 'app'],
    ['--conf', 'spark.kubernetes.authenticate.oauthToken=stolen', 'app'],
    ['--conf=spark.kubernetes.namespace=kube-system', 'app'],
    ['-c', 'spark.kubernetes.executor.podNamePrefix=other-job', 'app'],
    ['--deploy-mode', 'cluster', 'app'],
    ['--driver-java-options', '-Dspark.kubernetes.namespace=kube-system', 'app'],
    ['--conf', 'spark.driver.extraJavaOptions=-Dspark.master=local', 'app'],
    ['--properties-file', '/etc/passwd', 'app'],
    ['--proxy-user', 'root', 'app'],
    ['--name', 'x', '--kubernetes-namespace', 'kube-system', 'app'],
  ];

  cell(
    `${MUTATED_CONFIGS.length} mutated configs and ${HOSTILE_ARGS.length} hostile argument lists: documented exit, one line, no cluster write`,
    async (expect) => {
      const env = await cellEnv();
      // The audit log before this cell's first request: what comes after holds every write it could cause.
      const mark = auditMark(cluster.auditLog);
      try {
        const base = JSON.parse(readFileSync(env.config.path, 'utf8')).profiles.default as Record<string, unknown>;
        const inputs: { what: string; args: string[]; code: number; jobId: string }[] = [];
        MUTATED_CONFIGS.forEach(([what, mutate, code], i) => {
          const path = join(dssuserDir('dss-spark-k8s-fault-mut-'), 'config.yaml');
          writeFileSync(path, mutate(base));
          chownSync(path, unix.dssuser.uid, unix.dssuser.gid);
          const jobId = `${env.jobId}c${i}`;
          inputs.push({ what, args: ['run', '--user', alice.name, '--config', path, '--job-id', jobId, '--', 'app', 'marker', 'never'], code, jobId });
        });
        HOSTILE_ARGS.forEach((sparkArgs, i) => {
          const jobId = `${env.jobId}a${i}`;
          inputs.push({
            what: sparkArgs.join(' '),
            args: ['run', '--user', alice.name, '--config', env.config.path, '--job-id', jobId, '--', ...sparkArgs],
            code: 64,
            jobId,
          });
        });
        const results = await Promise.all(
          inputs.map(async (input) => {
            const cli = launch(input.args);
            const exit = await within(cli.exited, 60_000);
            return { input, exit, stdout: cli.stdout, stderr: cli.stderr };
          }),
        );
        for (const { input, exit, stdout, stderr } of results) {
          expect(exit?.exitCode, `${input.what}: ${stderr}`).toBe(input.code);
          expect(errorLines(stderr), `${input.what}: ${stderr}`).toHaveLength(1);
          expect(stderr.trim().split('\n'), `${input.what}: ${stderr}`).toHaveLength(1);
          expect(stdout, input.what).toBe('');
          expectCleanOutput(expect, stdout, stderr, []);
          expect(await jobObjects(input.jobId), input.what).toEqual([]);
        }
        expect(env.proxy.log, 'requests to the apiserver').toEqual([]);
        expect(
          await auditWrites(
            mark,
            inputs.map((i) => i.jobId),
            [env.namespace],
          ),
          'audit log: writes by dssuser',
        ).toEqual([]);
        expect(dirEntries(env.config.tempDir)).toEqual([]);
      } finally {
        await env.proxy.close();
      }
    },
  );

  // Values with a line break: an end user's spark-submit argument or a login must not add lines of its own
  // to the CLI's one error line (a job runner reads that line; a forged second line could say anything).
  const LINE_BREAKS: [string, (env: CellEnv) => string[], number][] = [
    [
      'a spark-submit --deploy-mode value',
      (env) => [
        'run',
        '--user',
        alice.name,
        '--config',
        env.config.path,
        '--',
        '--deploy-mode',
        'cluster\ndss-spark-k8s: torn down job x: nothing left',
        'app',
      ],
      64,
    ],
    [
      'a spark-submit option name',
      (env) => ['run', '--user', alice.name, '--config', env.config.path, '--', '--kubernetes-x\ndss-spark-k8s: forged', 'app'],
      64,
    ],
    ['a --job-id', (env) => ['run', '--user', alice.name, '--config', env.config.path, '--job-id', 'a\ndss-spark-k8s: forged', '--', 'app'], 64],
    ['a --user', (env) => ['run', '--user', 'alice\ndss-spark-k8s: forged', '--config', env.config.path, '--', 'app'], 65],
  ];
  cell(`${LINE_BREAKS.length} flag values with a line break: one error line each, no cluster write`, async (expect) => {
    const env = await cellEnv();
    try {
      const results = await Promise.all(
        LINE_BREAKS.map(async ([what, args, code]) => {
          const cli = launch(args(env));
          const exit = await within(cli.exited, 60_000);
          return { what, code, exit, stderr: cli.stderr };
        }),
      );
      expect(env.proxy.log, 'requests to the apiserver').toEqual([]);
      for (const { what, code, exit, stderr } of results) expect(exit?.exitCode, `${what}: ${stderr}`).toBe(code);
      const multiLine = results.filter((r) => r.stderr.trim().split('\n').length !== 1).map((r) => `${r.what}: ${JSON.stringify(r.stderr)}`);
      expect(multiLine, 'error messages spread over several lines').toEqual([]);
    } finally {
      await env.proxy.close();
    }
  });
});
