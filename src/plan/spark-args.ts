// The spark-submit command line: the settings the tool manages, the profile's defaults, then the caller's arguments,
// which may not override a managed setting.

import { UsageError } from '../errors.ts';
import { EXECUTOR_CONTAINER } from './objects.ts';
import { Annotation, JOB_LABEL, MANAGED_BY_LABEL, OWNER_LABEL, USER_LABEL } from './types.ts';

const OUR_LABELS = [JOB_LABEL, USER_LABEL, MANAGED_BY_LABEL, OWNER_LABEL];
/** On Spark's pods: the end user's login, which the isolation policy writes into the audit log. */
const OUR_POD_ANNOTATIONS = [Annotation.login];

/** Spark confs only the tool sets. */
export const MANAGED_SPARK_CONFS: readonly string[] = [
  'spark.master',
  'spark.remote',
  'spark.submit.deployMode',
  'spark.kubernetes.namespace',
  'spark.kubernetes.context',
  'spark.kubernetes.executor.podNamePrefix',
  'spark.kubernetes.driver.pod.name',
  // The executor ConfigMap carries none of the job's labels: teardown could not find it, and the isolation
  // policy refuses it. Executors get their conf through their command line instead.
  'spark.kubernetes.executor.disableConfigMap',
  // What a client-mode driver would otherwise do beyond DRIVER_RULES: delete services and claims by label at
  // stop (it created none; OnDemand claims go with their executor pod).
  'spark.kubernetes.driver.service.deleteOnTermination',
  'spark.kubernetes.driver.ownPersistentVolumeClaim',
  // The managed executor pod template: Pod Security restricted, no token, the executor account.
  'spark.kubernetes.executor.podTemplateFile',
  'spark.kubernetes.executor.podTemplateContainerName',
  ...OUR_LABELS.flatMap((label) => [`spark.kubernetes.driver.label.${label}`, `spark.kubernetes.executor.label.${label}`]),
  ...OUR_POD_ANNOTATIONS.flatMap((key) => [`spark.kubernetes.driver.annotation.${key}`, `spark.kubernetes.executor.annotation.${key}`]),
];
/** Every conf under these prefixes is managed: credentials and service accounts. */
export const MANAGED_SPARK_CONF_PREFIXES: readonly string[] = ['spark.kubernetes.authenticate.'];

export function isManagedConfKey(key: string): boolean {
  const k = key.trim();
  return MANAGED_SPARK_CONFS.includes(k) || MANAGED_SPARK_CONF_PREFIXES.some((prefix) => k.startsWith(prefix));
}

// spark-submit's options that take a value (Spark 4.3 SparkSubmitOptionParser). Any other "-…" argument is a switch.
const OPTIONS_WITH_VALUE = new Set([
  '--archives',
  '--class',
  '--conf',
  '-c',
  '--deploy-mode',
  '--driver-class-path',
  '--driver-cores',
  '--driver-default-class-path',
  '--driver-java-options',
  '--driver-library-path',
  '--driver-memory',
  '--exclude-packages',
  '--executor-cores',
  '--executor-memory',
  '--extra-properties-file',
  '--files',
  '--jars',
  '--keytab',
  '--kill',
  '--master',
  '--name',
  '--num-executors',
  '--packages',
  '--principal',
  '--properties-file',
  '--proxy-user',
  '--py-files',
  '--queue',
  '--remote',
  '--repositories',
  '--status',
  '--total-executor-cores',
]);

/** Options refused whatever their value, with the reason. */
const REFUSED_OPTIONS: Record<string, string> = {
  '--master': 'dss-spark-k8s sets the master (k8s://<API server>) itself',
  '--remote': 'dss-spark-k8s sets the master (k8s://<API server>) itself; Spark Connect is not supported',
  '--proxy-user': 'dss-spark-k8s already runs spark-submit as the end user',
  '--principal': 'dss-spark-k8s manages the Kubernetes credentials; Kerberos login is not supported',
  '--keytab': 'dss-spark-k8s manages the Kubernetes credentials; Kerberos login is not supported',
  '--properties-file': 'it could override settings dss-spark-k8s manages; pass each setting with --conf instead',
  '--extra-properties-file': 'it could override settings dss-spark-k8s manages; pass each setting with --conf instead',
  '--kill': 'dss-spark-k8s only submits applications',
  '--status': 'dss-spark-k8s only submits applications',
};

const JAVA_OPTIONS_CONFS = ['spark.driver.extraJavaOptions', 'spark.driver.defaultJavaOptions'];

interface SubmitOption {
  name: string;
  value: string | undefined;
}

/** spark-submit's own options: everything before the application resource (the first non-option argument). */
function submitOptions(args: string[]): SubmitOption[] {
  const options: SubmitOption[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (!arg.startsWith('-')) break;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    let value = eq > 0 ? arg.slice(eq + 1) : undefined;
    if (value === undefined && OPTIONS_WITH_VALUE.has(name)) value = args[++i];
    options.push({ name, value });
  }
  return options;
}

function confKey(setting: string): string {
  const eq = setting.indexOf('=');
  return (eq < 0 ? setting : setting.slice(0, eq)).trim();
}

// Java's Character.isWhitespace also takes U+001C..U+001F for separators, which JavaScript's \s does not.
const JAVA_WHITESPACE = /[\s\u001c-\u001f]+/;

/**
 * A managed conf set as a `-D` system property in JVM options (the driver JVM reads `spark.*` properties),
 * split the way Spark's parseOptionString and the JVM split them: quotes and backslashes dropped, Java's
 * whitespace. Files the JVM reads more options from (@argfile, -XX:VMOptionsFile, -XX:Flags) cannot be
 * checked, so they count as managed.
 */
function managedKeyInJavaOptions(options: string, isManaged: (key: string) => boolean = isManagedConfKey): string | undefined {
  for (const token of options.replace(/["'\\]/g, '').split(JAVA_WHITESPACE)) {
    if (token.startsWith('@') || /^-XX:(VMOptionsFile|Flags)=/.test(token)) return token.split('=')[0];
    if (token.startsWith('-D') && isManaged(confKey(token.slice(2)))) return confKey(token.slice(2));
  }
  return undefined;
}

function refuse(argument: string, reason: string): never {
  // Values are never echoed: a refused conf may well carry a token.
  throw new UsageError(`spark-submit argument ${argument} is not allowed: ${reason}; remove it`);
}

/**
 * Throws a UsageError when a spark-submit option (before the application) would override a managed setting;
 * `alsoManaged`: confs the profile makes managed (the driver ports when the NetworkPolicy is on).
 */
export function checkCallerArgs(args: string[], alsoManaged: readonly string[] = []): void {
  const isManaged = (key: string) => isManagedConfKey(key) || alsoManaged.includes(key.trim());
  for (const { name, value } of submitOptions(args)) {
    const reason = REFUSED_OPTIONS[name];
    if (reason !== undefined) refuse(`"${name}"`, reason);
    if (name.startsWith('--kubernetes-')) refuse(`"${name}"`, 'dss-spark-k8s manages the Kubernetes settings');
    if (name === '--deploy-mode' && value !== 'client') {
      refuse(value === undefined ? `"${name}"` : `"${name} ${value}"`, 'dss-spark-k8s runs Spark in client mode only');
    }
    if (name === '--driver-java-options' && value !== undefined) {
      const key = managedKeyInJavaOptions(value, isManaged);
      if (key) refuse(`"${name} -D${key}=…"`, `dss-spark-k8s manages ${key}`);
    }
    if ((name === '--conf' || name === '-c') && value !== undefined) {
      const key = confKey(value);
      if (isManaged(key)) refuse(`"${name} ${key}=…"`, `dss-spark-k8s manages ${key}`);
      if (JAVA_OPTIONS_CONFS.includes(key)) {
        const inner = managedKeyInJavaOptions(value.slice(value.indexOf('=') + 1), isManaged);
        if (inner) refuse(`"${name} ${key}=…-D${inner}=…"`, `dss-spark-k8s manages ${inner}`);
      }
    }
  }
}

/** Keys the caller sets with --conf / -c before the application. */
export function callerConfKeys(args: string[]): Set<string> {
  return new Set(callerConfs(args).keys());
}

/** The confs the caller sets with --conf / -c before the application (the last one wins, as in Spark). */
function callerConfs(args: string[]): Map<string, string> {
  const confs = new Map<string, string>();
  for (const { name, value } of submitOptions(args)) {
    if ((name === '--conf' || name === '-c') && value !== undefined) confs.set(confKey(value), value.slice(value.indexOf('=') + 1));
  }
  return confs;
}

export interface SparkSubmitInput {
  apiServer: string;
  namespace: string;
  caCertFile?: string;
  podTemplateFile: string;
  executorServiceAccount: string;
  labels: Record<string, string>;
  /** Annotations of Spark's pods (the login). */
  podAnnotations?: Record<string, string>;
  podNamePrefix: string;
  profileConf: Record<string, string>;
  /** Confs the tool sets from the profile (the driver ports of the NetworkPolicy): the caller's are refused, the profile's sparkConf ones ignored. */
  managedConfs?: Record<string, string>;
  callerArgs: string[];
}

/** The full spark-submit argument list (after the executable). It never carries a token: that is in KUBECONFIG. */
export function buildSparkSubmitArgs(input: SparkSubmitInput): string[] {
  const managedConfs = input.managedConfs ?? {};
  checkCallerArgs(input.callerArgs, Object.keys(managedConfs));
  // A job label (the profile's, run --label's, the tool's) is the same on the pods as on the job's objects.
  for (const key of callerConfKeys(input.callerArgs)) {
    const label = /^spark\.kubernetes\.(?:driver|executor)\.label\.(.+)$/.exec(key)?.[1];
    if (label !== undefined && Object.hasOwn(input.labels, label)) {
      refuse(`"--conf ${key}=…"`, `the job's label ${label} is set by the profile or run --label; change it there`);
    }
  }
  const conf = (key: string, value: string) => ['--conf', `${key}=${value}`];
  const args = [
    '--master',
    `k8s://${input.apiServer}`,
    '--deploy-mode',
    'client',
    ...conf('spark.kubernetes.namespace', input.namespace),
    ...(input.caCertFile ? conf('spark.kubernetes.authenticate.caCertFile', input.caCertFile) : []),
    ...conf('spark.kubernetes.authenticate.executor.serviceAccountName', input.executorServiceAccount),
    // Spark falls back to the driver conf for executors; set it too so nothing ever defaults to the job account.
    ...conf('spark.kubernetes.authenticate.driver.serviceAccountName', input.executorServiceAccount),
    ...conf('spark.kubernetes.executor.podNamePrefix', input.podNamePrefix),
    ...conf('spark.kubernetes.executor.disableConfigMap', 'true'),
    ...conf('spark.kubernetes.driver.service.deleteOnTermination', 'false'),
    ...conf('spark.kubernetes.driver.ownPersistentVolumeClaim', 'false'),
    ...conf('spark.kubernetes.executor.podTemplateFile', input.podTemplateFile),
    ...conf('spark.kubernetes.executor.podTemplateContainerName', EXECUTOR_CONTAINER),
    ...Object.entries(managedConfs).flatMap(([key, value]) => conf(key, value)),
  ];
  for (const [key, value] of Object.entries(input.labels)) {
    args.push(...conf(`spark.kubernetes.driver.label.${key}`, value));
    args.push(...conf(`spark.kubernetes.executor.label.${key}`, value));
  }
  for (const [key, value] of Object.entries(input.podAnnotations ?? {})) {
    args.push(...conf(`spark.kubernetes.driver.annotation.${key}`, value));
    args.push(...conf(`spark.kubernetes.executor.annotation.${key}`, value));
  }
  // OnDemand claims are created by the driver with only the labels their volume conf names: give them the job's.
  const callerKeys = callerConfKeys(input.callerArgs);
  for (const volume of onDemandClaimVolumes({ ...input.profileConf, ...Object.fromEntries(callerConfs(input.callerArgs)) })) {
    for (const [key, value] of Object.entries(input.labels)) {
      args.push(...conf(`spark.kubernetes.executor.volumes.persistentVolumeClaim.${volume}.label.${key}`, value));
    }
  }
  for (const [key, value] of Object.entries(input.profileConf)) {
    if (!callerKeys.has(key) && !isManagedConfKey(key) && !Object.hasOwn(managedConfs, key)) args.push(...conf(key, value));
  }
  return [...args, ...input.callerArgs];
}

const CLAIM_NAME_KEY = /^spark\.kubernetes\.executor\.volumes\.persistentVolumeClaim\.([^.]+)\.options\.claimName$/;

/** Names of executor PVC volumes whose claim Spark creates per executor (claimName OnDemand). */
function onDemandClaimVolumes(confs: Record<string, string>): string[] {
  return Object.entries(confs).flatMap(([key, value]) => {
    const volume = CLAIM_NAME_KEY.exec(key)?.[1];
    return volume && value.trim() === 'OnDemand' ? [volume] : [];
  });
}
