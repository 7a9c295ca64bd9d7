// One process per data dir (docs/storage.md): a stale lock is taken over by one starter only.
import t from 'tap';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataDirLock, LOCK_FILENAME } from '../../../gateway/store/lock.ts';

t.test('starters that find the same stale lock: one takes it, the others are refused', async (t) => {
  let twice = 0;
  for (let i = 0; i < 200; i++) {
    const dir = await mkdtemp(join(tmpdir(), 'pinwave-lock-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    // A lock left by a process that is gone (no such pid).
    await writeFile(join(dir, LOCK_FILENAME), JSON.stringify({ pid: 2 ** 22 + 7, start: '1', host: hostname(), since: 1 }) + '\n');
    const got = await Promise.allSettled([DataDirLock.acquire(dir), DataDirLock.acquire(dir), DataDirLock.acquire(dir)]);
    const held = got.filter((r) => r.status === 'fulfilled');
    if (held.length !== 1) twice++;
    for (const r of got) if (r.status === 'rejected') t.equal((r.reason as { code: string }).code, 'PW_STORE_LOCKED');
    for (const r of held) await (r as PromiseFulfilledResult<DataDirLock>).value.release();
    t.same(await readdir(dir), [], 'nothing left behind');
  }
  t.equal(twice, 0, 'never two holders (nor none)');
});

t.test("a lock written on another host is not broken here; the refusal names the host and the file to remove once it runs nothing", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'pinwave-lock-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, LOCK_FILENAME), JSON.stringify({ pid: 2 ** 22 + 7, start: '1', host: 'gw-old-pod', since: 1 }) + '\n');
  const err = await DataDirLock.acquire(dir).then(() => null, (e: unknown) => e as Error & { code: string });
  t.equal(err?.code, 'PW_STORE_LOCKED');
  t.match(err?.message, 'in use by pid 4194311 on gw-old-pod');
  t.match(err?.message, `if no gateway runs on gw-old-pod (a container recreated under a new name), remove ${join(dir, LOCK_FILENAME)}`);
});
