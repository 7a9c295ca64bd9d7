// Reads the certificate chain a TLS endpoint serves, and its pins (docs/architecture.md §2; §6 pre-flight:
// "does a pin in the new set match the key the server presents now?"). I/O at the edge.
//
// We read what is served, we do not trust it: verification is off, and the trust store is empty so
// Node cannot append a root from this machine's store that the server never sent. Node builds the
// chain by issuer from the served certificates, so the order is leaf first, and a served certificate
// that is in no issuer relation with the leaf's chain is not reported.
//
//   const { certificates, pins } = await fetchServedChain('example.com', 443);
import { isIP } from 'node:net';
import { connect, type DetailedPeerCertificate } from 'node:tls';
import { pinsOfCertificates, type CertificatePin } from '../firmware-manifest/pins.ts';
import { endpointText } from '../firmware-manifest/endpoint-text.ts';

export interface ProbeOptions {
  /** SNI name to send; default: `host`, or none when `host` is an IP address (RFC 6066 §3) */
  servername?: string;
  /** give up after this many milliseconds (connect and handshake together); default 10000 */
  timeoutMs?: number;
}

export interface ServedChain {
  /** DER certificates, leaf first */
  certificates: Uint8Array[];
  /** their pins, in the same order */
  pins: CertificatePin[];
}

export function fetchServedChain(host: string, port: number, options: ProbeOptions = {}): Promise<ServedChain> {
  const where = endpointText(host, port);
  if (!host) return Promise.reject(new Error(`expected a host name or address, got ""`));
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    return Promise.reject(new Error(`expected a port from 1 to 65535, got ${port}`));
  }
  const timeoutMs = options.timeoutMs ?? 10_000;
  // RFC 6066 §3: a literal IP address is not a HostName, so none is sent, whoever named it
  const name = options.servername ?? host;
  const servername = isIP(name) ? undefined : name;

  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, servername, rejectUnauthorized: false, ca: [] });
    let settled = false;
    const settle = (err: Error | undefined, chain?: ServedChain) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // A late reset from the peer after we are done is none of the caller's business.
      socket.on('error', () => {});
      if (err) {
        socket.destroy();
        reject(err);
      } else {
        // close_notify, politely; but a peer that never closes must not keep the process alive
        socket.end();
        setTimeout(() => socket.destroy(), 1000).unref();
        resolve(chain!);
      }
    };
    const timer = setTimeout(
      () => settle(new Error(`timed out after ${timeoutMs} ms waiting for a TLS handshake with ${where}`)),
      timeoutMs,
    );

    socket.once('secureConnect', () => {
      const certificates = servedChain(socket.getPeerCertificate(true));
      /* c8 ignore start: a certificate-less handshake (PSK, anonymous) is one this client never offers,
         and a served key that node cannot read is one OpenSSL could not have checked a handshake with */
      try {
        if (certificates.length === 0) throw new Error(`${where} served no certificate`);
        settle(undefined, { certificates, pins: certificates.flatMap((der) => pinsOfCertificates(der)) });
      } catch (err) {
        settle(err as Error);
      }
      /* c8 ignore stop */
    });
    socket.once('error', (err: NodeJS.ErrnoException & { reason?: string }) => {
      // OpenSSL errors carry a short `reason` beside a multi-line message; system errors name their code.
      const code = String(err.code);
      const reason = code in REASONS ? `${REASONS[code]} (${code})` : err.reason ? `${err.reason} (${code})` : err.message;
      settle(new Error(`could not read the certificate chain of ${where}: ${reason}`));
    });
    socket.once('close', () => settle(new Error(`${where} closed the connection before the TLS handshake completed`)));
  });
}

const REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EHOSTUNREACH: 'host unreachable',
  ERR_SSL_WRONG_VERSION_NUMBER: 'not a TLS server',
};

/** Leaf, then each issuer in turn, until the chain ends or a certificate names itself (a root). */
function servedChain(leaf: DetailedPeerCertificate): Uint8Array[] {
  const chain: Uint8Array[] = [];
  const seen = new Set<DetailedPeerCertificate>();
  for (let cert: DetailedPeerCertificate | undefined = leaf; cert?.raw && !seen.has(cert); cert = cert.issuerCertificate) {
    seen.add(cert);
    chain.push(new Uint8Array(cert.raw));
  }
  return chain;
}
