// Placeholder until the cleanup command lands.
import { UsageError } from '../errors.ts';

export async function cleanupCommand(..._args: unknown[]): Promise<number> {
  throw new UsageError('cleanup is not available yet');
}
