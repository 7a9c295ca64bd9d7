// The operator CLI's way to the gateway: its HTTP API, with the bearer token from
// PINWAVE_TOKEN. HTTP errors become ApiError with the gateway's own message.
import { UsageError, type Io } from './args.ts';

export const DEFAULT_API = 'http://127.0.0.1:8080';

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
    let url: URL;
    try {
      url = new URL(base);
    } catch {
      throw new UsageError(`--api expects a URL such as ${DEFAULT_API}, got "${base}"`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--api expects an http:// or https:// URL, got "${base}"`);
    this.base = url.href.replace(/\/$/, '');
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
        signal: AbortSignal.timeout(30_000),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
      throw new ApiError(0, `cannot reach the gateway at ${this.base}: ${cause}`);
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
