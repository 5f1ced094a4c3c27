// HTTPS to the apiserver: HTTP/2, as kubectl speaks it, so that a job's parallel requests share one TLS
// connection (with HTTP/1.1 each one in flight opens its own, a TLS handshake each). A server that does not
// offer HTTP/2 (a proxy in front of the apiserver) gets HTTP/1.1 over a keep-alive pool, for the rest of
// the process. node:http2 (~9 ms to load) is imported when the first connection opens, so that its loading
// overlaps whatever the caller does meanwhile (connect() early, await later).
import type { ClientHttp2Session } from 'node:http2';
import type { Agent } from 'node:https';

export interface TlsOptions {
  ca?: string;
  cert?: Buffer;
  key?: Buffer;
  servername?: string;
  rejectUnauthorized: boolean;
}

export interface Answer {
  status: number;
  body: string;
  /** The Retry-After header (seconds), which the apiserver sends with 429 and some 5xx. */
  retryAfter?: string;
}

/** How a server that does not speak HTTP/2 answers an HTTP/2-only TLS handshake (ALPN). */
const NO_HTTP2 = new Set(['ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL', 'ERR_HTTP2_ERROR']);

export class Transport {
  private readonly origin: URL;
  private readonly tls: TlsOptions;
  private session?: Promise<ClientHttp2Session>;
  /** An HTTP/2 session has been established: from then on an error is a real one, never a reason to fall back. */
  private spokeHttp2 = false;
  private http1?: Promise<{ agent: Agent; request: typeof import('node:https').request }>;

  constructor(server: string, tls: TlsOptions) {
    this.origin = new URL(server);
    this.tls = tls;
  }

  get protocol(): 'h2' | 'http/1.1' {
    return this.http1 ? 'http/1.1' : 'h2';
  }

  /** Opens the connection (TCP, TLS, HTTP/2) ahead of the first request; its failure is that request's. */
  connect(): void {
    if (!this.http1) this.http2Session().catch(() => {});
  }

  /** One request; rejects with the network error (its `cause` says why, when a stream was cancelled). */
  async send(method: string, path: string, headers: Record<string, string | number>, payload: string | undefined, timeoutMs: number): Promise<Answer> {
    const fullPath = `${this.origin.pathname.replace(/\/$/, '')}${path}`;
    if (this.http1) return this.sendHttp1(method, fullPath, headers, payload, timeoutMs);
    try {
      return await this.sendHttp2(method, fullPath, headers, payload, timeoutMs);
    } catch (error) {
      // Only a handshake that never agreed on HTTP/2 falls back: no request has reached the server then.
      if (this.spokeHttp2 || !NO_HTTP2.has(rootCode(error) ?? '')) throw error;
      this.http1 ??= import('node:https').then(({ Agent, request }) => ({ agent: new Agent({ keepAlive: true, maxSockets: 32, ...this.tls }), request }));
      return this.sendHttp1(method, fullPath, headers, payload, timeoutMs);
    }
  }

  async close(): Promise<void> {
    (await this.http1?.catch(() => undefined))?.agent.destroy();
    const session = await this.session?.catch(() => undefined);
    this.session = undefined;
    if (session && !session.destroyed) await new Promise<void>((resolve) => session.close(() => resolve()));
  }

  private http2Session(): Promise<ClientHttp2Session> {
    if (!this.session) {
      const opening: Promise<ClientHttp2Session> = import('node:http2').then(({ connect }) => {
        const session = connect(this.origin.origin, this.tls);
        // A session error reaches every stream on it (as their cause); a closed session is replaced on next use.
        session.on('error', () => {});
        session.once('connect', () => {
          if (session.alpnProtocol === 'h2') this.spokeHttp2 = true;
        });
        const forget = () => {
          if (this.session === opening) this.session = undefined;
        };
        session.on('close', forget);
        session.on('goaway', forget);
        return session;
      });
      this.session = opening;
    }
    return this.session;
  }

  private async sendHttp2(
    method: string,
    path: string,
    headers: Record<string, string | number>,
    payload: string | undefined,
    timeoutMs: number,
  ): Promise<Answer> {
    const session = await this.http2Session();
    return new Promise((resolve, reject) => {
      const stream = session.request(
        { ':method': method, ':path': path, ...headers },
        { endStream: payload === undefined, signal: AbortSignal.timeout(timeoutMs) },
      );
      let status = 0;
      let retryAfter: string | undefined;
      let ended = false;
      let body = '';
      stream.on('response', (responseHeaders) => {
        status = Number(responseHeaders[':status']);
        retryAfter = headerValue(responseHeaders['retry-after']);
      });
      // Decoded as it arrives: no copy of the whole answer in off-heap Buffers (cleanup lists thousands).
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        body += chunk;
      });
      stream.on('end', () => {
        ended = status > 0;
        if (ended) resolve({ status, body, ...(retryAfter ? { retryAfter } : {}) });
      });
      stream.on('error', reject);
      // A stream closed without a whole answer (its connection reset or refused) failed like a reset socket.
      stream.on('close', () => {
        if (!ended) reject(Object.assign(new Error('the connection was reset before the answer'), { code: 'ECONNRESET' }));
      });
      if (payload !== undefined) stream.end(payload);
    });
  }

  private async sendHttp1(
    method: string,
    path: string,
    headers: Record<string, string | number>,
    payload: string | undefined,
    timeoutMs: number,
  ): Promise<Answer> {
    const { agent, request: http1Request } = await this.http1!;
    return new Promise((resolve, reject) => {
      const request = http1Request(
        {
          agent,
          method,
          hostname: this.origin.hostname.replace(/^\[(.*)\]$/, '$1'),
          port: this.origin.port || 443,
          path,
          headers,
          signal: AbortSignal.timeout(timeoutMs),
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('error', reject);
          const retryAfter = headerValue(response.headers['retry-after']);
          response.on('end', () =>
            resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), ...(retryAfter ? { retryAfter } : {}) }),
          );
        },
      );
      request.on('error', reject);
      request.end(payload);
    });
  }
}

/** The code of an error or of what caused it (a cancelled HTTP/2 stream carries its session's error). */
export function rootCode(error: unknown): string | undefined {
  const { code, cause } = (error ?? {}) as { code?: string; cause?: unknown };
  return (cause ? rootCode(cause) : undefined) ?? code;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
