// Lists what jobs left in the cluster, page by page, into the jobs of model.ts.
import pMap from 'p-map';
import type { KubeClient } from '../k8s/client.ts';
import { withRetry } from '../k8s/retry.ts';
import { DRIVER_CREATED_KINDS, JOB_KINDS } from '../plan/kinds.ts';
import { addObject, ORPHAN_SELECTOR, type CleanupKind, type Job } from './model.ts';

export type ListClient = Pick<KubeClient, 'list'>;

export interface ListOptions {
  /** Empty: all namespaces, in one list per kind. */
  namespaces: readonly string[];
  pageSize: number;
  concurrency: number;
  /** Called after each page with the number of objects seen so far. */
  onProgress?: (objects: number) => void;
  warn?: (message: string) => void;
}

/** A list request that failed, after its retries. */
export interface ListFailure {
  /** Undefined: the list across all namespaces. */
  namespace?: string;
  kind: CleanupKind;
  message: string;
}

export interface Listing {
  jobs: Map<string, Job>;
  /** Every list that failed. The jobs of a namespace whose ServiceAccounts, RoleBindings or Leases could not be listed are not in `jobs`. */
  failures: ListFailure[];
  /** The namespaces whose jobs are not known (a ServiceAccount, RoleBinding or Lease list failed): nothing there may be touched. */
  unknown: ReadonlySet<string>;
}

/**
 * The jobs of the namespaces (or of all), page by page. Every list is metadata only (a
 * PartialObjectMetadataList: what a job stores in its objects costs the listing nothing), except the Leases,
 * whose renew time is in their spec and which only dssuser writes. First the trusted kinds, which make the
 * jobs; then the driver kinds, counted for the jobs already known.
 * Each namespace given stands alone: one whose trusted lists fail is left out (`unknown`; a live job there
 * could look orphaned without its Lease), the others go on. Across all namespaces, a failed trusted list
 * throws: nothing is known. A failed driver-kind list leaves the jobs it concerns `uncounted` (deletion does
 * not depend on the counts). Every failure is in `failures` and is warned about.
 */
export async function listJobs(kube: ListClient, options: ListOptions): Promise<Listing> {
  const jobs = new Map<string, Job>();
  const failures: ListFailure[] = [];
  const unknown = new Set<string>();
  const warn = options.warn ?? (() => {});
  const scopes = options.namespaces.length > 0 ? options.namespaces : [undefined];
  let seen = 0;
  const listAll = async (kind: CleanupKind, namespace: string | undefined) => {
    let continueToken: string | undefined;
    do {
      const token = continueToken;
      const page = await withRetry(() => kube.list(kind, namespace, ORPHAN_SELECTOR, options.pageSize, token, kind !== 'leases'));
      for (const object of page.items) addObject(jobs, kind, object, warn);
      seen += page.items.length;
      options.onProgress?.(seen);
      continueToken = page.continueToken;
    } while (continueToken);
  };

  const trusted = JOB_KINDS.flatMap((kind) => scopes.map((namespace) => ({ kind, namespace })));
  await pMap(
    trusted,
    async ({ kind, namespace }) => {
      if (namespace !== undefined && unknown.has(namespace)) return;
      try {
        await listAll(kind, namespace);
      } catch (error) {
        if (namespace === undefined) throw error;
        if (unknown.has(namespace)) return;
        unknown.add(namespace);
        failures.push({ namespace, kind, message: (error as Error).message });
        warn(`${(error as Error).message}; the jobs in ${namespace} are left alone`);
      }
    },
    { concurrency: options.concurrency },
  );
  for (const [key, job] of jobs) if (unknown.has(job.namespace)) jobs.delete(key);

  const driver = DRIVER_CREATED_KINDS.flatMap((kind) =>
    scopes.filter((namespace) => namespace === undefined || !unknown.has(namespace)).map((namespace) => ({ kind, namespace })),
  );
  await pMap(
    driver,
    async ({ kind, namespace }) => {
      try {
        await listAll(kind, namespace);
      } catch (error) {
        failures.push({ ...(namespace !== undefined ? { namespace } : {}), kind, message: (error as Error).message });
        warn(`${(error as Error).message}; the OBJECTS of the jobs${namespace ? ` in ${namespace}` : ''} leave out ${kind} (they are deleted all the same)`);
        for (const job of jobs.values()) if (namespace === undefined || job.namespace === namespace) job.uncounted = [...(job.uncounted ?? []), kind];
      }
    },
    { concurrency: options.concurrency },
  );
  return { jobs, failures, unknown };
}

/** Limits the calls in flight: `limit(() => request())` waits for a free slot. */
