// The console's calls to the API (browser only): the same /v1 routes and role checks as a script's,
// authenticated by the session cookie the browser sends by itself. Requests that change something
// carry the session's anti-CSRF token, held here in memory only (never in storage a script could
// read later, never in a URL). A 401 anywhere means the session has ended: the page shows sign-in.
import type { Me } from './types.ts';

let csrf: string | null = null;
let signedOut: () => void = () => {};

export function setSession(me: Me | null): void {
  csrf = me?.csrf ?? null;
}

/** Called whenever the API says the session has ended. */
export function onSignedOut(fn: () => void): void {
  signedOut = fn;
}

/** An API error: the status, the API's stable code, and its message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function call(method: string, path: string, o: { body?: unknown; accept?: string } = {}): Promise<Response> {
  const headers: Record<string, string> = { accept: o.accept ?? 'application/json' };
  if (method !== 'GET' && csrf) headers['x-pinwave-csrf'] = csrf;
  if (o.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, credentials: 'same-origin', cache: 'no-store', ...(o.body !== undefined && { body: JSON.stringify(o.body) }) });
  if (res.ok) return res;
  let code = 'PW_HTTP';
  let message = `${res.status} ${res.statusText}`;
  try {
    const e = (await res.json()) as { code?: string; message?: string };
    code = e.code ?? code;
    message = e.message ?? message;
  } catch {
    // not JSON: keep the status line
  }
  // A refused sign-in is the sign-in form's to show; any other 401 means the session has ended.
  if (res.status === 401 && !(method === 'POST' && path === '/ui/session')) signedOut();
  throw new ApiError(res.status, code, message);
}

export async function get<T>(path: string): Promise<T> {
  return (await call('GET', path)).json() as Promise<T>;
}

export async function getText(path: string, accept: string): Promise<string> {
  return (await call('GET', path, { accept })).text();
}

export async function send<T>(method: 'POST' | 'DELETE', path: string, body?: unknown): Promise<T | null> {
  const res = await call(method, path, body === undefined ? {} : { body });
  return res.status === 204 ? null : ((await res.json()) as T);
}

export interface StreamHandlers {
  event: (type: 'snapshot' | 'change', data: unknown) => void;
  /** the stream is connected (true) or trying again (false) */
  status: (live: boolean) => void;
  /** the server refused it for good (signed out, no such rollout) */
  closed: () => void;
}

/** A server-sent event stream; the browser reconnects by itself with Last-Event-ID, and the server replays what was missed. */
export function stream(path: string, on: StreamHandlers): { close(): void } {
  const es = new EventSource(path);
  const handle = (type: 'snapshot' | 'change') => (e: MessageEvent) => on.event(type, JSON.parse(e.data as string));
  es.addEventListener('snapshot', handle('snapshot'));
  es.addEventListener('change', handle('change'));
  es.addEventListener('open', () => on.status(true));
  es.addEventListener('error', () => {
    if (es.readyState === EventSource.CLOSED) on.closed();
    else on.status(false);
  });
  return { close: () => es.close() };
}
