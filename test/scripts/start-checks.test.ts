// The start-up check of `pinwave gateway` (scripts/start-checks.ts) binds every listen address and
// lets it go again before the store is opened, on the addresses the real listen will bind.
import t from 'tap';
import net, { type Server, type Socket } from 'node:net';
import { syncBuiltinESMExports } from 'node:module';
import { clashProblem, listenProblem } from '../../scripts/start-checks.ts';

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

/** Holds `host`:`port` (0: any free one) for the test; its port. */
async function hold(t: { teardown(fn: () => unknown): void }, host: string, port = 0): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen({ host, port }, resolve));
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  return (server.address() as net.AddressInfo).port;
}

/** Whether this system lets `a` and `b` be bound on one port at once (an IPv6 wildcard takes IPv4 too, unless bindv6only). */
async function coexist(a: string, b: string): Promise<boolean> {
  const first = net.createServer();
  await new Promise<void>((resolve) => first.listen({ host: a, port: 0 }, resolve));
  const second = net.createServer();
  const ok = await new Promise<boolean>((resolve) => second.once('error', () => resolve(false)).listen({ host: b, port: (first.address() as net.AddressInfo).port }, () => resolve(true)));
  await Promise.all([first, ...(ok ? [second] : [])].map((s) => new Promise((resolve) => s.close(resolve))));
  return ok;
}

t.test('listeners on 0.0.0.0 and :: with one port are judged as the system judges them, and a clash names the gateway\'s own listener', async (t) => {
  const listeners = [
    { host: '0.0.0.0', port: 0, portName: '--mqtt-port 0', hostName: '--host 0.0.0.0' },
    { host: '::', port: 0, portName: 'config http.port 0', hostName: 'config http.host ::' },
  ];
  t.equal(await listenProblem(listeners), null, 'any free port on each: no clash');
  // A port free on both wildcards a moment ago: the check takes it again at once.
  const free = await new Promise<number>((resolve) => {
    const s = net.createServer().listen({ host: '::', port: 0 }, () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const both = listeners.map((l) => ({ ...l, port: free, portName: l.portName.replace(/0$/, String(free)) }));
  const expected = (await coexist('0.0.0.0', '::')) ? null : `config http.port ${free}: [::]:${free} is taken by --mqtt-port ${free} already: give each listener a port of its own`;
  t.equal(await listenProblem(both), expected, 'not "in use" by someone else: the gateway\'s own two listeners');
});

t.test(':: written another way (::0, 0:0:0:0:0:0:0:0) is the same wildcard: beside 0.0.0.0 on one port it clashes as :: does', async (t) => {
  const clash = !(await coexist('0.0.0.0', '::0'));
  for (const host of ['::0', '0:0:0:0:0:0:0:0']) {
    const listeners = [
      { host: '0.0.0.0', port: 18830, portName: '--mqtt-port 18830', hostName: '--host 0.0.0.0' },
      { host, port: 18830, portName: 'config http.port 18830', hostName: `config http.host ${host}` },
    ];
    t.equal(await clashProblem(listeners), clash ? `config http.port 18830: [${host}]:18830 is taken by --mqtt-port 18830 already: give each listener a port of its own` : null, host);
  }
});

t.test('an HTTP listener on localhost is checked on every address localhost resolves to, as fastify binds them all', async (t) => {
  const port = await hold(t, '::1');
  const lookup = async (host: string) => (host === 'localhost' ? [{ address: '127.0.0.1' }, { address: '::1' }] : [{ address: host }]);
  const http = { host: 'localhost', port, portName: `--http-port ${port}`, hostName: '--http-host localhost', every: true };
  t.equal(await listenProblem([http], { lookup }), `--http-port ${port}: address [::1]:${port} is already in use (another gateway or broker? give another port, or 0 for any free one)`);
  const mqtt = { host: 'localhost', port, portName: `--mqtt-port ${port}`, hostName: '--host localhost' };
  t.equal(await listenProblem([mqtt], { lookup }), null, 'MQTT (net.Server) binds the first address only: 127.0.0.1 is free');
  // A further address the machine does not have is let go, as fastify lets it go.
  const noV6 = async () => [{ address: '127.0.0.1' }, { address: 'fd00::dead:beef' }];
  t.equal(await listenProblem([{ ...http, port: 0 }], { lookup: noV6 }), null);
});

t.test("0.0.0.0 and ::1 may share a port: when someone else holds ::1, the check says so instead of blaming the gateway's own 0.0.0.0", async (t) => {
  const port = await hold(t, '::1');
  const listeners = [
    { host: '0.0.0.0', port, portName: `--mqtt-port ${port}`, hostName: '--host 0.0.0.0' },
    { host: '::1', port, portName: `--http-port ${port}`, hostName: '--http-host ::1' },
  ];
  t.equal(await listenProblem(listeners), `--http-port ${port}: address [::1]:${port} is already in use (another gateway or broker? give another port, or 0 for any free one)`);
});
