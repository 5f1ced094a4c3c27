// Set at bundle time from package.json; the fallback only shows up when running the sources directly.
declare const __DSS_SPARK_K8S_VERSION__: string | undefined;
export const VERSION = typeof __DSS_SPARK_K8S_VERSION__ === 'string' ? __DSS_SPARK_K8S_VERSION__ : '0.0.0-dev';
