import t from 'tap';
import { pinDiff } from '../../gateway/pin-diff.ts';

const p = (s: string) => `sha256/${Buffer.alloc(32, s).toString('base64')}`;
const base = {
  kind: 'baseline' as const,
  bundleId: 'ab'.repeat(32),
  seq: 3,
  endpoints: [
    { host: 'api.example.com', port: 443, pins: [p('a'), p('b')] },
    { host: 'old.example.com', port: 443, pins: [p('o'), p('q')] },
    { host: 'mqtt.example.com', port: 8883, pins: [p('m'), p('n')] },
  ],
};

t.test("per endpoint: pins added, removed and kept against the group's baseline, and endpoints added or removed", async (t) => {
  const d = pinDiff(
    [
      { host: 'api.example.com', port: 443, pins: [p('b'), p('c')] },
      { host: 'mqtt.example.com', port: 8883, pins: [p('n'), p('m')] },
      { host: 'new.example.com', port: 443, pins: [p('x'), p('y')] },
    ],
    base,
  );
  t.same(d, {
    against: { kind: 'baseline', bundleId: 'ab'.repeat(32), seq: 3 },
    endpoints: [
      { host: 'api.example.com', port: 443, change: 'changed', added: [p('c')], removed: [p('a')], kept: [p('b')] },
      { host: 'mqtt.example.com', port: 8883, change: 'unchanged', added: [], removed: [], kept: [p('n'), p('m')] },
      { host: 'new.example.com', port: 443, change: 'added', added: [p('x'), p('y')], removed: [], kept: [] },
      { host: 'old.example.com', port: 443, change: 'removed', added: [], removed: [p('o'), p('q')], kept: [] },
    ],
  });
});

t.test('an endpoint is its host and port: the same host on another port is another endpoint; host case does not matter', async (t) => {
  const d = pinDiff([{ host: 'API.example.com', port: 8443, pins: [p('a'), p('b')] }, { host: 'API.example.com', port: 443, pins: [p('a'), p('b')] }], { ...base, endpoints: base.endpoints.slice(0, 1) });
  t.same(d.endpoints.map((e) => [e.port, e.change]), [[8443, 'added'], [443, 'unchanged']]);
});

t.test('without a baseline every endpoint is added', async (t) => {
  const d = pinDiff([{ host: 'api.example.com', port: 443, pins: [p('a'), p('b')] }], { kind: 'none' });
  t.same(d, { against: { kind: 'none' }, endpoints: [{ host: 'api.example.com', port: 443, change: 'added', added: [p('a'), p('b')], removed: [], kept: [] }] });
});

t.test("against a firmware manifest's initial pins: named by model and firmware, diffed the same way", async (t) => {
  const d = pinDiff([{ host: 'api.example.com', port: 443, pins: [p('b')] }], { kind: 'manifest', model: 'th-100', firmware: '1.0.0', endpoints: [{ host: 'api.example.com', port: 443, pins: [p('a'), p('b')] }] });
  t.same(d, { against: { kind: 'manifest', model: 'th-100', firmware: '1.0.0' }, endpoints: [{ host: 'api.example.com', port: 443, change: 'changed', added: [], removed: [p('a')], kept: [p('b')] }] });
});
