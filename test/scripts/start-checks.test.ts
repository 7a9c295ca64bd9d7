// The start-up check of `pinwave gateway` (scripts/start-checks.ts) binds every listen address and
// lets it go again before the store is opened.
import t from 'tap';
import net, { type Server, type Socket } from 'node:net';
import { syncBuiltinESMExports } from 'node:module';
import { listenProblem } from '../../scripts/start-checks.ts';

t.test('a device that connects while the check holds a port is hung up on, and the check answers', async (t) => {
  // The check's server, once listening, is connected to before its listen callback runs: a fleet
  // reconnecting to a restarting gateway does that, and nothing but the check can end the socket.
  const create = net.createServer;
  let client: Socket | null = null;
  net.createServer = ((...args: Parameters<typeof create>) => {
    const server: Server = create(...args);
    const listen = server.listen.bind(server) as (o: object, cb: () => void) => Server;
    server.listen = ((o: object, cb: () => void) =>
      listen(o, () => {
        server.once('connection', () => cb());
        client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
        client.on('error', () => {});
      })) as typeof server.listen;
    return server;
  }) as typeof create;
  syncBuiltinESMExports();
  t.teardown(() => {
    net.createServer = create;
    syncBuiltinESMExports();
    (client as Socket | null)?.destroy();
  });

  // Without the hang-up this never resolves: the check waits on the device (tap's timeout fails it).
  const problem = await listenProblem([{ host: '127.0.0.1', port: 0, portName: '--http-port 0', hostName: '--host 127.0.0.1' }]);
  t.equal(problem, null, 'the address can be bound');
  t.ok(client, 'a device connected during the check');
  await new Promise((resolve) => (client!.destroyed ? resolve(null) : client!.once('close', resolve)));
  t.pass('and the check closed its connection');
});
