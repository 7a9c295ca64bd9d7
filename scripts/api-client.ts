// The operator CLI's way to the gateway: its HTTP API, with the bearer token from
// PINWAVE_TOKEN. HTTP errors become ApiError with the gateway's own message.
import { UsageError, type Io } from './args.ts';

export const DEFAULT_API = 'http://127.0.0.1:8080';
const REQUEST_TIMEOUT_MS = 30_000;

export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly body?: unknown) {
    super(message);
    this.name = 'ApiError';
  }
}

export class ApiClient {
  readonly base: string;
  readonly #token: string | undefined;

  constructor(base: string, token: string | undefined) {
    this.base = gatewayBase(base);
    this.#token = token;
  }

  async request<T>(method: string, path: string, body?: unknown, accept = 'application/json'): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.base + path, {
        method,
        headers: {
          accept,
          ...(body !== undefined && { 'content-type': 'application/json' }),
          ...(this.#token && { authorization: `Bearer ${this.#token}` }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (err) {
      throw new ApiError(0, `cannot reach the gateway at ${this.base}: ${whyUnreachable(this.base, err)}`);
    }
    const text = await res.text();
    if (!res.ok) {
      let parsed: { message?: string; error?: string } | undefined;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      const hint = res.status === 401 ? ' (set PINWAVE_TOKEN to an API token)' : '';
      throw new ApiError(res.status, `${res.status} ${parsed?.error ?? res.statusText}: ${parsed?.message ?? text.slice(0, 200)}${hint}`, parsed);
    }
    if (!accept.includes('json')) return text as T;
    if (!text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      const type = (res.headers.get('content-type') ?? 'no content type').split(';')[0];
      throw new ApiError(res.status, `${this.base}${path.split('?')[0]} answered ${res.status} with ${type}, not JSON: is --api (or PINWAVE_API) a pinwave gateway?`);
    }
  }

  get<T>(path: string, accept?: string) {
    return this.request<T>('GET', path, undefined, accept);
  }
  post<T>(path: string, body: unknown = {}) {
    return this.request<T>('POST', path, body);
  }
  delete<T>(path: string) {
    return this.request<T>('DELETE', path);
  }

  /** A list route's first page, or with `all` every page (`params` keeps the filters); `next`: the cursor of a page left unread. */
  async pages<T>(path: string, params: URLSearchParams, all: boolean): Promise<{ items: T[]; next: string | null }> {
    const items: T[] = [];
    let next: string | null = null;
    do {
      if (next !== null) params.set('cursor', next);
      const page: { items: T[]; next: string | null } = await this.get(`${path}?${params}`);
      items.push(...page.items);
      next = page.next;
    } while (all && next !== null);
    return { items, next };
  }
}

/**
 * `value` as the base of a gateway's HTTP API (no trailing slash), or a UsageError: not a URL, not
 * http or https, or a port no connection can go to (as whyUnreachable words it; an out-of-range port
 * makes the URL invalid, so it is looked for in the text).
 */
export function gatewayBase(value: string, usage?: string, flag = '--api (or PINWAVE_API)'): string {
  // fetch refuses a URL with credentials in it, and the message would show the password: the API
  // takes a bearer token instead (docs/configuration.md).
  const userinfo = /^(https?:\/\/)[^/?#@]*@/i.exec(value);
  if (userinfo) throw new UsageError(`${flag} takes no user or password in its URL, got "${userinfo[1]}***@${value.slice(userinfo[0].length)}": the API takes a bearer token (PINWAVE_TOKEN)`, usage);
  const bad = badPort(value, flag);
  if (bad) throw new UsageError(`cannot reach the gateway at ${value}: ${bad}`, usage);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`--api expects a URL such as ${DEFAULT_API}, got "${value}"`, usage);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--api expects an http:// or https:// URL, got "${value}"`, usage);
  return url.href.replace(/\/$/, '');
}

/** Why no connection can go to the port of an http(s) URL `base` (out of range, not a number, 0), or undefined. */
function badPort(base: string, flag: string): string | undefined {
  const port = /^https?:\/\/(?:[^/?#@]*@)?(?:\[[^\]]*\]|[^:/?#[\]]+):([^/?#@]*)(?:[/?#]|$)/i.exec(base)?.[1];
  if (port === undefined || port === '') return undefined;
  const range = `(a TCP port is 1 to 65535): check ${flag}`;
  if (!/^\d+$/.test(port)) return `port "${port}" is not a number ${range}`;
  if (Number(port) > 65535) return `port ${port} is out of range ${range}`;
  if (Number(port) === 0) return `port 0 is no port to connect to ${range}`;
  return undefined;
}

/**
 * Why a fetch of `base` got no answer, in an operator's words: the host:port it tried and what to
 * check, not undici's bare "fetch failed" (its cause holds the reason).
 */
export function whyUnreachable(base: string, err: unknown, timeoutMs = REQUEST_TIMEOUT_MS, flag = '--api (or PINWAVE_API)'): string {
  const bad = badPort(base, flag);
  if (bad) return bad;
  const url = new URL(base);
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  const at = `${url.hostname}:${port}`;
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code ?? (err as { name?: string }).name;
  switch (code) {
    case 'ECONNREFUSED':
      return `connection refused (ECONNREFUSED): nothing listens on ${at}. Is the gateway running, and is ${flag} its HTTP address (pinwave gateway --http-port, default 8080)?`;
    case 'ENOTFOUND': case 'EAI_AGAIN':
      return `no such host "${url.hostname}" (${code}): check ${flag}`;
    case 'ETIMEDOUT': case 'ENETUNREACH': case 'EHOSTUNREACH':
      return `${at} cannot be reached (${code}): check the address, and any firewall between here and the gateway`;
    // An MQTT listener, or a TLS one spoken to in plain HTTP, closes without an answer (undici: UND_ERR_SOCKET).
    case 'ECONNRESET': case 'EPIPE': case 'UND_ERR_SOCKET':
      return `${at} closed the connection (${code}): is it the gateway's HTTP port, and is the scheme (http or https) right?`;
    case 'TimeoutError':
      return `no answer from ${at} within ${timeoutMs / 1000} s`;
  }
  if (code?.startsWith('HPE_')) return `${at} answered, but not in HTTP (${code}): is it the gateway's HTTP port, and is the scheme (http or https) right?`;
  // Fetch (WHATWG fetch §2.9 "bad port") never connects to some ports, 6000 and 6665-6669 among them.
  if (cause?.message === 'bad port') return `port ${port} is one that fetch refuses to connect to (a "bad port" of the Fetch standard): serve the gateway's HTTP API on another port (pinwave gateway --http-port)`;
  return cause?.code ?? cause?.message ?? (err as Error).message;
}

/** The client for `--api URL` (or PINWAVE_API), token from PINWAVE_TOKEN. */
export function apiFrom(flag: string | undefined, io: Io): ApiClient {
  return new ApiClient(flag ?? io.env.PINWAVE_API ?? DEFAULT_API, io.env.PINWAVE_TOKEN);
}

/** Path segment for an id: encoded, so an id can never step outside its route. */
export const seg = (id: string) => encodeURIComponent(id);

/**
 * A bundle or rollout id as an operator gives it: whole, or a prefix the gateway resolves (at least
 * 8 characters, unique). The `…` (or `...`) that views put after a shortened id is dropped, so one
 * can be pasted as shown.
 */
export const idArg = (id: string) => id.trim().replace(/(…|\.\.\.)$/, '');
