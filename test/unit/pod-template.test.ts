import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { buildExecutorPodTemplate, EXECUTOR_CONTAINER } from '../../src/plan/objects.ts';
import { planJob } from '../../src/plan/plan.ts';
import { checkPodTemplate, mergeExecutorPodTemplate } from '../../src/plan/pod-template.ts';
import { fixtureContext, fixtureProfile } from './fixtures.ts';

const managed = buildExecutorPodTemplate('dss-spark-alice-j1-exec', { 'dss-spark-k8s.dataiku.io/owner-sa': 'dss-spark-alice-j1', tier: 'ours' }, 185);

function profileError(template: unknown): string {
  try {
    parseConfig(JSON.stringify({ profiles: { default: { sparkSubmit: '/s', executorPodTemplate: template } } }), 'f.yaml');
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected the profile to be refused');
}

describe('executorPodTemplate: refused when read, one line naming the field', () => {
  it.each([
    [{ spec: { containers: [{ securityContext: { privileged: true } }] } }, 'spec.containers[0].securityContext.privileged', 'may not be privileged'],
    [{ spec: { volumes: [{ name: 'root', hostPath: { path: '/' } }] } }, 'spec.volumes[0].hostPath', 'hostPath is not one'],
    [{ spec: { volumes: [{ name: 't', secret: { secretName: 'x' } }] } }, 'spec.volumes[0].secret', 'secret is not one'],
    [
      { spec: { volumes: [{ name: 't', projected: { sources: [{ serviceAccountToken: { path: 't' } }] } }] } },
      'spec.volumes[0].projected.sources[0].serviceAccountToken',
      'configMap and downwardAPI only',
    ],
    [{ spec: { serviceAccountName: 'default' } }, 'spec.serviceAccountName', 'executor account'],
    [{ spec: { automountServiceAccountToken: true } }, 'spec.automountServiceAccountToken', 'no service-account token'],
    [{ spec: { hostNetwork: true } }, 'spec.hostNetwork', "node's network"],
    [{ spec: { hostPID: true } }, 'spec.hostPID', "node's processes"],
    [{ spec: { nodeName: 'vm' } }, 'spec.nodeName', 'use nodeSelector or affinity'],
    [{ spec: { securityContext: { runAsUser: 0 } } }, 'spec.securityContext.runAsUser', 'non-root'],
    [
      { spec: { containers: [{}, { securityContext: { capabilities: { add: ['NET_RAW'] } } }] } },
      'spec.containers[1].securityContext.capabilities',
      'no capability',
    ],
    [
      { spec: { initContainers: [{ securityContext: { allowPrivilegeEscalation: true } }] } },
      'spec.initContainers[0].securityContext.allowPrivilegeEscalation',
      'gain privileges',
    ],
    [{ spec: { containers: [{ ports: [{ containerPort: 80, hostPort: 80 }] }] } }, 'spec.containers[0].ports[0].hostPort', "node's ports"],
    [
      { spec: { containers: [{ env: [{ name: 'T', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }] }] } },
      'spec.containers[0].env[0].valueFrom.secretKeyRef',
      'no Secret',
    ],
    [
      { spec: { containers: [{ livenessProbe: { httpGet: { host: '169.254.169.254', port: 80 } } }] } },
      'spec.containers[0].livenessProbe.httpGet.host',
      'any host',
    ],
    [{ spec: { priorityClassName: 'system-node-critical' } }, 'spec.priorityClassName', 'preempt'],
    [{ kind: 'Deployment' }, 'kind', 'expected Pod'],
    [
      { spec: { containers: [{ lifecycle: { preStop: { httpGet: { host: '10.0.0.1', port: 80 } } } }] } },
      'spec.containers[0].lifecycle.preStop.httpGet.host',
      'any host',
    ],
    [
      { spec: { volumes: [{ name: 'v', ephemeral: { volumeClaimTemplate: { spec: { dataSource: { kind: 'PersistentVolumeClaim', name: 'x' } } } } }] } },
      'spec.volumes[0].ephemeral.volumeClaimTemplate.spec.dataSource',
      'starts empty',
    ],
    [
      { spec: { volumes: [{ name: 'v', ephemeral: { volumeClaimTemplate: { metadata: { labels: { 'dss-spark-k8s.dataiku.io/owner-sa': 'x' } } } } }] } },
      'spec.volumes[0].ephemeral.volumeClaimTemplate.metadata.labels["dss-spark-k8s.dataiku.io/owner-sa"]',
      "tool's labels",
    ],
    [
      { metadata: { annotations: { 'container.apparmor.security.beta.kubernetes.io/c': 'unconfined' } } },
      'metadata.annotations["container.apparmor.security.beta.kubernetes.io/c"]',
      'AppArmor',
    ],
    [{ spec: { imagePullSecrets: [{ name: 'regcred' }] } }, 'spec.imagePullSecrets', 'allowedImagePullSecrets'],
    [
      { spec: { containers: [{ securityContext: { windowsOptions: { hostProcess: true } } }] } },
      'spec.containers[0].securityContext.windowsOptions',
      'host process',
    ],
  ])('%j', (template, path, reason) => {
    const message = profileError(template);
    expect(message.startsWith(`f.yaml: profiles.default.executorPodTemplate.${path}: `)).toBe(true);
    expect(message).toContain(reason);
    expect(message).not.toContain('\n');
  });

  it('reads YAML text too (DSS keeps "Executor pod YAML" as text), and says where that text is broken', () => {
    const text = 'spec:\n  nodeSelector: {disktype: ssd}\n';
    const profile = parseConfig(JSON.stringify({ profiles: { default: { sparkSubmit: '/s', executorPodTemplate: text } } }), 'f.yaml').profiles.default!;
    expect(profile.executorPodTemplate).toEqual({ spec: { nodeSelector: { disktype: 'ssd' } } });
    expect(profileError('spec: [\n')).toMatch(/^f\.yaml: profiles\.default\.executorPodTemplate: invalid YAML at its line 2: /);
    expect(profileError(['a list'])).toBe('f.yaml: profiles.default.executorPodTemplate: expected a Pod, as a map or as YAML text, got a list');
  });

  it('accepts scheduling, resources, env, sidecars and safe volumes', () => {
    const template = {
      metadata: { labels: { team: 'a' } },
      spec: {
        nodeSelector: { disktype: 'ssd' },
        tolerations: [{ key: 'spark', operator: 'Exists', effect: 'NoSchedule' }],
        priorityClassName: 'batch-low',
        volumes: [
          { name: 'scratch', emptyDir: {} },
          { name: 'conf', projected: { sources: [{ configMap: { name: 'c' } }] } },
        ],
        containers: [
          { resources: { limits: { 'ephemeral-storage': '1Gi' } }, env: [{ name: 'A', value: 'b' }] },
          { name: 'log-shipper', image: 'x' },
        ],
      },
    };
    expect(checkPodTemplate(template)).toBeUndefined();
  });
});

describe('mergeExecutorPodTemplate: the managed part wins', () => {
  const template: V1Pod = {
    metadata: { labels: { tier: 'theirs', team: 'a' }, annotations: { note: 'x' } },
    spec: {
      nodeSelector: { disktype: 'ssd' },
      securityContext: { fsGroup: 2000, runAsUser: 4242, seccompProfile: { type: 'Localhost', localhostProfile: 'p' } },
      containers: [
        { name: 'main', resources: { limits: { cpu: '2' } }, securityContext: { readOnlyRootFilesystem: true, runAsNonRoot: false } },
        { name: 'sidecar', image: 'busybox' },
      ],
      initContainers: [{ name: 'init', image: 'busybox' }],
    },
  };
  const merged = mergeExecutorPodTemplate(managed, template);

  it('keeps what the template adds', () => {
    expect(merged.spec?.nodeSelector).toEqual({ disktype: 'ssd' });
    expect(merged.spec?.securityContext?.fsGroup).toBe(2000);
    expect(merged.spec?.containers[0]?.resources).toEqual({ limits: { cpu: '2' } });
    expect(merged.spec?.containers[0]?.securityContext?.readOnlyRootFilesystem).toBe(true);
    expect(merged.metadata?.labels?.team).toBe('a');
    expect(merged.metadata?.annotations).toEqual({ note: 'x' });
  });

  it('overrides the account, the token, the labels, the security contexts and the executor container name', () => {
    expect(merged.spec?.serviceAccountName).toBe('dss-spark-alice-j1-exec');
    expect(merged.spec?.automountServiceAccountToken).toBe(false);
    expect(merged.metadata?.labels).toMatchObject({ tier: 'ours', 'dss-spark-k8s.dataiku.io/owner-sa': 'dss-spark-alice-j1' });
    expect(merged.spec?.securityContext).toMatchObject({ runAsUser: 185, runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(merged.spec?.containers.map((c) => c.name)).toEqual([EXECUTOR_CONTAINER, 'sidecar']);
    const confined = { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } };
    for (const container of [...merged.spec!.containers, ...merged.spec!.initContainers!]) expect(container.securityContext).toMatchObject(confined);
  });

  it('is the managed template itself without one', () => {
    expect(mergeExecutorPodTemplate(managed, undefined)).toBe(managed);
  });
});

describe('the plan', () => {
  it("writes the profile's template, merged, as the job's executor pod template", () => {
    const input = { apiServer: 'https://127.0.0.1:6443', callerArgs: ['app.py'] };
    const executorPodTemplate = { spec: { nodeSelector: { disktype: 'ssd' } } };
    const plan = planJob(fixtureProfile({ executorPodTemplate }), fixtureContext(), input);
    expect(plan.executorPodTemplate.spec?.nodeSelector).toEqual({ disktype: 'ssd' });
    expect(plan.executorPodTemplate.spec?.serviceAccountName).toBe(plan.executorServiceAccount.metadata?.name);
    expect(planJob(fixtureProfile(), fixtureContext(), input).executorPodTemplate.spec?.nodeSelector).toBeUndefined();
  });
});
