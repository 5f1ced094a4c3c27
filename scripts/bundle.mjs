// Bundles a TypeScript entry point into one ESM file. The CLI is shipped bundled: loading one file is
// several times faster than resolving @kubernetes/client-node's many modules, and every Spark job pays
// the start-up. The tests bundle their helper executables the same way.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

/**
 * With `splitting`, dynamic imports become chunks beside the output file: the CLI's entry stays tiny
 * (`--version` loads nothing else) and the Kubernetes client is loaded only by the commands that use it.
 */
export async function bundleFile(entryPoint, outfile, { sourcemap = false, splitting = false } = {}) {
  const outdir = dirname(outfile);
  await build({
    entryPoints: [{ in: entryPoint, out: basename(outfile, '.mjs') }],
    outdir,
    outExtension: { '.js': '.mjs' },
    chunkNames: 'chunks/[name]-[hash]',
    splitting,
    minify: true,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    sourcemap: sourcemap ? 'linked' : false,
    legalComments: 'none',
    logLevel: 'warning',
    define: { __DSS_SPARK_K8S_VERSION__: JSON.stringify(version) },
    // Some dependencies are CommonJS and call require(); give the ESM bundle one.
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  });
}

export const cliEntry = fileURLToPath(new URL('../src/main.ts', import.meta.url));
export const cliBundle = fileURLToPath(new URL('../dist/dss-spark-k8s.mjs', import.meta.url));

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // The bundle and its chunks only: dist/pkg holds the packaged artifacts (npm run package).
  const dist = dirname(cliBundle);
  await Promise.all([`${cliBundle}`, `${cliBundle}.map`, join(dist, 'chunks')].map((path) => rm(path, { recursive: true, force: true })));
  await bundleFile(cliEntry, cliBundle, { sourcemap: true, splitting: true });
}
