// The apiserver's audit log, read from a mark taken before a test made its requests: only what was written
// since, and without blocking. The shared cluster's log grows all day (a few hundred MB by the afternoon); a
// readFileSync of it holds the test process's event loop for over a second (200 MB: 1.2 s measured), and
// with it every fault proxy and timer of the cells running beside it.
import { statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';

/** Where the log ends now: pass it to auditLines to read only what comes after. */
export function auditMark(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/**
 * The complete lines written after `mark` that contain `needle` (a cheap pre-filter before JSON.parse), read in
 * chunks. A log shorter than the mark was replaced (a restarted cluster): it is read from its start.
 */
export async function auditLines(file: string, mark: number, needle = ''): Promise<string[]> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    let position = size < mark ? 0 : mark;
    const decoder = new StringDecoder('utf8');
    const buffer = Buffer.alloc(1 << 20);
    const lines: string[] = [];
    let partial = '';
    while (position < size) {
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, size - position), position);
      if (bytesRead === 0) break;
      position += bytesRead;
      const parts = (partial + decoder.write(buffer.subarray(0, bytesRead))).split('\n');
      // The last part is a line still being written (or empty): kept for the next chunk, dropped at the end.
      partial = parts.pop()!;
      for (const line of parts) if (line.includes(needle)) lines.push(line);
    }
    return lines;
  } finally {
    await handle.close();
  }
}
