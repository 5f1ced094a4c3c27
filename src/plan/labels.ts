// `run --label KEY=VALUE`: the job runner's labels for everything a job creates. Pure functions.
import { UsageError } from '../errors.ts';
import { MANAGED_BY_LABEL, TOOL_LABEL_PREFIX } from './types.ts';

const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Labels Spark sets on its pods itself and refuses in its label confs. */
const SPARK_LABELS = ['spark-app-selector', 'spark-app-name', 'spark-role', 'spark-exec-id', 'spark-exec-resourceprofile-id'];

/** A label key: `[prefix/]name`, the prefix a DNS subdomain of at most 253 characters, the name at most 63. */
export function isLabelKey(key: string): boolean {
  const slash = key.indexOf('/');
  const prefix = slash === -1 ? undefined : key.slice(0, slash);
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) return false;
  return name.length <= 63 && LABEL_NAME.test(name);
}

export function isLabelValue(value: string): boolean {
  return value === '' || (value.length <= 63 && LABEL_NAME.test(value));
}

/** The tool's own keys: whatever selects, owns or identifies a job (teardown, cleanup and the policies rely on them). */
export function isToolLabelKey(key: string): boolean {
  return key.startsWith(TOOL_LABEL_PREFIX) || key === MANAGED_BY_LABEL;
}

const show = (text: string) => JSON.stringify(text.length > 80 ? `${text.slice(0, 77)}...` : text);

/** The --label flags as a map; a UsageError naming the flag for the first bad one. */
export function parseLabelFlags(flags: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const flag of flags) {
    const eq = flag.indexOf('=');
    if (eq < 0) throw new UsageError(`--label ${show(flag)}: expected KEY=VALUE, e.g. --label team=analytics`);
    const key = flag.slice(0, eq);
    const value = flag.slice(eq + 1);
    if (!isLabelKey(key)) {
      throw new UsageError(
        `--label ${show(flag)}: ${show(key)} is not a Kubernetes label key; use [prefix/]name, the name at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`,
      );
    }
    if (!isLabelValue(value)) {
      throw new UsageError(
        `--label ${show(flag)}: ${show(value)} is not a Kubernetes label value; use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`,
      );
    }
    if (isToolLabelKey(key)) {
      throw new UsageError(`--label ${show(flag)}: ${key} is set by dss-spark-k8s itself (${TOOL_LABEL_PREFIX}* and ${MANAGED_BY_LABEL}); use another key`);
    }
    if (SPARK_LABELS.includes(key)) throw new UsageError(`--label ${show(flag)}: ${key} is set by Spark itself; use another key`);
    if (Object.hasOwn(labels, key)) throw new UsageError(`--label ${show(flag)}: the key ${key} is given twice; give each key once`);
    labels[key] = value;
  }
  return labels;
}
