// The frame limit (docs/architecture.md §5): a connection whose next MQTT packet announces more bytes
// than a device may send is closed as soon as its header arrives, before the body is buffered
// (aedes has no packet size limit and would otherwise hold up to 256 MiB per connection, even
// before CONNECT). Pure: it follows the framing of the bytes it is shown and says yes or no.
//
//   const frames = new FrameLimit(17 * 1024);
//   socket.on('data', (chunk) => { if (!frames.admit(chunk)) socket.destroy(); });

/**
 * Follows MQTT framing (fixed header byte, Remaining Length, body; MQTT 3.1.1 §2.2) across the
 * chunks of one connection, and says no as soon as a packet announces a Remaining Length over
 * `limit` or a length field longer than 4 bytes (§2.2.3), so the body need never be buffered.
 */
export class FrameLimit {
  readonly #limit: number;
  #bodyLeft = 0;
  #inLength = false;
  #length = 0;
  #lengthBytes = 0;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Follows the packet boundaries across chunks; false once a packet announces more than the limit. */
  admit(chunk: Buffer): boolean {
    let i = 0;
    while (i < chunk.length) {
      if (this.#bodyLeft > 0) {
        const take = Math.min(this.#bodyLeft, chunk.length - i);
        this.#bodyLeft -= take;
        i += take;
        continue;
      }
      const byte = chunk[i++];
      if (!this.#inLength) {
        // the packet type byte; the Remaining Length follows
        this.#inLength = true;
        this.#length = 0;
        this.#lengthBytes = 0;
        continue;
      }
      this.#length += (byte & 0x7f) * 128 ** this.#lengthBytes;
      this.#lengthBytes++;
      if (this.#length > this.#limit) return false;
      if (byte & 0x80) {
        if (this.#lengthBytes === 4) return false;
        continue;
      }
      this.#inLength = false;
      this.#bodyLeft = this.#length;
    }
    return true;
  }
}

