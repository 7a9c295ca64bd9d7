// `pinwave manifest push`: a manifest past what the gateway reads is refused here, with the limit, not
// reported as an unreachable gateway.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { runCli } from '../fixtures/cli.ts';
import { encodeManifest, generateKeyPair, hex, kid } from '../../firmware-manifest/index.ts';

const pin = (s: string) => 'sha256/' + createHash('sha256').update(s).digest('base64');
const pinwave = (...args: string[]) => runCli(args);

t.test('manifest push: a valid manifest larger than the gateway takes is refused before sending, naming the size and the limit', async (t) => {
  const dir = t.testdir();
  const file = join(dir, 'big.json');
  const pins = Array.from({ length: 3000 }, (_, i) => ({ host: `h${i}.example.com`, pins: [pin(`a${i}`), pin(`b${i}`)] }));
  writeFileSync(file, JSON.stringify({ model: 'th-100', firmware: '1.0.0', trustedKeys: [generateKeyPair().publicPem], pins }));
  // Nothing listens there: the refusal must come before any request.
  const r = await pinwave('manifest', 'push', file, '--api', 'http://127.0.0.1:9');
  t.equal(r.code, 1);
  t.match(r.stderr, new RegExp(`^pinwave manifest: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: \\d+ bytes as JSON; the gateway takes a manifest of at most 262144 bytes \\(POST /v1/manifests\\)$`));
  const j = await pinwave('manifest', 'push', file, '--api', 'http://127.0.0.1:9', '--json');
  t.match(JSON.parse(j.stdout), { ok: false, file, errors: [{ path: '', message: /at most 262144 bytes/ }] }, 'with --json, JSON');
});

t.test('manifest validate: initial pins too large for one bundle are valid, with a warning naming the size and the limit', async (t) => {
  const dir = t.testdir();
  const file = join(dir, 'many.json');
  const pins = Array.from({ length: 100 }, (_, i) => ({ host: `h${i}.example.com`, pins: [pin(`a${i}`), pin(`b${i}`)] }));
  writeFileSync(file, JSON.stringify({ model: 'th-100', firmware: '1.0.0', trustedKeys: [generateKeyPair().publicPem], pins }));
  const r = await pinwave('manifest', 'validate', file);
  t.equal(r.code, 0, 'not refused');
  t.match(r.stdout, /^valid: th-100 1\.0\.0, 1 trusted key, 100 pinned endpoints$/m);
  t.match(r.stderr, /^warning: \/pins: the initial pins \(100 endpoints\) need a bundle of at least \d+ bytes, above the 4096 bytes this firmware takes/m);
  writeFileSync(file, JSON.stringify({ model: 'th-100', firmware: '1.0.0', trustedKeys: [generateKeyPair().publicPem], pins: pins.slice(0, 2) }));
  t.equal((await pinwave('manifest', 'validate', file)).stderr, '', 'none for a pin set that fits');
});

t.test('manifest create, validate and push refuse one trusted key listed twice (PEM and base64 alike), naming the kid and both places', async (t) => {
  const dir = t.testdir();
  const key = generateKeyPair();
  const said = `trustedKeys\\[2\\] is the same key as trustedKeys\\[0\\] \\(kid ${hex(kid(key.publicKey))}\\): list each key once`;
  const twice = { model: 'th-100', firmware: '1.0.0', trustedKeys: [key.publicPem, generateKeyPair().publicPem, Buffer.from(key.publicKey).toString('base64')], pins: [{ host: 'api.example.com', pins: [pin('a'), pin('b')] }] };
  const file = join(dir, 'twice.json');
  writeFileSync(file, JSON.stringify(twice));
  const v = await pinwave('manifest', 'validate', file);
  t.equal(v.code, 1, v.stdout);
  t.match(v.stdout, new RegExp(`^invalid: .*twice\\.json\n/trustedKeys/2: ${said}$`));
  const cbor = join(dir, 'twice.cbor');
  writeFileSync(cbor, encodeManifest(twice));
  t.match((await pinwave('manifest', 'validate', cbor)).stdout, new RegExp(`^/trustedKeys/2: ${said}$`, 'm'), 'the flash form too');
  // Nothing listens there: the refusal comes before any request.
  const p = await pinwave('manifest', 'push', file, '--api', 'http://127.0.0.1:9');
  t.equal(p.code, 1);
  t.match(p.stdout, new RegExp(`^/trustedKeys/2: ${said}$`, 'm'));
  const pub = join(dir, 'signing.pub');
  writeFileSync(pub, key.publicPem);
  const c = await pinwave('manifest', 'create', '--model', 'th-100', '--firmware', '1.0.0', '--key', pub, '--key', pub, '--pin', `api.example.com=${pin('a')}`, '--pin', `api.example.com=${pin('b')}`);
  t.equal(c.code, 2, 'a usage error');
  t.match(c.stderr, /the manifest would be invalid:\n\/trustedKeys\/1: trustedKeys\[1\] is the same key as trustedKeys\[0\] \(kid [0-9a-f]{16}\): list each key once/);
});
