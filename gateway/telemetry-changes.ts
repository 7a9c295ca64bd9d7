// The telemetry book (gateway/telemetry.ts) in the Store of changes (docs/storage.md): what one
// message changed becomes the store's changes — each aggregate bucket put or removed, the device's
// counter and marks and the waves' counts as keyed items, each report kept on the device record,
// and the counters as deltas — and the book is read back from the store at start. Pure but for the
// reads in `loadTelemetry`.
//
//   const book = await loadTelemetry(store);
//   book.ingest(id, group, message, lookup, now);
//   await store.apply([...deviceChanges, ...telemetry.changes(book.takeChanges())]);
import type { Change, ChangeStore, JsonObject } from './store/changes.ts';
import { allDevices } from './fleet-reads.ts';
import { TELEMETRY_DEVICES, TELEMETRY_WAVES } from './store/upgrade.ts';
import { TelemetryBook, TELEMETRY_DROP_REASONS, type DeviceTelemetry, type TelemetryCounters, type TelemetryDelta, type TelemetryState, type WaveTelemetry } from './telemetry.ts';

const COUNTER = 'telemetry.';

/** Turns the book's deltas into changes; remembers the counters it last gave, to send differences. */
export class TelemetryChanges {
  #counters: TelemetryCounters;

  constructor(counters: TelemetryCounters) {
    this.#counters = structuredClone(counters);
  }

  /** What the store holds now: after the book was read again from it. */
  reset(counters: TelemetryCounters): void {
    this.#counters = structuredClone(counters);
  }

  changes(d: TelemetryDelta): Change[] {
    const out: Change[] = [];
    for (const [key, bucket] of d.buckets) out.push(bucket === null ? { type: 'telemetry.remove', key } : { type: 'telemetry.put', key, bucket: structuredClone(bucket) });
    for (const [id, dev] of d.devices) {
      out.push(dev === null ? { type: 'item.delete', collection: TELEMETRY_DEVICES, key: id } : { type: 'item.put', collection: TELEMETRY_DEVICES, key: id, value: { counter: dev.counter, marks: [...dev.marks], owned: dev.owned } });
    }
    for (const [key, w] of d.waves) out.push({ type: 'item.put', collection: TELEMETRY_WAVES, key, value: { ...w } as unknown as JsonObject });
    for (const { deviceId, report } of d.reports) out.push({ type: 'device.telemetry', id: deviceId, report: { ...report } });
    const before = this.#counters;
    const now = d.counters;
    for (const k of ['messages', 'reports', 'accepted'] as const) if (now[k] !== before[k]) out.push({ type: 'counter.add', name: COUNTER + k, by: now[k] - before[k] });
    for (const r of TELEMETRY_DROP_REASONS) if (now.dropped[r] !== before.dropped[r]) out.push({ type: 'counter.add', name: `${COUNTER}dropped.${r}`, by: now.dropped[r] - before.dropped[r] });
    this.#counters = structuredClone(now);
    return out;
  }
}

/** The book as the store holds it: buckets, the devices' items and recent reports, the waves, the counters. */
export async function loadTelemetry(store: ChangeStore): Promise<{ book: TelemetryBook; changes: TelemetryChanges }> {
  const book = new TelemetryBook(await readTelemetry(store));
  return { book, changes: new TelemetryChanges(book.counters) };
}

/**
 * Reads `book` again from the store, in place (the parts holding it keep it), after a commit
 * failed: what the failed batch changed in memory holds no longer (docs/architecture.md §7).
 */
export async function reloadTelemetry(store: ChangeStore, book: TelemetryBook, changes: TelemetryChanges): Promise<void> {
  book.replace(await readTelemetry(store));
  changes.reset(book.counters);
}

async function readTelemetry(store: ChangeStore): Promise<TelemetryState> {
  const state: TelemetryState = { version: 1, buckets: {}, devices: {}, waves: {}, counters: { messages: 0, reports: 0, accepted: 0, dropped: {} as TelemetryCounters['dropped'] } };
  for (let cursor: string | null = null; ; ) {
    const p = await store.listTelemetry({ limit: 1000, cursor });
    for (const { key, bucket } of p.items) state.buckets[key] = bucket;
    if ((cursor = p.next) === null) break;
  }
  for (let cursor: string | null = null; ; ) {
    const p = await store.listItems(TELEMETRY_DEVICES, { limit: 1000, cursor });
    for (const { key, value } of p.items) state.devices[key] = { counter: value.counter as number, marks: value.marks as string[], owned: value.owned as number, recent: [] } satisfies DeviceTelemetry;
    if ((cursor = p.next) === null) break;
  }
  for (let cursor: string | null = null; ; ) {
    const p = await store.listItems(TELEMETRY_WAVES, { limit: 1000, cursor });
    for (const { key, value } of p.items) state.waves[key] = value as unknown as WaveTelemetry;
    if ((cursor = p.next) === null) break;
  }
  if (Object.keys(state.devices).length > 0) {
    for (const d of await allDevices(store)) {
      const t = state.devices[d.id];
      if (t && d.telemetry.length > 0) t.recent = d.telemetry as unknown as DeviceTelemetry['recent'];
    }
  }
  const counters = await store.getCounters();
  for (const k of ['messages', 'reports', 'accepted'] as const) state.counters[k] = counters[COUNTER + k] ?? 0;
  for (const r of TELEMETRY_DROP_REASONS) state.counters.dropped[r] = counters[`${COUNTER}dropped.${r}`] ?? 0;
  return state;
}
