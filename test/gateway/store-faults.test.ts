// The store's faults as an operator meets them (docs/storage.md): a full disk under the gateway
// (a 2 MiB tmpfs, filled up), an unwritable data dir at start, and a damaged journal at start.
// Tests run as root (mount); a test that cannot mount fails saying so, it is never skipped.
import t from 'tap';
import { appendFile, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { apiHarness } from '../fixtures/http.ts';
import { readOnly, tmpfs } from '../fixtures/tmpfs.ts';
import { harness, newPins } from '../fixtures/gateway.ts';
import { Gateway } from '../../gateway/gateway.ts';
import type { Logger } from '../../gateway/logger.ts';
import { frame } from '../../gateway/store/journal.ts';

/** Fills the file system of `file` to its last byte with `file`. */
async function fill(file: string): Promise<void> {
  await writeFile(file, Buffer.alloc(0));
  for (let chunk = 256 * 1024; chunk >= 1; chunk = Math.floor(chunk / 2)) {
    for (let i = 0; i < 100_000; i++) {
      try {
        await appendFile(file, Buffer.alloc(chunk));
      } catch {
        break;
      }
    }
  }
}

const metric = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);

t.test('a full disk: each operator action fails with insufficient storage and leaves nothing behind; once space returns the gateway carries on', async (t) => {
  const mnt = await tmpfs(t, 'size=2m');
  const a = await apiHarness(t, {}, { dataDir: join(mnt, 'data'), now: Date.now });
  const provisioned = await a.call('POST', '/v1/devices', { body: { devices: [{ id: 'th-1', group: 'thermostats' }, { id: 'th-2', group: 'thermostats' }] } });
  t.equal(provisioned.statusCode, 201);
  const [d1] = provisioned.json().devices as Array<{ id: string; token: string }>;
  const bundle = (await a.call('POST', '/v1/bundles', { as: 'operator', body: { group: 'thermostats', pins: newPins } })).json();
  const rollout = (await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true } })).json();
  const running = (await a.call('GET', `/v1/rollouts/${rollout.id}`)).json();
  t.equal(running.state, 'running');
  t.equal((await a.call('GET', '/readyz', { as: null })).statusCode, 200);
  const failuresBefore = metric((await a.call('GET', '/metrics', { as: null })).body, 'pinwave_store_write_failures_total');

  const filler = join(mnt, 'filler');
  await fill(filler);
  // The journal's last page may still hold a small record (tmpfs holds whole pages): use it up.
  let full = false;
  for (let i = 0; i < 5000 && !full; i++) full = await a.gw.store.apply([{ type: 'counter.add', name: 'filler', by: 1 }]).then(() => false, () => true);
  t.ok(full, 'the disk is full');

  const insufficient = (r: { statusCode: number; json(): { code: string; message: string } }, what: string) => {
    t.equal(r.statusCode, 507, `${what}: 507`);
    t.equal(r.json().code, 'PW_STORE_FULL', `${what}: PW_STORE_FULL`);
    t.match(r.json().message, /^insufficient storage: .*nothing was changed$/, `${what}: the message says insufficient storage`);
    t.match(r.json().message, join(mnt, 'data'), `${what}: and names the store`);
  };
  const refused = await a.call('POST', '/v1/devices', { body: { devices: [{ id: 'ghost-1', group: 'thermostats' }] } });
  insufficient(refused, 'provisioning');
  t.equal((await a.call('GET', '/v1/devices/ghost-1')).statusCode, 404, 'the refused device does not exist');

  const rotation = await a.call('POST', `/v1/devices/${d1.id}/token`);
  insufficient(rotation, 'a token rotation');

  insufficient(await a.call('POST', `/v1/rollouts/${rollout.id}/pause`, { as: 'operator' }), 'a rollout pause');
  const after = (await a.call('GET', `/v1/rollouts/${rollout.id}`)).json();
  t.equal(after.state, 'running', 'the rollout still runs');
  t.ok(after.decisions.length > 0);
  t.same(after.decisions, running.decisions, 'and no decision was recorded');
  const bundlesBefore = (await a.call('GET', '/v1/bundles')).json();
  insufficient(await a.call('POST', '/v1/bundles', { as: 'operator', body: { group: 'thermostats', pins: newPins } }), 'a bundle create');
  t.same((await a.call('GET', '/v1/bundles')).json(), bundlesBefore, 'no bundle was added');

  const ready = await a.call('GET', '/readyz', { as: null });
  t.equal(ready.statusCode, 503, '/readyz answers 503 while the store cannot write');
  t.same(ready.json(), { status: 'unavailable', reason: 'store cannot write' }, 'naming neither the store nor the error (it is public)');
  t.match((await a.call('GET', '/v1/info', { as: 'operator' })).json().store, { name: join(mnt, 'data'), writable: false, lastError: { code: 'PW_STORE_FULL' } }, '/v1/info names them to an operator');
  t.equal((await a.call('GET', '/healthz', { as: null })).statusCode, 200, '/healthz stays the liveness probe');
  const metrics = (await a.call('GET', '/metrics', { as: null })).body;
  t.equal(metric(metrics, 'pinwave_store_writable'), 0, 'metrics: not writable');
  t.ok(metric(metrics, 'pinwave_store_write_failures_total') >= failuresBefore + 4, `metrics count the failures (${metric(metrics, 'pinwave_store_write_failures_total')})`);

  // The old token still connects (the rotation changed nothing); a connect needs no durable write.
  const old = await mqtt.connectAsync(a.gw.mqttUrl, { clientId: d1.id, username: d1.id, password: d1.token, reconnectPeriod: 0, connectTimeout: 5000 });
  t.ok(old.connected, 'the old token still connects');
  await old.endAsync(true);

  // Space returns: no restart.
  await rm(filler);
  t.equal((await a.call('GET', '/v1/devices/ghost-1')).statusCode, 404, 'the refused device did not appear once space returned');
  const again = await a.call('POST', '/v1/devices', { body: { devices: [{ id: 'th-3', group: 'thermostats' }] } });
  t.equal(again.statusCode, 201, 'provisioning works again');
  t.equal((await a.call('GET', '/readyz', { as: null })).statusCode, 200, '/readyz is 200 again');
  t.equal(metric((await a.call('GET', '/metrics', { as: null })).body, 'pinwave_store_writable'), 1);
  t.equal((await a.call('POST', `/v1/rollouts/${rollout.id}/pause`, { as: 'operator' })).statusCode, 200, 'and operator actions too');

  // What is on disk agrees: a restart has th-3, not ghost-1, and d1's old token.
  await a.restart();
  t.equal(await a.gw.store.getDevice('ghost-1'), null, 'ghost-1 never reached the disk');
  t.ok(await a.gw.store.getDevice('th-3'));
  const back = await mqtt.connectAsync(a.gw.mqttUrl, { clientId: d1.id, username: d1.id, password: d1.token, reconnectPeriod: 0, connectTimeout: 5000 });
  t.ok(back.connected, 'the old token connects after a restart');
  await back.endAsync(true);
});

t.test('an unwritable data dir stops the start with PW_STORE_UNWRITABLE', async (t) => {
  const mnt = await tmpfs(t, 'size=2m');
  const h = await harness(t, { dataDir: join(mnt, 'data') });
  await h.gw.provision([{ id: 'th-1', group: 'thermostats' }]);
  await h.gw.stop();
  readOnly(mnt);
  const err = await Gateway.start({ dataDir: join(mnt, 'data'), keyPath: h.keyPath, mqttPort: 0, tickIntervalMs: 0 }).then(
    async (gw) => (await gw.stop(), null),
    (e: unknown) => e as Error & { code?: string },
  );
  t.equal(err?.code, 'PW_STORE_UNWRITABLE');
  t.match(err?.message, join(mnt, 'data'), 'naming the data dir');
  t.match(err?.message, /EROFS/, 'and the cause');
});

/** Every file of a dir and its bytes. */
async function contents(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const n of (await readdir(dir)).sort()) out[n] = (await readFile(join(dir, n))).toString('base64');
  return out;
}

const journalOf = async (dir: string) => join(dir, (await readdir(dir)).filter((n) => /^journal-\d+\.log$/.test(n)).sort().at(-1)!);

t.test('a gateway starts on a journal with a torn last record, dropping that record', async (t) => {
  const h = await harness(t);
  const dataDir = join(h.dir, 'data');
  await h.gw.provision([{ id: 'th-1', group: 'thermostats' }]);
  await h.gw.stop();
  const file = await journalOf(dataDir);
  const good = (await stat(file)).size;
  await appendFile(file, frame(JSON.stringify([{ type: 'counter.add', name: 'x', by: 1 }])).subarray(0, 11)); // a crash mid-append
  const warns: Array<{ obj: object; msg?: string }> = [];
  const logger: Logger = { debug() {}, info() {}, warn: (obj, msg) => void warns.push({ obj, msg }), error() {} };
  const gw = await h.restart({ logger });
  t.ok(await gw.getDevice('th-1'), 'what was committed before it loads');
  t.equal((await stat(file)).size, good, 'the torn bytes are cut off');
  t.match(warns, [{ msg: /torn last journal record/, obj: { file, offset: good } }], 'and logged through the gateway’s logger');
});

t.test('a gateway refuses to start on garbage in the middle of the journal, naming file and offset, and changes nothing', async (t) => {
  const h = await harness(t);
  const dataDir = join(h.dir, 'data');
  await h.gw.provision([{ id: 'th-1', group: 'thermostats' }]);
  await h.gw.provision([{ id: 'th-2', group: 'thermostats' }]);
  await h.gw.stop();
  const file = await journalOf(dataDir);
  const bytes = await readFile(file);
  const second = 8 + bytes.readUInt32LE(0);
  await writeFile(file, Buffer.concat([bytes.subarray(0, second), Buffer.from('garbage!garbage!'), bytes.subarray(second)]));
  const before = await contents(dataDir);
  const err = await Gateway.start({ dataDir, keyPath: h.keyPath, mqttPort: 0, tickIntervalMs: 0 }).then(
    async (gw) => (await gw.stop(), null),
    (e: unknown) => e as Error & { code?: string },
  );
  t.equal(err?.code, 'PW_STORE_CORRUPT');
  t.match(err?.message, file, 'names the file');
  t.match(err?.message, `byte ${second}`, 'and the offset');
  t.same(await contents(dataDir), before, 'every file is byte-identical afterwards, and no lock is left');
  // The harness's teardown stops its (already stopped) gateway; give it one that starts.
  await writeFile(file, bytes);
  h.gw = await Gateway.start({ dataDir, keyPath: h.keyPath, mqttPort: 0, tickIntervalMs: 0 });
  t.ok(await h.gw.getDevice('th-2'), 'the repaired journal loads');
});
