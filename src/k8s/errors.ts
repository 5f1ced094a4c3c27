// Turns client-node failures into one-line messages. Never the raw ApiException: its message
// carries the request's headers and body, and with them possibly a token.
import { ApiException } from '@kubernetes/client-node';

export interface ApiFailure {
  status?: number;
  reason?: string;
  message: string;
}

export function apiFailure(error: unknown): ApiFailure {
  if (error instanceof ApiException) {
    const body = parseBody(error.body);
    const status = Number(error.code);
    return { status, reason: body?.reason, message: oneLine(body?.message ?? `HTTP ${status}`) };
  }
  if (error instanceof Error) {
    if (error.name === 'TimeoutError' || error.name === 'AbortError') return { message: 'the request timed out' };
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    return { message: oneLine(cause?.code ?? cause?.message ?? error.message) };
  }
  return { message: oneLine(String(error)) };
}

export function isNotFound(error: unknown): boolean {
  return error instanceof ApiException && Number(error.code) === 404;
}

export function isConflict(error: unknown): boolean {
  return error instanceof ApiException && Number(error.code) === 409;
}

/** Worth retrying: the server or the network failed, not the request. */
export function isTransient(error: unknown): boolean {
  if (error instanceof ApiException) return [429, 500, 502, 503, 504].includes(Number(error.code));
  return !(error instanceof ApiException);
}

function parseBody(body: unknown): { message?: string; reason?: string } | undefined {
  if (typeof body === 'object' && body !== null) return body as { message?: string; reason?: string };
  if (typeof body === 'string') {
    try {
      return JSON.parse(body);
    } catch {
      return { message: body.slice(0, 200) };
    }
  }
  return undefined;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
