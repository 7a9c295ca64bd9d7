// The operator CLI's HTTP client (scripts/api-client.ts): a --api URL that answers, but is no pinwave
// gateway (a proxy's or another service's HTML page), is named as such, not a JSON parser's error.
// A --api URL that gets no answer at all names the host:port and what to check, not "fetch failed".
import t from 'tap';
import { closedPort, standIn } from '../fixtures/stand-in.ts';
import { run } from '../../scripts/cli.ts';
import type { Io } from '../../scripts/args.ts';

t.test('a 200 answer that is not JSON: the error names the URL and says it is not a pinwave gateway answer', async (t) => {
  const api = await standIn(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!DOCTYPE html><html><body>welcome to nginx</body></html>');
  });
  const err: string[] = [];
  const io: Io = { out: () => {}, err: (l) => void err.push(l), env: { PINWAVE_API: api, PINWAVE_TOKEN: 'x'.repeat(32) }, tty: false };
  t.equal(await run(['rollout', 'list'], io), 1);
  t.match(err.join('\n'), new RegExp(`^pinwave rollout: ${api.replace(/[.]/g, '\\.')}/v1/rollouts answered 200 with text/html, not JSON: is --api \\(or PINWAVE_API\\) a pinwave gateway\\?`));
  t.notMatch(err.join('\n'), /Unexpected token/);
});

async function failing(args: string[]) {
  const err: string[] = [];
  const io: Io = { out: () => {}, err: (l) => void err.push(l), env: { PINWAVE_TOKEN: 'x'.repeat(32) }, tty: false };
  return { code: await run(args, io), stderr: err.join('\n') };
}

t.test('a gateway that is not there: the error names the host:port refused and what to check, not "fetch failed"', async (t) => {
  const port = await closedPort();
  const r = await failing(['rollout', 'list', '--api', `http://127.0.0.1:${port}`]);
  t.equal(r.code, 1);
  t.equal(r.stderr, `pinwave rollout: cannot reach the gateway at http://127.0.0.1:${port}: connection refused (ECONNREFUSED): nothing listens on 127.0.0.1:${port}. Is the gateway running, and is --api (or PINWAVE_API) its HTTP address (pinwave gateway --http-port, default 8080)?`);
});

t.test('a port fetch never connects to (a Fetch standard "bad port", e.g. 6000, 10080) is named as such, not "fetch failed"', async (t) => {
  for (const port of [6000, 10080]) {
    const r = await failing(['rollout', 'list', '--api', `http://127.0.0.1:${port}`]);
    t.equal(r.code, 1);
    t.match(r.stderr, new RegExp(`^pinwave rollout: cannot reach the gateway at http://127\\.0\\.0\\.1:${port}: port ${port} is one that fetch refuses to connect to \\(a "bad port" of the Fetch standard\\): serve the gateway's HTTP API on another port`));
    t.notMatch(r.stderr, /fetch failed/);
  }
});

t.test('a port no connection can go to (out of range, not a number, 0) names the URL and the port, before any request', async (t) => {
  for (const [port, why] of [
    ['99999', 'port 99999 is out of range (a TCP port is 1 to 65535)'],
    ['65536', 'port 65536 is out of range (a TCP port is 1 to 65535)'],
    ['abc', 'port "abc" is not a number (a TCP port is 1 to 65535)'],
    ['-1', 'port "-1" is not a number (a TCP port is 1 to 65535)'],
    ['0', 'port 0 is no port to connect to (a TCP port is 1 to 65535)'],
  ]) {
    const api = `http://127.0.0.1:${port}`;
    const r = await failing(['rollout', 'list', '--api', api]);
    t.equal(r.code, 2, `${api}: a usage error, as any --api that is no gateway address`);
    t.equal(r.stderr, `pinwave rollout: cannot reach the gateway at ${api}: ${why}: check --api (or PINWAVE_API)`, api);
  }
  const err: string[] = [];
  const io: Io = { out: () => {}, err: (l) => void err.push(l), env: { PINWAVE_API: 'http://[::1]:70000/', PINWAVE_TOKEN: 'x'.repeat(32) }, tty: false };
  t.equal(await run(['devices', 'list'], io), 2);
  t.equal(err.join('\n'), 'pinwave devices: cannot reach the gateway at http://[::1]:70000/: port 70000 is out of range (a TCP port is 1 to 65535): check --api (or PINWAVE_API)', 'from PINWAVE_API too');
  const sim = await failing(['sim', '--api', 'http://127.0.0.1:99999', '--devices', '1', '--group', 'g']);
  t.equal(sim.code, 2);
  t.match(sim.stderr, /^pinwave sim: cannot reach the gateway at http:\/\/127\.0\.0\.1:99999: port 99999 is out of range \(a TCP port is 1 to 65535\): check --api\n/);
});

t.test('an --api URL with a user or password is refused before any request, and its password is not shown', async (t) => {
  for (const api of ['http://alice:s3cret@127.0.0.1:8080', 'http://alice@127.0.0.1:8080/', 'https://:s3cret@gw.example:99999']) {
    const r = await failing(['rollout', 'list', '--api', api]);
    t.equal(r.code, 2, `${api}: a usage error`);
    t.match(r.stderr, /^pinwave rollout: --api \(or PINWAVE_API\) takes no user or password in its URL, got "https?:\/\/\*\*\*@[^"]+": the API takes a bearer token \(PINWAVE_TOKEN\)/, api);
    t.notMatch(r.stderr, /s3cret|alice/, 'neither the password nor the user is shown');
  }
  const sim = await failing(['sim', '--api', 'http://alice:s3cret@127.0.0.1:8080', '--devices', '1', '--group', 'g']);
  t.equal(sim.code, 2);
  t.match(sim.stderr, /^pinwave sim: --api takes no user or password in its URL, got "http:\/\/\*\*\*@127\.0\.0\.1:8080"/);
  t.notMatch(sim.stderr, /s3cret/);
});

t.test('whyUnreachable names a port no connection can go to, whatever the error fetch gave', async (t) => {
  const { whyUnreachable } = await import('../../scripts/api-client.ts');
  const refused = new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:0'), { code: 'ECONNREFUSED' }) });
  t.equal(whyUnreachable('http://127.0.0.1:0', refused), 'port 0 is no port to connect to (a TCP port is 1 to 65535): check --api (or PINWAVE_API)');
  t.equal(whyUnreachable('http://127.0.0.1:99999', new TypeError('Invalid URL'), 1000, '--api'), 'port 99999 is out of range (a TCP port is 1 to 65535): check --api', 'a base that is no URL, for its port, does not throw');
  const badPort = new TypeError('fetch failed', { cause: new Error('bad port') });
  t.match(whyUnreachable('http://127.0.0.1:10080', badPort), /^port 10080 is one that fetch refuses to connect to \(a "bad port" of the Fetch standard\)/);
});

t.test('an address that closes without an HTTP answer (the gateway\'s MQTT port, say) or answers in another protocol is named so, not UND_ERR_SOCKET', async (t) => {
  const { createServer } = await import('node:net');
  const sockets = new Set<import('node:net').Socket>();
  const track = (s: import('node:net').Socket) => (sockets.add(s), s.on('error', () => {}));
  // Reads the request and hangs up, as an MQTT listener does; or answers a CONNACK's bytes and hangs up.
  const quiet = createServer((s) => track(s).on('data', () => s.destroy()));
  const noisy = createServer((s) => track(s).on('data', () => s.end(Buffer.from([0x20, 0x02, 0x00, 0x05]))));
  for (const server of [quiet, noisy]) {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.teardown(() => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(resolve));
    });
  }
  const at = (s: typeof quiet) => `127.0.0.1:${(s.address() as { port: number }).port}`;
  const closed = await failing(['rollout', 'list', '--api', `http://${at(quiet)}`]);
  t.equal(closed.code, 1);
  t.match(closed.stderr, new RegExp(`^pinwave rollout: cannot reach the gateway at http://${at(quiet)}: ${at(quiet)} closed the connection \\((UND_ERR_SOCKET|ECONNRESET)\\): is it the gateway's HTTP port`));
  const sim = await failing(['sim', '--api', `http://${at(quiet)}`, '--devices', '1', '--group', 'g']);
  t.match(sim.stderr, new RegExp(`GET http://${at(quiet)}/v1/info: ${at(quiet)} closed the connection \\((UND_ERR_SOCKET|ECONNRESET)\\): is it the gateway's HTTP port`), 'sim --api too');
  const other = await failing(['rollout', 'list', '--api', `http://${at(noisy)}`]);
  t.match(other.stderr, new RegExp(`${at(noisy)} (answered, but not in HTTP \\(HPE_[A-Z_]+\\)|closed the connection \\([A-Z_]+\\)): is it the gateway's HTTP port`));
});
