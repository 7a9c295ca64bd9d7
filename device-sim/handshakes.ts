// Real TLS handshakes for simulated devices' pin checks: a device "calls home" to an
// endpoint with `tls.connect`, and the pins of the chain it was served are checked with checkChain().
//
// Many devices pinning one endpoint share one handshake's result within a short window, rather than
// opening thousands of identical TLS connections: what an endpoint serves does not depend on which
// device asks. `share: false` (`--handshake-each`) gives every check its own handshake, for a
// firmware engineer who wants the real per-device cost or an endpoint that serves differently per
// connection. Concurrent handshakes are capped either way, so a fleet cannot exhaust file descriptors.
//
// A health check (docs/pin-safety.md) asks with `fresh: true`: its own handshake, started after it
// asked, never a result shared from before, so a verdict under new pins is about what the endpoint
// serves now. Its result is still shared with the call-home checks that follow.
//
// The chain is read, not trusted: CA validation is not simulated (a device does it besides pinning;
// a pin check is what a rollout of wrong pins breaks). Verification is off and the trust store empty.
//
//   const handshakes = new Handshakes();
//   const h = await handshakes.get({ host: 'api.example.com', port: 443, connect: { host: '127.0.0.1', port: 8443 } });
//   if (h.ok) checkChain(state, 'api.example.com', 443, h.pins, now);
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { connect, createSecureContext, type SecureContext } from 'node:tls';
import { endpointText, pinOfCertificate } from '../firmware-manifest/index.ts';

/** An endpoint a device calls home to: pinned as host:port, dialled at `connect` when given. */
export interface CallHomeEndpoint {
  /** the host name the pins are for (and the SNI name unless `servername` says otherwise) */
  host: string;
  /** the port the pins are for */
  port: number;
  /** where to dial instead, e.g. a local endpoint standing in for a real one; default host:port */
  connect?: { host: string; port: number };
  /** SNI name to send; default `host`, none when it is an IP address (RFC 6066 §3) */
  servername?: string;
}

/** What one handshake saw: the served chain's pins (base64 pin-sha256, leaf first), or why it failed. `at` is when it completed, ms. */
export type HandshakeResult = { ok: true; pins: string[]; at: number } | { ok: false; error: string; at: number };

export interface HandshakeOptions {
  /** share one handshake's result between checks of the same endpoint within `windowMs`; default true */
  share?: boolean;
  /** how long a shared result stands, ms; default 1000 */
  windowMs?: number;
  /** give up on a handshake after this long, ms; default 5000 */
  timeoutMs?: number;
  /** handshakes in flight at once; default 64 */
  concurrency?: number;
  /** the clock the window is measured on, epoch ms; default Date.now */
  now?: () => number;
}

export interface HandshakeCounters {
  /** real TLS handshakes started */
  performed: number;
  /** checks answered from a shared result */
  shared: number;
  /** handshakes that failed (refused, timed out, not TLS) */
  failed: number;
}

export class Handshakes {
  readonly #share: boolean;
  readonly #windowMs: number;
  readonly #timeoutMs: number;
  readonly #limit: number;
  readonly #now: () => number;
  readonly #recent = new Map<string, { at: number; result: Promise<HandshakeResult> }>();
  readonly #waiting: Array<() => void> = [];
  #inFlight = 0;
  readonly #counters: HandshakeCounters = { performed: 0, shared: 0, failed: 0 };

  constructor(o: HandshakeOptions = {}) {
    this.#share = o.share ?? true;
    this.#windowMs = o.windowMs ?? 1000;
    this.#timeoutMs = o.timeoutMs ?? 5000;
    this.#limit = Math.max(1, o.concurrency ?? 64);
    this.#now = o.now ?? Date.now;
  }

  get counters(): HandshakeCounters {
    return { ...this.#counters };
  }

  /**
   * The served chain of `endpoint`: a fresh handshake, or a shared one still inside its window (or in
   * flight). `fresh`: always a handshake of its own, started now.
   */
  get(endpoint: CallHomeEndpoint, o: { fresh?: boolean } = {}): Promise<HandshakeResult> {
    const target = endpoint.connect ?? { host: endpoint.host, port: endpoint.port };
    const servername = endpoint.servername ?? (isIP(endpoint.host) ? undefined : endpoint.host);
    const key = `${target.host}|${target.port}|${servername ?? ''}`;
    if (this.#share && !o.fresh) {
      const hit = this.#recent.get(key);
      if (hit && this.#now() - hit.at < this.#windowMs) {
        this.#counters.shared++;
        return hit.result;
      }
    }
    const result = this.#limited(() => tlsHandshake(target.host, target.port, { servername, timeoutMs: this.#timeoutMs })).then(
      (pins): HandshakeResult => ({ ok: true, pins, at: this.#now() }),
      (err: Error): HandshakeResult => {
        this.#counters.failed++;
        return { ok: false, error: err.message, at: this.#now() };
      },
    );
    if (this.#share) {
      // The window starts when the handshake completes; until then every asker shares the one in flight.
      const entry = { at: Infinity, result };
      this.#recent.set(key, entry);
      void result.then((r) => (entry.at = r.at));
    }
    return result;
  }

  /** Forgets shared results, so the next check of each endpoint handshakes again (after an endpoint rotates its key). */
  forget(): void {
    this.#recent.clear();
  }

  async #limited<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#inFlight >= this.#limit) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.#inFlight++;
    this.#counters.performed++;
    try {
      return await fn();
    } finally {
      this.#inFlight--;
      this.#waiting.shift()?.();
    }
  }
}

// One client context for every handshake: `connect({ ca })` would build a fresh OpenSSL context per
// connection, which cost as much CPU as the handshake itself (bench-sim's revert phase). The context
// holds no session cache for clients (node resumes only when handed a session), so every handshake
// stays a full one, as a device's first connection after applying new pins is.
let clientContext: SecureContext | null = null;

/** One real TLS handshake: the pins of the chain `host:port` serves, leaf first (base64, no prefix). */
export function tlsHandshake(host: string, port: number, o: { servername?: string; timeoutMs?: number } = {}): Promise<string[]> {
  const where = endpointText(host, port);
  clientContext ??= createSecureContext({ ca: [] });
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, servername: o.servername, rejectUnauthorized: false, secureContext: clientContext! });
    let done = false;
    const finish = (err: Error | null, pins?: string[]) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.on('error', () => {}); // a late reset after we are done is nobody's business
      socket.destroy();
      if (err) reject(err);
      else resolve(pins!);
    };
    const timer = setTimeout(() => finish(new Error(`${where}: no TLS handshake within ${o.timeoutMs ?? 5000} ms`)), o.timeoutMs ?? 5000);
    socket.once('secureConnect', () => {
      try {
        finish(null, servedPins(socket.getPeerX509Certificate()));
      } catch (err) {
        /* c8 ignore next: a served certificate OpenSSL handshook with but node cannot parse */
        finish(new Error(`${where}: ${(err as Error).message}`));
      }
    });
    socket.once('error', (err: NodeJS.ErrnoException) => finish(new Error(`${where}: ${err.code ?? err.message}`)));
    socket.once('close', () => finish(new Error(`${where}: closed before the TLS handshake completed`)));
  });
}

/** Longer served chains than this are cut: a device reads a bounded chain. */
const MAX_CHAIN = 10;
/** Certificates seen → their pins: a pin is a pure function of the certificate's bytes (docs/architecture.md §2). */
const pinCache = new Map<string, string>();
const MAX_CACHED = 1024;

/**
 * The pins of the served chain: leaf, then each issuer in turn, until the chain ends or a certificate
 * is its own issuer (a root). Read as X509Certificate objects, not getPeerCertificate(true)'s detailed
 * records, and each certificate's pin computed once: together they cost as much as the handshake.
 */
function servedPins(leaf: X509Certificate | undefined): string[] {
  const pins: string[] = [];
  for (let cert = leaf, i = 0; cert && i < MAX_CHAIN; i++) {
    const key = cert.raw.toString('latin1');
    let pin = pinCache.get(key);
    if (pin === undefined) {
      pin = Buffer.from(pinOfCertificate(cert).pin).toString('base64');
      if (pinCache.size >= MAX_CACHED) pinCache.clear();
      pinCache.set(key, pin);
    }
    pins.push(pin);
    const issuer = cert.issuerCertificate;
    if (!issuer || issuer.raw.equals(cert.raw)) break;
    cert = issuer;
  }
  return pins;
}
