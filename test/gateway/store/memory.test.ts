import t from 'tap';
import { createMemoryStore, MemoryFile } from '../../../gateway/store/memory.ts';
import { newDeviceRecord, type DeviceRecord } from '../../../gateway/store/types.ts';

const device = (id: string): DeviceRecord => newDeviceRecord({ id, group: 'g1', tokenHash: 'h', createdAt: 1 });

t.test('a memory store survives a simulated restart on the same MemoryFile, as copies', async (t) => {
  const file = new MemoryFile();
  const a = createMemoryStore({ file });
  await a.load();
  await a.putDevices([device('d1')]);
  await a.updateDevice('d1', { seq: 3 });
  t.equal(await a.allocateSeq('g1'), 1);
  const live = await a.getDevice('d1');
  await a.close();

  const b = createMemoryStore({ file });
  await b.load();
  const again = await b.getDevice('d1');
  t.equal(again?.seq, 3);
  t.not(again, live, 'a reload gives new objects, like one from disk');
  t.equal(await b.allocateSeq('g1'), 2);
  await b.close();
});

t.test('a corrupt memory file is refused like a corrupt file on disk', async (t) => {
  const file = new MemoryFile();
  file.text = '{"version":1,';
  const store = createMemoryStore({ file });
  await t.rejects(store.load(), { code: 'PW_STORE_CORRUPT', message: /^memory is not valid JSON/ });
  await store.close();
  t.equal(file.text, '{"version":1,');
});

t.test('a memory store needs no file to start', async (t) => {
  const store = createMemoryStore();
  await store.load();
  t.equal(await store.incrementCounter('acks'), 1);
  await store.close();
});
