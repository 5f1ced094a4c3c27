import { KubernetesError } from '../errors.ts';

/** Retries a call whose failure is transient (5xx, 429, network), with exponential backoff. */
export async function withRetry<T>(call: () => Promise<T>, attempts = 4, firstDelayMs = 200): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      const status = error instanceof KubernetesError ? error.status : undefined;
      const transient = status === undefined || status === 429 || status >= 500;
      if (!transient || attempt >= attempts) throw error;
      await new Promise((resolve) => setTimeout(resolve, firstDelayMs * 3 ** (attempt - 1)));
    }
  }
}
