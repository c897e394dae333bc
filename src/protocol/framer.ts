/**
 * Splits a byte stream into whole protocol messages without copying them.
 *
 * Sockets deliver arbitrary chunks; the coordinator needs to know where
 * messages start and end (to route statements, spot Terminate or ReadyForQuery)
 * but forwards bytes untouched. `take()` returns the longest prefix of whole
 * messages — the chunk itself when it ends on a boundary, which is the common
 * case and allocates nothing — and keeps the incomplete tail for the next chunk.
 */
import { MAX_MESSAGE_SIZE } from './constants.js';
import { ProtocolViolation } from './errors.js';

export class MessageFramer {
  /**
   * Chunks of an incomplete message, kept as a list: a large message arrives
   * in many chunks, and joining them once it is whole keeps the copying linear
   * (concatenating on every chunk would copy the message O(chunks) times).
   */
  private parts: Buffer[] = [];
  private partsLength = 0;
  /** Bytes `parts` must reach before a message can complete: a header, or the whole first message. */
  private needed = 0;

  constructor(private readonly maxMessageSize: number = MAX_MESSAGE_SIZE) {}

  /** Bytes held back waiting for the rest of a message. */
  get pendingBytes(): number {
    return this.partsLength;
  }

  /**
   * Appends a chunk and returns a buffer holding only whole messages (or null).
   * Throws ProtocolViolation on a length that cannot be valid.
   */
  take(chunk: Buffer): Buffer | null {
    let buf = chunk;
    if (this.partsLength > 0) {
      this.parts.push(chunk);
      this.partsLength += chunk.length;
      if (this.partsLength < this.needed) return null;
      buf = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.partsLength);
      this.parts = [];
      this.partsLength = 0;
    }
    const end = this.wholeMessagesEnd(buf);
    if (end === buf.length) return end === 0 ? null : buf;
    let tail = buf.subarray(end);
    // Keep a copy only when the tail is small relative to the chunk, so that a
    // large chunk is not retained for a few bytes.
    if (tail.length < 4096 && buf.length > 65536) tail = Buffer.from(tail);
    this.parts.push(tail);
    this.partsLength = tail.length;
    // wholeMessagesEnd has checked the length of a tail that holds a header
    this.needed = tail.length >= 5 ? 1 + tail.readInt32BE(1) : 5;
    return end === 0 ? null : buf.subarray(0, end);
  }

  private wholeMessagesEnd(buf: Buffer): number {
    let pos = 0;
    const n = buf.length;
    while (pos + 5 <= n) {
      const len = buf.readInt32BE(pos + 1);
      if (len < 4 || len > this.maxMessageSize) {
        throw new ProtocolViolation(
          len < 4
            ? `invalid message length ${len} for message type "${String.fromCharCode(buf[pos])}"`
            : `message of ${len} bytes exceeds the limit of ${this.maxMessageSize} bytes`,
        );
      }
      if (pos + 1 + len > n) break;
      pos += 1 + len;
    }
    return pos;
  }
}

/**
 * Tracks message boundaries of a stream that is forwarded chunk by chunk,
 * reporting each message type with its first bytes available, without
 * buffering. The backend → client direction uses it: bytes go straight through,
 * yet the session still sees every ReadyForQuery.
 */
export class MessageBoundaryScanner {
  /** Bytes of the current message body still to skip. */
  private remaining = 0;
  /** Header bytes collected so far when a header is split across chunks. */
  private readonly header = Buffer.alloc(5);
  private headerFill = 0;
  /** Type and first body byte of the current message (ReadyForQuery status). */
  private currentType = 0;

  /**
   * Calls `onMessage(type, firstBodyByte)` once per message whose header (and
   * first body byte, when it has one) has been seen.
   */
  scan(chunk: Buffer, onMessage: (type: number, firstBodyByte: number) => void): void {
    let pos = 0;
    const n = chunk.length;
    while (pos < n) {
      if (this.remaining > 0) {
        const skip = Math.min(this.remaining, n - pos);
        if (this.currentType !== 0) {
          // first body byte available now
          onMessage(this.currentType, chunk[pos]);
          this.currentType = 0;
        }
        this.remaining -= skip;
        pos += skip;
        continue;
      }
      if (this.headerFill === 0 && pos + 5 <= n) {
        const type = chunk[pos];
        const len = chunk.readInt32BE(pos + 1);
        if (len < 4) throw new ProtocolViolation(`invalid message length ${len} from server`);
        pos += 5;
        this.startBody(type, len - 4, onMessage);
        continue;
      }
      // header split across chunks
      while (this.headerFill < 5 && pos < n) this.header[this.headerFill++] = chunk[pos++];
      if (this.headerFill === 5) {
        this.headerFill = 0;
        const len = this.header.readInt32BE(1);
        if (len < 4) throw new ProtocolViolation(`invalid message length ${len} from server`);
        this.startBody(this.header[0], len - 4, onMessage);
      }
    }
  }

  private startBody(type: number, bodyLength: number, onMessage: (type: number, b: number) => void): void {
    if (bodyLength === 0) {
      onMessage(type, -1);
      return;
    }
    this.remaining = bodyLength;
    this.currentType = type;
  }
}

/** Calls `visit` for each whole message in `buf` (as returned by MessageFramer.take). */
export function forEachMessage(
  buf: Buffer,
  visit: (type: number, start: number, end: number) => void,
): void {
  let pos = 0;
  const n = buf.length;
  while (pos < n) {
    const end = pos + 1 + buf.readInt32BE(pos + 1);
    visit(buf[pos], pos, end);
    pos = end;
  }
}
