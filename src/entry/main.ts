// The process entry point (src/main.ts links here): the Node.js version check, then the CLI (src/start.ts).
//
// Why this file is plain JavaScript in a CommonJS directory: an older Node (20) refuses a .ts file under the
// project's "type": "module" before running any of it (ERR_UNKNOWN_FILE_EXTENSION), and cannot parse
// TypeScript syntax or load .ts imports. Here it runs this file as CommonJS JavaScript, which says what is
// wrong; Node >= 22 runs it as CommonJS TypeScript and imports the ES-module sources. Keep it free of
// TypeScript syntax, static imports, import.meta and top-level await.
{
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 22) {
    process.stderr.write(`dss-spark-k8s: Node.js ${process.version} is too old; Node.js 22 or newer is required\n`);
    process.exitCode = 78; // ExitCode.config of src/errors.ts, which Node 20 cannot load
  } else {
    // tsc also reads this file by its link's path, src/main.ts, from where the path does not resolve (from
    // here it does: @ts-expect-error would fail on this path).
    // biome-ignore lint/suspicious/noTsIgnore: resolves from one of the file's two paths only
    // @ts-ignore
    void import('../start.ts');
  }
}
