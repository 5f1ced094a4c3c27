// The whole job, computed without touching anything: what --dry-run=client prints and what apply creates.

import type { V1Pod } from '@kubernetes/client-node';
import type { Profile } from '../config/types.ts';
import {
  BASE_NAME_MAX,
  executorServiceAccountName,
  isDnsLabel,
  isPerUserTemplate,
  jobBaseName,
  loginToSlug,
  resolveNamespace,
  validateJobId,
} from './names.ts';
import { mergeExecutorPodTemplate } from './pod-template.ts';
import {
  buildExecutorPodTemplate,
  buildExecutorServiceAccount,
  buildLease,
  buildNamespace,
  buildRoleBinding,
  buildServiceAccount,
  buildLimitRange,
  buildResourceQuota,
  buildTokenAnchor,
  buildTokenRequest,
  tokenAnchorName,
  holderIdentity,
  jobAnnotations,
  jobLabels,
  toolAnnotations,
} from './objects.ts';
import { buildNetworkPolicy, managedDriverPortConfs } from './network-policy.ts';
import { buildSparkSubmitArgs, checkCallerArgs } from './spark-args.ts';
import { Annotation, type JobContext, type JobPlan } from './types.ts';

/** A Lease not renewed for this many intervals marks an orphaned job. */
export const LEASE_RENEWALS_PER_DURATION = 4;

export const POD_TEMPLATE_PLACEHOLDER = '<job directory>/executor-pod.json';

export interface PlanInput {
  apiServer: string;
  caCertFile?: string;
  /** Where the job directory holds the executor pod template (default: a placeholder, before it exists). */
  podTemplateFile?: string;
  callerArgs: string[];
  /** run --label, already checked (labels.ts): on every object of the job and on Spark's pods. */
  labels?: Record<string, string>;
  /** Where the drivers of this host are reached (network-policy.ts driverAddresses): the NetworkPolicy lets them in. */
  driverAddresses?: readonly string[];
}

export function planJob(profile: Profile, ctx: JobContext, input: PlanInput): JobPlan {
  const jobId = validateJobId(ctx.jobId);
  const managedConfs = managedDriverPortConfs(profile.networkPolicy);
  checkCallerArgs(input.callerArgs, Object.keys(managedConfs));
  const userSlug = loginToSlug(ctx.login);
  const namespace = resolveNamespace(profile, ctx);
  const perUser = isPerUserTemplate(profile.targetNamespace);
  const baseName = jobBaseName(userSlug, jobId);
  if (baseName.length > BASE_NAME_MAX || !isDnsLabel(baseName)) {
    throw new Error(`internal: base name "${baseName}" is not a DNS label of at most ${BASE_NAME_MAX} characters`);
  }
  const executorName = executorServiceAccountName(baseName);
  const labels = jobLabels(profile, jobId, userSlug, baseName, input.labels);
  const expiresAt = new Date(ctx.now.getTime() + profile.tokenTtlSeconds * 1000);
  const annotations = jobAnnotations(profile, ctx, expiresAt);
  const accountAnnotations = toolAnnotations(ctx, expiresAt);

  return {
    jobId,
    login: ctx.login,
    userSlug,
    namespace,
    baseName,
    labels,
    ...(profile.autoCreateNamespace ? { namespaceObject: buildNamespace(namespace, profile, perUser ? userSlug : undefined) } : {}),
    ...(profile.autoCreateNamespace && profile.resourceQuota ? { namespaceQuota: buildResourceQuota(namespace, profile.resourceQuota) } : {}),
    ...(profile.autoCreateNamespace && profile.limitRange ? { namespaceLimitRange: buildLimitRange(namespace, profile.limitRange) } : {}),
    ...(profile.autoCreateNamespace && profile.networkPolicy.enabled
      ? { namespaceNetworkPolicy: buildNetworkPolicy(namespace, profile.networkPolicy, input.driverAddresses ?? []) }
      : {}),
    serviceAccount: buildServiceAccount(baseName, namespace, labels, accountAnnotations),
    executorServiceAccount: buildExecutorServiceAccount(executorName, namespace, labels, accountAnnotations),
    roleBinding: buildRoleBinding(baseName, namespace, baseName, labels, annotations),
    lease: buildLease(baseName, namespace, labels, annotations, holderIdentity(ctx), LEASE_RENEWALS_PER_DURATION * profile.leaseRenewSeconds, ctx.now),
    // The administrator's template was checked when the profile was read; the managed part wins the merge.
    executorPodTemplate: mergeExecutorPodTemplate(
      buildExecutorPodTemplate(executorName, labels, profile.executorRunAsUser),
      profile.executorPodTemplate as V1Pod | undefined,
    ),
    tokenAnchor: buildTokenAnchor(tokenAnchorName(baseName, 0), namespace, labels, annotations),
    tokenRequest: buildTokenRequest(profile.tokenTtlSeconds),
    sparkSubmitArgs: buildSparkSubmitArgs({
      apiServer: input.apiServer,
      namespace,
      caCertFile: input.caCertFile,
      podTemplateFile: input.podTemplateFile ?? POD_TEMPLATE_PLACEHOLDER,
      executorServiceAccount: executorName,
      labels,
      podAnnotations: { [Annotation.login]: ctx.login },
      podNamePrefix: baseName,
      profileConf: profile.sparkConf,
      managedConfs,
      callerArgs: input.callerArgs,
    }),
  };
}

/** Every object of the plan, in the order they are created (what --dry-run prints). */
export function planObjects(plan: JobPlan): object[] {
  const objects = [
    plan.namespaceObject,
    plan.namespaceQuota,
    plan.namespaceLimitRange,
    plan.namespaceNetworkPolicy,
    plan.serviceAccount,
    plan.executorServiceAccount,
    plan.roleBinding,
    plan.lease,
    plan.tokenAnchor,
    plan.tokenRequest,
  ];
  return objects.filter((object) => object !== undefined);
}
