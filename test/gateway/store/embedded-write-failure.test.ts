// A write the embedded store could not commit has no effect anywhere, not on disk later either
// (docs/storage.md, "a batch that failed has no effect anywhere"): the journal is cut back, and
// the cut is durable, before the applies are refused; a cut that failed is made before the next
// write, and at close at the latest.
import t from 'tap';
import { open, readdir, readFile, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { EmbeddedStore } from '../../../gateway/store/embedded.ts';
import type { Change } from '../../../gateway/store/changes.ts';
import { device, provision } from './fixtures/conformance.ts';

const counter = (by = 1): Change[] => [{ type: 'counter.add', name: 'acks', by }];
const eio = (what: string) => Object.assign(new Error(`EIO: i/o error, ${what}`), { code: 'EIO' });

/** An io call that does what it would, except once after `arm()`: then it fails with EIO. */
function failsOnce<A extends unknown[]>(what: string, real: (...a: A) => Promise<void>) {
  let armed = false;
  return {
    arm: () => void (armed = true),
    call: async (...a: A): Promise<void> => {
      if (armed) {
        armed = false;
        throw eio(what);
      }
      await real(...a);
    },
  };
}
const datasync = () => failsOnce('fdatasync', (fh: FileHandle) => fh.datasync());

async function opened(dir: string, o: Partial<ConstructorParameters<typeof EmbeddedStore>[0]> = {}) {
  const s = new EmbeddedStore({ dir, ...o });
  await s.open();
  return s;
}

t.test('a failed write is cut off the journal before its applies are refused', async (t) => {
  const dir = join(t.testdir(), 'data');
  const sync = datasync();
  const s = await opened(dir, {
    io: {
      datasync: sync.call,
      // A cut that takes a while (a busy disk, a loaded thread pool).
      truncate: async (fh, length) => {
        await new Promise((r) => setTimeout(r, 100));
        await fh.truncate(length);
      },
    },
  });
  await s.apply(counter(1));
  const journal = s.journalFile;
  const good = (await stat(journal)).size;
  sync.arm();
  const err = await s.apply(counter(10)).then(() => null, (e: unknown) => e as Error & { code: string });
  t.equal(err?.code, 'PW_STORE_IO');
  // What a kill -9 right after the refusal (the 503 sent) leaves: the refused record must be gone.
  t.equal((await stat(journal)).size, good, 'the journal holds nothing of the refused batch once it is refused');
  await s.close();
  const again = await opened(dir);
  t.same(await again.getCounters(), { acks: 1 });
  await again.close();
});

t.test('a cut that failed is made at close: the refused batch never loads', async (t) => {
  const dir = join(t.testdir(), 'data');
  const sync = datasync();
  const cut = failsOnce('ftruncate', (fh: FileHandle, length: number) => fh.truncate(length));
  const s = await opened(dir, { io: { datasync: sync.call, truncate: cut.call } });
  await s.apply(counter(1));
  sync.arm();
  cut.arm();
  const err = await s.apply(counter(10)).then(() => null, (e: unknown) => e as Error & { code: string });
  t.equal(err?.code, 'PW_STORE_IO');
  t.same(await s.getCounters(), { acks: 1 });
  await new Promise((r) => setTimeout(r, 50));
  await s.close();
  const again = await opened(dir);
  t.same(await again.getCounters(), { acks: 1 }, 'the refused batch is not replayed');
  await again.close();
});

t.test('a new journal whose directory entry could not be synced is removed: rotation works again, and a torn tail stays a torn tail', async (t) => {
  const dir = join(t.testdir(), 'data');
  const dirSync = failsOnce('fsync', async (path: string) => {
    const d = await open(path, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  });
  const s = await opened(dir, { io: { syncDir: dirSync.call } });
  await s.apply(counter(1));
  dirSync.arm();
  await s.snapshotNow(); // the rotation fails: no snapshot
  t.equal(s.status().snapshots, 0);
  t.same((await readdir(dir)).filter((n) => n.startsWith('journal-')), ['journal-0000000001.log'], 'no journal is left behind that later records do not go to');
  await s.apply(counter(1));
  await s.snapshotNow();
  t.equal(s.status().snapshots, 1, 'the next rotation succeeds');
  await s.apply(counter(1));
  await s.close();
  const again = await opened(dir);
  t.same(await again.getCounters(), { acks: 3 });
  await again.close();
  t.ok((await readFile(join(dir, 'journal-0000000002.log'))).length > 0);
});

t.test('a refusal never rests on a batch whose write then failed', async (t) => {
  const dir = join(t.testdir(), 'data');
  const sync = datasync();
  const s = await opened(dir, { io: { datasync: sync.call } });
  const d = (id: string): Change => provision(device(id))[0];
  await s.apply([d('d0')]);
  sync.arm();
  // The first provisioning is on its way to disk when the second is checked against it.
  const first = s.apply([d('d1')]);
  const second = s.apply([d('d1')]);
  const deleted = s.apply([{ type: 'device.delete', id: 'd0' }]);
  const patched = s.apply([{ type: 'device.patch', id: 'd0', set: { seq: 3 } }]);
  const [a, b, c, e] = await Promise.allSettled([first, second, deleted, patched]);
  t.equal(a.status === 'rejected' && (a.reason as { code: string }).code, 'PW_STORE_IO', 'the first write failed');
  t.equal(c.status === 'rejected' && (c.reason as { code: string }).code, 'PW_STORE_IO', 'the delete shared it');
  t.same(b.status === 'fulfilled' && b.value, { ok: true, seqs: [] }, 'the second is not refused as a duplicate of a device that was never stored');
  t.same(e.status === 'fulfilled' && e.value, { ok: true, seqs: [] }, 'the patch is not refused for a delete that never happened');
  t.equal((await s.getDevice('d1'))?.id, 'd1');
  t.equal((await s.getDevice('d0'))?.seq, 3);
  await s.close();
});

t.test("a short write of a new journal's empty start is carried on, as a group's is: the journal loads", async (t) => {
  const dir = join(t.testdir(), 'data');
  const short = new WeakSet<FileHandle>(); // the journals whose first write was short
  const s = await opened(dir, {
    io: {
      // A write that stores only part of its buffer (a disk nearly full may do that) and says so.
      write: async (fh, buf, position) => {
        if (position === 0 && !short.has(fh)) {
          short.add(fh);
          return (await fh.write(buf, 0, 10, position)).bytesWritten;
        }
        return (await fh.write(buf, 0, buf.length, position)).bytesWritten;
      },
    },
  });
  await s.apply(counter(1));
  await s.snapshotNow(); // a second journal begins: its start is written short too
  await s.apply(counter(2));
  await s.close();
  const again = await opened(dir);
  t.same(await again.getCounters(), { acks: 3 });
  await again.close();
});
