// Retries an API call whose failure may pass: no answer (network, timeout), 429 or a 5xx. Anything else —
// a refusal (4xx) or an error that is not the apiserver's (a bug, a TypeError) — is thrown at once.
// The waits grow threefold, each drawn between half and all of its step (many jobs tearing down at once do
// not retry in step); a Retry-After from the apiserver is honoured, up to MAX_RETRY_AFTER_SECONDS.
import { setTimeout as delay } from 'node:timers/promises';
import { KubernetesError } from '../errors.ts';

export interface RetryPolicy {
  attempts: number;
  firstDelayMs: number;
  sleep: (ms: number) => Promise<void>;
  /** A number in [0, 1): the jitter. */
  random: () => number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, firstDelayMs: 200, sleep: (ms) => delay(ms), random: Math.random };

/** A Retry-After longer than this is not waited for: the call fails now, with the apiserver's message. */
export const MAX_RETRY_AFTER_SECONDS = 10;

export function isTransient(error: unknown): error is KubernetesError {
  if (!(error instanceof KubernetesError)) return false;
  return error.status === undefined || error.status === 429 || error.status >= 500;
}

/** The wait before attempt `attempt + 1`, or undefined when the call should not be retried. */
export function retryDelayMs(error: unknown, attempt: number, policy: Pick<RetryPolicy, 'attempts' | 'firstDelayMs' | 'random'>): number | undefined {
  if (!isTransient(error) || attempt >= policy.attempts) return undefined;
  if (error.retryAfterSeconds !== undefined) {
    return error.retryAfterSeconds <= MAX_RETRY_AFTER_SECONDS ? error.retryAfterSeconds * 1000 : undefined;
  }
  const ceiling = policy.firstDelayMs * 3 ** (attempt - 1);
  return Math.round(ceiling / 2 + policy.random() * (ceiling / 2));
}

export async function withRetry<T>(call: () => Promise<T>, policy: Partial<RetryPolicy> = {}): Promise<T> {
  const settings = { ...DEFAULT_RETRY, ...policy };
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      const wait = retryDelayMs(error, attempt, settings);
      if (wait === undefined) throw error;
      await settings.sleep(wait);
    }
  }
}
