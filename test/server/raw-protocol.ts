/**
 * A bare PostgreSQL protocol client for tests that need what drivers hide:
 * exact byte streams (fuzzing), Execute with a row limit, Flush, CancelRequest.
 * It logs in with the project's own SCRAM client (src/protocol/scram.ts) and
 * reads backend messages one by one, never decoding more than a test asks for.
 */
import net from 'node:net';
import { serialize } from 'pg-protocol';
import { ScramClientExchange } from '../../src/protocol/scram.js';
import { readErrorFields } from '../../src/protocol/backend/error-response.js';
import type { ErrorFields } from '../../src/protocol/errors.js';

export interface BackendMessage {
  /** The type byte as a character, e.g. 'Z'. */
  type: string;
  /** The message body (after type and length). */
  body: Buffer;
  /** The whole message, type byte first. */
  raw: Buffer;
}

export interface Address {
  host: string;
  port: number;
}

/** A socket plus a queue of complete backend messages. */
export class RawConnection {
  private buf: Buffer = Buffer.alloc(0);
  private readonly queue: BackendMessage[] = [];
  private waiter: (() => void) | null = null;
  closed = false;
  /** Set when the server sent bytes that do not frame as messages. */
  malformed = false;
  /** BackendKeyData received during login. */
  processId = 0;
  secretKey = 0;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
      try {
        this.parse();
      } catch {
        this.malformed = true;
        socket.destroy();
      }
      this.wake();
    });
    const onGone = () => {
      this.closed = true;
      this.wake();
    };
    socket.on('close', onGone);
    socket.on('end', onGone);
    socket.on('error', onGone);
  }

  static connect(addr: Address): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: addr.host, port: addr.port });
      socket.setNoDelay(true);
      socket.once('connect', () => {
        socket.removeListener('error', reject);
        resolve(new RawConnection(socket));
      });
      socket.once('error', reject);
    });
  }

  private parse(): void {
    let pos = 0;
    while (this.buf.length - pos >= 5) {
      const len = this.buf.readInt32BE(pos + 1);
      if (len < 4) throw new Error(`server sent a message with length ${len}`);
      if (this.buf.length - pos < 1 + len) break;
      const raw = this.buf.subarray(pos, pos + 1 + len);
      this.queue.push({ type: String.fromCharCode(raw[0]!), body: raw.subarray(5), raw });
      pos += 1 + len;
    }
    this.buf = this.buf.subarray(pos);
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Bytes received that are not a whole message (e.g. an 'S'/'N' SSL answer). */
  takeUnframedBytes(): Buffer {
    const b = this.buf;
    this.buf = Buffer.alloc(0);
    return b;
  }

  write(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** The next message, or null when the connection closed first or timeoutMs passed. */
  async next(timeoutMs = 10_000): Promise<BackendMessage | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.queue.shift();
      if (m) return m;
      if (this.closed) return null;
      const left = deadline - Date.now();
      if (left <= 0) return null;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  /** Messages up to and including the first of type `until` (or all until close/timeout). */
  async readUntil(until: string, timeoutMs = 10_000): Promise<BackendMessage[]> {
    const out: BackendMessage[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = await this.next(Math.max(1, deadline - Date.now()));
      if (!m) return out;
      out.push(m);
      if (m.type === until) return out;
    }
  }

  /** Resolves once the server has closed the connection (or timeoutMs passed); returns whether it closed. */
  async waitClosed(timeoutMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.queue.length = 0;
    }
    return this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export function errorFieldsOf(m: BackendMessage): ErrorFields {
  return readErrorFields(m.raw, 0, m.raw.length);
}

/** A StartupMessage for protocol 3.0. */
export function startupMessage(params: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(params)) parts.push(Buffer.from(`${k}\0${v}\0`));
  parts.push(Buffer.from([0]));
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt32BE(196608, 4);
  return Buffer.concat([head, body]);
}

/** A typed message with an arbitrary body. */
export function message(type: string, body: Buffer | string = Buffer.alloc(0)): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const head = Buffer.alloc(5);
  head[0] = type.charCodeAt(0);
  head.writeInt32BE(4 + b.length, 1);
  return Buffer.concat([head, b]);
}

/** Execute with a row limit, built by hand so the test controls every byte. */
export function executeMessage(portal: string, maxRows: number): Buffer {
  const name = Buffer.from(portal + '\0');
  const rows = Buffer.alloc(4);
  rows.writeInt32BE(maxRows, 0);
  return message('E', Buffer.concat([name, rows]));
}

export const frontend = serialize;

export class LoginError extends Error {
  constructor(readonly fields: ErrorFields) {
    super(`${fields.code}: ${fields.message}`);
  }
}

/**
 * Connects and logs in with SCRAM-SHA-256; resolves at the first ReadyForQuery
 * with the BackendKeyData recorded. A refused login rejects with LoginError.
 */
export async function rawLogin(
  addr: Address,
  user: string,
  password: string,
  params: Record<string, string> = {},
): Promise<RawConnection> {
  const conn = await RawConnection.connect(addr);
  try {
    conn.write(startupMessage({ user, database: 'postgres', ...params }));
    let scram: ScramClientExchange | null = null;
    for (;;) {
      const m = await conn.next();
      if (!m) throw new Error('connection closed during login');
      if (m.type === 'E') throw new LoginError(errorFieldsOf(m));
      if (m.type === 'R') {
        const code = m.body.readInt32BE(0);
        if (code === 10) {
          scram = new ScramClientExchange({ password });
          conn.write(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', scram.clientFirst()));
        } else if (code === 11) {
          conn.write(serialize.sendSCRAMClientFinalMessage(scram!.clientFinal(m.body.subarray(4).toString('utf8'))));
        } else if (code === 12) {
          scram!.verifyServerFinal(m.body.subarray(4).toString('utf8'));
        } else if (code !== 0) {
          throw new Error(`unexpected authentication request ${code}`);
        }
      } else if (m.type === 'K') {
        conn.processId = m.body.readInt32BE(0);
        conn.secretKey = m.body.readInt32BE(4);
      } else if (m.type === 'Z') {
        return conn;
      }
    }
  } catch (err) {
    conn.destroy();
    throw err;
  }
}

/** Sends a CancelRequest on a new connection and waits until the server closes it. */
export function sendCancel(addr: Address, processId: number, secretKey: number): Promise<void> {
  return new Promise((resolve) => {
    const packet = Buffer.alloc(16);
    packet.writeInt32BE(16, 0);
    packet.writeInt32BE(80877102, 4);
    packet.writeInt32BE(processId, 8);
    packet.writeInt32BE(secretKey, 12);
    const s = net.connect({ host: addr.host, port: addr.port }, () => s.write(packet));
    s.on('error', () => resolve());
    s.on('close', () => resolve());
  });
}
