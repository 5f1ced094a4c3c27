// The command line: commander definitions only; each action hands its options to a command module.
import { Command, CommanderError, Option } from 'commander';
import { UsageError } from './errors.ts';
import { VERSION } from './version.ts';

export async function runCli(argv: string[]): Promise<number> {
  let exitCode = 0;
  const program = new Command('dss-spark-k8s')
    .description('Per-job Kubernetes credentials for Spark client-mode jobs under DSS user isolation')
    .version(VERSION)
    .exitOverride()
    // Errors are reported once, by main.ts's error boundary.
    .configureOutput({ outputError: () => {} });

  program
    .command('run')
    .description('run spark-submit as an end user with a per-job service account, then tear it down')
    .requiredOption('--user <login>', 'the end user (Unix login) the job runs as')
    .option('--profile <name>', 'profile of the configuration file')
    .option('--config <file>', 'configuration file (default $DSS_SPARK_K8S_CONFIG or /etc/dss-spark-k8s/config.yaml)')
    .option('--job-id <id>', 'job id given by the job runner (default: generated)')
    .option('--kubeconfig <file>', "dssuser's kubeconfig (overrides the profile)")
    .option('--context <name>', "context of dssuser's kubeconfig (overrides the profile)")
    .addOption(new Option('--dry-run <mode>', 'print the plan (client) or send every write with dryRun=All (server)').choices(['client', 'server']))
    .addOption(new Option('-o, --output <format>', 'format of the --dry-run plan').choices(['yaml', 'json']).default('yaml'))
    .option('--admin-property <name=value>', 'an admin property of the user (repeatable)', collect, [])
    .option('--label <key=value>', "a label for every object of the job and Spark's pods (repeatable)", collect, [])
    .option('--events <file|fd>', 'write one JSON line per phase to this file or file descriptor')
    .option('--quiet', 'no status lines on stderr')
    .argument('[spark-submit-args...]', 'arguments for spark-submit, after --')
    .action(async (sparkArgs: string[], options) => {
      const { runCommand } = await import('./commands/run.ts');
      exitCode = await runCommand({ ...options, sparkArgs });
    });

  program
    .command('cleanup')
    .description('find (and with --yes delete) what crashed jobs left behind')
    .requiredOption('--orphans', 'select orphaned jobs (required: the only mode)')
    .option('-n, --namespace <namespace>', 'namespace to search (repeatable; default: all it may list)', collect, [])
    .option('--user <login>', "only this user's jobs")
    .option('--older-than <duration>', 'only jobs created longer ago than this (e.g. 2h)')
    .option('--yes', 'delete the orphaned jobs (without it: list only)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
    .option('--profile <name>', 'profile of the configuration file (for its credentials and temp directory)')
    .option('--config <file>', 'configuration file')
    .option('--kubeconfig <file>', "dssuser's kubeconfig (overrides the profile)")
    .option('--context <name>', "context of dssuser's kubeconfig (overrides the profile)")
    .action(async (options) => {
      // Listing tens of thousands of objects makes garbage fast, and V8 grows the heap rather than collect it:
      // 10,000 jobs peaked at ~250 MB RSS for ~25 MB of live data, ~120 MB with this (BENCHMARKS.md, B3).
      (await import('node:v8')).setFlagsFromString('--optimize-for-size');
      const { cleanupCommand } = await import('./commands/cleanup.ts');
      exitCode = await cleanupCommand(options);
    });

  program
    .command('doctor')
    .description('check that everything a profile needs is in place, with the fix for each problem')
    .option('--profile <name>', 'profile of the configuration file')
    .option('--config <file>', 'configuration file')
    .option('--user <login>', 'a sample end user to check impersonation and the namespace with')
    .option('--admin-property <name=value>', 'an admin property of the sample user (repeatable)', collect, [])
    .option('--kubeconfig <file>', "dssuser's kubeconfig (overrides the profile)")
    .option('--context <name>', "context of dssuser's kubeconfig (overrides the profile)")
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (options) => {
      const { doctorCommand } = await import('./commands/doctor.ts');
      exitCode = await doctorCommand(options);
    });

  program
    .command('audit')
    .description("every API request of one job in the apiserver's audit log (administrators)")
    .requiredOption('--job <id>', 'the job id (--job-id of run, or the jobId of its events)')
    .requiredOption('--audit-log <file>', "the kube-apiserver's audit log (JSON lines)")
    .option('--user <login>', "the job's end user: matches its accounts exactly (without it: any job account ending in -<id>)")
    .option('--credential-id <jti>', "a credentialId of the job's provisioned/rotated events (repeatable)", collect, [])
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
    .action(async (options) => {
      const { auditCommand } = await import('./commands/audit.ts');
      exitCode = await auditCommand(options);
    });

  const namespaces = program
    .command('namespaces')
    .description("the namespaces the tool created: re-apply the profile's guardrails, delete idle per-user ones (dssuser or administrators)");
  namespaces
    .command('reconcile')
    .description('create the ResourceQuota, LimitRange and NetworkPolicy the profile gives a managed namespace where missing; report Pod Security label drift')
    .option('--profile <name>', 'the profile whose guardrails apply (default: the default profile)')
    .option('--config <file>', 'the configuration file (default: $DSS_SPARK_K8S_CONFIG or /etc/dss-spark-k8s/config.yaml)')
    .option('-n, --namespace <name>', 'only this managed namespace (repeatable)', collect, [])
    .option('--yes', 'create what is missing (without it: only show the difference)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
    .action(async (options) => {
      const { namespacesReconcileCommand } = await import('./commands/namespaces.ts');
      exitCode = await namespacesReconcileCommand(options);
    });
  namespaces
    .command('prune')
    .description(
      'delete the per-user namespaces of the profile that held no job for --idle (never a team namespace, one with a job, pods or, without --include-volumes, claims)',
    )
    .requiredOption('--idle <duration>', 'how long a namespace held no job start (e.g. 12h, 7d, 2w; at least 1h)')
    .option('--yes', 'delete them (without it: only list them)')
    .option('--include-volumes', 'also delete namespaces holding PersistentVolumeClaims, and the claims with them')
    .option('--profile <name>', 'the per-user profile whose namespaces to prune (default: the default profile)')
    .option('--config <file>', 'the configuration file (default: $DSS_SPARK_K8S_CONFIG or /etc/dss-spark-k8s/config.yaml)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
    .action(async (options) => {
      const { namespacesPruneCommand } = await import('./commands/namespaces-prune.ts');
      exitCode = await namespacesPruneCommand(options);
    });

  const policy = program.command('policy').description('the job policies, and the NetworkPolicy, for shared (team) namespaces (administrators)');
  policy
    .command('network-policy')
    .description("print the NetworkPolicy the profile gives the namespaces it creates, for a team namespace's administrator to apply")
    .option('-n, --namespace <name>', 'the namespace it is for')
    .option('--profile <name>', 'the profile (default: the default profile)')
    .option('--config <file>', 'the configuration file (default: $DSS_SPARK_K8S_CONFIG or /etc/dss-spark-k8s/config.yaml)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['yaml', 'json']).default('yaml'))
    .action(async (options) => {
      const { networkPolicyCommand } = await import('./commands/policy-network.ts');
      exitCode = await networkPolicyCommand(options);
    });
  for (const action of ['apply', 'show'] as const) {
    policy
      .command(action)
      .description(action === 'apply' ? 'install or update the job policies and their bindings' : 'print the job policies (and whether they are installed)')
      .option('--kubeconfig <file>', 'an administrator kubeconfig')
      .option('--context <name>', 'context of that kubeconfig')
      .addOption(new Option('-o, --output <format>', 'output format').choices(['yaml', 'json']).default('yaml'))
      .action(async (options) => {
        const { policyCommand } = await import('./commands/policy.ts');
        exitCode = await policyCommand(action, options);
      });
  }

  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end here too, with code 0.
      if (error.exitCode === 0) return 0;
      throw new UsageError(
        `${error.message
          .replace(/^error: /, '')
          .replace(/\s*\n\s*/g, ' ')
          .replace(/\.$/, '')}; see dss-spark-k8s --help`,
      );
    }
    throw error;
  }
  return exitCode;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
