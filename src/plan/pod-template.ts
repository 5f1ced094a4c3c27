// The administrator's executor pod template (profile key executorPodTemplate, DSS's "Executor pod YAML"):
// checked when the profile is read, then merged under the managed template so that the managed part wins.
// What it may add: scheduling (nodeSelector, tolerations, affinity, topology spread, a non-system priority
// class), resources, env, labels and annotations, emptyDir/configMap/downwardAPI volumes, sidecars. What it may
// not: anything that reaches the node, another identity or another tenant. The isolation policy refuses the same
// pods at admission (src/plan/policy.ts); this check makes the mistake one line when the profile is read instead of
// executors that never start.

import type { V1Container, V1Pod } from '@kubernetes/client-node';

type RawMap = Record<string, unknown>;
export type TemplatePath = (string | number)[];

/** Why the template is refused, and where; undefined when it is acceptable. */
export interface TemplateRefusal {
  path: TemplatePath;
  reason: string;
}

const isMap = (value: unknown): value is RawMap => typeof value === 'object' && value !== null && !Array.isArray(value);
const mapAt = (value: unknown): RawMap => (isMap(value) ? value : {});
const listAt = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);

/** Pod fields that give a pod its node's namespaces, a node of its choice, or someone else's devices or identity. */
const REFUSED_POD_FIELDS: [string, (value: unknown) => boolean, string][] = [
  ['hostNetwork', (v) => v === true, "an executor may not use the node's network"],
  ['hostPID', (v) => v === true, "an executor may not see the node's processes"],
  ['hostIPC', (v) => v === true, "an executor may not share the node's IPC"],
  ['hostUsers', (v) => v === true, 'an executor may not ask for host user namespaces explicitly'],
  ['nodeName', (v) => v !== undefined, 'an executor may not bypass the scheduler; use nodeSelector or affinity'],
  ['serviceAccountName', (v) => v !== undefined, 'executors run as the job’s executor account; remove it'],
  ['serviceAccount', (v) => v !== undefined, 'executors run as the job’s executor account; remove it'],
  ['automountServiceAccountToken', (v) => v === true, 'executors get no service-account token'],
  ['resourceClaims', (v) => listAt(v).length > 0, 'an executor may not claim devices'],
  ['priorityClassName', (v) => typeof v === 'string' && v.startsWith('system-'), 'a system priority class would preempt other tenants'],
  // The isolation policy admits only the pull secrets the namespace lists: the profile's allowedImagePullSecrets.
  ['imagePullSecrets', (v) => v !== undefined, 'pull secrets come from allowedImagePullSecrets; remove them here'],
];

/** The volume sources an executor may use: nothing that holds a credential, a host path or shared storage. */
const ALLOWED_VOLUME_SOURCES = ['emptyDir', 'configMap', 'downwardAPI', 'ephemeral', 'projected'];
const ALLOWED_PROJECTED_SOURCES = ['configMap', 'downwardAPI'];

/** Container securityContext fields and the values that weaken the managed ones. */
const REFUSED_CONTAINER_CONTEXT: [string, (value: unknown) => boolean, string][] = [
  ['privileged', (v) => v === true, 'an executor may not be privileged'],
  ['allowPrivilegeEscalation', (v) => v === true, 'an executor may not gain privileges'],
  ['runAsNonRoot', (v) => v === false, 'an executor runs as a non-root user'],
  ['runAsUser', (v) => v === 0, 'an executor runs as a non-root user'],
  ['procMount', (v) => v !== undefined && v !== 'Default', 'an executor may not unmask /proc'],
  ['capabilities', (v) => listAt(mapAt(v).add).length > 0, 'an executor may add no capability'],
  ['seccompProfile', (v) => mapAt(v).type === 'Unconfined', 'an executor runs with the runtime’s seccomp profile'],
  ['appArmorProfile', (v) => mapAt(v).type === 'Unconfined', 'an executor may not run without AppArmor'],
  ['seLinuxOptions', (v) => v !== undefined, 'an executor may not choose its SELinux options'],
  ['windowsOptions', (v) => mapAt(v).hostProcess === true, 'an executor may not run as a host process'],
];
const REFUSED_POD_CONTEXT: [string, (value: unknown) => boolean, string][] = [
  ...REFUSED_CONTAINER_CONTEXT.filter(([field]) => ['runAsNonRoot', 'runAsUser', 'seccompProfile', 'appArmorProfile', 'seLinuxOptions'].includes(field)),
  ['sysctls', (v) => listAt(v).length > 0, 'an executor may set no sysctl'],
];

/** Where a container names a host for the kubelet to reach (the kubelet is on the node's network). */
const HANDLERS: [string, ...string[]][] = [['livenessProbe'], ['readinessProbe'], ['startupProbe'], ['lifecycle', 'postStart'], ['lifecycle', 'preStop']];
const APPARMOR_ANNOTATION_PREFIX = 'container.apparmor.security.beta.kubernetes.io/';

/** The first reason to refuse `template`, a Pod as written in the profile. */
export function checkPodTemplate(template: unknown): TemplateRefusal | undefined {
  if (!isMap(template)) return { path: [], reason: 'expected a Pod (a map with spec.containers)' };
  const kind = template.kind;
  if (kind !== undefined && kind !== 'Pod') return { path: ['kind'], reason: `expected Pod, got ${JSON.stringify(kind)}` };
  const annotations = mapAt(mapAt(template.metadata).annotations);
  const unconfined = Object.keys(annotations).find((key) => key.startsWith(APPARMOR_ANNOTATION_PREFIX) && annotations[key] === 'unconfined');
  if (unconfined !== undefined) return { path: ['metadata', 'annotations', unconfined], reason: 'refused: an executor may not run without AppArmor' };
  const spec = template.spec;
  if (spec !== undefined && !isMap(spec)) return { path: ['spec'], reason: 'expected a map (a PodSpec)' };
  const podSpec = mapAt(spec);
  for (const [field, refused, reason] of REFUSED_POD_FIELDS) {
    if (refused(podSpec[field])) return { path: ['spec', field], reason: `refused: ${reason}` };
  }
  for (const [field, refused, reason] of REFUSED_POD_CONTEXT) {
    if (refused(mapAt(podSpec.securityContext)[field])) return { path: ['spec', 'securityContext', field], reason: `refused: ${reason}` };
  }
  const volumes = listAt(podSpec.volumes);
  for (const [i, volume] of volumes.entries()) {
    const refusal = checkVolume(mapAt(volume));
    if (refusal) return { path: ['spec', 'volumes', i, ...refusal.path], reason: refusal.reason };
  }
  for (const group of ['initContainers', 'containers', 'ephemeralContainers'] as const) {
    if (group === 'ephemeralContainers' && podSpec[group] !== undefined) return { path: ['spec', group], reason: 'refused: not part of a template' };
    for (const [i, container] of listAt(podSpec[group]).entries()) {
      const refusal = checkContainer(mapAt(container));
      if (refusal) return { path: ['spec', group, i, ...refusal.path], reason: refusal.reason };
    }
  }
  return undefined;
}

function checkVolume(volume: RawMap): TemplateRefusal | undefined {
  const sources = Object.keys(volume).filter((key) => key !== 'name');
  const other = sources.find((source) => !ALLOWED_VOLUME_SOURCES.includes(source));
  if (other !== undefined) {
    return { path: [other], reason: `refused: executors may mount ${ALLOWED_VOLUME_SOURCES.join(', ')} volumes only (${other} is not one)` };
  }
  const claim = mapAt(mapAt(volume.ephemeral).volumeClaimTemplate);
  for (const field of ['dataSource', 'dataSourceRef', 'volumeName', 'selector']) {
    if (mapAt(claim.spec)[field] !== undefined) {
      return { path: ['ephemeral', 'volumeClaimTemplate', 'spec', field], reason: 'refused: an executor volume starts empty and binds no chosen volume' };
    }
  }
  const claimLabels = Object.keys(mapAt(mapAt(claim.metadata).labels));
  const toolLabel = claimLabels.find((key) => key.startsWith('dss-spark-k8s.dataiku.io/') || key === 'app.kubernetes.io/managed-by');
  if (toolLabel !== undefined)
    return { path: ['ephemeral', 'volumeClaimTemplate', 'metadata', 'labels', toolLabel], reason: "refused: the tool's labels are its own" };
  for (const [i, source] of listAt(mapAt(volume.projected).sources).entries()) {
    const kind = Object.keys(mapAt(source)).find((key) => !ALLOWED_PROJECTED_SOURCES.includes(key));
    if (kind !== undefined) return { path: ['projected', 'sources', i, kind], reason: `refused: a projected volume may hold configMap and downwardAPI only` };
  }
  return undefined;
}

function checkContainer(container: RawMap): TemplateRefusal | undefined {
  for (const [field, refused, reason] of REFUSED_CONTAINER_CONTEXT) {
    if (refused(mapAt(container.securityContext)[field])) return { path: ['securityContext', field], reason: `refused: ${reason}` };
  }
  for (const [i, port] of listAt(container.ports).entries()) {
    if (mapAt(port).hostPort !== undefined) return { path: ['ports', i, 'hostPort'], reason: "refused: an executor may not bind the node's ports" };
  }
  for (const [i, item] of listAt(container.env).entries()) {
    if (mapAt(mapAt(item).valueFrom).secretKeyRef !== undefined) {
      return { path: ['env', i, 'valueFrom', 'secretKeyRef'], reason: 'refused: executors read no Secret' };
    }
  }
  for (const [i, source] of listAt(container.envFrom).entries()) {
    if (mapAt(source).secretRef !== undefined) return { path: ['envFrom', i, 'secretRef'], reason: 'refused: executors read no Secret' };
  }
  for (const handler of HANDLERS) {
    const at = handler.reduce<unknown>((value, key) => mapAt(value)[key], container);
    for (const action of ['httpGet', 'tcpSocket']) {
      if (mapAt(mapAt(at)[action]).host !== undefined) {
        return { path: [...handler, action, 'host'], reason: 'refused: the kubelet would send this request to any host' };
      }
    }
  }
  return undefined;
}

/**
 * The executor pod template Spark reads: the administrator's `template` under the `managed` one. The managed
 * labels, account, token setting and security contexts win field by field; the first container becomes the
 * executor container (Spark's podTemplateContainerName), every other container gets the managed container
 * security context too.
 */
export function mergeExecutorPodTemplate(managed: V1Pod, template: V1Pod | undefined): V1Pod {
  if (template === undefined) return managed;
  const managedSpec = managed.spec!;
  const managedContainer = managedSpec.containers[0]!;
  const confine = (container: V1Container): V1Container => ({
    ...container,
    securityContext: { ...container.securityContext, ...managedContainer.securityContext },
  });
  const [first, ...sidecars] = template.spec?.containers ?? [];
  const { nodeName: _nodeName, serviceAccount: _serviceAccount, ...spec } = template.spec ?? { containers: [] };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      labels: { ...template.metadata?.labels, ...managed.metadata?.labels },
      ...(template.metadata?.annotations || managed.metadata?.annotations
        ? { annotations: { ...template.metadata?.annotations, ...managed.metadata?.annotations } }
        : {}),
    },
    spec: {
      ...spec,
      serviceAccountName: managedSpec.serviceAccountName,
      automountServiceAccountToken: managedSpec.automountServiceAccountToken,
      securityContext: { ...template.spec?.securityContext, ...managedSpec.securityContext },
      ...(spec.initContainers ? { initContainers: spec.initContainers.map(confine) } : {}),
      containers: [confine({ ...first, name: managedContainer.name }), ...sidecars.map(confine)],
    },
  };
}
