// A fault-injecting proxy on 127.0.0.1 between the CLI and the apiserver, for the reliability suite.
//
// Modes, switched by the test (or by a one-shot trigger when the CLI reaches a phase):
//   pass     forward every request
//   refuse   like a killed apiserver: the listening socket is closed (new connections get ECONNREFUSED)
//            and every open connection is reset; requests and responses in flight are lost
//   hang     like a SIGSTOPped apiserver: new connections are accepted but never answered (not even the
//            TLS handshake), requests are held and responses are not delivered, so the CLI's requests run
//            into its apiTimeout; switching back to pass forwards held requests and delivers held responses
//            whose client is still connected (connections that never got a handshake are reset)
//
// Why the proxy terminates TLS instead of piping bytes: the job's requests follow each other within a few
// milliseconds (service accounts, then RoleBinding and TokenRequest), far faster than a test can notice a
// phase from outside and switch modes, so a byte pipe cannot put a fault *between* two requests. The
// proxy presents the apiserver's own serving certificate (same CA, SAN IP:127.0.0.1), so the CLI's
// kubeconfig needs nothing but the proxy's address; the bearer token is forwarded untouched. Seeing
// requests lets a trigger fire exactly at a phase ("the first POST of a RoleBinding") and lets the test
// know every token the apiserver issued, including one whose response never reached the CLI.
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createSecureServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { Agent, createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';

export type ProxyMode = 'pass' | 'refuse' | 'hang';

export interface RequestInfo {
  method: string;
  /** Path and query, as sent by the client. */
  path: string;
}

export interface Trigger {
  /** The request at which the phase is reached. */
  match: (request: RequestInfo) => boolean;
  /**
   * 'request': the mode switches before this request is forwarded (the request is subject to the fault).
   * 'response': the request reaches the apiserver, and the mode switches when its response comes back (the
   * server did the work, the client never hears of it).
   */
  at: 'request' | 'response';
  mode: ProxyMode;
  /** Hold a matching request until a request matching this has been answered (to order parallel requests). */
  afterCompleted?: (request: RequestInfo) => boolean;
  /**
   * Switch back to pass this long after the trigger fired, timed by the proxy from the very request (a test
   * that awaits the trigger and then sleeps adds its own latency to the outage). See `outagesMs`.
   */
  restoreAfterMs?: number;
}

/** A per-request fault that leaves the mode alone: answer in the apiserver's place, or forward late. */
export interface Rule {
  match: (request: RequestInfo) => boolean;
  /** Answer with this status and a Kubernetes Status body, without forwarding. */
  respond?: { status: number; reason: string; message: string };
  /** Forward only after this delay. */
  delayMs?: number;
  /** Forward at once, deliver the response only after this delay (the server has done the work). */
  delayResponseMs?: number;
}

export interface ProxyLogEntry extends RequestInfo {
  /** The status delivered to the client, or what happened to the request. */
  outcome: number | 'refused' | 'dropped' | 'held' | 'upstream-error';
}

export interface FaultProxy {
  readonly url: string;
  readonly mode: ProxyMode;
  /** Every request the proxy saw, in order of arrival, with what became of it. */
  readonly log: ProxyLogEntry[];
  /** Every token the apiserver issued through the proxy (TokenRequest responses), delivered or not. */
  readonly tokens: string[];
  /** How long each restoreAfterMs outage really lasted, from the trigger until the proxy passed again. */
  readonly outagesMs: number[];
  setMode(mode: ProxyMode): Promise<void>;
  /** Arms a one-shot trigger; resolves with the request that fired it. */
  arm(trigger: Trigger): Promise<RequestInfo>;
  /** Adds a per-request rule, applied in pass mode to every matching request. */
  addRule(rule: Rule): void;
  close(): Promise<void>;
}

export interface ProxyTarget {
  /** The apiserver, e.g. https://127.0.0.1:6443. */
  server: string;
  /** CA that signs the apiserver's certificate. */
  caFile: string;
  /** The apiserver's serving certificate and key (SAN IP:127.0.0.1), presented by the proxy. */
  certFile: string;
  keyFile: string;
  /** Speak HTTP/1.1 only, like a proxy without HTTP/2 (the CLI speaks HTTP/2 when the server offers it). */
  http1Only?: boolean;
}

interface Exchange {
  info: RequestInfo;
  entry: ProxyLogEntry;
  req: IncomingMessage | Http2ServerRequest;
  res: ServerResponse | Http2ServerResponse;
  body: Buffer;
  /** Set once the trigger said this exchange's response switches the mode. */
  faultOnResponse?: ProxyMode;
}

interface HeldResponse {
  exchange: Exchange;
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'host', 'upgrade', 'proxy-connection', 'te', 'trailer']);
const TOKEN_PATH = /^\/api\/v1\/namespaces\/[^/]+\/serviceaccounts\/[^/]+\/token(\?|$)/;

export async function startFaultProxy(target: ProxyTarget): Promise<FaultProxy> {
  const upstream = new URL(target.server);
  const ca = readFileSync(target.caFile);
  const agent = new Agent({ keepAlive: true, ca });
  const log: ProxyLogEntry[] = [];
  const tokens: string[] = [];
  const outagesMs: number[] = [];
  const rawSockets = new Set<Socket>();
  const parkedSockets: Socket[] = [];
  const heldRequests: Exchange[] = [];
  const heldResponses: HeldResponse[] = [];
  const waitingForOrder: Exchange[] = [];
  const completed: RequestInfo[] = [];
  let mode: ProxyMode = 'pass';
  let listening = false;
  let closed = false;
  let trigger: (Trigger & { resolve: (info: RequestInfo) => void }) | undefined;
  const rules: Rule[] = [];

  const credentials = { cert: readFileSync(target.certFile), key: readFileSync(target.keyFile) };
  const onExchange = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => void onRequest(req, res);
  const tlsServer = target.http1Only ? createHttpsServer(credentials, onExchange) : createSecureServer({ ...credentials, allowHTTP1: true }, onExchange);
  tlsServer.on('tlsClientError', () => {});
  tlsServer.on('clientError', (_error: Error, socket: Socket) => socket.destroy());

  const front: NetServer = createNetServer((socket) => {
    rawSockets.add(socket);
    socket.on('close', () => rawSockets.delete(socket));
    socket.on('error', () => {});
    if (mode === 'refuse') socket.destroy();
    else if (mode === 'hang') {
      socket.pause();
      parkedSockets.push(socket);
    } else tlsServer.emit('connection', socket);
  });
  front.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    front.once('error', reject);
    front.listen(0, '127.0.0.1', () => resolve());
  });
  listening = true;
  const port = (front.address() as { port: number }).port;

  async function onRequest(req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) {
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of req) chunks.push(chunk as Buffer);
    } catch {
      return;
    }
    const info: RequestInfo = { method: req.method ?? 'GET', path: req.url ?? '/' };
    const entry: ProxyLogEntry = { ...info, outcome: 'held' };
    log.push(entry);
    dispatch({ info, entry, req, res, body: Buffer.concat(chunks) });
  }

  /** An HTTP/2 exchange is a stream of a shared connection; an HTTP/1.1 one has the connection to itself. */
  function streamOf(exchange: Exchange) {
    return 'stream' in exchange.req ? exchange.req.stream : undefined;
  }

  function clientGone(exchange: Exchange): boolean {
    const stream = streamOf(exchange);
    if (stream) return stream.destroyed || stream.closed;
    return exchange.req.socket.destroyed || (exchange.res as ServerResponse).destroyed;
  }

  /** Like a server that dies: the client's connection is reset (with HTTP/2, every stream on it). */
  function dropConnection(exchange: Exchange) {
    const stream = streamOf(exchange);
    if (stream) stream.session?.destroy();
    else exchange.req.socket.destroy();
  }

  function dispatch(exchange: Exchange) {
    if (clientGone(exchange)) {
      exchange.entry.outcome = 'dropped';
      return;
    }
    const armed = trigger;
    if (armed?.match(exchange.info)) {
      if (armed.afterCompleted && !completed.some(armed.afterCompleted)) {
        waitingForOrder.push(exchange);
        return;
      }
      trigger = undefined;
      if (armed.restoreAfterMs !== undefined) restoreLater(armed.restoreAfterMs);
      if (armed.at === 'request') {
        switchMode(armed.mode);
        armed.resolve(exchange.info);
      } else {
        exchange.faultOnResponse = armed.mode;
        const resolve = armed.resolve;
        exchange.entry.outcome = 'held';
        forward(exchange, () => resolve(exchange.info));
        return;
      }
    }
    if (mode === 'refuse') {
      exchange.entry.outcome = 'refused';
      dropConnection(exchange);
    } else if (mode === 'hang') {
      exchange.entry.outcome = 'held';
      heldRequests.push(exchange);
    } else {
      const rule = rules.find((r) => r.match(exchange.info));
      if (rule?.respond) {
        const { status, reason, message } = rule.respond;
        const body = Buffer.from(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code: status }));
        deliver({ exchange, status, headers: { 'content-type': 'application/json' }, body });
      } else if (rule?.delayMs) setTimeout(() => forward(exchange), rule.delayMs);
      else forward(exchange, undefined, rule?.delayResponseMs);
    }
  }

  function forward(exchange: Exchange, onFault?: () => void, responseDelayMs = 0) {
    const headers: Record<string, string | string[]> = {};
    for (const [key, value] of Object.entries(exchange.req.headers)) {
      if (value !== undefined && !HOP_BY_HOP.has(key) && !key.startsWith(':')) headers[key] = value;
    }
    headers['content-length'] = String(exchange.body.length);
    const upstreamRequest = httpsRequest(
      { host: upstream.hostname, port: upstream.port, method: exchange.info.method, path: exchange.info.path, headers, agent },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', () => fail());
        response.on('end', () => {
          const body = Buffer.concat(chunks);
          captureToken(exchange.info, response.statusCode ?? 0, body);
          const held: HeldResponse = { exchange, status: response.statusCode ?? 502, headers: response.headers, body };
          if (exchange.faultOnResponse) {
            switchMode(exchange.faultOnResponse);
            exchange.faultOnResponse = undefined;
            onFault?.();
          }
          if (responseDelayMs > 0) setTimeout(() => deliver(held), responseDelayMs);
          else deliver(held);
        });
      },
    );
    const fail = () => {
      exchange.entry.outcome = 'upstream-error';
      dropConnection(exchange);
    };
    upstreamRequest.on('error', fail);
    upstreamRequest.end(exchange.body);
  }

  function deliver(held: HeldResponse) {
    const { exchange } = held;
    if (clientGone(exchange)) {
      exchange.entry.outcome = 'dropped';
      return;
    }
    if (mode === 'refuse') {
      exchange.entry.outcome = 'refused';
      dropConnection(exchange);
      return;
    }
    if (mode === 'hang') {
      exchange.entry.outcome = 'held';
      heldResponses.push(held);
      return;
    }
    const headers: Record<string, string | string[]> = {};
    for (const [key, value] of Object.entries(held.headers)) {
      if (value !== undefined && !HOP_BY_HOP.has(key)) headers[key] = value;
    }
    headers['content-length'] = String(held.body.length);
    exchange.entry.outcome = held.status;
    (exchange.res as ServerResponse).writeHead(held.status, headers);
    (exchange.res as ServerResponse).end(held.body, () => {
      completed.push(exchange.info);
      releaseOrdered();
    });
  }

  function releaseOrdered() {
    const armed = trigger;
    if (waitingForOrder.length === 0 || (armed?.afterCompleted && !completed.some(armed.afterCompleted))) return;
    const ready = waitingForOrder.splice(0);
    for (const exchange of ready) dispatch(exchange);
  }

  function captureToken(info: RequestInfo, status: number, body: Buffer) {
    if (info.method !== 'POST' || !TOKEN_PATH.test(info.path) || status >= 300) return;
    try {
      const token = JSON.parse(body.toString('utf8'))?.status?.token;
      if (typeof token === 'string' && token !== '') tokens.push(token);
    } catch {
      // not JSON: no token
    }
  }

  /** The state change itself, synchronous so that a trigger applies to the very request that fired it. */
  function switchMode(next: ProxyMode) {
    mode = next;
    if (next === 'refuse') {
      if (listening) {
        front.close();
        listening = false;
      }
      for (const socket of rawSockets) socket.destroy();
      parkedSockets.length = 0;
      for (const exchange of heldRequests.splice(0)) exchange.entry.outcome = 'refused';
      for (const held of heldResponses.splice(0)) held.exchange.entry.outcome = 'refused';
    } else if (next === 'pass') {
      // Connections accepted while hung never got their TLS handshake; their clients have given up by now.
      for (const socket of parkedSockets.splice(0)) socket.destroy();
      for (const exchange of heldRequests.splice(0)) dispatch(exchange);
      for (const held of heldResponses.splice(0)) deliver(held);
    }
  }

  async function setMode(next: ProxyMode) {
    if (next !== 'refuse') await relisten();
    switchMode(next);
  }

  function restoreLater(ms: number) {
    const from = performance.now();
    setTimeout(() => {
      // A port that could not be taken again leaves the outage open: outagesMs says so by its absence.
      setMode('pass').then(
        () => outagesMs.push(Math.round(performance.now() - from)),
        () => {},
      );
    }, ms);
  }

  async function relisten() {
    if (listening || closed) return;
    await new Promise<void>((resolve, reject) => {
      front.once('error', reject);
      front.listen(port, '127.0.0.1', () => {
        front.off('error', reject);
        resolve();
      });
    });
    listening = true;
  }

  return {
    url: `https://127.0.0.1:${port}`,
    get mode() {
      return mode;
    },
    log,
    tokens,
    outagesMs,
    setMode,
    addRule(rule: Rule) {
      rules.push(rule);
    },
    arm(armed: Trigger) {
      return new Promise<RequestInfo>((resolve) => {
        trigger = { ...armed, resolve };
      });
    },
    async close() {
      closed = true;
      trigger = undefined;
      if (listening) {
        front.close();
        listening = false;
      }
      for (const socket of rawSockets) socket.destroy();
      tlsServer.close();
      agent.destroy();
      await once(tlsServer, 'close').catch(() => {});
    },
  };
}

// Request matchers for the phases of `run` (paths as the CLI sends them).
const resourcePath = (resource: string) => new RegExp(`^/(api|apis/[^/]+)/v1/namespaces/[^/]+/${resource}(\\?|$)`);
export const phase = {
  /** The first request of provisioning: GET of the job namespace. */
  namespaceGet: (r: RequestInfo) => r.method === 'GET' && /^\/api\/v1\/namespaces\/[^/?]+(\?|$)/.test(r.path),
  createRoleBinding: (r: RequestInfo) => r.method === 'POST' && resourcePath('rolebindings').test(r.path),
  tokenRequest: (r: RequestInfo) => r.method === 'POST' && TOKEN_PATH.test(r.path),
  /** The job's creates are under way: the RoleBinding goes out with the service accounts, Lease and anchor. */
  duringCreates: (r: RequestInfo) => phase.createRoleBinding(r),
  /** Any DELETE: teardown has begun. */
  teardown: (r: RequestInfo) => r.method === 'DELETE',
  anyWrite: (r: RequestInfo) => r.method !== 'GET',
};
