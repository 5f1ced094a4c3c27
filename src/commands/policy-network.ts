// `dss-spark-k8s policy network-policy -n NAMESPACE [--profile P] [--config F] [-o yaml|json]` (administrators):
// prints the NetworkPolicy a profile gives the namespaces it creates, for NAMESPACE: what an administrator applies
// to a team namespace (dssuser may create it only in namespaces it created). Reads no cluster; the driver addresses
// are this host's when the profile names none, so run it on the DSS host.
//
// Exit codes: 0 printed; 64 invalid flags; 78 the configuration (also: a profile with networkPolicy.enabled false).
import { dump } from 'js-yaml';
import { loadConfig, resolveConfigPath, selectProfile } from '../config/load.ts';
import type { Profile } from '../config/types.ts';
import { ConfigError, UsageError } from '../errors.ts';
import { isDnsLabel } from '../plan/names.ts';
import { buildNetworkPolicy, driverAddresses } from '../plan/network-policy.ts';

export interface NetworkPolicyOptions {
  namespace?: string;
  profile?: string;
  config?: string;
  output?: 'yaml' | 'json';
}

export interface NetworkPolicyDeps {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  env: NodeJS.ProcessEnv;
}

const defaultDeps: NetworkPolicyDeps = { stdout: process.stdout, stderr: process.stderr, env: process.env };

export async function networkPolicyCommand(options: NetworkPolicyOptions, overrides: Partial<NetworkPolicyDeps> = {}): Promise<number> {
  const deps = { ...defaultDeps, ...overrides };
  const request = validate(options);
  const profile = complete(options, deps.env);
  deps.stdout.write(run(request, profile));
  deps.stderr.write(
    `dss-spark-k8s: NetworkPolicy of profile "${profile.name}" for namespace ${request.namespace}; apply it as an administrator:` +
      ` kubectl apply -f <this file>. Enforcement needs a NetworkPolicy controller.\n`,
  );
  return 0;
}

interface Request {
  namespace: string;
  output: 'yaml' | 'json';
}

function validate(options: NetworkPolicyOptions): Request {
  const namespace = options.namespace;
  if (namespace === undefined) throw new UsageError('-n NAMESPACE is required: the namespace the NetworkPolicy is for');
  if (!isDnsLabel(namespace)) throw new UsageError(`-n "${namespace}": not a valid namespace name (lowercase letters, digits and '-')`);
  return { namespace, output: options.output ?? 'yaml' };
}

function complete(options: NetworkPolicyOptions, env: NodeJS.ProcessEnv): Profile {
  const profile = selectProfile(loadConfig(resolveConfigPath(options.config, env)), options.profile);
  if (!profile.networkPolicy.enabled) {
    throw new ConfigError(
      `profile "${profile.name}" sets networkPolicy.enabled: false, so its jobs do not keep to the driver ports; turn it on before giving a namespace the policy`,
    );
  }
  return profile;
}

function run(request: Request, profile: Profile): string {
  const policy = buildNetworkPolicy(request.namespace, profile.networkPolicy, driverAddresses(profile));
  return request.output === 'json' ? `${JSON.stringify(policy, null, 2)}\n` : dump(policy, { noRefs: true });
}
