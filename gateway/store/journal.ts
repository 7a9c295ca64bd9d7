// The embedded store's journal (docs/storage.md): an append-only file of records, one per batch of
// changes, each framed as
//
//   u32 little-endian  length of the body in bytes (1 .. MAX_RECORD_BYTES)
//   u32 little-endian  CRC-32 (ISO-HDLC, as zlib and gzip compute it) of the body
//   body               the batch as JSON, UTF-8
//
// so a reader can tell a whole record from a torn one. The records one write appends (a group
// commit) follow a group header, itself a record, whose body
//
//   {"group":{"bytes":L}}
//
// gives the length in bytes of the group's records after it (each carries its own CRC); readers
// skip it. A crash can tear
// only what the last write appended (records are acknowledged after the fsync that covers them,
// and the next write waits for it): a last record that is cut short, fails its CRC or runs into
// zeros (a file extended but not yet written) is a torn tail, cut off on load; so is damage inside
// the last group with whole records of that group after it (a file system may write the pages of
// an unsynced append out of order, so a power loss can leave a hole with the group's later pages
// whole), as long as no later group header is whole and nothing whole follows the group's declared
// end. A torn tail inside a group is cut where the group begins, and so is a last group the file
// ends inside of at a record's end (a write cut short). Anything else unreadable is
// corruption: the store refuses to start with the file, the byte offset and what was wrong, and
// writes nothing. A journal that does not begin with a group header (written before groups had
// one) is read as before: damage with a whole record after it is corruption. A journal begins with
// an empty group (its header alone), synced when the file is created, so that a crash tearing the
// file's first write still leaves the journal known for one with group headers.
import { crc32 as zlibCrc32 } from 'node:zlib';
import { StoreError } from './types.ts';

export const HEADER_BYTES = 8;
/** The largest body one record may hold: a batch provisioning 10,000 devices is ~6 MiB. */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;

// zlib.crc32 exists from Node 20.15 / 22.2; a table for older 20.x.
const TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

/** CRC-32 by table, for a Node without zlib.crc32. */
export function crc32ByTable(data: Uint8Array): number {
  let c = -1;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/** CRC-32 of `data`, as zlib computes it. */
export const crc32: (data: Uint8Array) => number = typeof zlibCrc32 === 'function' ? (data) => zlibCrc32(data) : crc32ByTable;

/** The body length of a record for `body` (the batch's JSON); a RangeError when no record can hold it. */
export function recordLength(body: string): number {
  const len = Buffer.byteLength(body);
  if (len === 0 || len > MAX_RECORD_BYTES) throw new RangeError(`a journal record holds 1 to ${MAX_RECORD_BYTES} bytes, got ${len}`);
  return len;
}

/**
 * A record's body as UTF-8 bytes (a RangeError when no record can hold it, as recordLength): what
 * the embedded store queues for its next write, so that the string of each batch in flight is let
 * go at once, not kept on the heap until its fsync.
 */
export function recordBytes(body: string): Buffer {
  const bytes = body.length === 0 || body.length > MAX_RECORD_BYTES ? null : Buffer.from(body, 'utf8');
  if (bytes === null || bytes.length > MAX_RECORD_BYTES) throw new RangeError(`a journal record holds 1 to ${MAX_RECORD_BYTES} bytes, got ${bytes?.length ?? Buffer.byteLength(body)}`);
  return bytes;
}

/** Writes the record for `body` of `len` bytes (recordLength, or the bytes of recordBytes) into `out` at `at`; returns where it ends. */
export function frameInto(out: Buffer, at: number, body: string | Uint8Array, len: number): number {
  if (typeof body === 'string') out.write(body, at + HEADER_BYTES, len, 'utf8');
  else out.set(body, at + HEADER_BYTES);
  out.writeUInt32LE(len, at);
  out.writeUInt32LE(crc32(out.subarray(at + HEADER_BYTES, at + HEADER_BYTES + len)), at + 4);
  return at + HEADER_BYTES + len;
}

/** One framed record for `body` (the batch's JSON). */
export function frame(body: string): Buffer {
  const len = recordLength(body);
  const out = Buffer.allocUnsafe(HEADER_BYTES + len);
  frameInto(out, 0, body, len);
  return out;
}

const GROUP_PREFIX = '{"group":';

/** The length of the records a group header's body declares, or null when the body is not a group header. */
function groupBytes(body: string): number | null {
  if (!body.startsWith(GROUP_PREFIX)) return null;
  try {
    const bytes = (JSON.parse(body) as { group?: { bytes?: unknown } }).group?.bytes;
    return Number.isSafeInteger(bytes) && (bytes as number) >= 0 ? (bytes as number) : null;
  } catch {
    return null;
  }
}

/**
 * The bytes one write appends: a group header, then `bodies` framed (each with its byte length,
 * recordLength), in one buffer.
 */
export function frameGroup(bodies: ReadonlyArray<{ body: string | Uint8Array; len: number }>): Buffer {
  let total = 0;
  for (const b of bodies) total += HEADER_BYTES + b.len;
  const header = `${GROUP_PREFIX}{"bytes":${total}}}`;
  const hlen = Buffer.byteLength(header);
  const buf = Buffer.allocUnsafe(HEADER_BYTES + hlen + total);
  let at = frameInto(buf, 0, header, hlen);
  for (const b of bodies) at = frameInto(buf, at, b.body, b.len);
  return buf;
}

/** What a journal file begins with, synced when it is created: an empty group. */
export const JOURNAL_START: Buffer = frameGroup([]);

export interface JournalRecord {
  offset: number;
  body: string;
}

export interface ReadJournal {
  records: JournalRecord[];
  /** where the last whole record ends: the length the file should have */
  end: number;
  /** a torn last record, cut off at `end`: what was wrong with it */
  torn: string | null;
}

/** Where the first whole, valid record (a group header, with `header`) starts after `from`, or null. */
function validRecordAfter(b: Buffer, from: number, header = false): number | null {
  for (let o = from + 1; o + HEADER_BYTES < b.length; o++) {
    const len = b.readUInt32LE(o);
    if (len === 0 || len > MAX_RECORD_BYTES || o + HEADER_BYTES + len > b.length) continue;
    if (crc32(b.subarray(o + HEADER_BYTES, o + HEADER_BYTES + len)) !== b.readUInt32LE(o + 4)) continue;
    if (header && groupBytes(b.toString('utf8', o + HEADER_BYTES, o + HEADER_BYTES + len)) === null) continue;
    return o;
  }
  return null;
}

/**
 * The records of a journal file's bytes. `last`: this is the newest journal, the only one whose
 * tail a crash may have torn; in an older one every byte must be a whole record.
 */
export function readJournal(bytes: Buffer, file: string, last: boolean): ReadJournal {
  const records: JournalRecord[] = [];
  let at = 0;
  // Set by the first record: whether this journal's writes begin with group headers; then where
  // the group being read begins (its header) and ends, as its header declares.
  let grouped: boolean | null = null;
  let groupStart = 0;
  let groupEnd = 0;
  // A torn tail inside a group is cut where the group begins: none of the group was acknowledged
  // (one write, one fdatasync, which never returned), and a header left behind would declare
  // records the file no longer holds, making the group end it gives wrong for the next start.
  const torn = (problem: string): ReadJournal => {
    const end = at < groupEnd ? groupStart : at;
    while (records.length > 0 && records[records.length - 1].offset >= end) records.pop();
    return { records, end, torn: end === at ? problem : `${problem} at byte ${at}, in the group that begins at byte ${end}` };
  };
  const corrupt = (offset: number, what: string) =>
    new StoreError('PW_STORE_CORRUPT', `${file}: byte ${offset}: ${what}; refusing to start so that nothing stored there is lost (docs/storage.md, "when the store refuses to start")`);
  while (at < bytes.length) {
    let problem: string | null = null;
    let len = 0;
    if (bytes.length - at < HEADER_BYTES) problem = `a record header cut short (${bytes.length - at} of ${HEADER_BYTES} bytes)`;
    else {
      len = bytes.readUInt32LE(at);
      if (len === 0 || len > MAX_RECORD_BYTES) problem = `a record length of ${len} bytes (expected 1 to ${MAX_RECORD_BYTES})`;
      else if (at + HEADER_BYTES + len > bytes.length) problem = `a record of ${len} bytes cut short at ${bytes.length - at - HEADER_BYTES}`;
      else if (crc32(bytes.subarray(at + HEADER_BYTES, at + HEADER_BYTES + len)) !== bytes.readUInt32LE(at + 4)) problem = 'a record whose CRC-32 does not match its body';
    }
    if (problem !== null) {
      // Torn: nothing whole follows it (a crash mid-append leaves a cut record, or zeros where the
      // file was extended but not yet written). A whole record after it means the damage is not
      // a crash's, and cutting there would throw good records away.
      if (!last) throw corrupt(at, `${problem} in a journal that later ones follow`);
      const after = validRecordAfter(bytes, at);
      if (after === null) return torn(problem);
      if (grouped === true) {
        // Torn when no later group begins (a whole group header after the damage), so what is
        // whole after it is that group's own; and, inside a group its header declared, nothing
        // whole follows the group's end either (that group was the last write).
        const group = validRecordAfter(bytes, at, true);
        const past = group === null && at < groupEnd ? validRecordAfter(bytes, groupEnd - 1) : null;
        if (group === null && past === null) return torn(`${problem}, in the last group written (the group is dropped whole, whole records of it after the damage included)`);
        throw corrupt(at, `${problem}, with a whole record after it at byte ${after}, and a later ${group !== null ? `group at byte ${group}` : `record past the end of its group at byte ${past}`}`);
      }
      throw corrupt(at, `${problem}, with a whole record after it at byte ${after}`);
    }
    const body = bytes.toString('utf8', at + HEADER_BYTES, at + HEADER_BYTES + len);
    const group = groupBytes(body);
    grouped ??= group !== null;
    if (group !== null) {
      groupStart = at;
      groupEnd = at + HEADER_BYTES + len + group;
    }
    else records.push({ offset: at, body });
    at += HEADER_BYTES + len;
  }
  if (at < groupEnd) {
    // The file ends at a record's end inside the group its last header declares: that write was
    // cut short (it was never synced), and its header must not stay declaring what is not there.
    const problem = `a group cut short (its header declares records up to byte ${groupEnd})`;
    if (!last) throw corrupt(groupStart, `${problem} in a journal that later ones follow`);
    return torn(problem);
  }
  return { records, end: at, torn: null };
}

/** The error for a record that is whole but does not make sense (bad JSON, a change the state refuses). */
export function badRecord(file: string, offset: number, what: string): StoreError {
  return new StoreError('PW_STORE_CORRUPT', `${file}: byte ${offset}: ${what}; refusing to start so that nothing stored there is lost (docs/storage.md, "when the store refuses to start")`);
}
