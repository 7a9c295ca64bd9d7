// `pinwave sim --api URL` against an address that takes the connection but never answers: the
// command fails naming the request, instead of waiting for ever before the fleet even starts.
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
