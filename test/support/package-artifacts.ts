// `npm run package`'s two artifacts for package.test.ts, built once per set of inputs (the sources, packaging/,
// the manifests, the lockfile, the Node.js that is embedded) into the cache, so a warm run only checks its key.
//
// A build costs ~85 s of CPU, ~80 of them xz compressing the 114 MB executable into the .deb, and most commits
// change an input (src/ or the README, which the package carries). So the integration run starts the build at
// once, in the background and niced (this file is also a globalSetup of vitest.config.ts), when package.test is
// among the files it runs: it then uses the CPU that the files before it leave idle while they wait on the
// cluster. package.test waits for that build (at normal priority from then on), or builds itself when none is
// under way. Same script, same artifacts: only when they are built changes.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import type { TestProject } from 'vitest/node';

const root = resolve(import.meta.dirname, '../..');
const cacheRoot = process.env.DSS_SPARK_K8S_CACHE || '/var/cache/dss-spark-k8s';
const PACKAGE = 'dss-spark-k8s';

/** Everything that goes into the artifacts. */
const INPUTS = [
  'src',
  'packaging',
  'deploy/rbac',
  'scripts/package.sh',
  'scripts/bundle.mjs',
  'scripts/lib.sh',
  'package.json',
  'package-lock.json',
  'README.md',
  'config.schema.json',
];

function files(path: string): string[] {
  if (!existsSync(path)) return [];
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path)
    .sort()
    .flatMap((name) => files(join(path, name)));
}

function inputsKey(): string {
  const hash = createHash('sha256').update(`${process.version}\n`);
  for (const file of INPUTS.flatMap((input) => files(join(root, input)))) hash.update(`${relative(root, file)}\n`).update(readFileSync(file));
  return hash.digest('hex').slice(0, 16);
}

export interface Artifacts {
  executable: string;
  deb: string;
  /** Built by this run (in the background or by the test), not found in the cache. */
  built: boolean;
}

function paths(dir: string, built: boolean): Artifacts {
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  return { executable: join(dir, 'dss-spark-k8s-linux-x64'), deb: join(dir, `${PACKAGE}_${version}_amd64.deb`), built };
}

function complete(dir: string): boolean {
  const { executable, deb } = paths(dir, false);
  return existsSync(executable) && existsSync(deb);
}

/** The build of one cache directory: package.sh into DIR.partial, then only the newest build kept (each is ~140 MB). */
const BUILD = `
set -e
bash "$1/scripts/package.sh" --out "$2.partial"
for old in "$(dirname "$2")"/package-*; do
  case $old in "$2"|"$2".*) ;; *) rm -rf "$old" ;; esac
done
mv "$2.partial" "$2"
chmod 0755 "$2"
`;

function buildEnv(): NodeJS.ProcessEnv {
  return { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH}` };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The background build under way for `dir`, if any: its process (group) id. */
function buildUnderWay(dir: string): number | undefined {
  const pid = Number(existsSync(`${dir}.building`) ? readFileSync(`${dir}.building`, 'utf8') : NaN);
  return Number.isInteger(pid) && alive(pid) ? pid : undefined;
}

/** The artifacts of the current inputs: from the cache, from the background build (awaited), or built now. */
export async function packagedArtifacts(): Promise<Artifacts> {
  const dir = join(cacheRoot, `package-${inputsKey()}`);
  const background = buildUnderWay(dir);
  if (background !== undefined) {
    // Needed now: no longer behind the other tests.
    spawnSync('renice', ['-n', '0', '-g', String(background)], { stdio: 'ignore' });
    while (buildUnderWay(dir) !== undefined) await new Promise((r) => setTimeout(r, 500));
    if (complete(dir)) return paths(dir, true);
  }
  if (complete(dir)) return paths(dir, false);
  rmSync(`${dir}.partial`, { recursive: true, force: true });
  const build = spawnSync('bash', ['-c', BUILD, 'build', root, dir], { cwd: root, encoding: 'utf8', env: buildEnv() });
  const log = `${dir}.log`;
  const why = existsSync(log) ? `; the background build's log: ${log}` : '';
  if (build.status !== 0) throw new Error(`npm run package failed (exit ${build.status})${why}:\n${build.stderr.split('\n').slice(-15).join('\n')}`);
  return paths(dir, true);
}

/** globalSetup: starts the build in the background when package.test is in this run and its artifacts are not cached. */
export default function startPackageBuild(project: TestProject): (() => void) | undefined {
  // The run's file filters (none: every file). Not public API, hence the fallback: no filter known, no build.
  const filters = (project.vitest as unknown as { filenamePattern?: string[] }).filenamePattern;
  const testFile = join(root, 'test/integration/package.test.ts');
  if (filters !== undefined && !filters.some((filter) => testFile.includes(filter.replace(/^\.\//, '')))) return undefined;
  const dir = join(cacheRoot, `package-${inputsKey()}`);
  if (complete(dir) || buildUnderWay(dir) !== undefined) return undefined;
  rmSync(`${dir}.partial`, { recursive: true, force: true });
  const log = openSync(`${dir}.log`, 'w');
  const child = spawn('nice', ['-n', '19', 'bash', '-c', BUILD, 'build', root, dir], {
    cwd: root,
    env: buildEnv(),
    detached: true,
    stdio: ['ignore', log, log],
  });
  const pid = child.pid!;
  writeFileSync(`${dir}.building`, String(pid));
  child.on('exit', () => rmSync(`${dir}.building`, { force: true }));
  child.unref();
  // A run that ends first (package.test not reached, or failed early) stops the build and leaves no partial one.
  return () => {
    if (alive(pid)) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // ended meanwhile
      }
      rmSync(`${dir}.partial`, { recursive: true, force: true });
    }
    rmSync(`${dir}.building`, { force: true });
  };
}
