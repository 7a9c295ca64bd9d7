// `pinwave pin`: pins of certificate files and of the chain a live TLS server serves, equal to openssl's.
import t from 'tap';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { run } from '../../scripts/cli.ts';
import { main } from '../../scripts/commands/pin.ts';
import type { Io } from '../../scripts/args.ts';
import { fetchServedChain } from '../../gateway/tls-probe.ts';
import { chain, openssl, recipePin, selfSigned } from '../fixtures/openssl.ts';

function fakeIo() {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (l) => void out.push(l), err: (l) => void err.push(l), env: {}, tty: false };
  return { io, out, err };
}

/** Listen on 127.0.0.1, an ephemeral port; on teardown drop its connections and close it. */
async function listen(t: Tap.Test, server: Server): Promise<number> {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s.on('error', () => {}).on('close', () => sockets.delete(s)));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    if (server.listening) await new Promise((resolve) => server.close(resolve));
  });
  return (server.address() as AddressInfo).port;
}

// one chain for the whole file: openssl key generation is the slow part
const dir = t.testdir();
const c = chain(dir);
const line = (cert: { pem: string; name: string }) => `sha256/${recipePin(cert.pem)}  CN=${cert.name}, O=pinwave test`;

t.test('pin FILE prints one line per certificate, in file order, as the openssl recipe', async (t) => {
  const { io, out, err } = fakeIo();
  t.equal(await main([c.file], io), 0);
  t.same(out, [line(c.leaf), line(c.intermediate), line(c.root)]);
  t.same(err, []);
});

t.test('pin FILE... takes several files, PEM or DER', async (t) => {
  const der = join(dir, 'leaf.der');
  writeFileSync(der, openssl(['x509', '-in', c.leaf.pem, '-outform', 'der'], dir));
  const { io, out } = fakeIo();
  t.equal(await main([c.root.pem, der, c.intermediate.pem], io), 0);
  t.same(out, [line(c.root), line(c.leaf), line(c.intermediate)]);
});

t.test('pin --json prints an array of {pin, subject}', async (t) => {
  const { io, out } = fakeIo();
  t.equal(await main(['--json', c.leaf.pem, c.intermediate.pem], io), 0);
  t.same(JSON.parse(out.join('\n')), [
    { pin: `sha256/${recipePin(c.leaf.pem)}`, subject: 'CN=leaf, O=pinwave test' },
    { pin: `sha256/${recipePin(c.intermediate.pem)}`, subject: 'CN=intermediate, O=pinwave test' },
  ]);
});

t.test('a certificate with an empty subject prints the pin alone', async (t) => {
  const d = t.testdir();
  const cert = selfSigned(d, 'anon', 'p256', '/');
  const { io, out } = fakeIo();
  t.equal(await main([cert.pem], io), 0);
  t.same(out, [`sha256/${recipePin(cert.pem)}`]);
});

t.test('a missing file, or a file without a certificate, fails with exit 1 naming the file', async (t) => {
  const d = t.testdir({ 'notes.txt': 'no certificate here\n', sub: {} });
  const cases: [string, RegExp][] = [
    [join(d, 'absent.pem'), /^pinwave pin: cannot read .*absent\.pem: no such file$/],
    [join(d, 'sub'), /^pinwave pin: cannot read .*sub: is a directory$/],
    [join(d, 'notes.txt', 'x.pem'), /^pinwave pin: cannot read .*notes\.txt\/x\.pem: ENOTDIR/],
    [join(d, 'notes.txt'), /^pinwave pin: .*notes\.txt: expected PEM "-----BEGIN CERTIFICATE-----" blocks or one DER certificate, found none$/],
  ];
  for (const [file, message] of cases) {
    const { io, out, err } = fakeIo();
    t.equal(await run(['pin', c.leaf.pem, file], io), 1, file);
    t.match(err[0], message);
    t.same(out, [], 'nothing printed for the good file before the bad one');
  }
});

t.test('pin --connect prints the pins of the chain the server serves, leaf first', async (t) => {
  const key = readFileSync(c.leaf.key);
  const cert = readFileSync(c.leaf.pem, 'utf8') + readFileSync(c.intermediate.pem, 'utf8');
  const server = createTlsServer({ key, cert });
  const port = await listen(t, server);
  // the server learns of the handshake after the client does (TLS 1.3): wait for it, not for the client
  const servername = async () => ((await once(server, 'secureConnection'))[0] as TLSSocket).servername;

  const plain = fakeIo();
  const sniPlain = servername();
  t.equal(await run(['pin', '--connect', `127.0.0.1:${port}`], plain.io), 0, plain.err.join('\n'));
  t.same(plain.out, [line(c.leaf), line(c.intermediate)], 'the root was not served and is not printed');
  t.notOk(await sniPlain, 'no SNI for an IP address');

  const sni = fakeIo();
  const sniGiven = servername();
  t.equal(await run(['pin', '--connect', `127.0.0.1:${port}`, '--servername', 'device.example', '--json', '--timeout', '5s'], sni.io), 0);
  t.same(JSON.parse(sni.out.join('\n')).map((p: { pin: string }) => p.pin), [c.leaf, c.intermediate].map((x) => `sha256/${recipePin(x.pem)}`));
  t.equal(await sniGiven, 'device.example', '--servername is sent as SNI');
});

t.test('an IP address given as the SNI name (forecast --endpoint 127.0.0.1:PORT --connect does so) is not sent, and warns of nothing', async (t) => {
  const server = createTlsServer({ key: readFileSync(c.root.key), cert: readFileSync(c.root.pem) });
  const port = await listen(t, server);
  const warnings: string[] = [];
  const onWarning = (w: Error) => void warnings.push(w.message);
  process.on('warning', onWarning);
  t.teardown(() => void process.off('warning', onWarning));
  for (const name of ['127.0.0.1', '::1']) {
    const seen = once(server, 'secureConnection');
    await fetchServedChain('127.0.0.1', port, { servername: name });
    t.notOk(((await seen)[0] as TLSSocket).servername, `no SNI for ${name} (RFC 6066 §3: a HostName is never a literal IP address)`);
  }
  await new Promise((resolve) => setImmediate(resolve));
  t.same(warnings, [], 'no deprecation warning on stderr');
});

t.test('fetchServedChain returns DER and pins, and stops at a self-signed root that is served', async (t) => {
  const server = createTlsServer({ key: readFileSync(c.root.key), cert: readFileSync(c.root.pem) });
  const port = await listen(t, server);
  const { certificates, pins } = await fetchServedChain('127.0.0.1', port);
  t.equal(certificates.length, 1);
  t.same(certificates[0], new Uint8Array(openssl(['x509', '-in', c.root.pem, '-outform', 'der'], dir)));
  t.equal(pins[0].text, `sha256/${recipePin(c.root.pem)}`);

  await t.rejects(fetchServedChain('', 443), { message: 'expected a host name or address, got ""' });
  await t.rejects(fetchServedChain('127.0.0.1', 0), { message: 'expected a port from 1 to 65535, got 0' });
});

t.test('pin --connect fails with exit 1 naming HOST:PORT when refused, cut off or silent', async (t) => {
  // refused: a port that was just free
  const closed = createTcpServer();
  const freePort = await listen(t, closed);
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const refused = fakeIo();
  t.equal(await run(['pin', '--connect', `127.0.0.1:${freePort}`], refused.io), 1);
  t.match(refused.err[0], `pinwave pin: could not read the certificate chain of 127.0.0.1:${freePort}: connection refused (ECONNREFUSED)`);

  // not TLS; hangs up at once; speaks only a TLS version we do not
  const http = await listen(t, createTcpServer((s) => s.end('HTTP/1.0 400 Bad Request\r\n\r\n')));
  const hangup = await listen(t, createTcpServer((s) => s.end()));
  const tls10 = await listen(t, createTlsServer({
    key: readFileSync(c.leaf.key), cert: readFileSync(c.leaf.pem), minVersion: 'TLSv1', maxVersion: 'TLSv1',
  }));
  for (const [port, message] of [
    [http, `127.0.0.1:${http}: not a TLS server (ERR_SSL_WRONG_VERSION_NUMBER)`],
    [hangup, `127.0.0.1:${hangup}: Client network socket disconnected before secure TLS connection was established`],
    [tls10, `127.0.0.1:${tls10}: tlsv1 alert protocol version (ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION)`],
  ] as const) {
    const cut = fakeIo();
    t.equal(await run(['pin', '--connect', `127.0.0.1:${port}`], cut.io), 1);
    t.equal(cut.err[0], `pinwave pin: could not read the certificate chain of ${message}`);
  }
  // a name that cannot resolve (ENOTFOUND, or EAI_AGAIN without DNS): the error still names it
  await t.rejects(fetchServedChain('pinwave-test.invalid', 443, { timeoutMs: 3000 }), { message: /pinwave-test\.invalid:443/ });

  // a server that accepts and never speaks
  const silentPort = await listen(t, createTcpServer());
  const started = Date.now();
  const slow = fakeIo();
  t.equal(await run(['pin', '--connect', `127.0.0.1:${silentPort}`, '--timeout', '1s'], slow.io), 1);
  t.equal(slow.err[0], `pinwave pin: timed out after 1000 ms waiting for a TLS handshake with 127.0.0.1:${silentPort}`);
  t.ok(Date.now() - started < 3000);

  const v6 = fakeIo();
  t.equal(await run(['pin', '--connect', `[::1]:${freePort}`, '--timeout', '2s'], v6.io), 1);
  t.match(v6.err[0], `[::1]:${freePort}`);
});

t.test('pin usage: --help exits 0; wrong, missing or conflicting flags exit 2 naming the flag', async (t) => {
  const help = fakeIo();
  t.equal(await run(['pin', '-h'], help.io), 0);
  t.match(help.out[0], /^Usage: pinwave pin FILE\.\.\./);

  const cases: [string[], RegExp][] = [
    [[], /expected FILE\.\.\. or --connect HOST:PORT/],
    [['--connect'], /--connect/],
    [['--connect', 'example.com'], /--connect expects HOST:PORT .*got "example\.com"/],
    [['--connect', 'example.com:0'], /--connect expects HOST:PORT/],
    [['--connect', 'example.com:65536'], /--connect expects HOST:PORT/],
    [['--connect', 'example.com:https'], /--connect expects HOST:PORT/],
    [['--connect', ':443'], /--connect expects HOST:PORT/],
    [['--connect', '::1:443'], /--connect expects HOST:PORT .*\[::1\]:443/],
    [['--connect', '[example.com]:443'], /--connect expects HOST:PORT/],
    [['--connect', 'a b:443'], /--connect expects HOST:PORT/],
    [['--connect', 'example.com:443', c.leaf.pem], /either FILE\.\.\. or --connect, not both/],
    [['--connect', 'example.com:443', '--timeout', 'soon'], /--timeout expects a duration/],
    [['--connect', 'example.com:443', '--timeout', '0s'], /--timeout must be from 1s to 1h, got "0s"/],
    [['--connect', 'example.com:443', '--timeout', '30d'], /--timeout must be from 1s to 1h, got "30d"/],
    [['--servername', 'x', c.leaf.pem], /--servername needs --connect/],
    [['--timeout', '5s', c.leaf.pem], /--timeout needs --connect/],
    [['--bogus', c.leaf.pem], /--bogus/],
  ];
  for (const [args, message] of cases) {
    const { io, err } = fakeIo();
    t.equal(await run(['pin', ...args], io), 2, args.join(' '));
    t.match(err[0], message);
    t.match(err.join('\n'), /Usage: pinwave pin/);
  }
});
