// The reporter: --events opens only a regular file of our own, never through a link; no write of ours throws.
import { execFileSync } from 'node:child_process';
import { chownSync, closeSync, linkSync, lchownSync, mkdirSync, mkdtempSync, openSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { UsageError } from '../../src/errors.ts';
import { createReporter, writeStderr } from '../../src/output.ts';

const dir = mkdtempSync(join(tmpdir(), 'output-unit-'));
const OTHER_UID = 54_321;
const events = (path: string) => createReporter({ events: path, jobId: 'j1', quiet: true });

function refusal(path: string): string {
  try {
    events(path).close();
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as Error).message;
  }
  throw new Error(`--events ${path} was accepted`);
}

describe('--events FILE', () => {
  it('creates a file of mode 0600, or appends to one of ours', () => {
    const created = join(dir, 'new.jsonl');
    const reporter = events(created);
    reporter.event('planned', { user: 'alice' });
    reporter.close();
    const existing = join(dir, 'existing.jsonl');
    writeFileSync(existing, 'first\n');
    const again = events(existing);
    again.event('started', {});
    again.close();
    expect(JSON.parse(readFileSync(created, 'utf8'))).toMatchObject({ event: 'planned', jobId: 'j1', user: 'alice' });
    expect(readFileSync(existing, 'utf8')).toMatch(/^first\n\{"event":"started","jobId":"j1",.*\}\n$/);
    expect(execFileSync('stat', ['-c', '%a', created], { encoding: 'utf8' }).trim()).toBe('600');
  });

  it('refuses a symlink, even to a file of ours, and leaves its target untouched', () => {
    const target = join(dir, 'profile');
    writeFileSync(target, 'export A=1\n');
    const link = join(dir, 'link.jsonl');
    symlinkSync(target, link);
    expect(refusal(link)).toBe(
      `--events ${link}: is a symbolic link; give a path to a new or existing regular file of your own, not a link, or an open file descriptor number`,
    );
    const dangling = join(dir, 'dangling.jsonl');
    symlinkSync(join(dir, 'absent'), dangling);
    expect(refusal(dangling)).toMatch(/: is a symbolic link; /);
    expect(readFileSync(target, 'utf8')).toBe('export A=1\n');
  });

  it('refuses a path through a directory link owned by another user, not one of root or ours', () => {
    mkdirSync(join(dir, 'real'));
    symlinkSync(join(dir, 'real'), join(dir, 'planted'));
    lchownSync(join(dir, 'planted'), OTHER_UID, OTHER_UID);
    expect(refusal(join(dir, 'planted', 'e.jsonl'))).toMatch(new RegExp(`: ${join(dir, 'planted')} on its path is a symbolic link owned by another user; `));
    symlinkSync(join(dir, 'real'), join(dir, 'mine'));
    events(join(dir, 'mine', 'e.jsonl')).close();
    expect(readFileSync(join(dir, 'real', 'e.jsonl'), 'utf8')).toBe('');
  });

  it('refuses a file owned by someone else, and one with another hard link', () => {
    const foreign = join(dir, 'foreign.jsonl');
    writeFileSync(foreign, '');
    chownSync(foreign, OTHER_UID, OTHER_UID);
    expect(refusal(foreign)).toMatch(new RegExp(`: is owned by uid ${OTHER_UID}, not by you \\(uid ${process.getuid!()}\\); give a path`));
    const original = join(dir, 'original');
    writeFileSync(original, 'secret\n');
    linkSync(original, join(dir, 'hardlink.jsonl'));
    expect(refusal(join(dir, 'hardlink.jsonl'))).toMatch(/: has other hard links; /);
    expect(readFileSync(original, 'utf8')).toBe('secret\n');
  });

  it('refuses a FIFO (without blocking on it) and a directory', () => {
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    expect(refusal(fifo)).toMatch(/: is a FIFO, not a regular file; /);
    // With a reader the open succeeds: the check of the open file refuses it.
    const reader = openSync(fifo, 'r+');
    try {
      expect(refusal(fifo)).toMatch(/: is not a regular file; /);
    } finally {
      closeSync(reader);
    }
    expect(refusal(dir)).toMatch(/: is a directory; /);
  });

  it('keeps a numeric file descriptor as it is, and a write that fails does not throw', () => {
    const path = join(dir, 'fd.jsonl');
    const fd = openSync(path, 'a');
    const reporter = events(String(fd));
    reporter.event('planned', {});
    reporter.close(); // not ours to close
    closeSync(fd);
    expect(readFileSync(path, 'utf8')).toMatch(/^\{"event":"planned"/);
    expect(() => reporter.event('exited', {})).not.toThrow(); // EBADF
  });

  it('still names an unopenable path with its error code', () => {
    expect(refusal(join(dir, 'absent-dir', 'e.jsonl'))).toBe(
      `--events ${join(dir, 'absent-dir', 'e.jsonl')}: cannot open (ENOENT); give a writable file or an open file descriptor number`,
    );
  });
});

describe('stderr', () => {
  afterEach(() => vi.restoreAllMocks());

  it('a status line, a warning or writeStderr never throws when stderr does', () => {
    vi.spyOn(process.stderr, 'write').mockImplementation(() => {
      throw Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
    });
    const reporter = createReporter({ jobId: 'j1' });
    expect(() => reporter.status('provisioned')).not.toThrow();
    expect(() => reporter.warn('slow')).not.toThrow();
    expect(() => writeStderr('x\n')).not.toThrow();
    expect(process.stderr.write).toHaveBeenCalledTimes(3);
  });
});
