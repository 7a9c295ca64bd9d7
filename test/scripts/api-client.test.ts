// The operator CLI's HTTP client (scripts/api-client.ts): a --api URL that answers, but is no pinwave
// gateway (a proxy's or another service's HTML page), is named as such, not a JSON parser's error.
import t from 'tap';
import { createServer } from 'node:http';
import { run } from '../../scripts/cli.ts';
import type { Io } from '../../scripts/args.ts';

t.test('a 200 answer that is not JSON: the error names the URL and says it is not a pinwave gateway answer', async (t) => {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!DOCTYPE html><html><body>welcome to nginx</body></html>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const api = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const err: string[] = [];
  const io: Io = { out: () => {}, err: (l) => void err.push(l), env: { PINWAVE_API: api, PINWAVE_TOKEN: 'x'.repeat(32) }, tty: false };
  t.equal(await run(['rollout', 'list'], io), 1);
  t.match(err.join('\n'), new RegExp(`^pinwave rollout: ${api.replace(/[.]/g, '\\.')}/v1/rollouts answered 200 with text/html, not JSON: is --api \\(or PINWAVE_API\\) a pinwave gateway\\?`));
  t.notMatch(err.join('\n'), /Unexpected token/);
});
