// The embedded Store of changes (docs/storage.md, docs/architecture.md §7), the default: a journal of
// change batches and lowdb-format snapshots in the data dir, one process per dir.
//
// Writing: each batch is checked against the state plus the batches still on their way to disk
// (fleet-state.ts), framed as one journal record (journal.ts), and queued. Records that arrive
// within `commitWindowMs` of each other, or while the previous write is in flight, share one
// write and one fdatasync (group commit); each `apply` resolves after the fsync that covers its
// record, and only then does its batch reach the in-memory state that reads see, and the
// snapshot worker's copy. A write that fails (ENOSPC, EROFS, EIO) rejects every batch of the
// group, and those queued behind it, with a StoreError naming the store and the cause
// (PW_STORE_FULL for a full disk), cuts the journal back to its last good record, and leaves the
// state as it was; the next `apply` tries again, so a disk that gets its space back needs no restart.
//
// Snapshots: once the journal has grown past `snapshotFactor` (2) times the last snapshot's size (at
// least `minSnapshotJournalBytes`), or `snapshotIntervalMs` has passed with anything journaled, the
// journal is rotated (journal-G+1 begins) and the worker (snapshot-worker.ts), which holds its own
// copy of the state fed by the same committed batches, writes snapshot-G+1 off the event loop.
// The disk bytes per ack, snapshots included, stay about (1 + 1/factor) times the journal's,
// whatever the fleet's size. The previous snapshot and the journals after it are kept. A snapshot
// that fails is logged, shown in status() (and /metrics), and tried again as it is, after a minute
// and then twice as long each time up to an hour: no journal is begun per attempt (the worker holds
// its copy at the failed snapshot meanwhile), so the files stay what a restart and it need.
// A worker that dies (a crash, an exit) is logged and counted, and a new one is attached after a
// second, then twice as long each time one dies before it has loaded, up to a minute; it rebuilds
// its copy from the files as at open (the newest snapshot, the journals after it as far as they are
// durable; nothing is copied from the event loop), and snapshots go on. A snapshot under way when
// it died is a failed one, retried as it is. Commits never wait for the worker.
//
// Loading: the newest snapshot (or the earlier whole-file store's pinwave.json, upgrade.ts), then
// every journal after it replayed; a torn last record is cut off and logged; anything else
// unreadable stops the start with the file, the byte offset and what was wrong, and nothing in the
// dir is changed. Files are 0600, the dir 0700 (fixed on start if wider).
//
//   const store = new EmbeddedStore({ dir: '/var/lib/pinwave', logger });
//   await store.open();                          // PW_STORE_LOCKED if another process has the dir
//   await store.apply([{ type: 'counter.add', name: 'acks', by: 1 }]);   // on disk when it resolves
//   await store.close();
import { chmod, mkdir, open, readdir, readFile, stat, truncate, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Applied, ApplyOptions, Change, ChangeStore, StoreStatus } from './changes.ts';
import { FleetState, Pending, applied, type Checked } from './fleet-state.ts';
import { copyBatch } from './change-copy.ts';
import { HEADER_BYTES, JOURNAL_START, badRecord, frameGroup, readJournal, recordBytes } from './journal.ts';
import { DataDirLock } from './lock.ts';
import { JOURNAL_RE, SNAPSHOT_RE, journalName, readSnapshot, snapshotName } from './snapshot.ts';
import type { WorkerOut } from './snapshot-worker.ts';
import { attach, type SnapshotLink } from './snapshot-host.ts';
import { StateReads } from './state-reads.ts';
import { StoreError, type StoreErrorCode } from './types.ts';
import { LEGACY_FILENAME, readLegacyFile } from './upgrade.ts';

/** What the store logs through: the gateway's logger (pino's shape). */
export interface StoreLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Runs `fn` after `ms` (a new snapshot worker's wait after one died), replaceable in tests; returns what cancels it. */
export type RestartTimer = (fn: () => void, ms: number) => () => void;

const NODE_TIMER: RestartTimer = (fn, ms) => {
  const t = setTimeout(fn, ms).unref();
  return () => clearTimeout(t);
};

/** The journal's file operations, replaceable in tests to make a write or an fsync fail. */
export interface JournalIo {
  write(fh: FileHandle, buf: Buffer, position: number): Promise<number>;
  datasync(fh: FileHandle): Promise<void>;
  truncate(fh: FileHandle, length: number): Promise<void>;
  /** fsync of the data dir itself (a new file's name made durable) */
  syncDir(dir: string): Promise<void>;
}

const NODE_IO: JournalIo = {
  write: async (fh, buf, position) => (await fh.write(buf, 0, buf.length, position)).bytesWritten,
  datasync: (fh) => fh.datasync(),
  truncate: (fh, length) => fh.truncate(length),
  syncDir: async (dir) => {
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  },
};

export interface EmbeddedStoreOptions {
  /** The data directory; created with mode 0700 if missing. */
  dir: string;
  /** How long a durable batch waits for others to share its write, ms. Default 1; 0: the next turn of the event loop. */
  commitWindowMs?: number;
  /** How long a lazy batch (`durable: false`) may wait for a write to share, ms. Default 1000. */
  lazyWindowMs?: number;
  /**
   * A snapshot is taken once the journal holds this many times the last snapshot's bytes. Default
   * 2: disk bytes per ack are the record's times 1 + 1/factor (an ack's record is ~600 B: ~900 B
   * with the snapshots), and a restart replays at most twice the snapshot's bytes.
   */
  snapshotFactor?: number;
  /** ... and at least this many bytes. Default 4 MiB. */
  minSnapshotJournalBytes?: number;
  /** ... or once this long has passed since the last one with anything journaled, ms. Default 1 hour. */
  snapshotIntervalMs?: number;
  logger?: StoreLogger;
  io?: Partial<JournalIo>;
  /** When a new snapshot worker is attached after one died: default setTimeout (unref'd); tests fire it by hand. */
  restartTimer?: RestartTimer;
  /** How the store reaches the process's snapshot worker: default snapshot-host.ts `attach`; tests wrap it to kill the worker at a chosen message. */
  attach?: typeof attach;
}

interface Entry {
  tag: number;
  /** the batch as JSON, UTF-8 (the record's body: journal.ts recordBytes), and its length in bytes */
  body: Buffer;
  len: number;
  /** the batch as the state commits it: JSON.parse(body), made without parsing (change-copy.ts) */
  copy: Change[];
  seqs: number[];
  durable: boolean;
  at: number;
  resolve: (a: Applied) => void;
  reject: (e: Error) => void;
  /** why the batch failed, once its write did (#answer rejects it with this) */
  error: Error | null;
}

/**
 * How many committed batches are answered in one turn of the event loop: each answer runs its
 * caller's continuation (an ack's next message, its PUBACK), so a group of 256 answered at once
 * would be one long task; in slices, timers and I/O get their turn between them (the loop is never
 * blocked for long, docs/architecture.md §7).
 */
const ANSWER_SLICE = 32;

/** apply()'s options when none are given: no object made per batch for them. */
const NO_OPTIONS: ApplyOptions = Object.freeze({});

/** The most batches and bytes one write carries (a burst is written as several in a row). */
const MAX_GROUP_BATCHES = 256;
const MAX_GROUP_BYTES = 4 * 1024 * 1024;
/** How long the snapshot worker may be left behind the journal, ms (#journaled): a snapshot asks it to catch up first. */
const JOURNALED_POST_MS = 20;

const NO_LOG: StoreLogger = { info() {}, warn() {}, error() {} };

/** A failed snapshot is tried again after a minute, then after twice as long each time, up to an hour. */
const SNAPSHOT_RETRY_MS = 60_000;
const SNAPSHOT_RETRY_MAX_MS = 3_600_000;
/** A snapshot worker that died is replaced after a second, then twice as long each time one dies before it has loaded, up to a minute. */
const WORKER_RESTART_MS = 1000;
const WORKER_RESTART_MAX_MS = 60_000;

/** The error a failed write or sync rejects with: the store, the file, and the cause by code. */
export function writeError(dir: string, file: string, op: string, err: unknown): StoreError {
  const errno = (err as NodeJS.ErrnoException).code ?? 'EIO';
  const code: StoreErrorCode = errno === 'ENOSPC' || errno === 'EDQUOT' ? 'PW_STORE_FULL' : errno === 'EROFS' ? 'PW_STORE_READONLY' : 'PW_STORE_IO';
  const why = code === 'PW_STORE_FULL' ? 'insufficient storage: the disk is full' : code === 'PW_STORE_READONLY' ? 'the file system is read-only' : (err as Error).message;
  return new StoreError(code, `store ${dir}: ${op} ${file} failed (${errno}: ${why}); nothing of the batch was stored`, { cause: err });
}

export class EmbeddedStore extends StateReads implements ChangeStore {
  protected readonly name: string;
  readonly dir: string;
  readonly #o: Required<Omit<EmbeddedStoreOptions, 'logger' | 'io' | 'dir' | 'restartTimer' | 'attach'>>;
  readonly #log: StoreLogger;
  readonly #io: JournalIo;
  readonly #restartTimer: RestartTimer;
  readonly #attach: typeof attach;
  #lock: DataDirLock | null = null;
  /** open()'s work, which a close() during it waits for */
  #opening: Promise<void> | null = null;
  #worker: SnapshotLink | null = null;
  /** open()'s wait for the worker's load; null: the worker died, and open() goes on without it */
  #workerEvents: ((m: WorkerOut | null) => void) | null = null;
  /** cancels a new worker's attach, due after one died (#workerLost); and the wait before the one after it */
  #restart: (() => void) | null = null;
  #restartWait = WORKER_RESTART_MS;
  #workerRestarts = 0;
  #pending = new Pending();
  /** every batch tagged up to this one is committed or refused */
  #settledThrough = 0;
  #settleWaiters: Array<{ through: number; done: () => void }> = [];
  #queue: Entry[] = [];
  #tag = 0;
  #writing = false;
  #timer: NodeJS.Timeout | null = null;
  #timerDue = 0;
  /** the journal the worker has not been told of yet (#journaled), how far, and when it will be */
  #unposted: string | null = null;
  #unpostedEnd = 0;
  #postTimer: NodeJS.Timeout | null = null;
  #snapshotTimer: NodeJS.Timeout | null = null;
  #closing = false;
  #drained: Array<() => void> = [];
  /** batches written (or failed) and not yet answered, in order */
  /** batches to answer, from #answerHead on (an index, not a splice per slice) */
  #answers: Entry[] = [];
  #answerHead = 0;
  #answering = false;
  #answered: Array<() => void> = [];

  #journal: FileHandle | null = null;
  #gen = 1;
  #offset = 0;
  /** #offset when the journal holds no batch yet (its empty start): past it, something was journaled */
  #emptyAt = 0;
  #needTruncate = false;

  #lastSnapshotBytes = 0;
  #lastSnapshotAt = 0;
  #snapshotting: { gen: number; done: Promise<void>; settle: () => void; startedAt: number } | null = null;
  #rotateWanted = false;
  #snapshotRetryAt = 0;
  #snapshotWaiters: Array<() => void> = [];
  /** the newest snapshot's generation (the first journal's, before any): a restart replays the journals from it on */
  #snapshotBase = 1;
  /** what a restart loads first (the newest snapshot, pinwave.json, or nothing), and how long each journal after it before the current one is */
  #base: { kind: 'snapshot' | 'legacy' | 'empty'; path: string | null } = { kind: 'empty', path: null };
  #journalEnds = new Map<number, number>();
  /** a snapshot that failed, retried as it is: its journal was rotated already, and the worker holds the state before it */
  #owed: number | null = null;
  #snapshotFailures = 0;
  /** failed attempts since the last snapshot written: the retry's backoff */
  #failingInARow = 0;
  #lastSnapshotError: StoreStatus['lastSnapshotError'] = null;

  readonly #stats = { batches: 0, writes: 0, fsyncs: 0, bytesWritten: 0, snapshots: 0, lastSnapshotMs: null as number | null, lastDurableAt: null as number | null };
  #lastError: StoreStatus['lastError'] = null;
  #failures = 0;

  constructor(o: EmbeddedStoreOptions) {
    super();
    if (typeof o?.dir !== 'string' || o.dir === '') throw new TypeError('EmbeddedStore: expected options.dir, the data directory');
    this.dir = o.dir;
    this.name = o.dir;
    this.#o = {
      commitWindowMs: o.commitWindowMs ?? 1,
      lazyWindowMs: o.lazyWindowMs ?? 1000,
      snapshotFactor: o.snapshotFactor ?? 2,
      minSnapshotJournalBytes: o.minSnapshotJournalBytes ?? 4 * 1024 * 1024,
      snapshotIntervalMs: o.snapshotIntervalMs ?? 3_600_000,
    };
    for (const [k, v] of Object.entries(this.#o)) if (!(typeof v === 'number' && v >= 0 && Number.isFinite(v))) throw new RangeError(`EmbeddedStore: expected ${k} to be a number >= 0, got ${v}`);
    if (this.#o.snapshotFactor <= 0) throw new RangeError('EmbeddedStore: expected snapshotFactor > 0');
    this.#log = o.logger ?? NO_LOG;
    this.#io = { ...NODE_IO, ...o.io };
    this.#restartTimer = o.restartTimer ?? NODE_TIMER;
    this.#attach = o.attach ?? attach;
  }

  /** Bytes in the journal being appended to now (what the next snapshot will fold in). */
  get journalBytes(): number {
    return this.#offset;
  }

  /** The journal being appended to now. */
  get journalFile(): string {
    return join(this.dir, journalName(this.#gen));
  }

  // ------------------------------------------------------------------ open

  open(): Promise<void> {
    if (this.phase !== 'new') return Promise.reject(new StoreError('PW_STORE_CLOSED', `store ${this.dir} was opened already`));
    this.phase = 'opening';
    const opening = this.#open();
    this.#opening = opening;
    return opening;
  }

  async #open(): Promise<void> {
    const dir = this.dir;
    try {
      const created = await mkdir(dir, { recursive: true, mode: 0o700 });
      // A dir made now must be durable in its parent (and each parent made with it) before anything
      // in it is acknowledged: power lost after the first start could otherwise lose the whole dir.
      if (created !== undefined) {
        const first = resolve(created);
        for (let d = resolve(dir); ; d = dirname(d)) {
          await this.#io.syncDir(dirname(d));
          if (d === first || dirname(d) === d) break;
        }
      }
      const st = await stat(dir);
      if (!st.isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
      if ((st.mode & 0o077) !== 0) await chmod(dir, 0o700);
    } catch (err) {
      this.phase = 'new';
      throw new StoreError('PW_STORE_UNWRITABLE', `store ${dir}: cannot use the data dir (${(err as NodeJS.ErrnoException).code ?? ''} ${(err as Error).message})`, { cause: err });
    }
    try {
      this.#lock = await DataDirLock.acquire(dir);
    } catch (err) {
      this.phase = 'new';
      throw err;
    }
    try {
      await this.#load();
      this.phase = 'open';
      this.#snapshotTimer = setInterval(() => this.#considerSnapshot(), Math.min(60_000, Math.max(1000, this.#o.snapshotIntervalMs))).unref();
    } catch (err) {
      await this.#stopWorker();
      await this.#journal?.close().catch(() => undefined);
      this.#journal = null;
      await this.#lock.release();
      this.#lock = null;
      this.phase = 'new';
      throw err;
    }
  }

  async #load(): Promise<void> {
    const dir = this.dir;
    // A refused open() leaves the store as new: a second one starts from nothing, or it would
    // replay the journals onto what the first had replayed already.
    this.state = new FleetState();
    this.#journalEnds.clear();
    const names = await readdir(dir);
    const snapshots = names.flatMap((n) => (SNAPSHOT_RE.test(n) ? [Number(SNAPSHOT_RE.exec(n)![1])] : [])).sort((a, b) => a - b);
    const journals = names.flatMap((n) => (JOURNAL_RE.test(n) ? [Number(JOURNAL_RE.exec(n)![1])] : [])).sort((a, b) => a - b);
    const legacy = names.includes(LEGACY_FILENAME);
    const base =
      snapshots.length > 0
        ? { kind: 'snapshot' as const, path: join(dir, snapshotName(snapshots.at(-1)!)), gen: snapshots.at(-1)! }
        : legacy
          ? { kind: 'legacy' as const, path: join(dir, LEGACY_FILENAME), gen: 1 }
          : { kind: 'empty' as const, path: null, gen: 1 };
    const replay = journals.filter((g) => g >= base.gen);
    replay.forEach((g, i) => {
      if (g !== base.gen + i) {
        throw new StoreError('PW_STORE_CORRUPT', `store ${dir}: ${journalName(base.gen + i)} is missing (${base.path ?? 'the empty start'} is followed by ${replay.map(journalName).join(', ')}); refusing to start so that nothing stored there is lost`);
      }
    });

    // Read every journal first (the worker loads beside us from the same bytes).
    const read = [];
    for (const [i, g] of replay.entries()) {
      const path = join(dir, journalName(g));
      const bytes = await readFile(path);
      read.push({ gen: g, path, ...readJournal(bytes, path, i === replay.length - 1) });
    }
    const loaded = new Promise<void>((resolve, reject) => {
      this.#workerEvents = (m: WorkerOut | null) => {
        if (m === null || m.type === 'loaded') resolve();
        else if (m.type === 'failed') reject(new StoreError('PW_STORE_CORRUPT', `store ${dir}: the snapshot worker could not load: ${m.message}`));
        else return;
        this.#workerEvents = null;
      };
    });
    loaded.catch(() => undefined);
    this.#base = { kind: base.kind, path: base.path };
    const worker = this.#attachWorker();
    worker.post({ type: 'load', base: this.#base, journals: read.map((j) => ({ path: j.path, end: j.end })) });

    if (base.kind === 'snapshot') {
      const snap = await readSnapshot(base.path);
      // Replay starts at the journal the file is named for: a header naming another one (a
      // snapshot copied over another's name) would skip or repeat whole journals.
      if (snap.journal !== base.gen) throw badRecord(base.path, 0, `the header says the snapshot holds the journals before ${journalName(snap.journal)}, its name says before ${journalName(base.gen)}`);
      this.state = snap.state;
    }
    else if (base.kind === 'legacy') {
      this.state = await readLegacyFile(base.path);
      this.#log.info({ file: base.path }, 'store: loading the earlier whole-file store as the first snapshot');
    }
    this.#lastSnapshotBytes = base.path === null ? 0 : (await stat(base.path)).size;
    this.#lastSnapshotAt = Date.now();
    this.#snapshotBase = base.gen;
    for (const j of read) {
      for (const r of j.records) {
        let batch: Change[];
        try {
          batch = JSON.parse(r.body) as Change[];
        } catch (err) {
          throw badRecord(j.path, r.offset, `a record whose body is not JSON (${(err as Error).message})`);
        }
        let checked;
        try {
          checked = this.state.check(batch, null, true);
        } catch (err) {
          throw badRecord(j.path, r.offset, (err as Error).message.replace(/^apply: /, ''));
        }
        if (!checked.ok) throw badRecord(j.path, r.offset, `a batch the state before it refuses (${checked.code}: ${checked.message})`);
        this.state.commit(batch);
      }
    }
    this.state.reindex();
    await loaded;

    // Everything read cleanly: now, and only now, the dir may be changed.
    for (const n of names) {
      const path = join(dir, n);
      if (n.endsWith('.tmp') && SNAPSHOT_RE.test(n.slice(0, -4))) await unlink(path); // a snapshot a crash interrupted
      else if (SNAPSHOT_RE.test(n) || JOURNAL_RE.test(n) || n === LEGACY_FILENAME) {
        const st = await stat(path);
        if ((st.mode & 0o077) !== 0) await chmod(path, 0o600);
      }
    }
    const last = read.at(-1);
    for (const j of read) if (j !== last) this.#journalEnds.set(j.gen, j.end);
    if (last?.torn) {
      this.#log.warn({ file: last.path, offset: last.end, problem: last.torn }, 'store: cut off a torn last journal record (a crash mid-write; it was never acknowledged)');
      await truncate(last.path, last.end);
    }
    if (last === undefined) {
      this.#gen = base.gen;
      this.#journal = await this.#createJournal(this.#gen);
      this.#offset = this.#emptyAt = JOURNAL_START.length;
    } else {
      this.#gen = last.gen;
      this.#journal = await open(last.path, 'r+');
      this.#offset = last.end;
      this.#emptyAt = last.records.length === 0 ? last.end : 0;
      // An empty file (a crash while it was being created, before its empty start was synced, or
      // its start torn off) gets its empty start now, before any group is written to it.
      if (last.end === 0) {
        await this.#startJournal(this.#journal, last.path);
        this.#offset = this.#emptyAt = JOURNAL_START.length;
      }
    }
  }

  async #createJournal(gen: number): Promise<FileHandle> {
    const path = join(this.dir, journalName(gen));
    let fh: FileHandle;
    try {
      fh = await open(path, 'wx', 0o600);
    } catch (err) {
      throw writeError(this.dir, path, 'creating', err);
    }
    try {
      await this.#startJournal(fh, path);
    } catch (err) {
      await fh.close().catch(() => undefined);
      await unlink(path).catch(() => undefined);
      throw err;
    }
    // The new file's name must be durable before any record in it is acknowledged. A file whose
    // name could not be made durable is removed: records keep going to the journal before it, and
    // a journal left behind after that one would make its torn tail read as corruption on load
    // (docs/storage.md, "what a crash can and cannot lose"), and block the next try ('wx').
    try {
      await this.#syncDir();
    } catch (err) {
      await fh.close().catch(() => undefined);
      await unlink(path).catch(() => undefined);
      throw writeError(this.dir, this.dir, 'syncing the directory for', err);
    }
    return fh;
  }

  /**
   * Writes the empty group an empty journal file begins with, and syncs it, before any group is
   * written: a reader knows the journal's writes carry group headers even when a crash tore the
   * first of them (journal.ts).
   */
  async #startJournal(fh: FileHandle, path: string): Promise<void> {
    try {
      await this.#writeAll(fh, JOURNAL_START, 0);
      await this.#io.datasync(fh);
    } catch (err) {
      throw writeError(this.dir, path, 'starting', err);
    }
    this.#stats.fsyncs++;
    this.#stats.bytesWritten += JOURNAL_START.length;
  }

  async #syncDir(): Promise<void> {
    await this.#io.syncDir(this.dir);
    this.#stats.fsyncs++;
  }

  /** Attaches to the process's snapshot worker (snapshot-host.ts), which starts one if none runs. */
  #attachWorker(): SnapshotLink {
    const link = this.#attach(
      (m) => {
        // A link given up (#workerLost): what it answers is of nothing asked now.
        if (this.#worker !== link) return;
        if (m.type === 'snapshot') this.#snapshotDone(m);
        else if (this.#workerEvents !== null) this.#workerEvents(m);
        else if (m.type === 'loaded') {
          this.#restartWait = WORKER_RESTART_MS;
          this.#log.info({ store: this.dir, restarts: this.#workerRestarts }, 'store: a new snapshot worker loaded the files; snapshots go on');
        } else if (m.type === 'failed') {
          this.#workerLost('the new snapshot worker could not load the files', m.message);
          void link.detach();
        }
      },
      (err) => {
        if (this.#worker !== link) return;
        // A death while open() waits for its load stops no start: the store loads the files itself,
        // and a new worker is attached once it is open (#restartWorker), as after any death.
        this.#workerEvents?.(null);
        this.#workerLost('the snapshot worker died', err.message);
      },
    );
    this.#worker = link;
    return link;
  }

  /**
   * The worker serves this store no more (it died, or a new one could not load the files): the
   * journal is written as ever, and a new worker is attached after the backoff. A snapshot under
   * way is a failed one: owed, and retried as it is once the new worker runs (#snapshotDone).
   */
  #workerLost(what: string, cause: string): void {
    this.#worker = null;
    if (this.#postTimer !== null) clearTimeout(this.#postTimer);
    this.#postTimer = null;
    this.#unposted = null;
    const s = this.#snapshotting;
    if (s !== null) this.#snapshotDone({ store: 0, type: 'snapshot', gen: s.gen, ok: false, code: 'PW_STORE_IO', message: `${what}: ${cause}` });
    // A snapshot asked for that had not begun: its asker hears now, and the next is considered afresh.
    this.#rotateWanted = false;
    for (const w of this.#snapshotWaiters.splice(0)) w();
    if (this.#closing || this.phase === 'closed' || this.phase === 'new') {
      this.#log.warn({ store: this.dir, err: cause }, `store: ${what} while the store was closing`);
      return;
    }
    const wait = this.#restartWait;
    this.#restartWait = Math.min(WORKER_RESTART_MAX_MS, wait * 2);
    this.#log.warn({ store: this.dir, err: cause, restartInMs: wait, restarts: this.#workerRestarts }, `store: ${what}; snapshots go on with a new one in ${wait / 1000} s, the journal keeps everything meanwhile`);
    this.#restart = this.#restartTimer(() => this.#restartWorker(), wait);
  }

  /**
   * Attaches to a new worker after one was lost: it rebuilds this store's copy from the files, as
   * at open, as they stand now (the journals as far as they are durable), so nothing of the state
   * is copied on the event loop. A snapshot owed (one that failed) is of the journals before the
   * current one: the copy is held there, as after a failed snapshot (snapshot-worker.ts).
   */
  #restartWorker(): void {
    this.#restart = null;
    if (this.phase === 'opening') {
      // lost between its load and the end of open(), where the journal is being set up
      this.#restart = this.#restartTimer(() => this.#restartWorker(), WORKER_RESTART_MS);
      return;
    }
    if (this.phase !== 'open' || this.#closing) return;
    let link: SnapshotLink;
    try {
      link = this.#attachWorker();
    } catch (err) {
      return this.#workerLost('a new snapshot worker could not be started', (err as Error).message);
    }
    this.#workerRestarts++;
    const owed = this.#owed;
    const journals = [];
    for (let g = this.#snapshotBase; g < (owed ?? this.#gen + 1); g++) {
      journals.push({ path: join(this.dir, journalName(g)), end: g === this.#gen ? this.#offset : this.#journalEnds.get(g)! });
    }
    const held = owed === null ? undefined : { path: join(this.dir, journalName(owed)), end: this.#offset };
    link.post({ type: 'load', base: this.#base, journals, held });
    this.#considerSnapshot();
  }

  /**
   * Tells the worker how far the journal at `path` is durable, at most once per JOURNALED_POST_MS
   * (a batch trickling in alone is a write each: one message per write cost the event loop a
   * structured clone and the worker a wake-up and a read per write); at once when the path changes.
   */
  #journaled(path: string, end: number): void {
    if (this.#worker === null) return;
    if (this.#unposted !== null && this.#unposted !== path) this.#postJournaled();
    this.#unposted = path;
    this.#unpostedEnd = end;
    this.#postTimer ??= setTimeout(() => this.#postJournaled(), JOURNALED_POST_MS).unref();
  }

  /** Posts what #journaled holds back; before any other message that depends on it (a snapshot). */
  #postJournaled(): void {
    if (this.#postTimer !== null) clearTimeout(this.#postTimer);
    this.#postTimer = null;
    const path = this.#unposted;
    this.#unposted = null;
    if (path !== null) this.#worker?.post({ type: 'journaled', path, end: this.#unpostedEnd });
  }

  async #stopWorker(): Promise<void> {
    this.#restart?.();
    this.#restart = null;
    if (this.#postTimer !== null) clearTimeout(this.#postTimer);
    this.#postTimer = null;
    this.#unposted = null;
    const w = this.#worker;
    this.#worker = null;
    await w?.detach();
  }

  // ------------------------------------------------------------------ apply

  /**
   * Not an async function: a batch the state takes at once (every ack's) is queued and its promise
   * handed back as it is, without a frame and a promise more waiting for its fsync beside it; a
   * throw is a rejection all the same.
   */
  apply(changes: readonly Change[], options: ApplyOptions = NO_OPTIONS): Promise<Applied> {
    try {
      this.assertOpen();
      if (this.#closing) throw new StoreError('PW_STORE_CLOSED', `store ${this.dir} is closing`);
      const checked = this.state.check(changes, this.#pending);
      if (checked.ok || this.#pending.size === 0) return this.#enqueue(checked, options);
      return this.#applyAfterPending(changes, options, checked);
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /** A refusal that may rest on batches still on their way to disk: decided again once they have settled. */
  async #applyAfterPending(changes: readonly Change[], options: ApplyOptions, first: Checked): Promise<Applied> {
    let checked = first;
    // A refusal that may rest on batches still on their way to disk waits for their fate and is
    // decided again: one whose write then fails must not have refused anything (docs/storage.md,
    // "a batch that failed has no effect anywhere").
    while (!checked.ok && this.#pending.size > 0 && this.#settledThrough < this.#tag && this.state.check(changes, null).ok) {
      const through = this.#tag;
      await new Promise<void>((r) => this.#settleWaiters.push({ through, done: r }));
      this.assertOpen();
      checked = this.state.check(changes, this.#pending);
    }
    return this.#enqueue(checked, options);
  }

  /** Queues a checked batch for the next write; a refusal is answered as it is. */
  #enqueue(checked: Checked, options: ApplyOptions): Promise<Applied> {
    if (!checked.ok) return Promise.resolve(checked);
    if (this.#closing) throw new StoreError('PW_STORE_CLOSED', `store ${this.dir} is closing`);
    const json = JSON.stringify(checked.resolved);
    const body = recordBytes(json);
    const len = body.length;
    const copy = copyBatch(checked.resolved, json);
    const tag = ++this.#tag;
    this.#pending.record(tag, checked.entries);
    const durable = options.durable !== false;
    return new Promise<Applied>((resolve, reject) => {
      this.#queue.push({ tag, body, len, copy, seqs: checked.seqs, durable, at: performance.now(), resolve, reject, error: null });
      this.#schedule(durable ? this.#o.commitWindowMs : this.#o.lazyWindowMs);
    });
  }

  /** Starts the write loop within `ms`, unless it runs or is due sooner. */
  #schedule(ms: number): void {
    if (this.#writing) return;
    const due = performance.now() + ms;
    if (this.#timer !== null) {
      if (this.#timerDue <= due) return;
      clearTimeout(this.#timer);
    }
    this.#timerDue = due;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.#writeLoop();
    }, ms);
  }

  /** Whether the queue should be written now: a durable batch waits, a lazy one has waited enough, or the store closes. */
  #due(): boolean {
    if (this.#queue.length === 0) return false;
    if (this.#closing) return true;
    const now = performance.now();
    for (const e of this.#queue) if (e.durable || now - e.at >= this.#o.lazyWindowMs) return true;
    return false;
  }

  async #writeLoop(): Promise<void> {
    if (this.#writing) return;
    this.#writing = true;
    try {
      for (;;) {
        if (this.#rotateWanted && this.#snapshotting === null && this.#worker !== null && !this.#needTruncate) await this.#rotate();
        if (!this.#due()) break;
        await this.#writeGroup(this.#takeGroup());
      }
    } finally {
      this.#writing = false;
    }
    if (this.#queue.length > 0) {
      const oldest = Math.min(...this.#queue.map((e) => e.at));
      this.#schedule(Math.max(0, oldest + this.#o.lazyWindowMs - performance.now()));
    } else {
      for (const done of this.#drained.splice(0)) done();
    }
  }

  /** The queued batches for one write: all of them, up to a bound, so one write's commit work stays short on the event loop. */
  #takeGroup(): Entry[] {
    let bytes = 0;
    let n = 0;
    while (n < this.#queue.length && n < MAX_GROUP_BATCHES && (n === 0 || bytes + HEADER_BYTES + this.#queue[n].len <= MAX_GROUP_BYTES)) bytes += HEADER_BYTES + this.#queue[n++].len;
    return this.#queue.splice(0, n);
  }

  async #writeGroup(group: Entry[]): Promise<void> {
    const fh = this.#journal!;
    const path = this.journalFile;
    const buf = frameGroup(group);
    try {
      if (this.#needTruncate) {
        await this.#io.truncate(fh, this.#offset);
        this.#needTruncate = false;
      }
      await this.#writeAll(fh, buf, this.#offset);
      await this.#io.datasync(fh);
    } catch (err) {
      await this.#fail(group, path, err);
      return;
    }
    this.#offset += buf.length;
    const s = this.#stats;
    s.writes++;
    s.fsyncs++;
    s.bytesWritten += buf.length;
    s.batches += group.length;
    s.lastDurableAt = Date.now();
    if (this.#lastError !== null) {
      this.#log.info({ store: this.dir }, 'store: writing again');
      this.#lastError = null;
    }
    for (const e of group) {
      this.state.commit(e.copy);
      this.#pending.settle(e.tag);
    }
    this.#settled(group.at(-1)!.tag);
    // The worker reads what was written from the journal itself: nothing of the batches is copied
    // to it through the event loop, and it catches up at its own pace (snapshot-worker.ts).
    this.#journaled(path, this.#offset);
    this.#answer(group);
    this.#considerSnapshot();
  }

  /** Writes all of `buf` at `position`: a write may store only part of it, and say so. */
  async #writeAll(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
    let done = 0;
    while (done < buf.length) {
      const n = await this.#io.write(fh, done === 0 ? buf : buf.subarray(done), position + done);
      if (n <= 0) throw Object.assign(new Error('the write made no progress'), { code: 'EIO' });
      done += n;
    }
  }

  /** Answers the applies of `group` (resolved, or rejected with `error`) after those before, ANSWER_SLICE per turn of the loop. */
  #answer(group: Entry[], error: Error | null = null): void {
    for (const e of group) {
      e.error = error;
      this.#answers.push(e);
    }
    if (this.#answering) return;
    this.#answering = true;
    const slice = () => {
      const answers = this.#answers;
      const end = Math.min(answers.length, this.#answerHead + ANSWER_SLICE);
      while (this.#answerHead < end) {
        const e = answers[this.#answerHead];
        answers[this.#answerHead++] = undefined as unknown as Entry;
        if (e.error === null) e.resolve({ ok: true, seqs: e.seqs });
        else e.reject(e.error);
      }
      if (this.#answerHead < answers.length) return void setImmediate(slice);
      this.#answers = [];
      this.#answerHead = 0;
      this.#answering = false;
      for (const done of this.#answered.splice(0)) done();
    };
    slice();
  }

  /** A write failed: nothing of this group, nor of what was queued behind it (checked against it), happened. */
  async #fail(group: Entry[], path: string, err: unknown): Promise<void> {
    const error = writeError(this.dir, path, 'writing', err);
    const all = [...group, ...this.#queue.splice(0)];
    // Batches that come meanwhile are checked against the committed state alone.
    this.#pending.clear();
    this.#failures++;
    this.#lastError = { code: error.code, message: error.message, at: Date.now() };
    this.#log.error({ store: this.dir, code: error.code, err: (err as Error).message, batches: all.length }, 'store: a journal write failed; its batches were refused');
    // Whole records of the group may be in the file (a write that succeeded, an fdatasync that did
    // not): they are cut off, durably, before anyone is told the batches failed, or a crash right
    // after the refusal would replay them (docs/storage.md, "a batch that failed has no effect
    // anywhere"). A cut that fails is made before the next write, and at close.
    this.#needTruncate = true;
    await this.#cutBack();
    this.#settled(all.at(-1)!.tag);
    this.#answer(all, error);
  }

  /** Batches up to `tag` are committed or refused: refusals that waited on them are decided again. */
  #settled(tag: number): void {
    this.#settledThrough = Math.max(this.#settledThrough, tag);
    if (this.#settleWaiters.length === 0) return;
    const still = [];
    for (const w of this.#settleWaiters) if (w.through <= this.#settledThrough) w.done(); else still.push(w);
    this.#settleWaiters = still;
  }

  /** Cuts the journal back to its last good record and syncs that; false (needTruncate kept) when it could not. */
  async #cutBack(): Promise<boolean> {
    try {
      await this.#io.truncate(this.#journal!, this.#offset);
      await this.#io.datasync(this.#journal!);
      this.#needTruncate = false;
      return true;
    } catch (err) {
      this.#log.error({ store: this.dir, file: this.journalFile, offset: this.#offset, err: (err as Error).message }, 'store: could not cut the journal back to its last good record; trying again before the next write');
      return false;
    }
  }

  // ------------------------------------------------------------------ snapshots

  #considerSnapshot(): void {
    if (this.phase !== 'open' || this.#closing || this.#snapshotting !== null || this.#rotateWanted || this.#worker === null) return;
    const now = Date.now();
    if (now < this.#snapshotRetryAt) return;
    if (this.#owed !== null) return this.#retrySnapshot(this.#owed);
    const big = this.#offset >= Math.max(this.#o.minSnapshotJournalBytes, this.#lastSnapshotBytes * this.#o.snapshotFactor);
    const old = this.#offset > this.#emptyAt && now - this.#lastSnapshotAt >= this.#o.snapshotIntervalMs;
    if (!big && !old) return;
    this.#rotateWanted = true;
    if (!this.#writing) void this.#writeLoop();
  }

  /** Starts journal G+1 and has the worker write snapshot G+1: the state after every batch of journal G. */
  async #rotate(): Promise<void> {
    const gen = this.#gen + 1;
    let fh: FileHandle;
    try {
      fh = await this.#createJournal(gen);
    } catch (err) {
      this.#rotateWanted = false;
      const e = err as NodeJS.ErrnoException;
      const wait = this.#snapshotFailed(e.code ?? 'EIO', `store ${this.dir}: could not start ${journalName(gen)} for a snapshot: ${e.message}`);
      this.#log.error({ store: this.dir, err: e.message, failures: this.#snapshotFailures, retryInMs: wait }, 'store: could not start a new journal for a snapshot; retrying later');
      for (const w of this.#snapshotWaiters.splice(0)) w();
      return;
    }
    // Wanted until now: a timer meanwhile finds a rotation under way, and asks for no second one.
    this.#rotateWanted = false;
    const old = this.#journal!;
    this.#journalEnds.set(this.#gen, this.#offset);
    this.#journal = fh;
    this.#gen = gen;
    this.#offset = this.#emptyAt = JOURNAL_START.length;
    await old.close().catch(() => undefined);
    this.#retrySnapshot(gen);
  }

  /** Has the worker write snapshot `gen`: the first time just after journal `gen` began, or again after it failed. */
  #retrySnapshot(gen: number): void {
    let settle!: () => void;
    const done = new Promise<void>((r) => (settle = r));
    this.#snapshotting = { gen, done, settle, startedAt: performance.now() };
    const worker = this.#worker;
    if (worker === null) {
      // Lost while journal G was being started for it (#workerLost): a failed one, owed.
      this.#snapshotDone({ store: 0, type: 'snapshot', gen, ok: false, code: 'PW_STORE_IO', message: 'the snapshot worker was lost before it was asked for it' });
      return;
    }
    // The snapshot holds every batch of journal G: the worker must have been told of them all.
    this.#postJournaled();
    worker.post({ type: 'snapshot', gen, path: join(this.dir, snapshotName(gen)) });
  }

  /**
   * Counts a failed snapshot attempt and sets when the next one may start: a minute after the
   * first failure, doubling up to an hour. Returns that wait, ms.
   */
  #snapshotFailed(code: string, message: string): number {
    this.#snapshotFailures++;
    this.#failingInARow++;
    const wait = Math.min(SNAPSHOT_RETRY_MAX_MS, SNAPSHOT_RETRY_MS * 2 ** Math.min(this.#failingInARow - 1, 20));
    const now = Date.now();
    this.#snapshotRetryAt = now + wait;
    this.#lastSnapshotError = { code, message, at: now };
    return wait;
  }

  #snapshotDone(m: Extract<WorkerOut, { type: 'snapshot' }>): void {
    const s = this.#snapshotting;
    if (s === null || s.gen !== m.gen) return;
    this.#snapshotting = null;
    for (const w of this.#snapshotWaiters.splice(0)) void s.done.then(w);
    if (m.ok) {
      this.#owed = null;
      this.#snapshotBase = m.gen;
      this.#base = { kind: 'snapshot', path: join(this.dir, snapshotName(m.gen)) };
      for (const g of this.#journalEnds.keys()) if (g < m.gen) this.#journalEnds.delete(g);
      this.#failingInARow = 0;
      this.#lastSnapshotError = null;
      this.#snapshotRetryAt = 0;
      this.#lastSnapshotBytes = m.bytes;
      this.#lastSnapshotAt = Date.now();
      this.#stats.snapshots++;
      this.#stats.lastSnapshotMs = m.ms;
      this.#stats.bytesWritten += m.bytes;
      this.#stats.fsyncs += m.fsyncs;
      this.#log.info({ store: this.dir, gen: m.gen, bytes: m.bytes, ms: Math.round(m.ms) }, 'store: snapshot written');
      void this.#prune().finally(s.settle);
    } else {
      // Retried as it is: a new journal per attempt would pile up files that all stay needed until a
      // snapshot is written, and the worker holds the state this one is of (snapshot-worker.ts).
      this.#owed = m.gen;
      // A rotation asked for while this one was under way is not started: the worker holds the state
      // before this journal, and a snapshot after it would claim the journal's batches without them.
      this.#rotateWanted = false;
      const wait = this.#snapshotFailed(m.code, `store ${this.dir}: writing ${snapshotName(m.gen)} failed (${m.code}): ${m.message}`);
      this.#log.error({ store: this.dir, file: snapshotName(m.gen), code: m.code, err: m.message, failures: this.#snapshotFailures, retryInMs: wait }, `store: a snapshot failed; the journal keeps everything, retrying in ${Math.round(wait / 1000)} s`);
      s.settle();
    }
  }

  /** Keeps the newest snapshot, the one before it, and the journals after that one; removes what is older. */
  async #prune(): Promise<void> {
    try {
      const names = await readdir(this.dir);
      const snaps = names.flatMap((n) => (SNAPSHOT_RE.test(n) ? [Number(SNAPSHOT_RE.exec(n)![1])] : [])).sort((a, b) => b - a);
      const legacy = names.includes(LEGACY_FILENAME);
      const previous = snaps[1] ?? 1;
      for (const n of names) {
        const s = SNAPSHOT_RE.exec(n);
        const j = JOURNAL_RE.exec(n);
        if ((s && Number(s[1]) < previous) || (j && Number(j[1]) < previous) || (n === LEGACY_FILENAME && snaps.length >= 2)) await unlink(join(this.dir, n));
      }
    } catch (err) {
      this.#log.warn({ store: this.dir, err: (err as Error).message }, 'store: could not remove old snapshots and journals');
    }
  }

  // ------------------------------------------------------------------ close, status

  async close(): Promise<void> {
    // Closed while it opens (a stop during start): once open, closed as ever, the lock released.
    if (this.phase === 'opening') await this.#opening?.catch(() => undefined);
    if (this.phase !== 'open') {
      this.phase = 'closed';
      return;
    }
    this.#closing = true;
    if (this.#queue.length > 0 || this.#writing) {
      const drained = new Promise<void>((r) => this.#drained.push(r));
      if (!this.#writing) {
        if (this.#timer !== null) clearTimeout(this.#timer);
        this.#timer = null;
        void this.#writeLoop();
      }
      await drained;
    }
    // Every apply is answered before close resolves.
    if (this.#answering) await new Promise<void>((r) => this.#answered.push(r));
    await this.#snapshotting?.done;
    // A refused write that could not be cut off yet must not be replayed by the next start.
    if (this.#needTruncate && !(await this.#cutBack())) {
      this.#log.error({ store: this.dir, file: this.journalFile, offset: this.#offset }, `store: closing with refused records after byte ${this.#offset} of ${this.journalFile}; cut them off by hand (truncate -s ${this.#offset}) before the next start`);
    }
    if (this.#timer !== null) clearTimeout(this.#timer);
    if (this.#snapshotTimer !== null) clearInterval(this.#snapshotTimer);
    await this.#stopWorker();
    await this.#journal?.close().catch(() => undefined);
    this.#journal = null;
    await this.#lock?.release();
    this.#lock = null;
    this.phase = 'closed';
  }

  status(): StoreStatus {
    const s = this.#stats;
    return {
      name: this.dir,
      writable: this.#lastError === null,
      failures: this.#failures,
      lastError: this.#lastError,
      lastDurableAt: s.lastDurableAt,
      batches: s.batches,
      writes: s.writes,
      fsyncs: s.fsyncs,
      bytesWritten: s.bytesWritten,
      snapshots: s.snapshots,
      lastSnapshotMs: s.lastSnapshotMs,
      snapshotFailures: this.#snapshotFailures,
      snapshotWorkerRestarts: this.#workerRestarts,
      lastSnapshotError: this.#lastSnapshotError,
      nextSnapshotAttemptAt: this.#lastSnapshotError === null || this.#worker === null ? null : this.#snapshotRetryAt,
      journalsSinceSnapshot: this.#gen - this.#snapshotBase + 1,
      queued: this.#queue.length,
    };
  }

  /** Resolves once a snapshot in progress is on disk (benchmarks and tests). */
  async snapshotSettled(): Promise<void> {
    await this.#snapshotting?.done;
  }

  /** Takes a snapshot now, as if the journal had grown past its threshold; resolves once it is written (or failed). */
  async snapshotNow(): Promise<void> {
    this.assertOpen();
    await this.#snapshotting?.done;
    if (this.#worker === null) throw new StoreError('PW_STORE_IO', `store ${this.dir}: no snapshot now: the snapshot worker is being started again (the last one was lost); the journal keeps everything`);
    const written = new Promise<void>((r) => this.#snapshotWaiters.push(r));
    this.#snapshotRetryAt = 0;
    // One that failed is written first, as it is; the journal after it waits for the next one. Once
    // only: a second attempt under way would be of the state the first one leaves the worker at.
    if (this.#owed !== null) {
      if (this.#snapshotting === null) this.#retrySnapshot(this.#owed);
    } else {
      this.#rotateWanted = true;
      if (!this.#writing) void this.#writeLoop();
    }
    await written;
  }
}
