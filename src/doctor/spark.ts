// 6. spark-submit: its version, and a fabric8 client that re-reads the kubeconfig (token rotation needs it).
import { readdir, realpath, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Profile } from '../config/types.ts';
import { reasonLine } from '../exec/process.ts';
import type { RunProcess } from './process.ts';
import { result, type CheckResult } from './result.ts';

/** Token rotation re-reads the kubeconfig: fabric8 kubernetes-client 6.7 (Spark 3.5) or newer. */
export const MIN_FABRIC8 = '6.7';
const SPARK_TIMEOUT_MS = 30_000;

/** "4.3.0" from spark-submit --version's banner (not the "Using Scala version" line). */
export function parseSparkVersion(output: string): string | undefined {
  return /(?<!Scala )version (\d+\.\d+\.\d+\S*)/.exec(output)?.[1];
}

/** The fabric8 client version from the jar names of SPARK_HOME/jars. */
export function fabric8Version(jarNames: string[]): string | undefined {
  for (const name of jarNames) {
    const m = /^kubernetes-client-(\d+(?:\.\d+)*)\.jar$/.exec(name);
    if (m) return m[1];
  }
  return undefined;
}

export function versionAtLeast(version: string, minimum: string): boolean {
  const a = version.split('.').map(Number);
  const b = minimum.split('.').map(Number);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}

/**
 * SPARK_HOME of a spark-submit: the directory above bin/ for a Spark distribution (and pip's
 * site-packages/pyspark/bin); for pip's <venv>/bin/spark-submit script, <venv>/lib/python*\/site-packages/pyspark.
 */
export async function sparkHome(sparkSubmit: string): Promise<{ home: string; pipScript: boolean } | undefined> {
  const real = await realpath(sparkSubmit).catch(() => sparkSubmit);
  const bin = dirname(real);
  if (await exists(join(bin, 'find_spark_home.py'))) {
    const lib = join(dirname(bin), 'lib');
    for (const python of (await readdir(lib).catch(() => [])).filter((d) => d.startsWith('python')).sort()) {
      const home = join(lib, python, 'site-packages', 'pyspark');
      if (await exists(join(home, 'jars'))) return { home, pipScript: true };
    }
    return undefined;
  }
  return { home: dirname(bin), pipScript: false };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** The fix for a spark-submit --version that failed, from what it printed. */
export function sparkFailureFix(output: string, path: string, where: string, home: { home: string; pipScript: boolean } | undefined): string {
  // pyspark 4 says "Could not find valid SPARK_HOME"; pyspark 3.5's find_spark_home.py fails with a traceback
  // ("'NoneType' object has no attribute 'origin'"); both then run /bin/spark-class with an empty SPARK_HOME.
  if (/Could not find valid SPARK_HOME|find_spark_home\.py|\/bin\/spark-class: No such file/.test(output) && home?.pipScript) {
    return `set sparkSubmit: ${join(home.home, 'bin', 'spark-submit')} in ${where} (pip's venv script needs the venv's python on PATH, which sudo resets), and put that path in the sudoers rule`;
  }
  if (/JAVA_HOME|java: (command )?not found|UnsupportedClassVersionError|No Java runtime/i.test(output)) {
    return "install Java 17 or newer where sudo's secure_path finds `java`, or set JAVA_HOME in $SPARK_HOME/conf/spark-env.sh";
  }
  return `run "${path} --version" as the end user to see the error; fix the installation or sparkSubmit in ${where}`;
}

export async function checkSpark(run: RunProcess, profile: Profile, asUser: string | undefined): Promise<CheckResult> {
  const title = 'spark-submit';
  const path = profile.sparkSubmit;
  const where = `profile "${profile.name}" of ${profile.source}`;
  const info = await stat(path).catch((error: NodeJS.ErrnoException) => error.code ?? 'error');
  if (typeof info === 'string')
    return result(
      'spark',
      title,
      'fail',
      `${path}: ${info === 'ENOENT' ? 'no such file' : info}`,
      `set sparkSubmit in ${where} to the absolute path of spark-submit`,
    );
  if (!info.isFile() || (info.mode & 0o111) === 0) return result('spark', title, 'fail', `${path} is not an executable file`, `chmod a+rx ${path}`);

  const command = asUser === undefined ? [path, '--version'] : ['sudo', '-n', '-u', asUser, '--', path, '--version'];
  const ran = await run(command[0]!, command.slice(1), { timeoutMs: SPARK_TIMEOUT_MS });
  const output = `${ran.stdout}\n${ran.stderr}`;
  const how = `${asUser === undefined ? 'as this user' : `as ${asUser} through sudo`} in ${(ran.ms / 1000).toFixed(1)} s`;
  const home = await sparkHome(path);
  if (ran.code !== 0) {
    const why = ran.failure ?? `exit ${ran.code}: ${reasonLine(ran.stderr) || reasonLine(ran.stdout)}`;
    return result('spark', title, 'fail', `${path} --version failed ${how} (${why})`, sparkFailureFix(output, path, where, home));
  }
  const spark = parseSparkVersion(output);
  if (spark === undefined)
    return result('spark', title, 'fail', `${path} --version printed no Spark version (${how})`, `point sparkSubmit in ${where} at Spark's spark-submit`);

  const jars = home === undefined ? undefined : await readdir(join(home.home, 'jars')).catch(() => undefined);
  const fabric8 = jars === undefined ? undefined : fabric8Version(jars);
  const found = `Spark ${spark}${fabric8 ? `, fabric8 kubernetes-client ${fabric8}` : ''}, Java works (${how})`;
  if (jars === undefined)
    return result(
      'spark',
      title,
      'warn',
      `${found}; no jars directory found: cannot tell whether token rotation works (needs fabric8 kubernetes-client >= ${MIN_FABRIC8})`,
    );
  if (fabric8 === undefined)
    return result(
      'spark',
      title,
      'fail',
      `${found}; no kubernetes-client jar in ${join(home!.home, 'jars')}: this Spark has no Kubernetes support`,
      'use a Spark distribution built with Kubernetes support (-Pkubernetes), such as pyspark from PyPI',
    );
  if (!versionAtLeast(fabric8, MIN_FABRIC8))
    return result(
      'spark',
      title,
      'fail',
      `${found}: token rotation needs kubernetes-client >= ${MIN_FABRIC8}`,
      `use Spark 3.5 or newer (sparkSubmit in ${where})`,
    );
  return result('spark', title, 'pass', found);
}
