import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.ts';
import { buildSparkSubmitArgs, callerConfKeys, checkCallerArgs, isManagedConfKey, type SparkSubmitInput } from '../../src/plan/spark-args.ts';
import { JOB_LABEL, MANAGED_BY_LABEL, USER_LABEL } from '../../src/plan/types.ts';

function refusal(args: string[]): UsageError {
  try {
    checkCallerArgs(args);
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return err as UsageError;
  }
  throw new Error(`not refused: ${JSON.stringify(args)}`);
}

describe('checkCallerArgs', () => {
  it.each([
    [['--master', 'local[*]', 'app.py'], '--master'],
    [['--master=local', 'app.py'], '--master'],
    [['--master='], '--master'],
    [['--remote', 'sc://host', 'app.py'], '--remote'],
    [['--deploy-mode', 'cluster', 'app.py'], '--deploy-mode cluster'],
    [['--deploy-mode=cluster', 'app.py'], '--deploy-mode cluster'],
    [['--deploy-mode', 'CLIENT', 'app.py'], '--deploy-mode CLIENT'],
    [['--deploy-mode'], '--deploy-mode'],
    [['--proxy-user', 'bob', 'app.py'], '--proxy-user'],
    [['--proxy-user=bob', 'app.py'], '--proxy-user'],
    [['--principal', 'p@R', '--keytab', 'k', 'app.py'], '--principal'],
    [['--keytab', 'k', 'app.py'], '--keytab'],
    [['--kubernetes-namespace', 'x', 'app.py'], '--kubernetes-namespace'],
    [['--properties-file', 'my.conf', 'app.py'], '--properties-file'],
    [['--properties-file=my.conf', 'app.py'], '--properties-file'],
    [['--extra-properties-file', 'my.conf', 'app.py'], '--extra-properties-file'],
    [['--kill', 'ns:pod'], '--kill'],
    [['--status', 'ns:pod'], '--status'],
    [['--conf', 'spark.master=local', 'app.py'], 'spark.master'],
    [['--conf=spark.master=local', 'app.py'], 'spark.master'],
    [['-c', 'spark.master=local', 'app.py'], 'spark.master'],
    [['--conf', 'spark.remote=sc://x', 'app.py'], 'spark.remote'],
    [['--conf', 'spark.submit.deployMode=cluster', 'app.py'], 'spark.submit.deployMode'],
    [['-c', 'spark.kubernetes.namespace=x', 'app.py'], 'spark.kubernetes.namespace'],
    [['--conf', ' spark.kubernetes.namespace =x', 'app.py'], 'spark.kubernetes.namespace'],
    [['--conf', 'spark.kubernetes.context=admin', 'app.py'], 'spark.kubernetes.context'],
    [['--conf=spark.kubernetes.authenticate.oauthToken=x', 'app.py'], 'spark.kubernetes.authenticate.oauthToken'],
    [['--conf', 'spark.kubernetes.authenticate.oauthTokenFile=/t', 'app.py'], 'spark.kubernetes.authenticate.oauthTokenFile'],
    [['--conf', 'spark.kubernetes.authenticate.caCertFile=/ca', 'app.py'], 'spark.kubernetes.authenticate.caCertFile'],
    [['--conf', 'spark.kubernetes.authenticate.executor.serviceAccountName=x', 'app.py'], 'spark.kubernetes.authenticate.executor.serviceAccountName'],
    [['--conf', 'spark.kubernetes.authenticate.driver.serviceAccountName=x', 'app.py'], 'spark.kubernetes.authenticate.driver.serviceAccountName'],
    [['--conf', 'spark.kubernetes.executor.podNamePrefix=x', 'app.py'], 'spark.kubernetes.executor.podNamePrefix'],
    [['--conf', 'spark.kubernetes.driver.pod.name=x', 'app.py'], 'spark.kubernetes.driver.pod.name'],
    [['--conf', `spark.kubernetes.executor.label.${JOB_LABEL}=other`, 'app.py'], JOB_LABEL],
    [['--conf', `spark.kubernetes.driver.label.${USER_LABEL}=bob`, 'app.py'], USER_LABEL],
    [['--conf', `spark.kubernetes.executor.label.${MANAGED_BY_LABEL}=x`, 'app.py'], MANAGED_BY_LABEL],
    [['--driver-java-options', '-Xmx1g -Dspark.master=local', 'app.py'], 'spark.master'],
    [['--driver-java-options="-Dspark.kubernetes.authenticate.oauthToken=x"', 'app.py'], 'spark.kubernetes.authenticate.oauthToken'],
    [['--conf', 'spark.driver.extraJavaOptions=-Dspark.kubernetes.namespace=x', 'app.py'], 'spark.kubernetes.namespace'],
    [['--verbose', '--name', 'x', '--conf', 'spark.master=local', 'app.py'], 'spark.master'],
    [['--kill', '--master', '--master', 'local', 'app.py'], '--kill'],
  ])('refuses %j, naming %s', (args, named) => {
    const err = refusal(args);
    expect(err.message).toContain(named);
    expect(err.message).toMatch(/^spark-submit argument .* is not allowed: .*; remove it$/);
    expect(err.message).not.toContain('\n');
  });

  it('says the tool manages a refused conf', () => {
    expect(refusal(['-c', 'spark.kubernetes.namespace=x']).message).toBe(
      'spark-submit argument "-c spark.kubernetes.namespace=…" is not allowed: dss-spark-k8s manages spark.kubernetes.namespace; remove it',
    );
    expect(refusal(['--properties-file', 'f']).message).toMatch(/pass each setting with --conf instead/);
  });

  it('never echoes the value of a refused conf (it may be a token)', () => {
    const err = refusal(['--conf', 'spark.kubernetes.authenticate.oauthToken=eyJhbGciOiJSUzI1NiJ9.secret']);
    expect(err.message).not.toContain('eyJ');
    expect(err.message).not.toContain('secret');
  });

  it.each([
    [[]],
    [['app.py']],
    [['--deploy-mode', 'client', 'app.py']],
    [['--deploy-mode=client', 'app.py']],
    [['--conf', 'spark.executor.instances=2', '-c', 'spark.kubernetes.container.image=img', 'app.py']],
    [['--conf', 'spark.kubernetes.executor.deleteOnTermination=false', 'app.py']],
    [['--conf', 'spark.kubernetes.executor.label.team=a', 'app.py']],
    [['--conf', 'spark.driver.extraJavaOptions=-Dfoo=bar -Dspark.ui.port=0', 'app.py']],
    [['--driver-java-options', '-Dlog4j.configuration=x', 'app.py']],
    [['--verbose', '-v', '--supervise', 'app.py']],
    [['--name', '--master', 'app.py']], // "--master" is the value of --name here
    [['--class', 'org.example.Main', 'app.jar', '--master', 'foo']],
    [['app.py', '--master', 'foo', '--conf', 'spark.master=x', '--deploy-mode', 'cluster']],
    [['--py-files', 'a.zip', 'app.py', '--properties-file', 'x']],
    [['--unknown-switch', 'app.py', '--master', 'x']],
  ])('accepts %j', (args) => {
    expect(() => checkCallerArgs(args)).not.toThrow();
  });
});

describe('isManagedConfKey', () => {
  it.each([
    ['spark.master', true],
    ['spark.kubernetes.authenticate.anything.new', true],
    ['spark.kubernetes.authenticate', false],
    ['spark.kubernetes.container.image', false],
    ['spark.kubernetes.executor.deleteOnTermination', false],
    ['spark.kubernetes.executor.label.team', false],
    [`spark.kubernetes.executor.label.${JOB_LABEL}`, true],
  ])('%s → %s', (key, managed) => {
    expect(isManagedConfKey(key)).toBe(managed);
  });
});

describe('callerConfKeys', () => {
  it('collects the keys set before the application only', () => {
    expect(callerConfKeys(['--conf', 'a=1', '--conf=b=2', '-c', 'c=3', '--name', 'x', 'app.py', '--conf', 'd=4'])).toEqual(new Set(['a', 'b', 'c']));
  });
});

describe('buildSparkSubmitArgs', () => {
  const input: SparkSubmitInput = {
    apiServer: 'https://127.0.0.1:6443',
    namespace: 'dss-alice',
    caCertFile: '/tmp/job/ca.crt',
    executorServiceAccount: 'dss-spark-alice-abc-exec',
    podTemplateFile: '/tmp/job/executor-pod.json',
    labels: { [MANAGED_BY_LABEL]: 'dss-spark-k8s', [JOB_LABEL]: 'abc' },
    podNamePrefix: 'dss-spark-alice-abc',
    profileConf: { 'spark.kubernetes.container.image': 'spark:4', 'spark.executor.instances': '2' },
    callerArgs: ['--conf', 'spark.executor.instances=5', 'app.py', '--master', 'x'],
  };

  it('puts the managed settings first, then profile defaults the caller did not set, then the caller args', () => {
    expect(buildSparkSubmitArgs(input)).toEqual([
      '--master',
      'k8s://https://127.0.0.1:6443',
      '--deploy-mode',
      'client',
      '--conf',
      'spark.kubernetes.namespace=dss-alice',
      '--conf',
      'spark.kubernetes.authenticate.caCertFile=/tmp/job/ca.crt',
      '--conf',
      'spark.kubernetes.authenticate.executor.serviceAccountName=dss-spark-alice-abc-exec',
      '--conf',
      'spark.kubernetes.authenticate.driver.serviceAccountName=dss-spark-alice-abc-exec',
      '--conf',
      'spark.kubernetes.executor.podNamePrefix=dss-spark-alice-abc',
      '--conf',
      'spark.kubernetes.executor.disableConfigMap=true',
      '--conf',
      'spark.kubernetes.driver.service.deleteOnTermination=false',
      '--conf',
      'spark.kubernetes.driver.ownPersistentVolumeClaim=false',
      '--conf',
      'spark.kubernetes.executor.podTemplateFile=/tmp/job/executor-pod.json',
      '--conf',
      'spark.kubernetes.executor.podTemplateContainerName=spark-kubernetes-executor',
      '--conf',
      `spark.kubernetes.driver.label.${MANAGED_BY_LABEL}=dss-spark-k8s`,
      '--conf',
      `spark.kubernetes.executor.label.${MANAGED_BY_LABEL}=dss-spark-k8s`,
      '--conf',
      `spark.kubernetes.driver.label.${JOB_LABEL}=abc`,
      '--conf',
      `spark.kubernetes.executor.label.${JOB_LABEL}=abc`,
      '--conf',
      'spark.kubernetes.container.image=spark:4',
      '--conf',
      'spark.executor.instances=5',
      'app.py',
      '--master',
      'x',
    ]);
  });

  it('leaves out the CA conf when there is no CA file, and takes a host without scheme', () => {
    const args = buildSparkSubmitArgs({ ...input, caCertFile: undefined, apiServer: '10.0.0.1:6443' });
    expect(args.slice(0, 2)).toEqual(['--master', 'k8s://10.0.0.1:6443']);
    expect(args.some((a) => a.includes('caCertFile'))).toBe(false);
  });

  it('ignores a profile default that is a managed setting', () => {
    const args = buildSparkSubmitArgs({
      ...input,
      profileConf: { 'spark.kubernetes.namespace': 'kube-system', 'spark.kubernetes.authenticate.oauthToken': 't0k' },
    });
    expect(args.filter((a) => a.startsWith('spark.kubernetes.namespace='))).toEqual(['spark.kubernetes.namespace=dss-alice']);
    expect(args.join(' ')).not.toContain('t0k');
  });

  it('carries no token or token file', () => {
    const joined = buildSparkSubmitArgs(input).join(' ');
    expect(joined).not.toMatch(/oauthToken|token=|eyJ|clientKeyFile|clientCertFile/i);
  });

  it('refuses a caller argument that would override a managed setting', () => {
    expect(() => buildSparkSubmitArgs({ ...input, callerArgs: ['--master=local', 'app.py'] })).toThrow(UsageError);
  });

  it('does not change the caller args', () => {
    const callerArgs = ['--conf', 'spark.executor.instances=5', 'app.py', 'x'];
    const copy = [...callerArgs];
    const args = buildSparkSubmitArgs({ ...input, callerArgs });
    expect(callerArgs).toEqual(copy);
    expect(args.slice(-copy.length)).toEqual(copy);
  });
});

describe('job labels on what the driver creates', () => {
  const base = {
    apiServer: 'https://k8s:6443',
    namespace: 'dss-alice',
    executorServiceAccount: 'dss-spark-alice-abc-exec',
    labels: { [JOB_LABEL]: 'abc' },
    podNamePrefix: 'dss-spark-alice-abc',
    profileConf: {},
    podTemplateFile: '/tmp/job/executor-pod.json',
  };

  it('labels OnDemand executor claims with the job labels, from the caller or the profile', () => {
    const fromCaller = buildSparkSubmitArgs({
      ...base,
      callerArgs: ['--conf', 'spark.kubernetes.executor.volumes.persistentVolumeClaim.data.options.claimName=OnDemand', 'app.py'],
    });
    expect(fromCaller).toContain(`spark.kubernetes.executor.volumes.persistentVolumeClaim.data.label.${JOB_LABEL}=abc`);
    const fromProfile = buildSparkSubmitArgs({
      ...base,
      profileConf: { 'spark.kubernetes.executor.volumes.persistentVolumeClaim.scratch.options.claimName': 'OnDemand' },
      callerArgs: ['app.py'],
    });
    expect(fromProfile).toContain(`spark.kubernetes.executor.volumes.persistentVolumeClaim.scratch.label.${JOB_LABEL}=abc`);
    const existingClaim = buildSparkSubmitArgs({
      ...base,
      callerArgs: ['--conf', 'spark.kubernetes.executor.volumes.persistentVolumeClaim.data.options.claimName=shared', 'app.py'],
    });
    expect(existingClaim.join(' ')).not.toContain('persistentVolumeClaim.data.label');
  });

  it('turns the executor ConfigMap off and refuses a caller turning it on', () => {
    expect(buildSparkSubmitArgs({ ...base, callerArgs: ['app.py'] })).toContain('spark.kubernetes.executor.disableConfigMap=true');
    expect(() => checkCallerArgs(['--conf', 'spark.kubernetes.executor.disableConfigMap=false', 'app.py'])).toThrow(/disableConfigMap/);
  });
});
