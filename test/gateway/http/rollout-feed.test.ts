// The rollout feed with a fake clock and fake timers: bursts coalesced to ~10 events a second, no
// event when nothing a client sees changed, replay after Last-Event-ID from a bounded buffer, ids
// that only go up across a restart, feeds that linger then go, a failed load reported.
import t from 'tap';
import { ClockEventIds, formatEvent, parseLastEventId, RolloutFeeds, type EventIdSource, type RolloutEvent, type Subscriber, type Timers } from '../../../gateway/http/rollout-feed.ts';

/** Timers run by hand against a fake clock. */
class FakeTime implements Timers {
  t = 1_000_000;
  #timers: Array<{ at: number; fn: () => void; id: number }> = [];
  #next = 0;
  now = () => this.t;
  set(fn: () => void, ms: number) {
    const id = ++this.#next;
    this.#timers.push({ at: this.t + ms, fn, id });
    return id;
  }
  clear(h: unknown) {
    this.#timers = this.#timers.filter((x) => x.id !== h);
  }
  get pending() {
    return this.#timers.length;
  }
  /** Advances the clock, running each timer due (and letting the loads it starts settle). */
  async advance(ms: number) {
    const end = this.t + ms;
    for (;;) {
      this.#timers.sort((a, b) => a.at - b.at);
      const due = this.#timers[0];
      if (!due || due.at > end) break;
      this.#timers.shift();
      this.t = due.at;
      due.fn();
      for (let i = 0; i < 5; i++) await Promise.resolve();
    }
    this.t = end;
  }
}

function rig(o: { keep?: number; lingerMs?: number; ids?: EventIdSource } = {}) {
  const time = new FakeTime();
  const state = { version: 0, loads: 0, fail: false };
  const feeds = new RolloutFeeds({
    now: time.now,
    timers: time,
    ...o,
    load: async (id) => {
      state.loads++;
      if (state.fail) throw new Error('store down');
      return id === 'gone' ? null : JSON.stringify({ id, version: state.version });
    },
    onError: (err, id) => errors.push(`${id}: ${err.message}`),
  });
  const errors: string[] = [];
  const sub = (): Subscriber & { got: RolloutEvent[]; closed: boolean } => {
    const s = { tokenHash: 'h', session: null, got: [] as RolloutEvent[], closed: false, send: (e: RolloutEvent) => void s.got.push(e), close: () => void (s.closed = true) };
    return s;
  };
  return { time, state, feeds, sub, errors };
}

t.test('a burst of 10,000 changes in one second sends about 10 events, the last one the state at the end', async (t) => {
  const { time, state, feeds, sub } = rig();
  const s = sub();
  const { backlog } = (await feeds.subscribe('r1', null, s))!;
  t.equal(backlog.length, 1);
  t.equal(backlog[0].type, 'snapshot');
  for (let i = 0; i < 10_000; i++) {
    state.version++;
    feeds.changed('r1');
    if (i % 10 === 9) await time.advance(1); // 10,000 changes over 1,000 ms
  }
  await time.advance(200);
  t.ok(s.got.length >= 9 && s.got.length <= 11, `${s.got.length} events for 10,000 changes`);
  t.ok(state.loads <= 12, `the rollout was read ${state.loads} times, not 10,000`);
  t.same(JSON.parse(s.got.at(-1)!.data), { id: 'r1', version: 10_000 });
  t.ok(s.got.every((e, i) => e.type === 'change' && e.id > (i === 0 ? backlog[0].id : s.got[i - 1].id)), 'ids go up');
  t.equal(time.pending, 0, 'no timer left running when nothing changes');
});

t.test('a change that changes nothing a client sees sends nothing; one nobody listens to costs nothing', async (t) => {
  const { time, state, feeds, sub } = rig();
  feeds.changed('r1');
  await time.advance(1000);
  t.equal(state.loads, 0, 'no feed, no load');
  const s = sub();
  await feeds.subscribe('r1', null, s);
  feeds.changed('r1');
  await time.advance(500);
  t.same(s.got, [], 'the same rollout as the snapshot: no event');
  state.version++;
  feeds.changed('r1');
  await time.advance(500);
  t.equal(s.got.length, 1);
});

t.test('replay: after Last-Event-ID from the buffer, nothing when up to date, a snapshot when too old or unknown', async (t) => {
  const { time, state, feeds, sub } = rig({ keep: 3 });
  const a = sub();
  const { backlog } = (await feeds.subscribe('r1', null, a))!;
  for (let i = 0; i < 5; i++) {
    state.version++;
    feeds.changed('r1');
    await time.advance(100);
  }
  const ids = a.got.map((e) => e.id);
  t.equal(ids.length, 5);
  const replay = (await feeds.subscribe('r1', ids[2], sub()))!.backlog;
  t.same(replay.map((e) => e.id), ids.slice(3), 'the events after the one it saw');
  t.same((await feeds.subscribe('r1', ids[4], sub()))!.backlog, [], 'up to date: nothing');
  const old = (await feeds.subscribe('r1', backlog[0].id, sub()))!.backlog;
  t.equal(old.length, 1);
  t.equal(old[0].type, 'snapshot', 'beyond the buffer (3 kept): a snapshot');
  t.ok(old[0].id > ids[4]);
  t.equal((await feeds.subscribe('r1', ids[4] + 1000, sub()))!.backlog[0].type, 'snapshot', 'an id from the future (another process): a snapshot');
  t.equal(await feeds.subscribe('gone', null, sub()), null, 'no such rollout');
});

t.test('ids only go up per rollout, and a restarted gateway starts above them', async (t) => {
  let clock = 5000;
  const first = new ClockEventIds(() => clock);
  const before = [first.next('a'), first.next('a'), first.next('a'), first.next('b')];
  t.same(before, [5000, 5001, 5002, 5000]);
  clock += 1;
  t.equal(first.next('a'), 5003, 'never back, even if the clock is slower than the events');
  clock += 100;
  const restarted = new ClockEventIds(() => clock);
  t.ok(restarted.next('a') > 5003, 'a new process starts above the old one');
});

t.test('a feed lingers after its last client for a reconnect, then goes; closeWhere and closeAll close streams', async (t) => {
  const { time, state, feeds, sub } = rig({ lingerMs: 60_000 });
  const a = sub();
  const { unsubscribe } = (await feeds.subscribe('r1', null, a))!;
  state.version++;
  feeds.changed('r1');
  await time.advance(100);
  const last = a.got.at(-1)!.id;
  unsubscribe();
  state.version++;
  feeds.changed('r1');
  await time.advance(30_000);
  const back = (await feeds.subscribe('r1', last, sub()))!;
  t.same(back.backlog.map((e) => e.type), ['change'], 'within the linger, the change made while away is replayed');
  back.unsubscribe();
  await time.advance(61_000);
  t.equal(feeds.streams, 0);
  t.equal((await feeds.subscribe('r1', back.backlog[0].id, sub()))!.backlog[0].type, 'snapshot', 'after it, a snapshot');

  const x = sub();
  const y = Object.assign(sub(), { tokenHash: 'other' });
  await feeds.subscribe('r2', null, x);
  await feeds.subscribe('r2', null, y);
  t.equal(feeds.closeWhere((s) => s.tokenHash === 'other'), 1);
  t.ok(y.closed);
  t.notOk(x.closed);
  feeds.closeAll();
  t.ok(x.closed);
  t.equal(time.pending, 0, 'no timers after closeAll');
});

t.test('a load that fails is reported and sends nothing; the next change goes out', async (t) => {
  const { time, state, feeds, sub, errors } = rig();
  const s = sub();
  await feeds.subscribe('r1', null, s);
  state.fail = true;
  state.version++;
  feeds.changed('r1');
  await time.advance(100);
  t.same(errors, ['r1: store down']);
  t.same(s.got, []);
  state.fail = false;
  feeds.changed('r1');
  await time.advance(100);
  t.equal(s.got.length, 1);
});

t.test('the wire form of an event, and Last-Event-ID parsing', async (t) => {
  t.equal(formatEvent({ id: 7, type: 'change', rolloutId: 'r', data: '{"a":1}' }), 'id: 7\nevent: change\ndata: {"a":1}\n\n');
  t.equal(parseLastEventId('1767225600000'), 1767225600000);
  t.equal(parseLastEventId(' 12 '), 12);
  for (const bad of [undefined, '', 'x', '-1', '1e3', '9'.repeat(16), ['1']]) t.equal(parseLastEventId(bad as string), null, JSON.stringify(bad));
});

t.test('two replicas on one id sequence: an id the other replica gave gets a snapshot, even inside this feed\'s range', async (t) => {
  // The database's sequence (pg-event-ids.ts), shared by both: ids interleave and are never given twice.
  let seq = 0;
  const shared: EventIdSource = { next: async () => ++seq };
  const a = rig({ ids: shared });
  const b = rig({ ids: shared });
  const onA = a.sub();
  const onB = b.sub();
  await a.feeds.subscribe('r1', null, onA);
  await b.feeds.subscribe('r1', null, onB);
  for (let i = 0; i < 3; i++) {
    a.state.version++;
    b.state.version++;
    a.feeds.changed('r1');
    b.feeds.changed('r1');
    await a.time.advance(100);
    await b.time.advance(100);
  }
  const fromA = onA.got.map((e) => e.id);
  const fromB = onB.got.map((e) => e.id);
  t.equal(new Set([...fromA, ...fromB]).size, fromA.length + fromB.length, 'no id given twice');
  const moved = fromA[1]; // the browser saw this on replica a, then the load balancer sent it to b
  t.ok(moved > fromB[0] && moved < fromB.at(-1)!, "a's id lies inside b's range");
  t.same((await b.feeds.subscribe('r1', fromB.at(-1)!, b.sub()))!.backlog, [], "b's own last id: nothing missed");
  t.same((await b.feeds.subscribe('r1', fromB[1], b.sub()))!.backlog.map((e) => e.id), fromB.slice(2), "b's own earlier id: the events after it");
  const there = (await b.feeds.subscribe('r1', moved, b.sub()))!.backlog;
  t.same(there.map((e) => e.type), ['snapshot'], 'b sends a snapshot, not the events after a number it never gave');
});

t.test('an id source that fails: the stream ends and the change waits for the next event', async (t) => {
  let down = false;
  let n = 0;
  const { time, state, feeds, sub, errors } = rig({
    ids: {
      next: async () => {
        if (down) throw new Error('database down');
        return ++n;
      },
    },
  });
  down = true;
  t.equal(await feeds.subscribe('r1', null, sub()), null, 'no snapshot without an id: the client comes back');
  t.same(errors, ['r1: database down']);
  down = false;
  const s = sub();
  await feeds.subscribe('r1', null, s);
  down = true;
  state.version++;
  feeds.changed('r1');
  await time.advance(100);
  t.same(s.got, [], 'the change is not sent without an id');
  down = false;
  feeds.changed('r1');
  await time.advance(100);
  t.same(s.got.map((e) => JSON.parse(e.data).version), [1], 'it goes with the next event');
});

t.test('a change whose id could not be had is sent once one can, with no further change', async (t) => {
  let down = false;
  let n = 0;
  const { time, state, feeds, sub } = rig({
    ids: {
      next: async () => {
        if (down) throw new Error('database down');
        return ++n;
      },
    },
  });
  const s = sub();
  await feeds.subscribe('r1', null, s);
  down = true;
  state.version++; // the rollout's last change (it completed, say): nothing follows it
  feeds.changed('r1');
  await time.advance(100);
  t.same(s.got, [], 'not sent without an id');
  down = false;
  await time.advance(1000);
  t.same(s.got.map((e) => JSON.parse(e.data).version), [1], 'sent once the id source is back');
});

t.test('a snapshot and a change built at once: every client ends on the latest state, live and replayed', async (t) => {
  // Ids whose answers the test gives, in the order it picks (two connections of a pool).
  const asked: Array<(id: number) => void> = [];
  let manual = false;
  let n = 0;
  const { time, state, feeds, sub } = rig({ ids: { next: () => (manual ? new Promise<number>((resolve) => asked.push(resolve)) : ++n) } });
  const a = sub();
  await feeds.subscribe('r1', null, a);
  manual = true;
  const b = sub();
  const subscribing = feeds.subscribe('r1', null, b); // b's snapshot: v0 read, its id on the way
  for (let i = 0; i < 5; i++) await Promise.resolve();
  state.version++;
  feeds.changed('r1');
  await time.advance(100); // the change: v1 to be read
  // The ids asked for are answered latest first (two connections of a pool).
  manual = false;
  n = 100;
  for (let k = 0; k < 10 && asked.length > 0; k++) {
    asked.pop()!(++n);
    for (let i = 0; i < 10; i++) await Promise.resolve();
  }
  const { backlog } = (await subscribing)!;
  await time.advance(1000);
  const last = (s: { got: RolloutEvent[] }, first: RolloutEvent[] = []) => JSON.parse([...first, ...s.got].at(-1)!.data).version;
  t.equal(last(a), 1, 'a ends on v1');
  t.equal(last(b, backlog), 1, 'so does b, which connected meanwhile');
  const lastOfA = a.got.at(-1)!.id;
  const replayed = (await feeds.subscribe('r1', lastOfA, sub()))!.backlog;
  t.equal(replayed.length === 0 ? 1 : JSON.parse(replayed.at(-1)!.data).version, 1, "a client coming back after a's last event is not replayed an older state");
});
