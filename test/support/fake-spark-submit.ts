// A stand-in for spark-submit in integration tests, run through sudo as the end user. It reports as JSON
// lines on stdout; the words after the application name ("app") say what to do:
//   probe              make real API calls with $KUBECONFIG and report each HTTP status
//   marker TEXT        print TEXT
//   sleep SECONDS      wait (signal tests); reports the signal it gets
//   exit CODE          exit with CODE
//   save-token FILE    copy the kubeconfig's token to FILE (so the test can try it after teardown)
//   scan-argv          report whether any process's command line contains the token
//   rotation S FILE    for S seconds, call the API once a second with whatever $KUBECONFIG holds, append
//                      each new token to FILE, and report how many tokens and failed calls it saw
import { appendFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { ApiException, AuthenticationV1Api, CoreV1Api, KubeConfig, RbacAuthorizationV1Api } from '@kubernetes/client-node';

const argv = process.argv.slice(2);
const appIndex = argv.indexOf('app');
const sparkArgs = argv.slice(0, appIndex < 0 ? argv.length : appIndex);
const actions = appIndex < 0 ? [] : argv.slice(appIndex + 1);
const confs = Object.fromEntries(sparkArgs.flatMap((arg, i) => (sparkArgs[i - 1] === '--conf' ? [arg.split(/=(.*)/s).slice(0, 2) as [string, string]] : [])));

function report(event: string, fields: Record<string, unknown> = {}) {
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
}

async function status(request: Promise<unknown>): Promise<number> {
  try {
    await request;
    return 200;
  } catch (error) {
    if (error instanceof ApiException) return Number(error.code);
    return -1;
  }
}

async function probe() {
  const kc = new KubeConfig();
  kc.loadFromDefault(); // what a Kubernetes client does: $KUBECONFIG, else ~/.kube/config
  const namespace = confs['spark.kubernetes.namespace']!;
  const executorSa = confs['spark.kubernetes.authenticate.executor.serviceAccountName']!;
  const labels = Object.fromEntries(
    Object.entries(confs)
      .filter(([key]) => key.startsWith('spark.kubernetes.executor.label.'))
      .map(([key, value]) => [key.slice('spark.kubernetes.executor.label.'.length), value]),
  );
  const annotations = Object.fromEntries(
    Object.entries(confs)
      .filter(([key]) => key.startsWith('spark.kubernetes.executor.annotation.'))
      .map(([key, value]) => [key.slice('spark.kubernetes.executor.annotation.'.length), value]),
  );
  const core = kc.makeApiClient(CoreV1Api);
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  const identity = await kc.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: {} });
  // As Spark does: the executor pod starts from the managed template the tool wrote into the job directory.
  const template = JSON.parse(readFileSync(confs['spark.kubernetes.executor.podTemplateFile']!, 'utf8'));
  const pod = {
    metadata: { name: `probe-${process.pid}`, labels, annotations },
    spec: { ...template.spec, serviceAccountName: executorSa, containers: [{ ...template.spec.containers[0], image: 'busybox' }] },
  };
  report('probe', {
    username: identity.status?.userInfo?.username,
    kubeconfigEnv: process.env.KUBECONFIG,
    createPod: await status(core.createNamespacedPod({ namespace, body: pod })),
    listPodsOtherNamespace: await status(core.listNamespacedPod({ namespace: 'default' })),
    listSecrets: await status(core.listNamespacedSecret({ namespace })),
    createRoleBinding: await status(
      rbac.createNamespacedRoleBinding({
        namespace,
        body: {
          metadata: { name: 'escalate' },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'admin' },
          subjects: [{ kind: 'User', name: 'x' }],
        },
      }),
    ),
    podExec: await status(core.connectPostNamespacedPodExec({ name: pod.metadata.name, namespace, command: 'id' })),
    tokenForOtherSa: await status(core.createNamespacedServiceAccountToken({ name: executorSa, namespace, body: { spec: { audiences: [] } } })),
    createNamespace: await status(core.createNamespace({ body: { metadata: { name: `dss-probe-${process.pid}` } } })),
    kubeconfigReadable: readFileSync(process.env.KUBECONFIG!, 'utf8').length > 0,
  });
}

// From the start, like the JVM's shutdown hooks: a signal relayed by sudo at any moment is reported.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    report('signalled', { signal });
    process.exit(128 + { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 }[signal]);
  });
}

report('started', { user: userInfo().username, uid: process.getuid!(), args: sparkArgs, home: process.env.HOME });
for (let i = 0; i < actions.length; i++) {
  const action = actions[i];
  if (action === 'probe') await probe();
  else if (action === 'marker') report('marker', { text: actions[++i] });
  else if (action === 'sleep') {
    const seconds = Number(actions[++i]);
    await new Promise<void>((resolve) => setTimeout(resolve, seconds * 1000));
  } else if (action === 'exit') process.exit(Number(actions[++i]));
  else if (action === 'save-token') writeFileSync(actions[++i]!, kubeconfigToken(), { mode: 0o600 });
  else if (action === 'rotation') await watchRotation(Number(actions[++i]), actions[++i]!);
  else if (action === 'scan-argv') report('argv-scan', { processesWithToken: processesWithToken(kubeconfigToken()) });
}

async function watchRotation(seconds: number, file: string) {
  const tokens: string[] = [];
  let calls = 0;
  let failures = 0;
  for (const end = Date.now() + seconds * 1000; Date.now() < end; ) {
    const token = kubeconfigToken();
    if (!tokens.includes(token)) {
      tokens.push(token);
      appendFileSync(file, `${token}\n`);
    }
    const kc = new KubeConfig();
    kc.loadFromFile(process.env.KUBECONFIG!);
    calls++;
    if ((await status(kc.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: {} }))) !== 200) failures++;
    await new Promise((r) => setTimeout(r, 1000));
  }
  report('rotation', { tokens: tokens.length, calls, failures });
}

function kubeconfigToken(): string {
  const kc = new KubeConfig();
  kc.loadFromFile(process.env.KUBECONFIG!);
  return kc.getCurrentUser()!.token!;
}

function processesWithToken(token: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      const environ = (() => {
        try {
          return readFileSync(`/proc/${pid}/environ`, 'utf8');
        } catch {
          return '';
        }
      })();
      if (argv.includes(token) || environ.includes(token)) found.push(`${pid}: ${argv.replaceAll('\0', ' ').slice(0, 80)}`);
    } catch {
      // the process has gone
    }
  }
  return found;
}
