/**
 * Reads fields of one message in place. Decoders take (buf, start, end) of a
 * whole message as MessageFramer delivers it and validate every length, so a
 * malformed message raises ProtocolViolation instead of reading out of bounds.
 */
import { ProtocolViolation } from './errors.js';

export class MessageReader {
  pos: number;

  constructor(
    readonly buf: Buffer,
    start: number,
    readonly end: number,
    private readonly what: string,
  ) {
    this.pos = start;
  }

  private need(n: number): void {
    if (this.pos + n > this.end) throw new ProtocolViolation(`invalid ${this.what} message format`);
  }

  int8(): number {
    this.need(1);
    return this.buf[this.pos++];
  }

  int16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  cstring(): string {
    const zero = this.buf.indexOf(0, this.pos);
    if (zero < 0 || zero >= this.end) throw new ProtocolViolation(`invalid string in ${this.what} message`);
    const s = this.buf.toString('utf8', this.pos, zero);
    this.pos = zero + 1;
    return s;
  }

  bytes(n: number): Buffer {
    if (n < 0) throw new ProtocolViolation(`invalid length in ${this.what} message`);
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  remaining(): number {
    return this.end - this.pos;
  }

  /** Asserts that the message has been consumed exactly. */
  done(): void {
    if (this.pos !== this.end) throw new ProtocolViolation(`invalid ${this.what} message format`);
  }
}
