// doctor on pip's venv script of pyspark 3.5 (what DSS ships): under sudo it fails with find_spark_home.py's
// traceback, not pyspark 4's "Could not find valid SPARK_HOME"; the fix names the package's own script all the
// same. The output is pyspark 3.5.9's, captured with `env -i PATH=/usr/bin:/bin <venv>/bin/spark-submit --version`.
import { describe, expect, it } from 'vitest';
import { sparkFailureFix } from '../../src/doctor/spark.ts';

const PYSPARK_35_UNDER_SUDO = `Traceback (most recent call last):
  File "/opt/venv/bin/find_spark_home.py", line 95, in <module>
    print(_find_spark_home())
          ^^^^^^^^^^^^^^^^^^
  File "/opt/venv/bin/find_spark_home.py", line 59, in _find_spark_home
    module_home = os.path.dirname(find_spec("pyspark").origin)
                                  ^^^^^^^^^^^^^^^^^^^^^^^^^^^
AttributeError: 'NoneType' object has no attribute 'origin'
/opt/venv/bin/spark-submit: line 27: /bin/spark-class: No such file or directory
`;

describe('sparkFailureFix on pyspark 3.5', () => {
  const home = { home: '/opt/venv/lib/python3.11/site-packages/pyspark', pipScript: true };

  it("names the package's spark-submit for pip's venv script", () => {
    expect(sparkFailureFix(PYSPARK_35_UNDER_SUDO, '/opt/venv/bin/spark-submit', 'profile "default" of /etc/x.yaml', home)).toBe(
      'set sparkSubmit: /opt/venv/lib/python3.11/site-packages/pyspark/bin/spark-submit in profile "default" of /etc/x.yaml' +
        " (pip's venv script needs the venv's python on PATH, which sudo resets), and put that path in the sudoers rule",
    );
  });

  it('says nothing of the kind for a spark-submit that is not a venv script', () => {
    expect(sparkFailureFix(PYSPARK_35_UNDER_SUDO, '/opt/spark/bin/spark-submit', 'w', { home: '/opt/spark', pipScript: false })).toMatch(
      /^run "\/opt\/spark\/bin\/spark-submit --version" as the end user/,
    );
  });
});
