// `dss-spark-k8s run`: the options of the command line → complete (the profile, dssuser's kubeconfig, the end
// user) → validate (the job id, the end user against the profile) → run: the plan, printed for a dry run, or
// the job (job-flow.ts) with the real dependencies.
import { randomBytes } from 'node:crypto';
import { dump as dumpYaml } from 'js-yaml';
import { provision } from '../apply/provision.ts';
import { loadConfig, resolveConfigPath, selectProfile } from '../config/load.ts';
import type { Profile } from '../config/types.ts';
import { createJobDir, removeJobDir, renderKubeconfig, writeJobKubeconfig } from '../exec/job-dir.ts';
import { thisProcess } from '../exec/process-identity.ts';
import { SignalWatcher } from '../exec/signals.ts';
import { checkImpersonation, startSparkSubmit, sudoArgs } from '../exec/spark-submit.ts';
import { checkEndUser, lookupEndUser, type EndUser } from '../exec/unix-user.ts';
import { runJob, type JobFlowDeps } from '../job-flow.ts';
import { Kube } from '../k8s/client.ts';
import { requireServerCapabilities } from '../k8s/server-capabilities.ts';
import { resolveAdminProperties } from '../plan/admin-properties.ts';
import { parseLabelFlags } from '../plan/labels.ts';
import { driverAddresses } from '../plan/network-policy.ts';
import { generateJobId, validateJobId } from '../plan/names.ts';
import { planJob, planObjects } from '../plan/plan.ts';
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
  /** KEY=VALUE, repeatable: on every object of the job and on Spark's pods. */
  label?: string[];
  events?: string;
  quiet?: boolean;
  sparkArgs: string[];
}

/** What complete derives from the options. */
interface Completed {
  profile: Profile;
  kube: Kube;
  user: EndUser;
}

export async function runCommand(options: RunOptions): Promise<number> {
  // From the very start: a signal during provisioning still ends in teardown.
  const signals = new SignalWatcher();
  try {
    // Before anything is read or made: a bad label is a usage error, whatever the configuration says.
    const labels = parseLabelFlags(options.label ?? []);
    const completed = await complete(options);
    try {
      const jobId = validate(options, completed);
      const reporter = createReporter({ quiet: options.quiet, events: options.events, jobId });
      try {
        return await run(options, { ...completed, jobId, labels }, reporter, signals);
      } finally {
        reporter.close();
      }
    } finally {
      await completed.kube.close();
    }
  } finally {
    signals.dispose();
  }
}

/** The profile, dssuser's client (--kubeconfig/--context, else the profile's) and the end user's account. */
async function complete(options: RunOptions): Promise<Completed> {
  const profile = selectProfile(loadConfig(resolveConfigPath(options.config, process.env)), options.profile);
  const kube = Kube.load({
    kubeconfig: options.kubeconfig ?? profile.kubeconfig,
    context: options.context ?? profile.context,
    timeoutSeconds: profile.apiTimeoutSeconds,
  });
  try {
    // The TLS handshake runs while the end user is looked up (no request is sent before the checks pass).
    if (options.dryRun !== 'client') kube.connect();
    return { profile, kube, user: await lookupEndUser(options.user) };
  } catch (error) {
    await kube.close();
    throw error;
  }
}

/** The job id (--job-id, else a new one); the end user must be one the profile lets run jobs. */
function validate(options: RunOptions, { user, profile }: Completed): string {
  const jobId = options.jobId === undefined ? generateJobId(randomBytes(8)) : validateJobId(options.jobId);
  checkEndUser(user, profile, process.getuid!());
  return jobId;
}

/** Plans the job of a checked end user, then prints it (dry runs) or runs it. */
async function run(
  options: RunOptions,
  { profile, jobId, kube, user, labels }: Completed & { jobId: string; labels: Record<string, string> },
  reporter: Reporter,
  signals: SignalWatcher,
): Promise<number> {
  const adminProperties = resolveAdminProperties(user.login, options.adminProperty, profile);
  const ctx: JobContext = { jobId, login: user.login, uid: user.uid, adminProperties, ...thisProcess(), now: new Date() };
  const addresses = profile.autoCreateNamespace && profile.networkPolicy.enabled ? driverAddresses(profile) : [];
  const plan = (files?: { caFile?: string; podTemplate: string }) =>
    planJob(profile, ctx, {
      apiServer: kube.endpoint.server,
      caCertFile: files ? files.caFile : kube.endpoint.caPem ? '<job directory>/ca.crt' : undefined,
      ...(files ? { podTemplateFile: files.podTemplate } : {}),
      callerArgs: options.sparkArgs,
      labels,
      driverAddresses: addresses,
    });
  const draft = plan();
  reporter.event('planned', { user: user.login, namespace: draft.namespace, serviceAccount: draft.baseName });
  if (options.dryRun === 'client') {
    printPlan(draft, profile, kube, options.output);
    return 0;
  }
  // Checked while the job directory is made and the namespace is read, before anything is written: sudo may
  // run spark-submit as the user, and the cluster has what the tool relies on (five GETs at once).
  const impersonation = Promise.all([checkImpersonation(user.login, profile.sparkSubmit), requireServerCapabilities(kube)]).then(() => undefined);
  impersonation.catch(() => {}); // awaited later; never an unhandled rejection meanwhile
  if (options.dryRun === 'server') {
    await impersonation;
    await provision(kube, draft, [], 'server');
    printPlan(draft, profile, kube, options.output);
    reporter.status(`dry run: the server accepted every object for namespace ${draft.namespace}`);
    return 0;
  }
  const deps: JobFlowDeps = {
    kube,
    jobClient,
    jobDir: { create: createJobDir, writeKubeconfig: writeJobKubeconfig, remove: removeJobDir },
    spark: { start: startSparkSubmit },
    signals,
    reporter,
  };
  return await runJob({ settings: profile, user, ctx, draft, plan, impersonation }, deps);
}

function printPlan(plan: JobPlan, profile: Profile, kube: Kube, output: 'yaml' | 'json') {
  const document = {
    jobId: plan.jobId,
    user: plan.login,
    namespace: plan.namespace,
    objects: planObjects(plan),
    executorPodTemplate: plan.executorPodTemplate,
    command: ['sudo', ...sudoArgs(plan.login, profile.sparkSubmit, plan.sparkSubmitArgs)],
    environment: { KUBECONFIG: '<job directory>/kubeconfig' },
    kubeconfig: JSON.parse(renderKubeconfig(kube.endpoint, plan.namespace, '<redacted>')),
  };
  process.stdout.write(output === 'json' ? `${JSON.stringify(document, null, 2)}\n` : dumpYaml(document, { skipInvalid: true }));
}

/** A client with the job's own kubeconfig, or none if it cannot be read. */
function jobClient(kubeconfig: string): Kube | undefined {
  try {
    return Kube.load({ kubeconfig, timeoutSeconds: 5 });
  } catch {
    return undefined;
  }
}
