// One job, from its plan to its teardown: apply (the job directory, then the objects and the token), the
// kubeconfig, the Lease renewal and token rotation, exec (spark-submit as the end user), and the teardown in a
// finally — whatever happened before, a signal included. Every dependency is injected (JobFlowDeps): the
// command passes the real ones, the unit tests fakes.
import type { Profile } from './config/types.ts';
import { JobLostError, signalNumber, TeardownError } from './errors.ts';
import { isolationEnforced } from './apply/isolation-check.ts';
import { startLeaseRenewal, type LeaseClient, type Timers as LeaseTimers } from './apply/lease.ts';
import { provision, type ProvisionClient } from './apply/provision.ts';
import { ROTATION_RETRY_SECONDS, startTokenRotation, type RotationClient, type RotationTimers } from './apply/rotation.ts';
import type { JobFiles, JobOwner } from './exec/job-dir.ts';
import type { RunningSparkSubmit } from './exec/spark-submit.ts';
import type { EndUser } from './exec/unix-user.ts';
import type { ClusterEndpoint, KubeClient } from './k8s/client.ts';
import { executorServiceAccountName, isPerUserTemplate } from './plan/names.ts';
import { Annotation, MAX_CREDENTIAL_IDS, type JobContext, type JobPlan } from './plan/types.ts';
import type { Reporter } from './output.ts';
import { teardown, tokenRevoked, type CreatedObject, type TeardownClient } from './teardown/teardown.ts';

/** dssuser's client, as the job flow uses it. */
export type JobFlowClient = ProvisionClient &
  LeaseClient &
  RotationClient &
  TeardownClient &
  Pick<KubeClient, 'annotateServiceAccount'> & { readonly endpoint: ClusterEndpoint };

/** A client with the job's own token (from its kubeconfig). */
export type JobTokenClient = Pick<KubeClient, 'canI' | 'dryRunPod' | 'close'>;

/** The job directory's file operations (exec/job-dir.ts). */
export interface JobDirectory {
  create(tempDir: string | undefined, owner: JobOwner, hasCa: boolean): Promise<JobFiles>;
  writeKubeconfig(files: JobFiles, endUserUid: number, endpoint: ClusterEndpoint, namespace: string, token: string, podTemplate?: object): Promise<void>;
  remove(files: JobFiles): Promise<void>;
}

/** How spark-submit is run as the end user (exec/spark-submit.ts). */
export interface SparkRunner {
  start(login: string, sparkSubmit: string, args: string[], kubeconfig: string): Promise<RunningSparkSubmit>;
}

/** The signals of the process (exec/signals.ts). */
export interface JobSignals {
  throwIfReceived(): void;
  forwardTo(forward: (signal: NodeJS.Signals) => void, graceSeconds: number): void;
}

export interface JobFlowDeps {
  kube: JobFlowClient;
  /** A client with the job's kubeconfig, or undefined when it cannot be read (teardown then does not wait). */
  jobClient: (kubeconfig: string) => JobTokenClient | undefined;
  jobDir: JobDirectory;
  spark: SparkRunner;
  signals: JobSignals;
  reporter: Reporter;
  leaseTimers?: LeaseTimers;
  rotationTimers?: RotationTimers;
  /** The wait between two checks of the token's revocation in teardown. */
  sleep?: (ms: number) => Promise<void>;
  /** Milliseconds since the epoch, for the revocation deadline. */
  now?: () => number;
  /** Schedules the SIGKILL after the grace period (a real, unref'ed timer by default). */
  later?: (callback: () => void, ms: number) => void;
}

export type JobSettings = Pick<Profile, 'tempDir' | 'sparkSubmit' | 'leaseRenewSeconds' | 'tokenRotationSeconds' | 'killGraceSeconds' | 'targetNamespace'>;

export interface JobRequest {
  settings: JobSettings;
  user: EndUser;
  ctx: JobContext;
  /** The plan before the job directory exists (its CA path is a placeholder). */
  draft: JobPlan;
  /** The plan with the job directory's paths. */
  plan: (files: Pick<JobFiles, 'caFile' | 'podTemplate'>) => JobPlan;
  /** sudo's check that it may run spark-submit as the user, awaited before the first write. */
  impersonation: Promise<void>;
}

/** Runs the job; resolves with spark-submit's exit code (128 + n for a signal), or throws the job's one error. */
export async function runJob(request: JobRequest, deps: JobFlowDeps): Promise<number> {
  const { settings, user, ctx, impersonation } = request;
  const { kube, reporter, signals } = deps;
  const later = deps.later ?? ((callback, ms) => void setTimeout(callback, ms).unref());
  const created: CreatedObject[] = [];
  let files: JobFiles | undefined;
  let plan = request.draft;
  let driverStarted = false;
  let stopLease = async () => {};
  let stopRotation = async () => {};
  let failure: unknown;
  let exitCode = 0;
  let lost: JobLostError | undefined;
  let stopDriver: (() => void) | undefined;
  // The jti of every token of the job, on its ServiceAccount (one merge patch per token, in order): the audit
  // log's credential ids lead to the account, whose annotations name the login and the job. A failure is a
  // warning: the provisioned and rotated events carry the same ids.
  const credentialIds: string[] = [];
  let annotating = Promise.resolve();
  const recordCredentialId = (credentialId: string | undefined): Promise<void> => {
    if (!credentialId) return annotating;
    credentialIds.push(credentialId);
    // dssuser's policy admits at most MAX_CREDENTIAL_IDS ids (a size bound on an annotation it may rewrite):
    // the oldest leave the account, the rotated events keep them all.
    const annotations = { [Annotation.credentialIds]: credentialIds.slice(-MAX_CREDENTIAL_IDS).join(',') };
    annotating = annotating.then(() =>
      kube.annotateServiceAccount(plan.namespace, plan.baseName, annotations).then(
        () => undefined,
        (error: Error) => reporter.warn(`could not record the token's credential id on service account ${plan.baseName}: ${error.message}`),
      ),
    );
    return annotating;
  };
  try {
    signals.throwIfReceived();
    // Complete (with its owner.json) before the first request: a process killed from then on leaves a
    // directory that cleanup --orphans recognises.
    files = await deps.jobDir.create(
      settings.tempDir,
      { jobId: ctx.jobId, host: ctx.host, pid: ctx.pid, processStart: ctx.processStart, namespace: plan.namespace, serviceAccount: plan.baseName },
      Boolean(kube.endpoint.caPem),
    );
    const provisioned = await provision(kube, plan, created, undefined, impersonation);
    for (const warning of provisioned.warnings ?? []) reporter.warn(warning);
    plan = request.plan(files);
    signals.throwIfReceived();
    await Promise.all([
      deps.jobDir.writeKubeconfig(files, user.uid, kube.endpoint, plan.namespace, provisioned.token, plan.executorPodTemplate),
      recordCredentialId(provisioned.credentialId),
    ]);
    reporter.status(`provisioned service account ${plan.baseName} in namespace ${plan.namespace}${provisioned.namespaceCreated ? ' (namespace created)' : ''}`);
    // user and credentialId (the token's jti; the reporter adds jobId) tie the audit log's requests of this
    // token to the end user.
    reporter.event('provisioned', {
      namespace: plan.namespace,
      serviceAccount: plan.baseName,
      namespaceCreated: provisioned.namespaceCreated,
      tokenExpiresAt: provisioned.tokenExpiresAt.toISOString(),
      user: user.login,
      credentialId: provisioned.credentialId ?? null,
    });
    if (!isPerUserTemplate(settings.targetNamespace)) await warnIfNotIsolated(deps, files, plan);
    const jobFiles = files;
    stopLease = startLeaseRenewal(
      kube,
      provisioned.lease ?? plan.lease,
      settings.leaseRenewSeconds,
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
      deps.leaseTimers,
    );
    const rotating = plan;
    stopRotation = startTokenRotation(
      { kube, plan: rotating, created, writeToken: (token) => deps.jobDir.writeKubeconfig(jobFiles, user.uid, kube.endpoint, rotating.namespace, token) },
      settings.tokenRotationSeconds,
      provisioned.tokenExpiresAt,
      {
        rotated: (generation, expiresAt, credentialId) => {
          reporter.status(`rotated the token (generation ${generation}, expires ${expiresAt.toISOString()})`);
          // The reporter adds jobId to every event.
          reporter.event('rotated', { generation, tokenExpiresAt: expiresAt.toISOString(), user: user.login, credentialId: credentialId ?? null });
          void recordCredentialId(credentialId);
        },
        failed: (message) => reporter.warn(`token rotation failed, retrying in ${ROTATION_RETRY_SECONDS} s: ${message}`),
      },
      deps.rotationTimers,
    );

    signals.throwIfReceived();
    if (lost) throw lost;
    const sparkSubmit = await deps.spark.start(user.login, settings.sparkSubmit, plan.sparkSubmitArgs, files.kubeconfig);
    driverStarted = true;
    signals.forwardTo(sparkSubmit.signal, settings.killGraceSeconds);
    // As for a forwarded signal: SIGTERM, then SIGKILL of sudo after the grace, so that the teardown that
    // revokes the token is never held back by a driver that ignores SIGTERM.
    stopDriver = () => {
      sparkSubmit.signal('SIGTERM');
      later(() => sparkSubmit.signal('SIGKILL'), settings.killGraceSeconds * 1000);
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
    await annotating; // never rejects; done before teardown deletes the account
    // The job's own token (the current one, after rotations) tells when its revocation has taken effect.
    const jobKube = driverStarted && files ? deps.jobClient(files.kubeconfig) : undefined;
    const { left } = await teardown(kube, plan.namespace, { baseName: plan.baseName }, created, {
      driverMayHaveRun: driverStarted,
      ...(jobKube ? { revoked: () => tokenRevoked(jobKube, plan.namespace) } : {}),
      ...(deps.sleep ? { sleep: deps.sleep } : {}),
      ...(deps.now ? { now: deps.now } : {}),
    }).finally(() => jobKube?.close());
    if (files) await deps.jobDir.remove(files);
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

/** A namespace shared by several users' jobs needs the isolation policy; asked with the job's own token. */
async function warnIfNotIsolated(deps: JobFlowDeps, files: JobFiles, plan: JobPlan) {
  const { reporter } = deps;
  const jobKube = deps.jobClient(files.kubeconfig);
  if (!jobKube) return reporter.warn(`could not check the isolation policy of ${plan.namespace}: the job kubeconfig cannot be read`);
  try {
    if (await isolationEnforced(jobKube, plan.namespace, executorServiceAccountName(plan.baseName), plan)) return;
    const message = `namespace ${plan.namespace} is shared by several users' jobs and the isolation policy does not protect it: an administrator should run dss-spark-k8s policy apply`;
    reporter.warn(message);
    reporter.event('warning', { message });
  } catch (error) {
    reporter.warn(`could not check the isolation policy of ${plan.namespace}: ${(error as Error).message}`);
  } finally {
    await jobKube.close();
  }
}
