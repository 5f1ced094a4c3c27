// Man pages from the executable's own --help, so that they never drift from the CLI:
//   node packaging/manpages.mjs EXECUTABLE OUTDIR DATE
// writes dss-spark-k8s.1 and dss-spark-k8s-<command>.1 (policy's subcommands in its page), uncompressed.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [executable, outDir, date] = process.argv.slice(2);
if (!executable || !outDir || !/^\d{4}-\d{2}-\d{2}$/.test(date ?? '')) {
  throw new Error('usage: node packaging/manpages.mjs EXECUTABLE OUTDIR YYYY-MM-DD');
}

/** A page per top-level command; each lists the --help of the command and of its subcommands. */
const PAGES = [
  { name: 'dss-spark-k8s', commands: [[]] },
  { name: 'dss-spark-k8s-run', commands: [['run']] },
  { name: 'dss-spark-k8s-cleanup', commands: [['cleanup']] },
  { name: 'dss-spark-k8s-doctor', commands: [['doctor']] },
  { name: 'dss-spark-k8s-policy', commands: [['policy'], ['policy', 'apply'], ['policy', 'show']] },
];

const help = (command) => execFileSync(executable, [...command, '--help'], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', NO_COLOR: '1', COLUMNS: '80' } });
const version = execFileSync(executable, ['--version'], { encoding: 'utf8' }).trim();

/** Text as roff: backslashes escaped, no line read as a request. */
const roff = (text) =>
  text
    .replace(/\\/g, '\\e')
    .split('\n')
    .map((line) => (/^[.']/.test(line) ? `\\&${line}` : line))
    .join('\n');

/** The help's first paragraph after the usage line: the command's description. */
function description(text) {
  const paragraphs = text.trim().split(/\n\s*\n/);
  return (paragraphs[1] ?? '').replace(/\s*\n\s*/g, ' ').trim();
}

for (const page of PAGES) {
  const texts = page.commands.map(help);
  const usage = texts.map((text) => text.split('\n')[0].replace(/^Usage: /, ''));
  const others = PAGES.filter((other) => other.name !== page.name).map((other) => `.BR ${other.name} (1)`);
  const lines = [
    `.TH ${page.name.toUpperCase()} 1 "${date}" "dss-spark-k8s ${version}" "dss-spark-k8s"`,
    '.SH NAME',
    `${page.name} \\- ${roff(description(texts[0]))}`,
    '.SH SYNOPSIS',
    '.nf',
    ...usage.map(roff),
    '.fi',
    '.SH DESCRIPTION',
    ...texts.flatMap((text) => ['.nf', roff(text.trimEnd()), '.fi', '.PP']),
    'Exit codes, the configuration file and the installation are described in',
    '/usr/share/doc/dss-spark-k8s/README.md.',
    '.SH FILES',
    '.TP',
    '/etc/dss-spark-k8s/config.yaml',
    'the configuration (profiles); override with --config or DSS_SPARK_K8S_CONFIG',
    '.TP',
    '/usr/share/dss-spark-k8s/',
    'the RBAC manifests (rbac/), the sudoers example',
    '.SH SEE ALSO',
    others.join(',\n'),
    '',
  ];
  writeFileSync(join(outDir, `${page.name}.1`), lines.join('\n'));
}
