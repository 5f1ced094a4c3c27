// `dss-spark-k8s doctor`: checks that everything a profile needs is in place, printing the fix under each problem.
// Exit 0 when every check passes (warnings allowed); otherwise ExitCode.config (78). The report is the command's
// data: it goes to stdout, as text (✓ / ! / ✗ / -) or, with -o json, as {"ok": bool, "checks": [...]}.
import { stat } from 'node:fs/promises';
import { userInfo } from 'node:os';
import chalk, { Chalk } from 'chalk';
import { resolveConfigPath } from '../config/load.ts';
import type { Profile } from '../config/types.ts';
import { checkCluster } from '../doctor/cluster.ts';
import { checkConfig } from '../doctor/config.ts';
import { checkPolicy } from '../doctor/policies.ts';
import { runProcess, type RunProcess } from '../doctor/process.ts';
import { allOk, type CheckResult, formatJson, formatText, result } from '../doctor/result.ts';
import { checkDriverRole, checkNamespace, checkRights, sampleNamespace } from '../doctor/rights.ts';
import { checkSpark } from '../doctor/spark.ts';
import { checkSudo } from '../doctor/sudoers.ts';
import { ExitCode } from '../errors.ts';
import { Kube } from '../k8s/client.ts';
import { parseAdminPropertyFlags } from '../plan/admin-properties.ts';

export interface DoctorOptions {
  profile?: string;
  config?: string;
  /** A sample end user: the namespace, sudoers rule and spark-submit are checked for this login. */
  user?: string;
  adminProperty?: string[];
  kubeconfig?: string;
  context?: string;
  output?: 'text' | 'json';
}

export interface DoctorDeps {
  run: RunProcess;
  stdout: { write(text: string): unknown };
  env: NodeJS.ProcessEnv;
  /** The Unix account running doctor (dssuser), for the sudoers lines. */
  me: string;
}

export async function doctorCommand(options: DoctorOptions, deps: Partial<DoctorDeps> = {}): Promise<number> {
  const env = deps.env ?? process.env;
  const results = await runChecks(options, { run: deps.run ?? runProcess, env, me: deps.me ?? userInfo().username });
  const stdout = deps.stdout ?? process.stdout;
  // chalk 6 ignores NO_COLOR (https://no-color.org): honour it here.
  const colours = new Chalk({ level: env.NO_COLOR ? 0 : chalk.level });
  stdout.write(options.output === 'json' ? formatJson(results) : formatText(results, colours));
  return allOk(results) ? ExitCode.ok : ExitCode.config;
}

export async function runChecks(options: DoctorOptions, deps: Omit<DoctorDeps, 'stdout'>): Promise<CheckResult[]> {
  // Malformed flags are a usage error (exit 64), like run's.
  parseAdminPropertyFlags(options.adminProperty ?? []);
  const config = checkConfig(resolveConfigPath(options.config, deps.env), options.profile);
  const profile = config.profile;
  if (profile === undefined) {
    return [config.result, ...skipped(['cluster', 'namespace', 'rights', 'driver-role', 'policy', 'sudo', 'spark'], 'the configuration is invalid')];
  }
  // The cluster checks and the local (sudo, spark-submit) checks do not depend on each other.
  const [cluster, local] = await Promise.all([clusterChecks(options, profile), localChecks(deps, profile, options.user)]);
  return [config.result, ...cluster, ...local];
}

async function clusterChecks(options: DoctorOptions, profile: Profile): Promise<CheckResult[]> {
  const cluster = await checkCluster(
    () =>
      Kube.load({
        kubeconfig: options.kubeconfig ?? profile.kubeconfig,
        context: options.context ?? profile.context,
        timeoutSeconds: profile.apiTimeoutSeconds,
      }),
    `profile "${profile.name}" of ${profile.source}`,
  );
  const kube = cluster.kube;
  if (kube === undefined) return [cluster.result, ...skipped(['namespace', 'rights', 'driver-role', 'policy'], 'the cluster is unreachable')];
  try {
    const policy = [checkPolicy(kube, profile)];
    const sample = sampleNamespace(profile, options.user, options.adminProperty ?? []);
    if ('result' in sample)
      return [cluster.result, sample.result, ...skipped(['rights'], 'no namespace'), await checkDriverRole(kube, profile), ...(await Promise.all(policy))];
    // A per-user namespace expanded from the placeholder login is not a real one: do not look it up.
    const real = options.user !== undefined || !profile.targetNamespace.includes('${dssUserLogin}');
    return [
      cluster.result,
      ...(await Promise.all([
        checkNamespace(kube, profile, sample.namespace, real),
        checkRights(kube, profile, sample.namespace, cluster.username),
        checkDriverRole(kube, profile),
        ...policy,
      ])),
    ];
  } finally {
    await kube.close();
  }
}

async function localChecks(deps: Omit<DoctorDeps, 'stdout'>, profile: Profile, user: string | undefined): Promise<CheckResult[]> {
  const exists = await stat(profile.sparkSubmit).then(
    () => true,
    () => false,
  );
  const sudo = await checkSudo(deps.run, deps.me, user, profile, exists);
  // Through sudo as the end user, as a job runs it (sudo resets PATH and JAVA_HOME), when the rule allows it.
  const spark = await checkSpark(deps.run, profile, sudo.ok ? user : undefined);
  return [sudo, spark];
}

const TITLES = {
  cluster: 'cluster',
  namespace: 'namespace',
  rights: 'rights',
  'driver-role': 'driver role',
  policy: 'admission policies',
  sudo: 'sudoers rule',
  spark: 'spark-submit',
} as const;

function skipped(ids: (keyof typeof TITLES)[], why: string): CheckResult[] {
  return ids.map((id) => result(id, TITLES[id], 'skip', `not checked: ${why}`));
}
