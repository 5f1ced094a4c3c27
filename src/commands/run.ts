// `dss-spark-k8s run`: plan → apply → exec → teardown, for one Spark job of one end user.
import { randomBytes } from 'node:crypto';
import { dump as dumpYaml } from 'js-yaml';
import { loadConfig, resolveConfigPath, selectProfile } from '../config/load.ts';
import type { Profile } from '../config/types.ts';
import { JobLostError, signalNumber, TeardownError } from '../errors.ts';
import { createJobDir, removeJobDir, renderKubeconfig, writeJobKubeconfig, type JobFiles } from '../exec/job-files.ts';
import { thisProcess } from '../exec/process-identity.ts';
import { checkImpersonation, startSparkSubmit, sudoArgs } from '../exec/spark-submit.ts';
import { checkEndUser, lookupEndUser, type EndUser } from '../exec/unix-user.ts';
import { provision, type CreatedObject } from '../job/apply.ts';
import { startLeaseRenewal } from '../job/lease.ts';
import { ROTATION_RETRY_SECONDS, startTokenRotation } from '../job/rotation.ts';
import { SignalWatcher } from '../job/signals.ts';
import { teardown, tokenRevoked } from '../job/teardown.ts';
import { Kube } from '../k8s/client.ts';
import { resolveAdminProperties } from '../plan/admin-properties.ts';
import { executorServiceAccountName, generateJobId, validateJobId } from '../plan/names.ts';
import { isolationEnforced } from './policy.ts';
import { planJob } from '../plan/plan.ts';
import type { JobContext, JobPlan } from '../plan/types.ts';
import { createReporter, type Reporter } from '../output.ts';

export interface RunOptions {
  user: string;
  profile?: string;
  config?: string;
  jobId?: string;
  kubeconfig?: string;
  context?: string;
  dryRun?: 'client' | 'server';
  output: 'yaml' | 'json';
  adminProperty: string[];
  events?: string;
  quiet?: boolean;
  sparkArgs: string[];
}

export async function runCommand(options: RunOptions): Promise<number> {
  // From the very start: a signal during provisioning still ends in teardown.
  const signals = new SignalWatcher();
  try {
    const profile = selectProfile(loadConfig(resolveConfigPath(options.config, process.env)), options.profile);
    const jobId = options.jobId === undefined ? generateJobId(randomBytes(8)) : validateJobId(options.jobId);
    const kube = Kube.load({ kubeconfig: options.kubeconfig ?? profile.kubeconfig, context: options.context ?? profile.context, timeoutSeconds: profile.apiTimeoutSeconds });
    try {
      // The TLS handshake runs while the end user is looked up (no request is sent before the checks pass).
      if (options.dryRun !== 'client') kube.connect();
      const user = await lookupEndUser(options.user);
      checkEndUser(user, profile, process.getuid!());
      const reporter = createReporter({ quiet: options.quiet, events: options.events, jobId });
      try {
        return await planAndRun({ options, profile, jobId, kube, user, reporter, signals });
      } finally {
        reporter.close();
      }
    } finally {
      await kube.close();
    }
  } finally {
    signals.dispose();
  }
}

interface Planned {
  options: RunOptions;
  profile: Profile;
  jobId: string;
  kube: Kube;
  user: EndUser;
  reporter: Reporter;
  signals: SignalWatcher;
}

/** Plans the job of a checked end user, then prints it (dry runs) or runs it. */
async function planAndRun({ options, profile, jobId, kube, user, reporter, signals }: Planned): Promise<number> {
  const adminProperties = resolveAdminProperties(user.login, options.adminProperty, profile);
  const ctx: JobContext = { jobId, login: user.login, uid: user.uid, adminProperties, ...thisProcess(), now: new Date() };
  const plan = (files?: Pick<JobFiles, 'caFile' | 'podTemplate'>) =>
    planJob(profile, ctx, {
      apiServer: kube.endpoint.server,
      caCertFile: files ? files.caFile : kube.endpoint.caPem ? '<job directory>/ca.crt' : undefined,
      ...(files ? { podTemplateFile: files.podTemplate } : {}),
      callerArgs: options.sparkArgs,
    });
  const draft = plan();
  reporter.event('planned', { user: user.login, namespace: draft.namespace, serviceAccount: draft.baseName });
  if (options.dryRun === 'client') {
    printPlan(draft, profile, kube, options.output);
    return 0;
  }
  // Checked while the job directory is made and the namespace is read, before anything is written.
  const impersonation = checkImpersonation(user.login, profile.sparkSubmit);
  impersonation.catch(() => {}); // awaited later; never an unhandled rejection meanwhile
  if (options.dryRun === 'server') {
    await impersonation;
    await provision(kube, draft, [], 'server');
    printPlan(draft, profile, kube, options.output);
    reporter.status(`dry run: the server accepted every object for namespace ${draft.namespace}`);
    return 0;
  }
  return await runJob({ kube, profile, user, ctx, draft, plan, reporter, signals, impersonation });
}

interface JobRun {
  kube: Kube;
  profile: Profile;
  user: EndUser;
  ctx: JobContext;
  /** The plan before the job directory exists (its CA path is a placeholder). */
  draft: JobPlan;
  plan: (files: Pick<JobFiles, 'caFile' | 'podTemplate'>) => JobPlan;
  reporter: Reporter;
  signals: SignalWatcher;
  impersonation: Promise<void>;
}

async function runJob({ kube, profile, user, ctx, draft, plan: planWith, reporter, signals, impersonation }: JobRun): Promise<number> {
  const created: CreatedObject[] = [];
  let files: JobFiles | undefined;
  let plan = draft;
  let driverStarted = false;
  let stopLease = async () => {};
  let stopRotation = async () => {};
  let failure: unknown;
  let exitCode = 0;
  let lost: JobLostError | undefined;
  let stopDriver: (() => void) | undefined;
  try {
    signals.throwIfReceived();
    // Complete (with its owner.json) before the first request: a process killed from then on leaves a
    // directory that cleanup --orphans recognises.
    files = await createJobDir(
      profile.tempDir,
      { jobId: ctx.jobId, host: ctx.host, pid: ctx.pid, processStart: ctx.processStart, namespace: plan.namespace, serviceAccount: plan.baseName },
      Boolean(kube.endpoint.caPem),
    );
    const provisioned = await provision(kube, plan, created, undefined, impersonation);
    plan = planWith(files);
    signals.throwIfReceived();
    await writeJobKubeconfig(files, user.uid, kube.endpoint, plan.namespace, provisioned.token, plan.executorPodTemplate);
    reporter.status(`provisioned service account ${plan.baseName} in namespace ${plan.namespace}${provisioned.namespaceCreated ? ' (namespace created)' : ''}`);
    reporter.event('provisioned', { namespace: plan.namespace, serviceAccount: plan.baseName, namespaceCreated: provisioned.namespaceCreated, tokenExpiresAt: provisioned.tokenExpiresAt.toISOString() });
    if (!profile.targetNamespace.includes('${dssUserLogin}')) await warnIfNotIsolated(files, plan, reporter);
    stopLease = startLeaseRenewal(
      kube,
      provisioned.lease ?? plan.lease,
      profile.leaseRenewSeconds,
      {
        warn: (message) => reporter.warn(`lease renewal failed: ${message}`),
        // Someone else tore the job down: its token is dead or about to be; stop the driver and say so.
        lost: (reason) => {
          lost = new JobLostError(`job ${ctx.jobId} lost ${reason} while it ran (an administrator or a cleanup deleted it); the driver was stopped`);
          reporter.warn(lost.message);
          reporter.event('lost', { reason });
          void stopRotation();
          stopDriver?.();
        },
      },
      { namespace: plan.namespace, name: plan.baseName },
    );
    stopRotation = startTokenRotation({ kube, plan, files, endUserUid: user.uid, endpoint: kube.endpoint, created }, profile.tokenRotationSeconds, provisioned.tokenExpiresAt, {
      rotated: (generation, expiresAt) => {
        reporter.status(`rotated the token (generation ${generation}, expires ${expiresAt.toISOString()})`);
        reporter.event('rotated', { generation, tokenExpiresAt: expiresAt.toISOString() });
      },
      failed: (message) => reporter.warn(`token rotation failed, retrying in ${ROTATION_RETRY_SECONDS} s: ${message}`),
    });

    signals.throwIfReceived();
    if (lost) throw lost;
    const sparkSubmit = await startSparkSubmit(user.login, profile.sparkSubmit, plan.sparkSubmitArgs, files.kubeconfig);
    driverStarted = true;
    signals.forwardTo(sparkSubmit.signal, profile.killGraceSeconds);
    // As for a forwarded signal: SIGTERM, then SIGKILL of sudo after the grace, so that the teardown that
    // revokes the token is never held back by a driver that ignores SIGTERM.
    stopDriver = () => {
      sparkSubmit.signal('SIGTERM');
      setTimeout(() => sparkSubmit.signal('SIGKILL'), profile.killGraceSeconds * 1000).unref();
    };
    if (lost) stopDriver();
    reporter.status(`started spark-submit as ${user.login}`);
    reporter.event('started', { user: user.login });
    const exit = await sparkSubmit.exited;
    reporter.event('exited', { exitCode: exit.exitCode ?? null, signal: exit.signal ?? null });
    reporter.status(`spark-submit exited with ${exit.signal ?? `code ${exit.exitCode}`}`);
    signals.throwIfReceived();
    if (lost) throw lost;
    exitCode = exit.exitCode ?? 128 + signalNumber((exit.signal ?? 'SIGKILL') as NodeJS.Signals);
  } catch (error) {
    failure = error;
  } finally {
    await stopLease();
    await stopRotation();
    // The job's own token (the current one, after rotations) tells when its revocation has taken effect.
    const jobKube = driverStarted && files ? jobClient(files.kubeconfig) : undefined;
    const { left } = await teardown(kube, plan.namespace, { jobId: ctx.jobId, baseName: plan.baseName }, created, {
      driverMayHaveRun: driverStarted,
      ...(jobKube ? { revoked: () => tokenRevoked(jobKube, plan.namespace) } : {}),
    }).finally(() => jobKube?.close());
    if (files) await removeJobDir(files);
    reporter.event('torn-down', { outcome: left.length === 0 ? 'ok' : 'incomplete', left });
    // A job that never started fails with its one error line; a rollback needs no status line of its own.
    if (driverStarted && left.length === 0) reporter.status(`torn down job ${ctx.jobId}: nothing left`);
    if (left.length > 0) {
      const teardownError = new TeardownError(`teardown incomplete, left in the cluster: ${left.join('; ')}; run dss-spark-k8s cleanup --orphans --yes`);
      failure = failure ? new TeardownError(`${(failure as Error).message}; and ${teardownError.message}`) : teardownError;
    }
  }
  if (failure) throw failure;
  // A signal that came during the teardown did not interrupt it, but the caller asked us to stop: say so.
  signals.throwIfReceived();
  return exitCode;
}

function printPlan(plan: JobPlan, profile: Profile, kube: Kube, output: 'yaml' | 'json') {
  const objects = [plan.namespaceObject, plan.namespaceQuota, plan.namespaceLimitRange, plan.serviceAccount, plan.executorServiceAccount, plan.roleBinding, plan.lease, plan.tokenAnchor, plan.tokenRequest].filter(Boolean);
  const document = {
    jobId: plan.jobId,
    user: plan.login,
    namespace: plan.namespace,
    objects,
    executorPodTemplate: plan.executorPodTemplate,
    command: ['sudo', ...sudoArgs(plan.login, profile.sparkSubmit, plan.sparkSubmitArgs)],
    environment: { KUBECONFIG: '<job directory>/kubeconfig' },
    kubeconfig: JSON.parse(renderKubeconfig(kube.endpoint, plan.namespace, '<redacted>')),
  };
  process.stdout.write(output === 'json' ? `${JSON.stringify(document, null, 2)}\n` : dumpYaml(document, { skipInvalid: true }));
}

/** A namespace shared by several users' jobs needs the isolation policy; asked with the job's own token. */
/** A client with the job's own kubeconfig, or none if it cannot be read (teardown then does not wait). */
function jobClient(kubeconfig: string): Kube | undefined {
  try {
    return Kube.load({ kubeconfig, timeoutSeconds: 5 });
  } catch {
    return undefined;
  }
}

async function warnIfNotIsolated(files: JobFiles, plan: JobPlan, reporter: Reporter) {
  const jobKube = Kube.load({ kubeconfig: files.kubeconfig, timeoutSeconds: 10 });
  try {
    if (await isolationEnforced(jobKube, plan.namespace, executorServiceAccountName(plan.baseName))) return;
    const message = `namespace ${plan.namespace} is shared by several users' jobs and the isolation policy does not protect it: an administrator should run dss-spark-k8s policy apply`;
    reporter.warn(message);
    reporter.event('warning', { message });
  } catch (error) {
    reporter.warn(`could not check the isolation policy of ${plan.namespace}: ${(error as Error).message}`);
  } finally {
    await jobKube.close();
  }
}

