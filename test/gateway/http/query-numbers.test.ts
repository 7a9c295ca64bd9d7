// Numbers in a query string or a path arrive as text and are coerced to the schema's type
// (server.ts). Text that reads as a number too large for a double ("1e999") becomes Infinity, which
// Ajv's coercion lets past `minimum`/`maximum`; such a value is refused with a 400 naming the
// field, not carried into the store as a 500.
import t from 'tap';
import { apiHarness } from '../../fixtures/http.ts';

t.test('a query number that is not finite is a 400 naming the field', async (t) => {
  const a = await apiHarness(t);
  for (const url of ['/v1/devices?limit=1e999', '/v1/bundles?limit=1e999', '/v1/rollouts?limit=-1e999', '/v1/devices?limit=Infinity', '/v1/telemetry/pin-failures?limit=1e400']) {
    const res = await a.call('GET', url, { as: 'viewer' });
    t.equal(res.statusCode, 400, `${url}: 400`);
    t.equal(res.json().code, 'PW_INVALID', `${url}: PW_INVALID`);
    t.match(res.json().message, /querystring\/limit/, `${url}: names the field`);
  }
  t.equal((await a.call('GET', '/v1/devices?limit=1e3', { as: 'viewer' })).statusCode, 200, 'an ordinary exponent still reads as a number');
});
