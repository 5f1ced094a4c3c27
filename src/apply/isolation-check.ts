// Whether the isolation policy protects a shared namespace, asked with a job's own credentials.
import type { V1Pod } from '@kubernetes/client-node';
import { KubernetesError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { ISOLATION_POLICY_NAME } from '../plan/policy.ts';
import { JOB_LABEL, USER_LABEL } from '../plan/types.ts';

/**
 * No cluster-wide read needed: a server-side dry run of a pod without the owner label is denied by the policy
 * only when it is installed, bound and the namespace is labelled managed. Nothing is created either way. The
 * pod passes Pod Security "restricted", so that PSA (which admits before the policy) cannot hide the policy's
 * answer; any other denial (a quota...) means the policy did not deny it.
 */
export async function isolationEnforced(
  jobKube: Pick<KubeClient, 'dryRunPod'>,
  namespace: string,
  executorServiceAccount: string,
  identity: { jobId: string; userSlug: string },
): Promise<boolean> {
  const probe: V1Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    // The job's own id and user: the attribution policy, which sees the same request, has nothing to refuse, so
    // a denial names the isolation policy when it is there.
    metadata: { name: 'isolation-probe', namespace, labels: { [JOB_LABEL]: identity.jobId, [USER_LABEL]: identity.userSlug } },
    spec: {
      serviceAccountName: executorServiceAccount,
      automountServiceAccountToken: false,
      securityContext: { runAsNonRoot: true, runAsUser: 65534, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [
        {
          name: 'probe',
          image: 'probe',
          securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
        },
      ],
    },
  };
  try {
    await jobKube.dryRunPod(probe);
    return false;
  } catch (error) {
    if (!(error instanceof KubernetesError) || (error.status !== 403 && error.status !== 422)) throw error;
    return error.status === 403 && error.message.includes(`'${ISOLATION_POLICY_NAME}'`);
  }
}
