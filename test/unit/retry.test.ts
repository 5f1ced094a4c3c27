import { describe, expect, it } from 'vitest';
import { KubernetesError } from '../../src/errors.ts';
import { MAX_RETRY_AFTER_SECONDS, retryDelayMs, withRetry } from '../../src/k8s/retry.ts';

/** A call that fails with `errors` in turn, then answers "ok"; the waits are recorded, never slept. */
function flaky(errors: unknown[]) {
  let calls = 0;
  const waits: number[] = [];
  const call = async () => {
    calls += 1;
    if (errors.length > 0) throw errors.shift();
    return 'ok';
  };
  return { call, waits, sleep: async (ms: number) => void waits.push(ms), calls: () => calls };
}

const http = (status: number, retryAfterSeconds?: number) => new KubernetesError(`get x failed (${status})`, status, retryAfterSeconds);
const network = () => new KubernetesError('get x failed: ECONNRESET');

describe('withRetry', () => {
  it('retries what may pass — no answer, 429, 5xx — up to 4 attempts', async () => {
    for (const error of [network(), http(429), http(500), http(503)]) {
      const f = flaky([error, error, error]);
      expect(await withRetry(f.call, { sleep: f.sleep })).toBe('ok');
      expect(f.calls()).toBe(4);
    }
    const f = flaky([http(500), http(500), http(500), http(500)]);
    await expect(withRetry(f.call, { sleep: f.sleep })).rejects.toThrow('(500)');
    expect(f.calls()).toBe(4);
  });

  it("never retries a refusal, nor an error that is not the apiserver's (a bug)", async () => {
    for (const error of [http(403), http(404), http(409), http(422), new TypeError('x is undefined'), new Error('boom')]) {
      const f = flaky([error]);
      await expect(withRetry(f.call, { sleep: f.sleep })).rejects.toBe(error);
      expect(f.calls()).toBe(1);
      expect(f.waits).toEqual([]);
    }
  });

  it('waits a jittered, threefold-growing time: between half and all of 200, 600, 1800 ms', async () => {
    const f = flaky([network(), network(), network()]);
    await withRetry(f.call, { sleep: f.sleep });
    const ceilings = [200, 600, 1800];
    f.waits.forEach((wait, i) => {
      expect(wait).toBeGreaterThanOrEqual(ceilings[i]! / 2);
      expect(wait).toBeLessThanOrEqual(ceilings[i]!);
    });
    expect(retryDelayMs(network(), 1, { attempts: 4, firstDelayMs: 200, random: () => 0 })).toBe(100);
    expect(retryDelayMs(network(), 1, { attempts: 4, firstDelayMs: 200, random: () => 0.999 })).toBe(200);
  });

  it("honours the apiserver's Retry-After, and fails at once when it asks for longer than it is worth waiting", async () => {
    const f = flaky([http(429, 3)]);
    expect(await withRetry(f.call, { sleep: f.sleep })).toBe('ok');
    expect(f.waits).toEqual([3000]);
    const long = flaky([http(429, MAX_RETRY_AFTER_SECONDS + 1)]);
    await expect(withRetry(long.call, { sleep: long.sleep })).rejects.toThrow('(429)');
    expect(long.calls()).toBe(1);
  });
});
