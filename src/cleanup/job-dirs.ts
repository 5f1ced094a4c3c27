// The per-job temp directories of this host whose job process is gone (the job directory itself, and its
// owner.json, are exec/job-dir.ts's).
import { readdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../errors.ts';
import { isProcessAlive } from '../exec/process-identity.ts';
import { isJobDirName, readJobOwner } from '../exec/job-dir.ts';
import type { JobProcess, StaleDir } from './model.ts';

/**
 * Per-job temp directories in `tempDir` whose owner process is gone (dead, or its pid now belongs to another
 * process). Only directories owned by this Unix account and made on this host are considered: a directory
 * of another account could be a trap, and the liveness of a process on another host cannot be checked.
 */
export async function findStaleDirs(
  tempDir: string,
  isAlive: (process: JobProcess) => boolean = isProcessAlive,
  warn: (message: string) => void = () => {},
): Promise<StaleDir[]> {
  let names: string[];
  try {
    names = await readdir(tempDir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return [];
    throw new ConfigError(
      `cannot read the temp directory ${tempDir} (${code ?? (error as Error).message}); run cleanup as the account that runs jobs, or fix the profile's tempDir`,
    );
  }
  const stale: StaleDir[] = [];
  for (const name of names) {
    if (!isJobDirName(name)) continue;
    try {
      const dir = await readStaleDir(join(tempDir, name), isAlive);
      if (dir) stale.push(dir);
    } catch (error) {
      warn(`ignoring ${join(tempDir, name)}: ${(error as Error).message}`);
    }
  }
  return stale;
}

/** The directory if it is a stale job directory of ours; undefined if it is not one or its owner lives; throws if owner.json is malformed. */
export async function readStaleDir(path: string, isAlive: (process: JobProcess) => boolean): Promise<StaleDir | undefined> {
  const found = await readJobOwner(path);
  if (!found || found.owner.host !== hostname() || isAlive(found.owner)) return undefined;
  return { path, owner: found.owner, createdAt: found.writtenAt };
}
