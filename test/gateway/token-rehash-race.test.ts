// A device still on an earlier release's `sha256:` hash gets it replaced by the `$7$` form of the
// token it connected with (devices.ts, docs/architecture.md §11). That upgrade must never land on
// top of a rotation: rotation is what an operator does when a token leaks (POST
// /v1/devices/:id/token), and an upgrade written after it would put the leaked token back in force
// and lock out the device holding the new one.
//
// The store here keeps the contract of docs/storage.md: batches resolve in the order apply() was
// called, and reads see committed state only, never a batch still on its way to disk. The first
// write is held "on its way to disk" until the test lets it go.
import t from 'tap';
import { Devices } from '../../gateway/devices.ts';
import { hashToken, isLegacyTokenHash } from '../../gateway/credentials.ts';
import { MemoryChangeStore } from '../../gateway/store/memory-store.ts';
import type { Applied, ApplyOptions, Change } from '../../gateway/store/changes.ts';
import { newDeviceRecord } from '../../gateway/store/types.ts';
import { NO_LOG } from '../../gateway/logger.ts';

class SlowDisk extends MemoryChangeStore {
  #tail: Promise<unknown> = Promise.resolve();
  hold: Promise<void> | null = null;
  apply(changes: readonly Change[], options?: ApplyOptions): Promise<Applied> {
    const held = this.hold;
    this.hold = null;
    const run = this.#tail.then(async () => {
      if (held) await held;
      return super.apply(changes, options);
    });
    this.#tail = run.catch(() => undefined);
    return run;
  }
}

t.test('a legacy hash upgraded while a rotation commits does not bring the old token back', async (t) => {
  const store = new SlowDisk();
  await store.open();
  const old = 'old-token-that-leaked-0123456789abcdefghijk';
  await store.apply([{ type: 'device.provision', device: newDeviceRecord({ id: 'th-1', group: 'g', tokenHash: hashToken(old), createdAt: 0 }) }]);
  const disconnected: string[] = [];
  const devices = new Devices({ store, link: { disconnect: (id) => void disconnected.push(id) }, log: NO_LOG, now: () => 1 });

  let release!: () => void;
  store.hold = new Promise<void>((resolve) => (release = resolve));
  const rotation = devices.rotateToken('th-1');
  // let the rotation read the device and hand its batch to the store, where it waits for the disk
  await new Promise((resolve) => setImmediate(resolve));
  t.ok(isLegacyTokenHash((await store.getDevice('th-1'))!.tokenHash), 'the rotation is not committed yet');
  // the leaked token's holder connects meanwhile: the broker refuses it (disconnect epoch), but the upgrade runs
  const connect = devices.authenticate('th-1', old);
  await new Promise((resolve) => setImmediate(resolve));
  release();
  const { token } = await rotation;
  await connect;

  t.equal(await devices.authenticate('th-1', old), false, 'the rotated-out token is refused');
  t.equal(await devices.authenticate('th-1', token), true, 'the new token works');
  t.same(disconnected, ['th-1'], 'the rotation disconnected the device');
});
