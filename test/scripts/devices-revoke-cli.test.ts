// `pinwave devices revoke` against a live gateway: revoking is idempotent (README, HTTP API): a
// second revoke changes nothing and says so, exit 0, and the first revocation's time stands.
import t from 'tap';
import { liveCli } from '../fixtures/cli.ts';

t.test('revoking a device twice: the second says it was revoked already, when, and that nothing changed', async (t) => {
  const { h, pinwave } = await liveCli(t);
  t.equal((await h.call('POST', '/v1/devices', { body: { devices: [{ id: 'th-1', group: 'thermostats' }] } })).statusCode, 201);
  const first = await pinwave(['devices', 'revoke', 'th-1']);
  t.same(first, { code: 0, stdout: 'revoked th-1: disconnected, and refused from now on', stderr: '' });
  const at = new Date(h.clock.t).toISOString();

  h.clock.t += 60_000;
  const again = await pinwave(['devices', 'revoke', 'th-1']);
  t.same(again, { code: 0, stdout: `th-1 was revoked already (at ${at}): nothing changed, it stays refused`, stderr: '' });
  const json = await pinwave(['devices', 'revoke', 'th-1', '--json']);
  t.equal(json.code, 0);
  t.match(JSON.parse(json.stdout), { id: 'th-1', state: 'revoked', revokedAt: Date.parse(at) }, "the API's record: the first revocation's time");

  const missing = await pinwave(['devices', 'revoke', 'nope']);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /^pinwave devices: 404 Not Found: /);
});
