// The credential id of a TokenRequest token: its `jti` claim, which Kubernetes ≥ 1.29 records in every audit
// event of the token as user.extra["authentication.kubernetes.io/credential-id"] = "JTI=<jti>". The payload
// is only decoded (the apiserver has just issued the token: nothing to verify); the token itself is never
// returned, logged or put in an error.

/** The token's jti, or undefined when the token is not a JWT with one (an older apiserver). */
export function tokenJti(token: string): string | undefined {
  const payload = token.split('.')[1];
  if (!payload) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { jti?: unknown };
    return typeof claims.jti === 'string' && claims.jti !== '' ? claims.jti : undefined;
  } catch {
    return undefined;
  }
}

/** The form of the credential id in audit events. */
export function auditCredentialId(jti: string): string {
  return `JTI=${jti}`;
}
