// `pinwave pin FILE...` and `pinwave pin --connect HOST:PORT`: the RFC 7469 pin-sha256 of each
// certificate in PEM/DER files or in the chain a live endpoint serves (docs/architecture.md §2), one line each:
// `sha256/<base64>  <subject>`, the same pin the openssl recipe prints.
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { UsageError, durationFlag, parse, type Io } from '../args.ts';
import { pinsOfCertificates, type CertificatePin } from '../../firmware-manifest/pins.ts';
import { fetchServedChain } from '../../gateway/tls-probe.ts';

const USAGE = `Usage: pinwave pin FILE... [--json]
       pinwave pin --connect HOST:PORT [--servername NAME] [--timeout DURATION] [--json]

Print the pin-sha256 of each certificate, one line each: sha256/<base64>  <subject>

  FILE...              PEM files (every certificate in a chain file, in file order) or DER certificates
  --connect HOST:PORT  read the chain a TLS server serves instead (not verified: read, not trusted);
                       an IPv6 address is written [::1]:443
  --servername NAME    SNI name to send (default: HOST, none for an IP address)
  --timeout DURATION   give up on --connect after this long, e.g. 5s (default 10s)
  --json               print a JSON array of {"pin", "subject"}
  -h, --help           print this help`;

export async function main(args: string[], io: Io): Promise<number> {
  const { values, positionals: files } = parse(
    args,
    {
      connect: { type: 'string' },
      servername: { type: 'string' },
      timeout: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    USAGE,
    true,
  );
  if (values.help) {
    io.out(USAGE);
    return 0;
  }

  let pins: CertificatePin[];
  if (values.connect !== undefined) {
    if (files.length > 0) throw new UsageError('give either FILE... or --connect, not both', USAGE);
    const { host, port } = hostPort(values.connect);
    const timeoutMs = values.timeout === undefined ? undefined : durationFlag(values.timeout, 'timeout', USAGE) * 1000;
    // 0s gives up before the handshake; beyond 2^31 ms a timer fires at once, with the same result
    if (timeoutMs !== undefined && (timeoutMs < 1000 || timeoutMs > 3_600_000)) throw new UsageError(`--timeout must be from 1s to 1h, got "${values.timeout}"`, USAGE);
    ({ pins } = await fetchServedChain(host, port, { servername: values.servername, timeoutMs }));
  } else {
    if (values.servername !== undefined) throw new UsageError('--servername needs --connect', USAGE);
    if (values.timeout !== undefined) throw new UsageError('--timeout needs --connect', USAGE);
    if (files.length === 0) throw new UsageError('expected FILE... or --connect HOST:PORT', USAGE);
    pins = [];
    // Everything is read before anything is printed: a bad file never leaves a partial list.
    for (const file of files) pins.push(...pinsOfFile(file, await read(file)));
  }

  if (values.json) {
    io.out(JSON.stringify(pins.map(({ text, subject }) => ({ pin: text, subject })), null, 2));
  } else {
    for (const { text, subject } of pins) io.out(subject ? `${text}  ${subject}` : text);
  }
  return 0;
}

/** `host:port`, `[v6]:port`; a UsageError naming --connect otherwise. */
export function hostPort(value: string, flag = '--connect', usage = USAGE): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(value);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!m || !host || (m[1] !== undefined && isIP(m[1]) !== 6) || port < 1 || port > 65535) {
    throw new UsageError(`${flag} expects HOST:PORT with a port from 1 to 65535 (IPv6 as [::1]:443), got "${value}"`, usage);
  }
  return { host, port };
}

const READ_ERRORS: Record<string, string> = {
  ENOENT: 'no such file',
  EISDIR: 'is a directory',
  EACCES: 'permission denied',
};

export async function read(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    const { code, message } = err as NodeJS.ErrnoException;
    throw new Error(`cannot read ${file}: ${READ_ERRORS[code!] ?? message}`);
  }
}

export function pinsOfFile(file: string, bytes: Buffer): CertificatePin[] {
  try {
    return pinsOfCertificates(bytes);
  } catch (err) {
    throw new Error(`${file}: ${(err as Error).message}`);
  }
}
