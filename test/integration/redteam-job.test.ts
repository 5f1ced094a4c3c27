// Issue 13, the hostile end user: its driver code holds the job token. Every attack below is made with a real job
// token (a job provisioned as dssuser through the tool's own provisioning path) against the real apiserver, in a
// team namespace shared by two jobs and in a per-user namespace the tool created (findings 1 — ephemeral claims —,
// 2, 7 and 13, and the pod-field capability list of "Beyond the list"). Each refusal names the layer that refuses
// (RBAC, the job-isolation policy, Pod Security); each allowed thing Spark's driver does still works. The same
// attacks are then made on the pre-issue-13 driver role and isolation policy, to show which ones got through.
// Creates are server-side dry runs unless the object is needed: admission (policies, Pod Security) runs on them.
import type { V1Container, V1Pod, V1Volume } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { teardown, tokenRevoked } from '../../src/teardown/teardown.ts';
import { ALLOWED_PULL_SECRETS_ANNOTATION, ALLOWED_VOLUMES_ANNOTATION, JOB_LABEL, MANAGED_BY_LABEL, OWNER_LABEL } from '../../src/plan/types.ts';
import { createManagedNamespace, dssuserKube, tokenKube, uniqueName } from '../support/kube.ts';
import { profileWith } from '../support/profile.ts';
import {
  adminApi,
  executorPod,
  installPreIssue13Jobs,
  ownClaim,
  PRE_ISSUE_13,
  provisionJob,
  REFUSED_BY,
  type Api,
  type Job,
  type JobIdentity,
  type Outcome,
  type PreIssue13Jobs,
} from '../support/redteam.ts';

const ANNOTATIONS = { [ALLOWED_PULL_SECRETS_ANNOTATION]: 'team-registry', [ALLOWED_VOLUMES_ANNOTATION]: 'team-pv' };

/** Where an attack is made: the attacking job, its victim sharing the namespace, and a real pod of each. */
interface Side {
  namespace: string;
  attacker: JobIdentity & { api: Api };
  victim: JobIdentity & { api: Api };
  ownPod: string;
  victimPod: string;
}

type Refuser = 'rbac' | 'isolationPolicy';

interface Attack {
  name: string;
  attempt(side: Side): Promise<Outcome>;
  refusedBy: Refuser;
  /** Pod Security "restricted" refuses it as well (it may answer first in a per-user namespace). */
  podSecurityToo?: boolean;
  /** What the pre-issue-13 role and policy did with it. */
  pre13: 'admitted' | 'refused';
}

interface Allowed {
  name: string;
  attempt(side: Side): Promise<Outcome>;
}

const createPod = (side: Side, pod: V1Pod) => side.attacker.api.create('pods', side.namespace, pod);

/** An attack by a pod that differs from the compliant executor pod by `change`. */
function podAttack(name: string, change: (pod: V1Pod, side: Side) => void, rest: Omit<Attack, 'name' | 'attempt'>): Attack {
  return {
    name,
    attempt: (side) => {
      const pod = executorPod(side.attacker);
      change(pod, side);
      return createPod(side, pod);
    },
    ...rest,
  };
}

const container = (pod: V1Pod): V1Container => pod.spec!.containers[0]!;
const addVolume = (pod: V1Pod, volume: V1Volume) => pod.spec!.volumes!.push(volume);
const securityContext = (pod: V1Pod) => (container(pod).securityContext ??= {});

function ephemeralVolume(template: { labels?: Record<string, string>; spec?: Record<string, unknown> }, name = 'scratch'): V1Volume {
  return {
    name,
    ephemeral: {
      volumeClaimTemplate: {
        ...(template.labels ? { metadata: { labels: template.labels } } : {}),
        spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } }, ...template.spec },
      },
    },
  };
}

const victimClaim = (side: Side) => `${side.victim.base}-exec-1-pvc-0`;
const podPolicy = { refusedBy: 'isolationPolicy' } as const;
const nodeReach = { refusedBy: 'isolationPolicy', podSecurityToo: true } as const;

const POD_ATTACKS: Attack[] = [
  podAttack('pod without labels', (pod) => (pod.metadata!.labels = {}), { ...podPolicy, pre13: 'refused' }),
  podAttack('pod without the managed-by label', (pod) => delete pod.metadata!.labels![MANAGED_BY_LABEL], { ...podPolicy, pre13: 'admitted' }),
  podAttack("pod with the other job's labels", (pod, side) => (pod.metadata!.labels = { ...side.victim.labels }), { ...podPolicy, pre13: 'refused' }),
  podAttack("pod named like the other job's executors", (pod, side) => (pod.metadata!.name = `${side.victim.base}-exec-99`), {
    ...podPolicy,
    pre13: 'refused',
  }),
  podAttack('pod as serviceAccountName default', (pod) => (pod.spec!.serviceAccountName = 'default'), { ...podPolicy, pre13: 'refused' }),
  podAttack("pod as the other job's executor account", (pod, side) => (pod.spec!.serviceAccountName = side.victim.executorAccount), {
    ...podPolicy,
    pre13: 'refused',
  }),
  podAttack("pod as the other job's account", (pod, side) => (pod.spec!.serviceAccountName = side.victim.base), { ...podPolicy, pre13: 'refused' }),
  podAttack('pod with automountServiceAccountToken true', (pod) => (pod.spec!.automountServiceAccountToken = true), { ...podPolicy, pre13: 'refused' }),
  podAttack('pod with hostNetwork', (pod) => (pod.spec!.hostNetwork = true), { ...nodeReach, pre13: 'admitted' }),
  podAttack('pod with hostPID', (pod) => (pod.spec!.hostPID = true), { ...nodeReach, pre13: 'admitted' }),
  podAttack('pod with hostIPC', (pod) => (pod.spec!.hostIPC = true), { ...nodeReach, pre13: 'admitted' }),
  podAttack('pod with nodeName (bypassing the scheduler)', (pod) => (pod.spec!.nodeName = 'node-1'), { ...podPolicy, pre13: 'admitted' }),
  podAttack('pod with a privileged container', (pod) => (container(pod).securityContext = { privileged: true }), { ...nodeReach, pre13: 'admitted' }),
  podAttack(
    'pod with a privileged init container',
    (pod) => (pod.spec!.initContainers = [{ name: 'init', image: 'busybox', securityContext: { privileged: true } }]),
    { ...nodeReach, pre13: 'admitted' },
  ),
  podAttack('pod with a hostPort', (pod) => (container(pod).ports = [{ containerPort: 7079, hostPort: 7079 }]), { ...nodeReach, pre13: 'admitted' }),
  podAttack('pod adding capability SYS_ADMIN', (pod) => (securityContext(pod).capabilities = { add: ['SYS_ADMIN'] }), { ...nodeReach, pre13: 'admitted' }),
  podAttack(
    'pod with seccomp Unconfined',
    (pod) => {
      pod.spec!.securityContext = { ...pod.spec!.securityContext, seccompProfile: { type: 'Unconfined' } };
      delete securityContext(pod).seccompProfile;
    },
    { ...nodeReach, pre13: 'admitted' },
  ),
  podAttack('pod with AppArmor Unconfined', (pod) => (securityContext(pod).appArmorProfile = { type: 'Unconfined' }), { ...nodeReach, pre13: 'admitted' }),
  podAttack('pod with SELinux type spc_t', (pod) => (securityContext(pod).seLinuxOptions = { type: 'spc_t' }), { ...nodeReach, pre13: 'admitted' }),
  podAttack(
    'pod with an unmasked /proc',
    (pod) => {
      pod.spec!.hostUsers = false;
      securityContext(pod).procMount = 'Unmasked';
    },
    { ...nodeReach, pre13: 'admitted' },
  ),
  podAttack(
    'pod with an unsafe sysctl',
    (pod) => (pod.spec!.securityContext = { ...pod.spec!.securityContext, sysctls: [{ name: 'kernel.msgmax', value: '65536' }] }),
    { ...nodeReach, pre13: 'admitted' },
  ),
  podAttack("pod with a system priority class (it preempts other tenants' and system pods)", (pod) => (pod.spec!.priorityClassName = 'system-node-critical'), {
    ...podPolicy,
    pre13: 'admitted',
  }),
  podAttack(
    'pod whose liveness probe makes the kubelet call a host of its choosing (the cloud metadata address)',
    (pod) => (container(pod).livenessProbe = { httpGet: { host: '169.254.169.254', path: '/latest/meta-data/', port: 80 } }),
    { ...nodeReach, pre13: 'admitted' },
  ),
  podAttack(
    'pod whose readiness probe makes the kubelet open a TCP connection to a host of its choosing',
    (pod) => (container(pod).readinessProbe = { tcpSocket: { host: '10.96.0.1', port: 443 } }),
    { ...nodeReach, pre13: 'admitted' },
  ),
  podAttack(
    'pod whose postStart hook makes the kubelet call a host of its choosing',
    (pod) => (container(pod).lifecycle = { postStart: { httpGet: { host: '169.254.169.254', path: '/', port: 80 } } }),
    { ...nodeReach, pre13: 'admitted' },
  ),
  podAttack(
    'pod claiming a device through a ResourceClaim of the namespace (dynamic resource allocation)',
    (pod) => (pod.spec!.resourceClaims = [{ name: 'gpu', resourceClaimName: 'team-gpu' }]),
    { ...podPolicy, pre13: 'admitted' },
  ),
  podAttack('pod with a finalizer (it would outlive teardown)', (pod) => (pod.metadata!.finalizers = ['example.com/keep']), {
    ...podPolicy,
    pre13: 'admitted',
  }),
  podAttack('pod with a hostPath volume', (pod) => addVolume(pod, { name: 'node', hostPath: { path: '/' } }), { ...nodeReach, pre13: 'refused' }),
  podAttack('pod with an nfs volume', (pod) => addVolume(pod, { name: 'home', nfs: { server: 'nfs.example', path: '/home' } }), {
    ...nodeReach,
    pre13: 'admitted',
  }),
  podAttack('pod with a secret volume', (pod) => addVolume(pod, { name: 's', secret: { secretName: 'team-registry' } }), { ...podPolicy, pre13: 'refused' }),
  podAttack(
    'pod with a projected service-account token',
    (pod) => addVolume(pod, { name: 't', projected: { sources: [{ serviceAccountToken: { path: 'token', expirationSeconds: 3600 } }] } }),
    { ...podPolicy, pre13: 'refused' },
  ),
  podAttack(
    'pod with a projected secret',
    (pod) => addVolume(pod, { name: 's', projected: { sources: [{ configMap: { name: 'c' } }, { secret: { name: 'team-registry' } }] } }),
    { ...podPolicy, pre13: 'refused' },
  ),
  podAttack(
    'pod with an iscsi volume',
    (pod) => addVolume(pod, { name: 'disk', iscsi: { targetPortal: '10.0.0.9:3260', iqn: 'iqn.2001-04.com.example:storage', lun: 0 } }),
    { ...nodeReach, pre13: 'refused' },
  ),
  podAttack(
    'pod with an inline csi volume',
    (pod) => addVolume(pod, { name: 'csi', csi: { driver: 'secrets-store.csi.k8s.io', volumeAttributes: { secretProviderClass: 'team' } } }),
    { ...podPolicy, pre13: 'refused' },
  ),
  podAttack('pod with a flexVolume', (pod) => addVolume(pod, { name: 'flex', flexVolume: { driver: 'example/driver' } }), { ...nodeReach, pre13: 'refused' }),
  podAttack(
    'pod with a gitRepo volume (git runs on the node)',
    (pod) => addVolume(pod, { name: 'git', gitRepo: { repository: 'https://example.com/x.git' } }),
    { ...nodeReach, pre13: 'refused' },
  ),
  podAttack(
    'pod with an azureFile volume (reads a secret)',
    (pod) => addVolume(pod, { name: 'az', azureFile: { secretName: 'team-registry', shareName: 'share' } }),
    { ...nodeReach, pre13: 'refused' },
  ),
  podAttack("pod mounting the other job's claim", (pod, side) => addVolume(pod, { name: 'spill', persistentVolumeClaim: { claimName: victimClaim(side) } }), {
    ...podPolicy,
    pre13: 'refused',
  }),
  podAttack(
    'pod with an ephemeral claim template labelled managed-by',
    (pod) => addVolume(pod, ephemeralVolume({ labels: { [MANAGED_BY_LABEL]: 'dss-spark-k8s' } })),
    { ...podPolicy, pre13: 'admitted' },
  ),
  podAttack(
    'pod with an ephemeral claim template posing as the other job (finding 1)',
    (pod, side) => addVolume(pod, ephemeralVolume({ labels: { [MANAGED_BY_LABEL]: 'dss-spark-k8s', [JOB_LABEL]: side.victim.labels[JOB_LABEL] ?? 'victim' } })),
    { ...podPolicy, pre13: 'admitted' },
  ),
  podAttack(
    'pod with an ephemeral claim template carrying an owner label',
    (pod, side) => addVolume(pod, ephemeralVolume({ labels: { [OWNER_LABEL]: side.victim.base } })),
    { ...podPolicy, pre13: 'admitted' },
  ),
  podAttack(
    "pod with an ephemeral claim cloning the other job's claim (dataSource)",
    (pod, side) => addVolume(pod, ephemeralVolume({ spec: { dataSource: { kind: 'PersistentVolumeClaim', name: victimClaim(side) } } })),
    { ...podPolicy, pre13: 'admitted' },
  ),
  podAttack(
    "pod with an ephemeral claim cloning the other job's claim (dataSourceRef)",
    (pod, side) => addVolume(pod, ephemeralVolume({ spec: { dataSourceRef: { kind: 'PersistentVolumeClaim', name: victimClaim(side) } } })),
    { ...podPolicy, pre13: 'admitted' },
  ),
  podAttack(
    'pod with an ephemeral claim choosing its volume by selector',
    (pod) => addVolume(pod, ephemeralVolume({ spec: { selector: { matchLabels: { team: 'other' } } } })),
    { ...podPolicy, pre13: 'admitted' },
  ),
  podAttack('pod with an ephemeral claim bound by volumeName', (pod) => addVolume(pod, ephemeralVolume({ spec: { volumeName: 'team-pv' } })), {
    ...podPolicy,
    pre13: 'admitted',
  }),
  // The ephemeral-volume controller names the claim "<pod>-<volume>": pod "dss" and volume "spark-…" make a
  // claim named like the other job's OnDemand claim.
  podAttack(
    "pod whose ephemeral claim would take the other job's claim name",
    (pod, side) => {
      pod.metadata!.name = 'dss';
      addVolume(pod, ephemeralVolume({}, victimClaim(side).slice('dss-'.length)));
    },
    { ...podPolicy, pre13: 'admitted' },
  ),
  podAttack(
    'pod reading a secret through env valueFrom',
    (pod) => container(pod).env!.push({ name: 'S', valueFrom: { secretKeyRef: { name: 'team-registry', key: 'k' } } }),
    { ...podPolicy, pre13: 'refused' },
  ),
  podAttack('pod reading a secret through envFrom', (pod) => (container(pod).envFrom = [{ secretRef: { name: 'team-registry' } }]), {
    ...podPolicy,
    pre13: 'refused',
  }),
  podAttack(
    'pod whose init container reads a secret through env',
    (pod) =>
      (pod.spec!.initContainers = [
        { ...structuredClone(container(pod)), name: 'init', env: [{ name: 'S', valueFrom: { secretKeyRef: { name: 'team-registry', key: 'k' } } }] },
      ]),
    { ...podPolicy, pre13: 'refused' },
  ),
  podAttack('pod with an unlisted image pull secret', (pod) => (pod.spec!.imagePullSecrets = [{ name: 'other-team-registry' }]), {
    ...podPolicy,
    pre13: 'admitted',
  }),
  podAttack(
    'pod with a listed and an unlisted image pull secret',
    (pod) => (pod.spec!.imagePullSecrets = [{ name: 'team-registry' }, { name: 'other-team-registry' }]),
    { ...podPolicy, pre13: 'admitted' },
  ),
];

function claimAttack(name: string, change: (claim: ReturnType<typeof ownClaim>, side: Side) => void, pre13: Attack['pre13']): Attack {
  return {
    name,
    attempt: (side) => {
      const claim = ownClaim(side.attacker);
      change(claim, side);
      return side.attacker.api.create('persistentvolumeclaims', side.namespace, claim);
    },
    refusedBy: 'isolationPolicy',
    pre13,
  };
}

const CLAIM_ATTACKS: Attack[] = [
  claimAttack('claim without labels', (claim) => (claim.metadata.labels = {}), 'refused'),
  claimAttack('claim without the managed-by label', (claim) => delete claim.metadata.labels[MANAGED_BY_LABEL], 'admitted'),
  claimAttack("claim with the other job's labels", (claim, side) => (claim.metadata.labels = { ...side.victim.labels }), 'refused'),
  claimAttack("claim named like the other job's claims", (claim, side) => (claim.metadata.name = `${side.victim.base}-exec-7-pvc-0`), 'refused'),
  claimAttack(
    "claim cloning the other job's claim (dataSource)",
    (claim, side) => Object.assign(claim.spec, { dataSource: { kind: 'PersistentVolumeClaim', name: victimClaim(side) } }),
    'refused',
  ),
  claimAttack(
    "claim cloning the other job's claim (dataSourceRef)",
    (claim, side) => Object.assign(claim.spec, { dataSourceRef: { kind: 'PersistentVolumeClaim', name: victimClaim(side) } }),
    'refused',
  ),
  claimAttack('claim bound to an unlisted PersistentVolume', (claim) => Object.assign(claim.spec, { volumeName: 'other-team-pv' }), 'admitted'),
  claimAttack(
    'claim choosing its PersistentVolume by selector',
    (claim) => Object.assign(claim.spec, { selector: { matchLabels: { team: 'other' } } }),
    'admitted',
  ),
  claimAttack('claim with a finalizer (it would outlive teardown)', (claim) => Object.assign(claim.metadata, { finalizers: ['example.com/keep'] }), 'admitted'),
];

const service = (side: Side, spec: Record<string, unknown>) =>
  side.attacker.api.create('services', side.namespace, {
    metadata: { name: uniqueName('svc'), labels: side.attacker.labels },
    spec: { selector: { [OWNER_LABEL]: side.attacker.base }, ports: [{ port: 80 }], ...spec },
  });
const rbac = { refusedBy: 'rbac' } as const;

const API_ATTACKS: Attack[] = [
  { name: 'Service of type ClusterIP', attempt: (side) => service(side, { type: 'ClusterIP' }), ...rbac, pre13: 'admitted' },
  { name: 'Service of type LoadBalancer', attempt: (side) => service(side, { type: 'LoadBalancer' }), ...rbac, pre13: 'admitted' },
  { name: 'Service of type NodePort', attempt: (side) => service(side, { type: 'NodePort' }), ...rbac, pre13: 'admitted' },
  { name: 'Service with externalIPs (CVE-2020-8554)', attempt: (side) => service(side, { externalIPs: ['10.0.0.10'] }), ...rbac, pre13: 'admitted' },
  {
    name: "Service selecting the other job's pods",
    attempt: (side) => service(side, { selector: { [OWNER_LABEL]: side.victim.base } }),
    ...rbac,
    pre13: 'admitted',
  },
  {
    name: 'ConfigMap create',
    attempt: (side) =>
      side.attacker.api.create('configmaps', side.namespace, { metadata: { name: uniqueName('cm'), labels: side.attacker.labels }, data: { k: 'v' } }),
    ...rbac,
    pre13: 'admitted',
  },
  {
    name: 'Secret create',
    attempt: (side) => side.attacker.api.create('secrets', side.namespace, { metadata: { name: uniqueName('s'), labels: side.attacker.labels } }),
    ...rbac,
    pre13: 'refused',
  },
  { name: 'Secret get', attempt: (side) => side.attacker.api.get('secrets', side.namespace, 'team-registry'), ...rbac, pre13: 'refused' },
  { name: 'Secret list', attempt: (side) => side.attacker.api.list('secrets', side.namespace), ...rbac, pre13: 'refused' },
  { name: 'Secret delete', attempt: (side) => side.attacker.api.delete('secrets', side.namespace, 'team-registry'), ...rbac, pre13: 'refused' },
  {
    name: 'NetworkPolicy create',
    attempt: (side) =>
      side.attacker.api.create('networkpolicies', side.namespace, {
        metadata: { name: uniqueName('np'), labels: side.attacker.labels },
        spec: { podSelector: {} },
      }),
    ...rbac,
    pre13: 'refused',
  },
  {
    name: 'ServiceAccount create',
    attempt: (side) => side.attacker.api.create('serviceaccounts', side.namespace, { metadata: { name: uniqueName('sa'), labels: side.attacker.labels } }),
    ...rbac,
    pre13: 'refused',
  },
  {
    name: 'token for its executor account (serviceaccounts/token)',
    attempt: (side) => side.attacker.api.post('serviceaccounts', side.namespace, side.attacker.executorAccount, 'token', { spec: {} }),
    ...rbac,
    pre13: 'refused',
  },
  {
    name: "token for the other job's account (serviceaccounts/token)",
    attempt: (side) => side.attacker.api.post('serviceaccounts', side.namespace, side.victim.base, 'token', { spec: {} }),
    ...rbac,
    pre13: 'refused',
  },
  {
    name: 'RoleBinding create',
    attempt: (side) =>
      side.attacker.api.create('rolebindings', side.namespace, {
        metadata: { name: uniqueName('rb') },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'dss-spark-k8s-driver' },
        subjects: [{ kind: 'ServiceAccount', name: side.attacker.executorAccount, namespace: side.namespace }],
      }),
    ...rbac,
    pre13: 'refused',
  },
  {
    name: 'Role create',
    attempt: (side) => side.attacker.api.create('roles', side.namespace, { metadata: { name: uniqueName('r') }, rules: [] }),
    ...rbac,
    pre13: 'refused',
  },
  {
    name: 'Lease create',
    attempt: (side) => side.attacker.api.create('leases', side.namespace, { metadata: { name: uniqueName('l'), labels: side.attacker.labels }, spec: {} }),
    ...rbac,
    pre13: 'refused',
  },
  {
    name: 'pods/exec on its own pod',
    attempt: (side) => side.attacker.api.post('pods', side.namespace, side.ownPod, 'exec', undefined, { command: 'sh', stdout: 'true' }),
    ...rbac,
    pre13: 'refused',
  },
  {
    name: 'pods/attach on its own pod',
    attempt: (side) => side.attacker.api.post('pods', side.namespace, side.ownPod, 'attach', undefined, { stdout: 'true' }),
    ...rbac,
    pre13: 'refused',
  },
  {
    name: 'pods/portforward on its own pod',
    attempt: (side) => side.attacker.api.post('pods', side.namespace, side.ownPod, 'portforward', undefined, { ports: '7079' }),
    ...rbac,
    pre13: 'refused',
  },
  {
    name: 'pods/proxy to its own pod',
    attempt: (side) => side.attacker.api.send('GET', `/api/v1/namespaces/${side.namespace}/pods/${side.ownPod}/proxy/`),
    ...rbac,
    pre13: 'refused',
  },
  {
    name: 'pods/ephemeralcontainers on its own pod',
    attempt: (side) =>
      side.attacker.api.patch(
        'pods',
        side.namespace,
        side.ownPod,
        { spec: { ephemeralContainers: [{ name: 'debug', image: 'busybox', securityContext: { privileged: true } }] } },
        { subresource: 'ephemeralcontainers', type: 'strategic' },
      ),
    ...rbac,
    pre13: 'refused',
  },
  {
    name: 'pods/binding of its own pod to a node',
    attempt: (side) =>
      side.attacker.api.post(
        'pods',
        side.namespace,
        side.ownPod,
        'binding',
        { metadata: { name: side.ownPod }, target: { kind: 'Node', name: 'node-1' } },
        { dryRun: 'All' },
      ),
    ...rbac,
    pre13: 'refused',
  },
  {
    name: "pods/eviction of the other job's pod",
    attempt: (side) =>
      side.attacker.api.post(
        'pods',
        side.namespace,
        side.victimPod,
        'eviction',
        { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: side.victimPod } },
        { dryRun: 'All' },
      ),
    ...rbac,
    pre13: 'refused',
  },
  {
    name: 'pods/status of its own pod',
    attempt: (side) => side.attacker.api.patch('pods', side.namespace, side.ownPod, { status: { phase: 'Succeeded' } }, { subresource: 'status' }),
    ...rbac,
    pre13: 'refused',
  },
  {
    name: 'update (PUT) of its own pod (Spark only patches)',
    attempt: async (side) => {
      const current = await side.attacker.api.get('pods', side.namespace, side.ownPod);
      return side.attacker.api.replace('pods', side.namespace, side.ownPod, current.body);
    },
    ...rbac,
    pre13: 'admitted',
  },
];

/** Job A on job B's pod, and on its own pod outside its lane (new code only: the old policy already refused these). */
const NEIGHBOUR_ATTACKS: Omit<Attack, 'pre13'>[] = [
  {
    name: "patch of the other job's pod",
    attempt: (side) => side.attacker.api.patch('pods', side.namespace, side.victimPod, { metadata: { labels: { x: 'y' } } }),
    refusedBy: 'isolationPolicy',
  },
  {
    name: "update (PUT) of the other job's pod",
    attempt: async (side) =>
      side.attacker.api.replace('pods', side.namespace, side.victimPod, (await side.attacker.api.get('pods', side.namespace, side.victimPod)).body),
    refusedBy: 'rbac',
  },
  { name: "delete of the other job's pod", attempt: (side) => side.attacker.api.delete('pods', side.namespace, side.victimPod), refusedBy: 'isolationPolicy' },
  {
    name: "deletecollection of the other job's pods",
    attempt: (side) => side.attacker.api.deleteCollection('pods', side.namespace, `${OWNER_LABEL}=${side.victim.base}`),
    refusedBy: 'isolationPolicy',
  },
  {
    name: "patch of its own pod into the other job's",
    attempt: (side) => side.attacker.api.patch('pods', side.namespace, side.ownPod, { metadata: { labels: { [OWNER_LABEL]: side.victim.base } } }),
    refusedBy: 'isolationPolicy',
  },
  {
    name: 'patch of its own pod adding a finalizer',
    attempt: (side) => side.attacker.api.patch('pods', side.namespace, side.ownPod, { metadata: { finalizers: ['example.com/keep'] } }),
    refusedBy: 'isolationPolicy',
  },
  {
    name: 'patch of its own pod dropping the managed-by label',
    attempt: (side) => side.attacker.api.patch('pods', side.namespace, side.ownPod, { metadata: { labels: { [MANAGED_BY_LABEL]: null } } }),
    refusedBy: 'isolationPolicy',
  },
];

const ALLOWED: Allowed[] = [
  { name: 'the executor pod Spark makes from the managed template', attempt: (side) => createPod(side, executorPod(side.attacker)) },
  {
    name: 'an executor pod with a listed image pull secret',
    attempt: (side) => {
      const pod = executorPod(side.attacker);
      pod.spec!.imagePullSecrets = [{ name: 'team-registry' }];
      return createPod(side, pod);
    },
  },
  {
    name: 'an executor pod with configMap, downwardAPI and projected configMap volumes',
    attempt: (side) => {
      const pod = executorPod(side.attacker);
      addVolume(pod, { name: 'conf', configMap: { name: 'spark-conf' } });
      addVolume(pod, { name: 'info', downwardAPI: { items: [{ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } }] } });
      addVolume(pod, { name: 'proj', projected: { sources: [{ configMap: { name: 'spark-conf' } }] } });
      return createPod(side, pod);
    },
  },
  {
    name: 'an executor pod with its own claim and a plain ephemeral claim',
    attempt: (side) => {
      const pod = executorPod(side.attacker);
      addVolume(pod, { name: 'spill', persistentVolumeClaim: { claimName: `${pod.metadata!.name}-pvc-0` } });
      addVolume(pod, ephemeralVolume({ labels: { app: 'spark' } }));
      return createPod(side, pod);
    },
  },
  {
    name: 'an executor pod with a priority class of the cluster',
    attempt: (side) => {
      const pod = executorPod(side.attacker);
      pod.spec!.priorityClassName = priorityClass;
      return createPod(side, pod);
    },
  },
  {
    name: 'a labelled claim with no binding fields',
    attempt: (side) => side.attacker.api.create('persistentvolumeclaims', side.namespace, ownClaim(side.attacker)),
  },
  {
    name: 'a labelled claim bound to a listed PersistentVolume',
    attempt: (side) => {
      const claim = ownClaim(side.attacker);
      Object.assign(claim.spec, { volumeName: 'team-pv' });
      return side.attacker.api.create('persistentvolumeclaims', side.namespace, claim);
    },
  },
  {
    name: 'patch of its own pod (the labels Spark sets)',
    attempt: (side) => side.attacker.api.patch('pods', side.namespace, side.ownPod, { metadata: { labels: { 'spark-exec-inactive': 'true' } } }),
  },
  { name: 'delete of its own pod', attempt: (side) => side.attacker.api.delete('pods', side.namespace, side.ownPod) },
  {
    name: 'deletecollection of its own pods',
    attempt: (side) => side.attacker.api.deleteCollection('pods', side.namespace, `${OWNER_LABEL}=${side.attacker.base}`),
  },
];

function expectRefused(outcome: Outcome, refusedBy: Refuser, podSecurityToo = false) {
  expect(outcome.status, outcome.message).toBe(403);
  // The two job policies judge the same requests: a pod with another job's labels breaks both, and either may answer.
  const refusers = refusedBy === 'isolationPolicy' ? [REFUSED_BY.isolationPolicy, REFUSED_BY.attributionPolicy] : [REFUSED_BY[refusedBy]];
  if (podSecurityToo) refusers.push(REFUSED_BY.podSecurity);
  const pattern = new RegExp(refusers.map((r) => r.source).join('|'));
  expect(outcome.message).toMatch(pattern);
}

/** A real pod of a job, as Spark's executor would be. */
async function realPod(job: JobIdentity & { api: Api }): Promise<string> {
  const pod = executorPod(job);
  const answer = await job.api.create('pods', job.namespace, pod, { dryRun: false });
  if (answer.status !== 201) throw new Error(`redteam: cannot create the pod ${pod.metadata!.name} (${answer.status}): ${answer.message}`);
  return pod.metadata!.name!;
}

/**
 * Waits until the job-isolation policy of the manifests, as they are now, refuses this job: the set-up re-applies
 * it and an admission policy takes a moment to take effect. The probe is refused by its latest rule only.
 */
async function untilIsolationEnforced(job: Job) {
  for (const deadline = Date.now() + 30_000; ; ) {
    const pod = executorPod(job);
    pod.metadata!.finalizers = ['example.com/keep'];
    const answer = await job.api.create('pods', job.namespace, pod);
    if (answer.status === 403 && REFUSED_BY.isolationPolicy.test(answer.message)) return;
    if (Date.now() > deadline) throw new Error(`the job-isolation policy is not enforced in ${job.namespace} (${answer.status}: ${answer.message})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const admin = adminApi();
/** A PriorityClass an administrator made for batch jobs. */
const priorityClass = uniqueName('redteam-batch');
const teamNamespace = uniqueName('dss-team-rt');
const perUserLogin = uniqueName('rt');
const sides: Record<'team' | 'per-user', Side> = {} as never;
const jobs: Record<'team' | 'per-user', [Job, Job]> = {} as never;
let pre13: PreIssue13Jobs;
let pre13Side: Side;

beforeAll(async () => {
  await createManagedNamespace(teamNamespace);
  await admin.create('priorityclasses', undefined, { metadata: { name: priorityClass }, value: 1000 }, { dryRun: false });
  await admin.patch('namespaces', undefined, teamNamespace, { metadata: { annotations: ANNOTATIONS } }, { dryRun: false });
  const teamProfile = profileWith({ targetNamespace: '${adminProperty:k8sNS}' });
  const perUserProfile = profileWith({ autoCreateNamespace: true, allowedImagePullSecrets: ['team-registry'] });
  jobs.team = await Promise.all([provisionJob(teamProfile, 'alice', { k8sNS: teamNamespace }), provisionJob(teamProfile, 'bob', { k8sNS: teamNamespace })]);
  // The first job creates the per-user namespace; the second finds it.
  const first = await provisionJob(perUserProfile, perUserLogin);
  // PersistentVolumes are cluster-wide: only an administrator allows a namespace to bind one by name.
  await admin.patch(
    'namespaces',
    undefined,
    first.namespace,
    { metadata: { annotations: { 'dss-spark-k8s.dataiku.io/allowed-persistent-volumes': 'team-pv' } } },
    { dryRun: false },
  );
  jobs['per-user'] = [first, await provisionJob(perUserProfile, perUserLogin)];
  for (const [kind, [a, b]] of Object.entries(jobs) as [keyof typeof jobs, [Job, Job]][]) {
    // Every real cluster has a "default" account (the controller makes it; this control plane runs none).
    await admin.create('serviceaccounts', a.namespace, { metadata: { name: 'default' } }, { dryRun: false });
    await untilIsolationEnforced(a);
    sides[kind] = { namespace: a.namespace, attacker: a, victim: b, ownPod: await realPod(a), victimPod: await realPod(b) };
  }
  pre13 = await installPreIssue13Jobs(ANNOTATIONS);
  const [a, b] = pre13.jobs;
  pre13Side = { namespace: pre13.namespace, attacker: a, victim: b, ownPod: await realPod(a), victimPod: await realPod(b) };
});

afterAll(async () => {
  await pre13?.remove();
  await admin.delete('priorityclasses', undefined, priorityClass, { dryRun: false });
  for (const namespace of [teamNamespace, jobs['per-user']?.[0].namespace].filter(Boolean))
    await admin.delete('namespaces', undefined, namespace, { dryRun: false });
});

for (const kind of ['team', 'per-user'] as const) {
  describe(`a job token in a ${kind} namespace`, () => {
    it('holds exactly the driver rights in its namespace: pods, and claims create', async () => {
      const rules = (await sides[kind].attacker.api.rulesIn(sides[kind].namespace)).filter(
        (r) => !/^authorization\.k8s\.io\/|^authentication\.k8s\.io\//.test(r),
      );
      expect(rules).toEqual([
        '/persistentvolumeclaims:create',
        ...['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'watch'].map((v) => `/pods:${v}`),
      ]);
    });

    describe('is refused', () => {
      for (const attack of [...POD_ATTACKS, ...CLAIM_ATTACKS, ...API_ATTACKS, ...NEIGHBOUR_ATTACKS]) {
        it(attack.name, async () => {
          // Pod Security answers before admission policies; the team namespace enforces none, so there the
          // isolation policy alone must refuse.
          expectRefused(await attack.attempt(sides[kind]), attack.refusedBy, kind === 'per-user' && attack.podSecurityToo);
        });
      }
    });

    it('pod with an image volume: refused by the policy, or (ImageVolume off, as here) dropped by the apiserver', async () => {
      const side = sides[kind];
      const pod = executorPod(side.attacker);
      addVolume(pod, { name: 'img', image: { reference: 'registry.example/team-data:1' } } as V1Volume);
      const outcome = await createPod(side, pod);
      if (outcome.status === 403) expect(outcome.message).toMatch(REFUSED_BY.isolationPolicy);
      else
        expect({ status: outcome.status, volumes: (outcome.body.spec as V1Pod['spec'])!.volumes!.map((v) => v.name) }).toEqual({
          status: 201,
          volumes: ['spark-local-dir-1'],
        });
    });

    describe('is allowed', () => {
      for (const allowed of ALLOWED) {
        it(allowed.name, async () => {
          const outcome = await allowed.attempt(sides[kind]);
          expect([200, 201, 202], outcome.message).toContain(outcome.status);
        });
      }
    });
  });
}

describe('Pod Security (finding 4)', () => {
  const rootPod = (job: Job) => {
    const pod = executorPod(job);
    delete pod.spec!.securityContext;
    container(pod).securityContext = { runAsUser: 0 };
    return pod;
  };

  it('the namespace the tool creates enforces restricted, at the latest version', async () => {
    const labels = (await admin.get('namespaces', undefined, jobs['per-user'][0].namespace)).body.metadata as { labels: Record<string, string> };
    expect(labels.labels).toMatchObject({ 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest' });
  });

  it('refuses a root pod without seccomp there, though the isolation policy admits it', async () => {
    const [a] = jobs['per-user'];
    expectRefused(await a.api.create('pods', a.namespace, rootPod(a)), 'isolationPolicy', true);
    expect((await a.api.create('pods', a.namespace, rootPod(a))).message).toMatch(REFUSED_BY.podSecurity);
    const [t] = jobs.team;
    expect((await t.api.create('pods', t.namespace, rootPod(t))).status).toBe(201); // the team namespace enforces nothing
  });
});

describe('teardown leaves nothing that the job token created (finding 7)', () => {
  for (const kind of ['team', 'per-user'] as const) {
    it(`in a ${kind} namespace, and leaves the other job's pods`, async () => {
      const [a, b] = jobs[kind];
      const claim = ownClaim(a);
      expect((await a.api.create('persistentvolumeclaims', a.namespace, claim, { dryRun: false })).status).toBe(201);
      await realPod(a);
      const dssuser = dssuserKube();
      const result = await teardown(dssuser, a.namespace, { baseName: a.base }, a.created, { driverMayHaveRun: true }).finally(() => dssuser.close());
      expect(result.left).toEqual([]);

      const pods = ((await admin.list('pods', a.namespace)).body.items as V1Pod[]).filter((p) => !p.metadata!.deletionTimestamp);
      expect(pods.map((p) => p.metadata!.labels?.[OWNER_LABEL])).toEqual(pods.map(() => b.base));
      expect(pods.length).toBeGreaterThan(0);
      // A claim keeps its protection finalizer until a controller (none here) sees no pod using it.
      const claims = (await admin.list('persistentvolumeclaims', a.namespace)).body.items as {
        metadata: { labels?: Record<string, string>; deletionTimestamp?: string };
      }[];
      expect(claims.filter((c) => !c.metadata.deletionTimestamp)).toEqual([]);
      for (const object of a.created) expect((await admin.get(object.kind, object.namespace, object.name)).status, `${object.kind} ${object.name}`).toBe(404);
    });
  }
});

describe('teardown while a process that kept the token goes on creating pods (red team 2, H1)', () => {
  it('revokes first and deletes the pods once the token is refused: none survives, in team and per-user namespaces', async () => {
    const teamProfile = profileWith({ targetNamespace: '${adminProperty:k8sNS}' });
    for (const job of [
      await provisionJob(teamProfile, 'racer', { k8sNS: teamNamespace }),
      await provisionJob(profileWith({ autoCreateNamespace: true }), perUserLogin),
    ]) {
      // Four loops, as a driver's forked children would, each creating pods until the token stops working.
      let stop = false;
      let made = 0;
      const loop = async () => {
        while (!stop) {
          const answer = await job.api.create('pods', job.namespace, executorPod(job), { dryRun: false });
          if (answer.status === 201) made++;
          else if (answer.status === 401 || answer.status === 403) return;
        }
      };
      const loops = Array.from({ length: 4 }, loop);
      while (made < 20) await new Promise((r) => setTimeout(r, 20));
      const dssuser = dssuserKube();
      const jobKube = tokenKube(job.token);
      const result = await teardown(dssuser, job.namespace, { baseName: job.base }, job.created, {
        driverMayHaveRun: true,
        revoked: () => tokenRevoked(jobKube, job.namespace),
      }).finally(() => Promise.all([dssuser.close(), jobKube.close()]));
      stop = true;
      await Promise.all(loops);
      expect(result.left).toEqual([]);
      // Anything admitted late would show up now: nothing does.
      await new Promise((r) => setTimeout(r, 1000));
      const left = ((await admin.list('pods', job.namespace)).body.items as V1Pod[]).filter(
        (p) => p.metadata!.labels?.[OWNER_LABEL] === job.base && !p.metadata!.deletionTimestamp,
      );
      expect({ made: made > 20, left: left.map((p) => p.metadata!.name) }).toEqual({ made: true, left: [] });
    }
  });
});

describe(`the same attacks on the driver role and isolation policy before issue 13 (${PRE_ISSUE_13})`, () => {
  for (const attack of [...POD_ATTACKS, ...CLAIM_ATTACKS, ...API_ATTACKS]) {
    it(`${attack.name}: ${attack.pre13}`, async () => {
      const outcome = await attack.attempt(pre13Side);
      if (attack.pre13 === 'admitted') expect([200, 201], outcome.message).toContain(outcome.status);
      else expect(outcome.status, outcome.message).toBeGreaterThanOrEqual(400);
    });
  }
});
