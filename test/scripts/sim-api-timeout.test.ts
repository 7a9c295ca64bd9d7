// `pinwave sim --api URL` against an address that takes the connection but never answers: the
// command fails naming the request, instead of waiting for ever before the fleet even starts; and
// one whose port is closed, naming the host:port and what to check.
import t from 'tap';
import { createServer, type Socket } from 'node:net';
import { main } from '../../scripts/commands/sim.ts';
import type { Io } from '../../scripts/args.ts';

t.test('an API that never answers: sim --api gives up with an error naming the request', async (t) => {
  const sockets = new Set<Socket>();
  const server = createServer((s) => void sockets.add(s)); // accepts, reads, never answers
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const api = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const io: Io = { out: () => {}, err: () => {}, env: { PINWAVE_TOKEN: 'x'.repeat(32) }, tty: false };
  const started = Date.now();
  await t.rejects(main(['--api', api, '--devices', '1', '--group', 'g'], io, { requestTimeoutMs: 300 }), { message: new RegExp(`GET ${api}/v1/info: no answer within 0\\.3 s`) });
  t.ok(Date.now() - started < 5000, 'promptly');
});

t.test('an API port that is closed: sim --api names the host:port refused and what to check', async (t) => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  const io: Io = { out: () => {}, err: () => {}, env: { PINWAVE_TOKEN: 'x'.repeat(32) }, tty: false };
  await t.rejects(main(['--api', `http://127.0.0.1:${port}`, '--devices', '1', '--group', 'g'], io), {
    message: `GET http://127.0.0.1:${port}/v1/info: connection refused (ECONNREFUSED): nothing listens on 127.0.0.1:${port}. Is the gateway running, and is --api its HTTP address (pinwave gateway --http-port, default 8080)?`,
  });
});
