/**
 * Builds protocol messages into one growable buffer.
 *
 * A session encodes its replies (ReadyForQuery, errors, command tags) into a
 * writer and flushes it once per event-loop turn, so a burst of replies costs
 * one socket write. `flush()` hands out a copy-free view and resets the writer.
 */

export class MessageWriter {
  private buf: Buffer;
  private pos = 0;
  private messageStart = -1;

  constructor(initialSize = 4096) {
    this.buf = Buffer.allocUnsafe(initialSize);
  }

  get length(): number {
    return this.pos;
  }

  private ensure(extra: number): void {
    if (this.pos + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + extra) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** Starts a typed message; its length is filled in by end(). */
  begin(type: number): this {
    this.ensure(5);
    this.buf[this.pos] = type;
    this.messageStart = this.pos + 1;
    this.pos += 5;
    return this;
  }

  /** Starts an untyped (startup-phase) message. */
  beginUntyped(): this {
    this.ensure(4);
    this.messageStart = this.pos;
    this.pos += 4;
    return this;
  }

  end(): this {
    this.buf.writeInt32BE(this.pos - this.messageStart, this.messageStart);
    this.messageStart = -1;
    return this;
  }

  int8(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  int16(v: number): this {
    this.ensure(2);
    this.buf.writeInt16BE(v, this.pos);
    this.pos += 2;
    return this;
  }

  int32(v: number): this {
    this.ensure(4);
    this.buf.writeInt32BE(v | 0, this.pos);
    this.pos += 4;
    return this;
  }

  /** A NUL-terminated UTF-8 string. */
  cstring(s: string): this {
    const len = Buffer.byteLength(s);
    this.ensure(len + 1);
    this.buf.write(s, this.pos, len, 'utf8');
    this.pos += len;
    this.buf[this.pos++] = 0;
    return this;
  }

  bytes(b: Buffer | Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  /** Returns the bytes written so far as a fresh buffer and empties the writer. */
  flush(): Buffer {
    const out = Buffer.from(this.buf.subarray(0, this.pos));
    this.pos = 0;
    return out;
  }
}

/** Encodes one message with a throwaway writer; for cold paths only. */
export function encodeMessage(build: (w: MessageWriter) => void): Buffer {
  const w = new MessageWriter(256);
  build(w);
  return w.flush();
}
