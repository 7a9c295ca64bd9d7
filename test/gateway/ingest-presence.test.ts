// Presence (docs/architecture.md §7): connect and disconnect times may be rebuilt, so the patches
// of one turn of the event loop go to the store as one lazy batch, not one batch a connect.
import t from 'tap';
import { Ingest, type IngestOptions } from '../../gateway/ingest.ts';
import { Tasks } from '../../gateway/tasks.ts';
import type { Applied, Change } from '../../gateway/store/changes.ts';

interface Call {
  changes: readonly Change[];
  durable: boolean | undefined;
}

/** An Ingest over a store that records its batches and refuses a patch of `gone`, as a store refuses a patch of a deleted device. */
function ingest() {
  const calls: Call[] = [];
  const errors: string[] = [];
  const tasks = new Tasks({ error: (o: { err: string }) => errors.push(o.err) } as never);
  let now = 1_000;
  const store = {
    apply: async (changes: readonly Change[], o?: { durable?: boolean }): Promise<Applied> => {
      calls.push({ changes, durable: o?.durable });
      const gone = changes.some((c) => c.type === 'device.patch' && c.id === 'gone');
      return gone ? { ok: false, code: 'PW_STORE_NOT_FOUND', ids: ['gone'], message: 'no device gone' } : { ok: true, seqs: [] };
    },
  };
  const sessions: string[] = [];
  const i = new Ingest({
    store,
    delivery: { newSession: (id: string) => sessions.push(id) },
    rollouts: { reloading: null },
    tasks,
    log: { warn() {}, info() {}, debug() {}, error() {} },
    now: () => now,
  } as unknown as IngestOptions);
  return { i, calls, tasks, errors, sessions, tick: (ms: number) => (now += ms) };
}

t.test('the connects and disconnects of one turn are one lazy batch, a device patched twice merged into one patch', async (t) => {
  const { i, calls, tasks, errors, sessions, tick } = ingest();
  i.onConnect('th-1');
  i.onConnect('th-2');
  tick(5);
  i.onDisconnect('th-1');
  t.equal(calls.length, 0, 'nothing handed to the store within the turn');
  await tasks.current();
  t.same(calls, [
    {
      changes: [
        { type: 'device.patch', id: 'th-1', set: { lastConnectAt: 1_000, lastSeen: 1_005, lastDisconnectAt: 1_005 } },
        { type: 'device.patch', id: 'th-2', set: { lastConnectAt: 1_000, lastSeen: 1_000 } },
      ],
      durable: false,
    },
  ]);
  t.same(sessions, ['th-1', 'th-2', 'th-1'], 'each a new delivery session at once');
  i.onConnect('th-2');
  await tasks.current();
  t.equal(calls.length, 2, 'a later turn is a batch of its own');
  t.same(calls[1].changes, [{ type: 'device.patch', id: 'th-2', set: { lastConnectAt: 1_005, lastSeen: 1_005 } }]);
  t.same(errors, []);
});

t.test('a device deleted meanwhile costs the others of its batch nothing: they are patched one by one', async (t) => {
  const { i, calls, tasks } = ingest();
  i.onConnect('th-1');
  i.onDisconnect('gone');
  i.onConnect('th-2');
  await tasks.current();
  t.same(
    calls.map((c) => c.changes.map((x) => (x as { id: string }).id)),
    [['th-1', 'gone', 'th-2'], ['th-1'], ['gone'], ['th-2']],
  );
});

t.test("a device's message goes to the store after its presence patch queued before it", async (t) => {
  const { i, calls, tasks } = ingest();
  i.onConnect('th-1');
  i.onConnect('th-2');
  const handled = i.onMessage('th-1', 'state', Buffer.from([0xff]));
  t.equal(calls.length, 1, 'the queued patches were handed over before the message');
  t.same(calls[0].changes.map((x) => (x as { id: string }).id), ['th-1', 'th-2']);
  await handled;
  await tasks.current();
  t.equal(calls.length, 1, 'and not again');
});
