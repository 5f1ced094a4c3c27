// Red-team helpers (issue 13): jobs provisioned as dssuser exactly as `run` does, requests made as any identity
// that answer with the HTTP status and the server's message instead of throwing, and the manifests and policy of
// the code before issue 13 (commit PRE_ISSUE_13) installed under scratch names, so that a test can show that an
// attack it now sees refused got through before.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { join, resolve } from 'node:path';
import { KubeConfig, loadAllYaml, type V1Pod } from '@kubernetes/client-node';
import { inject } from 'vitest';
import type { Profile } from '../../src/config/types.ts';
import { provision, type CreatedObject } from '../../src/apply/provision.ts';
import { buildExecutorPodTemplate } from '../../src/plan/objects.ts';
import { planJob } from '../../src/plan/plan.ts';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_LABEL, type JobPlan } from '../../src/plan/types.ts';
import { adminKubeConfig, dssuserKube, tokenKubeConfig, uniqueName } from './kube.ts';

const root = resolve(import.meta.dirname, '../..');

/** The last commit before issue 13's fixes. */
export const PRE_ISSUE_13 = 'de4b66b';

export interface Outcome {
  status: number;
  /** The message of the server's Status (empty on success). */
  message: string;
  body: Record<string, unknown>;
}

const API_PREFIX: Record<string, string> = {
  pods: '/api/v1',
  services: '/api/v1',
  configmaps: '/api/v1',
  secrets: '/api/v1',
  serviceaccounts: '/api/v1',
  persistentvolumeclaims: '/api/v1',
  resourcequotas: '/api/v1',
  limitranges: '/api/v1',
  namespaces: '/api/v1',
  bindings: '/api/v1',
  leases: '/apis/coordination.k8s.io/v1',
  roles: '/apis/rbac.authorization.k8s.io/v1',
  rolebindings: '/apis/rbac.authorization.k8s.io/v1',
  clusterroles: '/apis/rbac.authorization.k8s.io/v1',
  clusterrolebindings: '/apis/rbac.authorization.k8s.io/v1',
  networkpolicies: '/apis/networking.k8s.io/v1',
  priorityclasses: '/apis/scheduling.k8s.io/v1',
  validatingadmissionpolicies: '/apis/admissionregistration.k8s.io/v1',
  validatingadmissionpolicybindings: '/apis/admissionregistration.k8s.io/v1',
  selfsubjectrulesreviews: '/apis/authorization.k8s.io/v1',
  selfsubjectreviews: '/apis/authentication.k8s.io/v1',
};

export interface Target {
  namespace?: string;
  name?: string;
  subresource?: string;
  query?: Record<string, string>;
}

export function apiPath(resource: string, { namespace, name, subresource, query }: Target = {}): string {
  const prefix = API_PREFIX[resource];
  if (!prefix) throw new Error(`redteam: no API path known for ${resource}`);
  const parts = [prefix, ...(namespace ? ['namespaces', namespace] : []), resource, ...(name ? [name] : []), ...(subresource ? [subresource] : [])];
  const search = new URLSearchParams(query).toString();
  return parts.join('/').replace(/\/+/g, '/') + (search ? `?${search}` : '');
}

const DRY_RUN = { dryRun: 'All' };
const CONTENT_TYPE = { merge: 'application/merge-patch+json', strategic: 'application/strategic-merge-patch+json', json: 'application/json-patch+json' };

/** Requests as one identity; every method resolves with the outcome, whatever the status. */
export class Api {
  private readonly kc: KubeConfig;
  constructor(kc: KubeConfig) {
    this.kc = kc;
  }

  async send(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<Outcome> {
    const url = new URL(path, this.kc.getCurrentCluster()!.server);
    const options: RequestOptions = { method, headers: { accept: 'application/json' } };
    await this.kc.applyToHTTPSOptions(options);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    if (payload !== undefined) options.headers = { ...options.headers, 'content-type': contentType, 'content-length': Buffer.byteLength(payload) };
    const { status, text } = await new Promise<{ status: number; text: string }>((resolvePromise, reject) => {
      const req = httpsRequest(url, options, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, text }));
      });
      req.setTimeout(30_000, () => req.destroy(new Error(`redteam: ${method} ${path} timed out`)));
      req.on('error', reject);
      req.end(payload);
    });
    let parsed: Record<string, unknown> = {};
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      parsed = { text };
    }
    const message = status >= 300 ? String(parsed.message ?? text) : '';
    return { status, message, body: parsed };
  }

  create(resource: string, namespace: string | undefined, body: unknown, { dryRun = true } = {}): Promise<Outcome> {
    return this.send('POST', apiPath(resource, { namespace, query: dryRun ? DRY_RUN : undefined }), body);
  }

  get(resource: string, namespace: string | undefined, name: string): Promise<Outcome> {
    return this.send('GET', apiPath(resource, { namespace, name }));
  }

  list(resource: string, namespace: string | undefined, labelSelector?: string): Promise<Outcome> {
    return this.send('GET', apiPath(resource, { namespace, query: labelSelector ? { labelSelector } : undefined }));
  }

  replace(resource: string, namespace: string | undefined, name: string, body: unknown, { dryRun = true } = {}): Promise<Outcome> {
    return this.send('PUT', apiPath(resource, { namespace, name, query: dryRun ? DRY_RUN : undefined }), body);
  }

  patch(
    resource: string,
    namespace: string | undefined,
    name: string,
    body: unknown,
    { dryRun = true, subresource, type = 'merge' }: { dryRun?: boolean; subresource?: string; type?: keyof typeof CONTENT_TYPE } = {},
  ): Promise<Outcome> {
    return this.send('PATCH', apiPath(resource, { namespace, name, subresource, query: dryRun ? DRY_RUN : undefined }), body, CONTENT_TYPE[type]);
  }

  delete(resource: string, namespace: string | undefined, name: string, { dryRun = true } = {}): Promise<Outcome> {
    return this.send('DELETE', apiPath(resource, { namespace, name, query: dryRun ? DRY_RUN : undefined }));
  }

  deleteCollection(resource: string, namespace: string, labelSelector: string | undefined, { dryRun = true } = {}): Promise<Outcome> {
    const query: Record<string, string> = { ...(dryRun ? DRY_RUN : {}), ...(labelSelector ? { labelSelector } : {}) };
    return this.send('DELETE', apiPath(resource, { namespace, query }));
  }

  /** A POST to a subresource (exec, attach, portforward, token, binding, eviction). */
  post(resource: string, namespace: string, name: string, subresource: string, body?: unknown, query?: Record<string, string>): Promise<Outcome> {
    return this.send('POST', apiPath(resource, { namespace, name, subresource, query }), body);
  }

  /** The rules this identity holds in a namespace (SelfSubjectRulesReview), as sorted "group/resource:verb" lines. */
  async rulesIn(namespace: string): Promise<string[]> {
    const review = await this.create('selfsubjectrulesreviews', undefined, { spec: { namespace } }, { dryRun: false });
    if (review.status !== 201) throw new Error(`redteam: SelfSubjectRulesReview failed (${review.status}): ${review.message}`);
    const rules =
      (review.body.status as { resourceRules?: { apiGroups?: string[]; resources?: string[]; verbs: string[]; resourceNames?: string[] }[] }).resourceRules ??
      [];
    const lines = rules.flatMap((rule) =>
      (rule.apiGroups ?? ['']).flatMap((group) =>
        (rule.resources ?? []).flatMap((resource) =>
          rule.verbs.map((verb) => `${group}/${resource}${rule.resourceNames?.length ? `[${rule.resourceNames.join(',')}]` : ''}:${verb}`),
        ),
      ),
    );
    return [...new Set(lines)].sort();
  }
}

export const adminApi = () => new Api(adminKubeConfig());

export function dssuserApi(): Api {
  const kc = new KubeConfig();
  kc.loadFromFile(inject('cluster').dssuserKubeconfig);
  return new Api(kc);
}

export const tokenApi = (token: string) => new Api(tokenKubeConfig(token));

/** What the server says when each layer refuses. */
export const REFUSED_BY = {
  rbac: /is forbidden: [Uu]ser "[^"]+" (\(groups=[^)]*\) )?(cannot|is attempting to grant RBAC permissions not currently held)/,
  isolationPolicy: /ValidatingAdmissionPolicy 'dss-spark-k8s-job-isolation' with binding 'dss-spark-k8s-job-isolation' denied request/,
  attributionPolicy: /ValidatingAdmissionPolicy 'dss-spark-k8s-job-attribution' with binding 'dss-spark-k8s-job-attribution' denied request/,
  dssuserPolicy: /ValidatingAdmissionPolicy 'dss-spark-k8s-dssuser-scope' with binding 'dss-spark-k8s-dssuser-scope' denied request/,
  podSecurity: /violates PodSecurity "restricted:latest"/,
} as const;

/** A job: its plan, what provisioning created, its token and the labels the policy asks of its objects. */
export interface Job {
  plan: JobPlan;
  created: CreatedObject[];
  token: string;
  api: Api;
  namespace: string;
  base: string;
  executorAccount: string;
  labels: Record<string, string>;
}

export function planFor(profile: Profile, login: string, adminProperties: Record<string, string> = {}): JobPlan {
  return planJob(
    profile,
    {
      jobId: uniqueName('rt').replace('-', ''),
      login,
      uid: 1000,
      adminProperties,
      host: 'redteam',
      pid: process.pid,
      processStart: new Date().toISOString(),
      now: new Date(),
    },
    { apiServer: 'https://unused', callerArgs: [] },
  );
}

/** Provisions a job as dssuser through the tool's own provisioning path (namespace included when the profile creates it). */
export async function provisionJob(profile: Profile, login: string, adminProperties: Record<string, string> = {}): Promise<Job> {
  const plan = planFor(profile, login, adminProperties);
  const dssuser = dssuserKube();
  const created: CreatedObject[] = [];
  try {
    const { token } = await provision(dssuser, plan, created);
    return {
      plan,
      created,
      token,
      api: tokenApi(token),
      namespace: plan.namespace,
      base: plan.baseName,
      executorAccount: plan.executorServiceAccount.metadata!.name!,
      labels: { ...plan.labels },
    };
  } finally {
    await dssuser.close();
  }
}

/** The identity of a job as the pod builders need it (a provisioned job, or one of the pre-issue-13 set-up). */
export type JobIdentity = Pick<Job, 'namespace' | 'base' | 'executorAccount' | 'labels'>;

let podCount = 0;
/**
 * An executor pod as Spark makes it from the managed template: the template's restricted security context,
 * account and labels, Spark's container settings and its local-dir emptyDir. Compliant with Pod Security
 * `restricted` and with the isolation policy.
 */
export function executorPod(job: JobIdentity): V1Pod {
  const pod = structuredClone(buildExecutorPodTemplate(job.executorAccount, job.labels, 185));
  pod.metadata!.name = `${job.base}-exec-${++podCount}`;
  pod.spec!.restartPolicy = 'Never';
  pod.spec!.volumes = [{ name: 'spark-local-dir-1', emptyDir: {} }];
  const [container] = pod.spec!.containers;
  Object.assign(container!, {
    image: 'spark:4.3.0',
    args: ['executor'],
    ports: [{ name: 'blockmanager', containerPort: 7079 }],
    env: [
      { name: 'SPARK_EXECUTOR_ID', value: String(podCount) },
      { name: 'SPARK_EXECUTOR_POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
    ],
    resources: { requests: { cpu: '1', memory: '1408Mi' }, limits: { memory: '1408Mi' } },
    volumeMounts: [{ name: 'spark-local-dir-1', mountPath: '/var/data/spark-1' }],
  });
  return pod;
}

/** A claim as Spark's OnDemand claims are made: the job's labels, a name of its own, no binding fields. */
export function ownClaim(job: JobIdentity) {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name: `${job.base}-exec-${++podCount}-pvc-0`, labels: { ...job.labels } },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
  };
}

/** The text of a file at the pre-issue-13 commit. */
export function preIssue13File(path: string): string {
  try {
    return execFileSync('git', ['-C', root, 'show', `${PRE_ISSUE_13}:${path}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    throw new Error(
      `redteam: cannot read ${path} at commit ${PRE_ISSUE_13} (a shallow clone? git fetch --unshallow): ${(error as Error).message.split('\n')[0]}`,
    );
  }
}

type Doc = {
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
};

function preIssue13Docs(path: string): Doc[] {
  return (loadAllYaml(preIssue13File(path)) as Doc[]).filter(Boolean);
}

/** The job-isolation policy `policy apply` installed before issue 13, built by that commit's own src/plan/policy.ts. */
function preIssue13IsolationPolicy(): { policy: Doc; binding: Doc } {
  const dir = mkdtempSync('/tmp/dss-spark-k8s-test-pre13-');
  try {
    mkdirSync(join(dir, 'src/plan'), { recursive: true });
    for (const file of ['policy', 'objects', 'types']) writeFileSync(join(dir, `src/plan/${file}.ts`), preIssue13File(`src/plan/${file}.ts`));
    const script = `const m = await import(${JSON.stringify(join(dir, 'src/plan/policy.ts'))}); process.stdout.write(JSON.stringify(m.policyManifest()));`;
    return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Creates cluster-scoped and namespaced objects as admin; `remove` deletes them again (reverse order). */
async function installAll(docs: Doc[]): Promise<() => Promise<void>> {
  const admin = adminApi();
  const made: Doc[] = [];
  for (const doc of docs) {
    const result = await admin.create(resourceOf(doc.kind), doc.metadata.namespace, doc, { dryRun: false });
    // With kube-controller-manager, every namespace gets its "default" account by itself.
    if (result.status === 409 && doc.kind === 'ServiceAccount' && doc.metadata.name === 'default') continue;
    if (result.status !== 201) throw new Error(`redteam: cannot create ${doc.kind} ${doc.metadata.name} (${result.status}): ${result.message}`);
    made.push(doc);
  }
  return async () => {
    for (const doc of made.reverse()) await admin.delete(resourceOf(doc.kind), doc.metadata.namespace, doc.metadata.name, { dryRun: false });
  };
}

function resourceOf(kind: string): string {
  const resource = `${kind.toLowerCase()}s`;
  return resource.endsWith('policys') ? resource.replace(/policys$/, 'policies') : resource;
}

/** Renames a pre-issue-13 admission policy and its binding, and points its dssuser match at `username`. */
function renamedPolicy(doc: Doc, prefix: string, username?: string): Doc {
  const copy = structuredClone(doc) as Doc & { spec: { policyName?: string; matchConditions?: { expression: string }[] } };
  copy.metadata = { name: `${prefix}-${doc.metadata.name}` };
  if (copy.spec.policyName) copy.spec.policyName = `${prefix}-${copy.spec.policyName}`;
  for (const condition of copy.spec.matchConditions ?? []) {
    if (username) condition.expression = condition.expression.replace('request.userInfo.username == "dssuser"', `request.userInfo.username == "${username}"`);
  }
  return copy;
}

async function tokenFor(namespace: string, account: string): Promise<string> {
  const answer = await adminApi().post('serviceaccounts', namespace, account, 'token', { spec: { expirationSeconds: 3600 } });
  if (answer.status !== 201) throw new Error(`redteam: no token for ${namespace}/${account} (${answer.status}): ${answer.message}`);
  return (answer.body.status as { token: string }).token;
}

/** Retries `probe` until it says the policy denies (policies take effect a moment after they are created). */
async function untilDenied(probe: () => Promise<Outcome>, policyName: string): Promise<void> {
  for (const deadline = Date.now() + 30_000; ; ) {
    const answer = await probe();
    if (answer.status === 403 && answer.message.includes(policyName)) return;
    if (Date.now() > deadline) throw new Error(`redteam: policy ${policyName} never took effect (last answer ${answer.status}: ${answer.message})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export interface PreIssue13Dssuser {
  api: Api;
  username: string;
  remove(): Promise<void>;
}

/**
 * dssuser as both manifests of the pre-issue-13 commit made it: their ClusterRole (the per-user one, a superset
 * of the team Role) and every dssuser admission policy of both, renamed, bound to a scratch ServiceAccount in
 * place of "dssuser". The current manifests do not match that account, so what it may do is what the old code allowed.
 */
export async function installPreIssue13Dssuser(): Promise<PreIssue13Dssuser> {
  const id = uniqueName('rt-pre13');
  const username = `system:serviceaccount:${id}:${id}`;
  const perUser = preIssue13Docs('deploy/rbac/per-user-namespaces.yaml');
  const team = preIssue13Docs('deploy/rbac/team-namespaces.yaml');
  const role = perUser.find((d) => d.kind === 'ClusterRole' && d.metadata.name === 'dss-spark-k8s')!;
  const policies = [...perUser, ...team].filter((d) => d.kind.startsWith('ValidatingAdmissionPolicy')).map((d) => renamedPolicy(d, id, username));
  const remove = await installAll([
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: id } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: id, namespace: id } },
    { ...structuredClone(role), metadata: { name: id } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: id },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: id },
      subjects: [{ kind: 'ServiceAccount', name: id, namespace: id }],
    },
    ...policies.filter((d) => d.kind === 'ValidatingAdmissionPolicy'),
    ...policies.filter((d) => d.kind === 'ValidatingAdmissionPolicyBinding'),
  ]);
  const api = tokenApi(await tokenFor(id, id));
  // The old policy refused every write outside managed namespaces.
  const probe = () => api.create('serviceaccounts', 'default', { metadata: { name: 'probe' } });
  await untilDenied(probe, `${id}-dss-spark-k8s-dssuser-scope`);
  return { api, username, remove };
}

export interface PreIssue13Jobs {
  namespace: string;
  jobs: [JobIdentity & { api: Api }, JobIdentity & { api: Api }];
  remove(): Promise<void>;
}

/**
 * Two jobs as the pre-issue-13 code made them, in a scratch namespace: the old driver ClusterRole and the old
 * job-isolation policy (built by the old src/plan/policy.ts), renamed, the policy selecting only that namespace.
 * The namespace is not labelled managed, so the current isolation policy does not look at it; it carries the
 * same allowed-pull-secrets annotation as the current tests' namespaces. The job accounts are made by admin as
 * dssuser made them (job-account names, RoleBinding to the driver role, a token).
 */
export async function installPreIssue13Jobs(annotations: Record<string, string>): Promise<PreIssue13Jobs> {
  const id = uniqueName('rt-pre13');
  const namespace = `dss-${id}`;
  const selectorLabel = 'redteam.dss-spark-k8s.test/pre-issue-13';
  const driver = preIssue13Docs('deploy/rbac/per-user-namespaces.yaml').find((d) => d.kind === 'ClusterRole' && d.metadata.name === 'dss-spark-k8s-driver')!;
  const { policy, binding } = preIssue13IsolationPolicy();
  const oldPolicy = renamedPolicy(policy, id) as Doc & { spec: { matchConstraints: { namespaceSelector: unknown } } };
  oldPolicy.spec.matchConstraints.namespaceSelector = { matchLabels: { [selectorLabel]: id } };
  const bases = [1, 2].map((n) => `dss-spark-${id}-job${n}`);
  const accountDocs = bases.flatMap((base): Doc[] => [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: base, namespace }, automountServiceAccountToken: false },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: `${base}-exec`, namespace }, automountServiceAccountToken: false },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: base, namespace },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: `${id}-driver` },
      subjects: [{ kind: 'ServiceAccount', name: base, namespace }],
    },
  ]);
  const remove = await installAll([
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace, labels: { [selectorLabel]: id }, annotations } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace } },
    { ...structuredClone(driver), metadata: { name: `${id}-driver` } },
    ...accountDocs,
    oldPolicy,
    renamedPolicy(binding, id),
  ]);
  const jobs = (await Promise.all(
    bases.map(async (base) => ({
      namespace,
      base,
      executorAccount: `${base}-exec`,
      labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [OWNER_LABEL]: base },
      api: tokenApi(await tokenFor(namespace, base)),
    })),
  )) as unknown as PreIssue13Jobs['jobs'];
  const [first] = jobs;
  await untilDenied(() => first.api.create('pods', namespace, { ...executorPod(first), metadata: { name: 'probe' } }), `${id}-dss-spark-k8s-job-isolation`);
  return { namespace, jobs, remove };
}
