// Placeholder until the doctor command lands.
import { UsageError } from '../errors.ts';

export async function doctorCommand(..._args: unknown[]): Promise<number> {
  throw new UsageError('doctor is not available yet');
}
