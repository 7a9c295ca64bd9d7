// Local TLS endpoints for tests and the demo: TLS servers on 127.0.0.1 with freshly
// generated keys and self-signed certificates, standing in for the servers a fleet pins. A rotating
// endpoint holds several keys and serves one at a time: old key, then (after rotate()) the new one,
// so that a rollout of wrong pins produces real pin failures in real handshakes.
//
// Keys are made by node:crypto (P-256); node cannot write an X.509 certificate, so openssl signs it
// (`openssl req -x509`, in a temp dir removed at once). The private keys never leave the process.
//
//   const api = await startTlsEndpoint({ name: 'api.example.com', keys: 2 });
//   api.pins;            // ['sha256/…old', 'sha256/…new'], one per key, in serving order
//   api.backupPin;       // a key never served: the RFC 7469 §2.5 backup pin
//   api.callHome;        // { host: 'api.example.com', port: 443, connect: { host: '127.0.0.1', port: 40123 } }
//   api.rotate();        // new handshakes get the next key
//   await api.close();
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:tls';
import { formatPin, pinOfCertificate, pinOfSpki } from '../firmware-manifest/index.ts';
import type { CallHomeEndpoint } from './handshakes.ts';

export const OPENSSL = '/usr/bin/openssl';

export interface EndpointOptions {
  /** the host name devices pin and send as SNI; default "localhost" */
  name?: string;
  /** the port devices pin (the endpoint really listens on an ephemeral one); default 443 */
  port?: number;
  /** how many keys it rotates through; default 1 */
  keys?: number;
}

export interface TlsEndpoint {
  name: string;
  /** the port devices pin */
  port: number;
  /** where it really listens */
  address: { host: string; port: number };
  /** `sha256/<base64>` of each key, in serving order */
  pins: string[];
  /** a key that is generated and never served: the backup pin a pin set must carry */
  backupPin: string;
  /** index into `pins` of the key served now */
  readonly serving: number;
  /** what devices call home to */
  callHome: CallHomeEndpoint;
  /** serve the next key (new handshakes only); throws when there is none */
  rotate(): void;
  close(): Promise<void>;
}

/** A P-256 key and a self-signed certificate for `name` (and 127.0.0.1), PEM, with the key's pin. */
export function makeCertificate(name: string, days = 30): { key: string; cert: string; pin: string } {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const key = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const dir = mkdtempSync(join(tmpdir(), 'pinwave-endpoint-'));
  try {
    writeFileSync(join(dir, 'key.pem'), key, { mode: 0o600 });
    const san = /^[0-9.]+$/.test(name) ? `IP:${name}` : `DNS:${name},IP:127.0.0.1`;
    execFileSync(OPENSSL, ['req', '-x509', '-new', '-key', 'key.pem', '-out', 'cert.pem', '-subj', `/O=pinwave sim/CN=${name}`, '-days', String(days), '-addext', `subjectAltName=${san}`], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    const cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
    return { key, cert, pin: formatPin(pinOfCertificate(new X509Certificate(cert)).pin) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The pin of a fresh P-256 key that nobody will serve (a backup pin, or a deliberately wrong one). */
export function unservedPin(): string {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return formatPin(pinOfSpki(publicKey.export({ type: 'spki', format: 'der' })));
}

/** Starts a TLS endpoint on 127.0.0.1 (ephemeral port) serving the first of `keys` fresh keys. */
export async function startTlsEndpoint(o: EndpointOptions = {}): Promise<TlsEndpoint> {
  const name = o.name ?? 'localhost';
  const made = Array.from({ length: Math.max(1, o.keys ?? 1) }, () => makeCertificate(name));
  let serving = 0;
  const server = createServer({ key: made[0].key, cert: made[0].cert });
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  // A client that does not finish its handshake must not cost the endpoint anything.
  server.on('tlsClientError', () => {});
  server.on('secureConnection', (s) => s.end());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const pinnedPort = o.port ?? 443;
  return {
    name,
    port: pinnedPort,
    address: { host: '127.0.0.1', port },
    pins: made.map((m) => m.pin),
    backupPin: unservedPin(),
    get serving() {
      return serving;
    },
    callHome: { host: name, port: pinnedPort, connect: { host: '127.0.0.1', port } },
    rotate() {
      if (serving + 1 >= made.length) throw new Error(`endpoint ${name} has no key after key ${serving + 1} of ${made.length}`);
      serving++;
      server.setSecureContext({ key: made[serving].key, cert: made[serving].cert });
    },
    async close() {
      for (const s of sockets) s.destroy();
      if (server.listening) await new Promise((resolve) => server.close(resolve));
    },
  };
}
