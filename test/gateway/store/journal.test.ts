import t from 'tap';
import { JOURNAL_START, crc32, crc32ByTable, frame, frameGroup, readJournal } from '../../../gateway/store/journal.ts';

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

const bodies = (...xs: string[]) => xs.map((body) => ({ body, len: Buffer.byteLength(body) }));

t.test('a group of records follows a header with their length and CRC; readers skip the header', async (t) => {
  const g1 = frameGroup(bodies('[1]', '[2]'));
  const g2 = frameGroup(bodies('["é"]'));
  const bytes = Buffer.concat([g1, g2]);
  const read = readJournal(bytes, 'j', true);
  t.same(read.records.map((r) => r.body), ['[1]', '[2]', '["é"]']);
  t.equal(read.end, bytes.length);
  t.equal(read.torn, null);
  const header = JSON.parse(bytes.toString('utf8', 8, 8 + bytes.readUInt32LE(0)));
  t.same(header, { group: { bytes: Buffer.concat([frame('[1]'), frame('[2]')]).length } }, 'the header declares the length of the records after it');
  t.equal(read.records[0].offset, 8 + bytes.readUInt32LE(0), 'a record keeps its offset in the file');
});

/** `bytes` with `n` bytes zeroed from `at`: a page of an unsynced append the disk never got. */
const hole = (bytes: Buffer, at: number, n: number) => {
  const b = Buffer.from(bytes);
  b.fill(0, at, at + n);
  return b;
};

t.test('a power loss mid-group: a hole in the last group, its later records whole, is a torn tail', async (t) => {
  const durable = Buffer.concat([JOURNAL_START, frameGroup(bodies('[1]', '[2]'))]);
  const last = frameGroup(bodies('[3]', '[4]', '[5]'));
  const bytes = Buffer.concat([durable, last]);
  const r3 = durable.length + last.readUInt32LE(0) + 8; // the first record of the last group
  const read = readJournal(hole(bytes, r3, 11), 'j', true);
  t.same(read.records.map((r) => r.body), ['[1]', '[2]'], 'what the last group wrote goes, whole records after the hole too');
  t.equal(read.end, durable.length, 'cut where the last group begins, its header too');
  t.match(read.torn, /in the last group written/);
  const noHeader = readJournal(hole(bytes, durable.length, 8), 'j', true);
  t.same(noHeader.records.map((r) => r.body), ['[1]', '[2]'], 'so does a last group whose header is the hole');
  t.match(noHeader.torn, /in the last group written/);
  t.throws(() => readJournal(hole(bytes, r3, 11), 'j', false), { code: 'PW_STORE_CORRUPT' }, 'never in a journal that later ones follow');
});

t.test("a journal's first write torn, header and all: the synced empty group in front says the file has groups", async (t) => {
  const g = frameGroup(bodies('[1]', '[2]'));
  const bytes = Buffer.concat([JOURNAL_START, g]);
  t.same(readJournal(bytes, 'j', true).records.map((r) => r.body), ['[1]', '[2]']);
  const read = readJournal(hole(bytes, JOURNAL_START.length, 8 + g.readUInt32LE(0)), 'j', true);
  t.same(read, { records: [], end: JOURNAL_START.length, torn: read.torn }, 'cut back to the empty start');
  t.match(read.torn, /in the last group written/);
});

t.test('a hole in a group that a later group follows is corruption: that group was synced before the next was written', async (t) => {
  const s0 = JOURNAL_START.length;
  const g1 = frameGroup(bodies('[1]', '[2]'));
  const g2 = frameGroup(bodies('[3]'));
  const bytes = Buffer.concat([JOURNAL_START, g1, g2]);
  const r1 = s0 + g1.readUInt32LE(0) + 8;
  t.throws(() => readJournal(hole(bytes, r1, 11), 'j', true), { code: 'PW_STORE_CORRUPT', message: new RegExp(`j: byte ${r1}: .*a later group at byte ${s0 + g1.length}`) });
  const bothHeaders = hole(hole(bytes, r1, 11), s0 + g1.length, 8);
  t.throws(() => readJournal(bothHeaders, 'j', true), { code: 'PW_STORE_CORRUPT', message: new RegExp(`j: byte ${r1}: .*a later record past the end of its group at byte ${s0 + g1.length + g2.readUInt32LE(0) + 8}`) }, 'the later group\'s header gone too, its records whole');
  t.throws(() => readJournal(hole(bytes, s0, 8), 'j', true), { code: 'PW_STORE_CORRUPT', message: new RegExp(`j: byte ${s0}: .*a later group at byte ${s0 + g1.length}`) }, 'the first group\'s header gone, the next group whole');
});

t.test('a journal written before groups had headers keeps the rule it had: a hole with a whole record after it is corruption', async (t) => {
  const bytes = Buffer.concat([frame('[1]'), frame('[2]'), frame('[3]')]);
  t.throws(() => readJournal(hole(bytes, 11, 11), 'j', true), { code: 'PW_STORE_CORRUPT', message: /j: byte 11: .*with a whole record after it at byte 22/ });
  t.match(readJournal(hole(bytes, 22, 11), 'j', true), { records: [{ body: '[1]' }, { body: '[2]' }], end: 22, torn: /./ }, 'its last record torn, as before');
});

/** The bytes a start leaves when it cut `bytes` back as `readJournal` said, and the records it kept. */
const cutBack = (bytes: Buffer) => {
  const read = readJournal(bytes, 'j', true);
  return { bytes: bytes.subarray(0, read.end), read };
};

t.test('a torn last group is cut back to its header: no header is left declaring records the file does not hold', async (t) => {
  const durable = Buffer.concat([JOURNAL_START, frameGroup(bodies('[1]'))]);
  const last = frameGroup(bodies('[2]', `[${'3'.repeat(2000)}]`, '[4]'));
  const r3 = durable.length + last.readUInt32LE(0) + 8 + 11; // the last group's second record
  const { bytes, read } = cutBack(hole(Buffer.concat([durable, last]), r3, 11));
  t.equal(read.end, durable.length, 'cut where the torn group begins');
  t.same(read.records.map((r) => r.body), ['[1]'], 'the torn group goes whole: none of it was acknowledged');
  t.match(read.torn, /in the last group written/);
  // The next start appends groups there. Two, so the first was synced before the second began:
  // that first group's header later damaged on disk is corruption, never a torn tail.
  const g2 = frameGroup(bodies('[5]'));
  const g3 = frameGroup(bodies('[6]'));
  const after = Buffer.concat([bytes, g2, g3]);
  t.same(readJournal(after, 'j', true).records.map((r) => r.body), ['[1]', '[5]', '[6]']);
  t.throws(() => readJournal(hole(after, bytes.length, 8), 'j', true), { code: 'PW_STORE_CORRUPT', message: new RegExp(`j: byte ${bytes.length}: .*a later group at byte ${bytes.length + g2.length}`) });
  // And a crash tearing the header of a big last write, its later pages whole, is a torn tail.
  const big = frameGroup(bodies(...Array.from({ length: 40 }, (_, i) => `[${String(i).repeat(100)}]`)));
  const crashed = readJournal(hole(Buffer.concat([bytes, big]), bytes.length, 64), 'j', true);
  t.same(crashed.records.map((r) => r.body), ['[1]']);
  t.equal(crashed.end, bytes.length);
});

t.test('a header left declaring more than its group holds (a cut made inside a group) is no reason to drop later synced groups', async (t) => {
  // A journal a start cut inside its last group: that group's header declares records cut off.
  const durable = Buffer.concat([JOURNAL_START, frameGroup(bodies('[1]'))]);
  const cut = frameGroup(bodies('[2]', `[${'3'.repeat(4000)}]`));
  const kept = durable.length + cut.readUInt32LE(0) + 8 + 11; // its header and first record kept
  const g2 = frameGroup(bodies('[5]'));
  const g3 = frameGroup(bodies('[6]'));
  const bytes = Buffer.concat([cut.subarray(0, kept - durable.length), g2, g3]);
  const file = Buffer.concat([durable, bytes]);
  t.same(readJournal(file, 'j', true).records.map((r) => r.body), ['[1]', '[2]', '[5]', '[6]']);
  // g2's header damaged on disk after g3 was written: both were acknowledged.
  t.throws(() => readJournal(hole(file, kept, 8), 'j', true), { code: 'PW_STORE_CORRUPT', message: new RegExp(`j: byte ${kept}: `) });
});

t.test('a file that ends inside the group its last header declares: that group was cut short, never synced', async (t) => {
  const durable = Buffer.concat([JOURNAL_START, frameGroup(bodies('[1]'))]);
  const last = frameGroup(bodies('[2]', '[3]'));
  const firstRecordEnd = last.readUInt32LE(0) + 8 + 11; // the file ends where the first record does
  const bytes = Buffer.concat([durable, last.subarray(0, firstRecordEnd)]);
  const read = readJournal(bytes, 'j', true);
  t.same(read.records.map((r) => r.body), ['[1]'], 'the short group goes whole');
  t.equal(read.end, durable.length);
  t.match(read.torn, /group cut short/);
  t.throws(() => readJournal(bytes, 'j', false), { code: 'PW_STORE_CORRUPT', message: new RegExp(`j: byte ${durable.length}: .*later ones follow`) }, 'not in a journal that later ones follow');
  t.same(readJournal(Buffer.concat([durable, last]), 'j', false).records.map((r) => r.body), ['[1]', '[2]', '[3]'], 'whole, it reads');
});
