// What devices were refused, logged at a bounded rate (docs/architecture.md §5). A hostile client can
// earn a denial per SUBSCRIBE filter, per CONNECT, per frame; a log line for each would let it write
// the gateway's disk full faster than it sends (one SUBSCRIBE of 1,700 forbidden filters was 1,700
// lines). So per window (default 10 s) each device gets one line as it happens, the first; the
// rest are counted, per device and per kind, and written as one summary line per device when the
// window ends. Across devices at most `maxLines` lines of each sort are written per window; the
// devices beyond that are added up into one last line. Bytes of log per window are therefore
// bounded whatever the clients do, and no denial goes uncounted.
//
//   const denials = new DenialLog({ logger, maxLines: 50, maxDevices: 1000 });
//   denials.record('meter-1', 'subscribe', { topic: '#' });   // logged: the first of the window
//   denials.record('meter-1', 'subscribe', { topic: 'a/b' }); // counted
//   denials.flush();                                          // "denials in the last window" for meter-1
//
// The broker calls flush() on a timer and at close; this file keeps no timer and reads no clock.
import type { AclDenial } from './acl.ts';

/** Everything that is counted as a client's misbehaviour. */
export type DenialKind =
  | AclDenial
  | 'payload_too_large' // a PUBLISH over maxPayloadBytes
  | 'oversized_frame' //   a packet announcing more than the frame limit
  | 'protocol_error' //    a malformed packet, or one the protocol does not allow where it came
  | 'connect_refused' //   a refusing CONNACK (bad token, bad id, a will, ...)
  | 'disconnected'; //     the broker closed the session for too many denials

export interface DenialLogger {
  info(obj: Record<string, unknown>, msg?: string): void;
  warn(obj: Record<string, unknown>, msg?: string): void;
}

export interface DenialLogOptions {
  logger: DenialLogger;
  /** Lines written as they happen per window, across devices; as many summary lines again at most. Default 50. */
  maxLines?: number;
  /** Devices counted one by one per window; the others are added up together. Default 1000. */
  maxDevices?: number;
}

// Sample topics kept per device and window, and how much of each (attacker-chosen text).
const SAMPLES = 3;
const SAMPLE_CHARS = 100;

interface Entry {
  counts: Partial<Record<DenialKind, number>>;
  /** denials counted but not logged one by one */
  unlogged: number;
  samples: string[];
}

export class DenialLog {
  readonly #log: DenialLogger;
  readonly #maxLines: number;
  readonly #maxDevices: number;
  // Keyed by device id; '' for a connection that has not said which device it is.
  #window = new Map<string, Entry>();
  #linesThisWindow = 0;
  #overflow = { devices: new Set<string>(), denials: 0 };

  constructor(o: DenialLogOptions) {
    this.#log = o.logger;
    this.#maxLines = o.maxLines ?? 50;
    this.#maxDevices = o.maxDevices ?? 1000;
  }

  /**
   * Counts one denial of `kind` for `deviceId` (undefined: not known yet) and logs it at once when
   * it is the device's first of the window and the window's line budget allows; `fields` go on
   * that line (a topic is cut to 100 characters and kept as a sample for the summary).
   */
  record(deviceId: string | undefined, kind: DenialKind, fields: Record<string, unknown> = {}, msg = 'device refused'): void {
    const key = deviceId ?? '';
    let entry = this.#window.get(key);
    if (!entry) {
      if (this.#window.size >= this.#maxDevices) {
        // Bounded memory: a flood of made-up ids is added up, not tracked one by one.
        if (this.#overflow.devices.size < this.#maxDevices) this.#overflow.devices.add(key);
        this.#overflow.denials++;
        return;
      }
      entry = { counts: {}, unlogged: 0, samples: [] };
      this.#window.set(key, entry);
      entry.counts[kind] = 1;
      const topic = typeof fields.topic === 'string' ? fields.topic.slice(0, SAMPLE_CHARS) : undefined;
      if (this.#linesThisWindow < this.#maxLines) {
        this.#linesThisWindow++;
        this.#log.info({ deviceId, denial: kind, ...fields, ...(topic !== undefined && { topic }) }, msg);
      } else {
        entry.unlogged++;
        if (topic !== undefined) entry.samples.push(topic);
      }
      return;
    }
    entry.counts[kind] = (entry.counts[kind] ?? 0) + 1;
    entry.unlogged++;
    if (entry.samples.length < SAMPLES && typeof fields.topic === 'string') entry.samples.push(fields.topic.slice(0, SAMPLE_CHARS));
  }

  /** Ends the window: one summary line per device with denials not yet logged (bounded), then starts afresh. */
  flush(): void {
    let lines = 0;
    let restDevices = 0;
    let restDenials = this.#overflow.denials;
    for (const [key, entry] of this.#window) {
      if (entry.unlogged === 0) continue;
      if (lines >= this.#maxLines) {
        restDevices++;
        restDenials += entry.unlogged;
        continue;
      }
      lines++;
      const total = Object.values(entry.counts).reduce((a, b) => a + b, 0);
      this.#log.info(
        { deviceId: key === '' ? undefined : key, denials: entry.counts, total, ...(entry.samples.length > 0 && { topics: entry.samples }) },
        'device refused repeatedly in the last window (counted, not logged one by one)',
      );
    }
    restDevices += this.#overflow.devices.size;
    if (restDenials > 0) {
      this.#log.warn({ devices: restDevices, denials: restDenials }, 'more devices refused in the last window (counted together)');
    }
    this.#window = new Map();
    this.#linesThisWindow = 0;
    this.#overflow = { devices: new Set(), denials: 0 };
  }
}
