export async function runCommand(_options: Record<string, unknown>): Promise<number> {
  throw new Error('not yet');
}
