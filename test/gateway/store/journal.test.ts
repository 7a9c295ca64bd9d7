import t from 'tap';
import { crc32, crc32ByTable, frame, readJournal } from '../../../gateway/store/journal.ts';

t.test('CRC-32 is the ISO-HDLC one zlib computes, by zlib or by table', async (t) => {
  const check = Buffer.from('123456789');
  t.equal(crc32(check), 0xcbf43926, 'the standard check value');
  t.equal(crc32ByTable(check), 0xcbf43926);
  const data = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 7) & 0xff));
  t.equal(crc32ByTable(data), crc32(data));
});

t.test('records frame their body with its length and CRC, and read back', async (t) => {
  const bytes = Buffer.concat([frame('[1]'), frame('["é"]')]);
  t.same(readJournal(bytes, 'j', true), { records: [{ offset: 0, body: '[1]' }, { offset: 11, body: '["é"]' }], end: bytes.length, torn: null });
  t.throws(() => frame(''), RangeError);
  t.match(readJournal(bytes.subarray(0, bytes.length - 1), 'j', true), { records: [{ body: '[1]' }], end: 11, torn: /cut short/ });
  t.throws(() => readJournal(bytes.subarray(0, bytes.length - 1), 'j', false), { code: 'PW_STORE_CORRUPT', message: /j: byte 11: .*later ones follow/ }, 'only the newest journal may have a torn tail');
  t.match(readJournal(Buffer.concat([bytes, Buffer.alloc(5)]), 'j', true), { end: bytes.length, torn: /header cut short/ });
});
