// Placeholder until the policy command lands.
import { UsageError } from '../errors.ts';

export async function policyCommand(..._args: unknown[]): Promise<number> {
  throw new UsageError('policy is not available yet');
}
