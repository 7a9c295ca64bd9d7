// The manifests the gateway knows (the config's win over pushed ones) and the initial pins of a
// group, per endpoint the union over its models (docs/architecture.md §4, §6).
import t from 'tap';
import { ManifestRegistry } from '../../gateway/manifest-registry.ts';
import { initialPins, missingManifestMessage } from '../../gateway/initial-pins.ts';
import type { FirmwareManifest } from '../../firmware-manifest/index.ts';
import { pin } from '../fixtures/gateway.ts';

const KEY = 'Bk3iAsEB2V12GK2VSF14vfCO+F2kR3YGhmMA5onUoC0=';
const th: FirmwareManifest = { model: 'th-100', firmware: '1.0.0', trustedKeys: [KEY], pins: [{ host: 'api.example.com', pins: [pin('a'), pin('b')] }] };
const lk: FirmwareManifest = {
  model: 'lk-200',
  firmware: '2.1',
  trustedKeys: [KEY],
  pins: [
    { host: 'api.example.com', pins: [pin('b'), pin('c')], mode: 'report-only' },
    { host: 'lock.example.com', port: 8443, pins: [pin('l1'), pin('l2')], mode: 'report-only' },
  ],
  expiryPolicy: 'ca-fallback',
};
const by = { by: 'adam', at: 1 };

t.test("the config's manifests win; an identical push is a no-op; a pushed one may be replaced", async (t) => {
  const reg = new ManifestRegistry([th]);
  t.match(reg.push({ ...th, maxBundleBytes: 512 }, by), { ok: false, conflict: { source: 'config', manifest: { model: 'th-100' } }, message: /config has a different manifest for model "th-100" firmware "1\.0\.0"/ });
  t.match(reg.push(structuredClone(th), by), { ok: true, status: 'unchanged', entry: { source: 'config' } });
  t.match(reg.push(lk, by), { ok: true, status: 'created', entry: { source: 'pushed', pushedBy: 'adam' } });
  t.match(reg.push(structuredClone(lk), by), { ok: true, status: 'unchanged' });
  t.match(reg.push({ ...lk, maxBundleBytes: 512 }, by), { ok: true, status: 'replaced' });
  t.match(reg.push({ ...th, firmware: '1.1.0' }, by), { ok: true, status: 'created' }, 'another firmware of a configured model is its own manifest');
  t.same(reg.list().map((e) => `${e.manifest.model} ${e.manifest.firmware} ${e.source}`), ['th-100 1.0.0 config', 'lk-200 2.1 pushed', 'th-100 1.1.0 pushed']);
  t.equal(reg.find('th-100', '1.0.0')?.source, 'config');
  t.equal(reg.byModel().get('th-100'), th, "pre-flight sees the config's manifest of a model first");
  t.equal(reg.ofModel('th-100').length, 2);
});

t.test('initial pins: per endpoint the union over the models of the group; the stricter mode and policy win', async (t) => {
  const find = (model: string, firmware: string | null) => [th, lk].find((m) => m.model === model && (firmware === null || m.firmware === firmware)) ?? null;
  const r = initialPins([{ model: 'th-100', firmware: '1.0.0' }, { model: 'lk-200', firmware: '2.1' }, { model: 'th-100', firmware: '1.0.0' }], find);
  t.same(r, {
    ok: true,
    endpoints: [
      { host: 'api.example.com', port: 443, pins: [pin('a'), pin('b'), pin('c')] },
      { host: 'lock.example.com', port: 8443, pins: [pin('l1'), pin('l2')], mode: 'report-only' },
    ],
    expiryPolicy: 'enforce',
    manifests: [{ model: 'th-100', firmware: '1.0.0' }, { model: 'lk-200', firmware: '2.1' }],
  });
  t.match(initialPins([{ model: 'lk-200', firmware: '2.1' }], find), { ok: true, expiryPolicy: 'ca-fallback' });
  const missing = initialPins([{ model: 'th-100', firmware: '9.9' }, { model: null, firmware: null }, { model: 'th-100', firmware: '9.9' }], find);
  t.same(missing, { ok: false, missing: [{ model: 'th-100', firmware: '9.9', devices: 2 }, { model: null, firmware: null, devices: 1 }] });
  if (!missing.ok) t.match(missingManifestMessage('r-1', 'g', missing.missing), /none for model "th-100" firmware "9\.9" \(2 devices\), 1 device with no known model .*: push them with `pinwave manifest push FILE`/);
});
