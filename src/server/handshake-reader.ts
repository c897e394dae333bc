/**
 * Reads the startup phase of a client connection: untyped startup packets,
 * then typed authentication messages, with promise-returning reads. Once the
 * handshake is over the session takes the socket, together with any bytes the
 * client already pipelined behind its last handshake message.
 */
import type { Duplex } from 'node:stream';
import { ProtocolViolation } from '../protocol/errors.js';
import { startupPacketLength } from '../protocol/frontend/startup.js';

/** Longest a client may take to finish authenticating (PostgreSQL's authentication_timeout). */
const HANDSHAKE_TIMEOUT_MS = 60_000;
/** Authentication messages are small; anything larger is a broken stream. */
const MAX_AUTH_MESSAGE = 64 * 1024;

export class HandshakeReader {
  private buf: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  private failure: Error | null = null;
  private readonly timer: NodeJS.Timeout;
  private readonly onData = (chunk: Buffer) => {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    this.wake();
  };
  private readonly onEnd = () => this.fail(new Error('client closed the connection during startup'));

  constructor(private socket: Duplex) {
    this.timer = setTimeout(() => this.fail(new ProtocolViolation('canceling authentication due to timeout')), HANDSHAKE_TIMEOUT_MS);
    this.attach(socket);
  }

  private attach(socket: Duplex): void {
    this.socket = socket;
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onEnd);
  }

  private detach(): void {
    this.socket.removeListener('data', this.onData);
    this.socket.removeListener('end', this.onEnd);
    this.socket.removeListener('close', this.onEnd);
    this.socket.removeListener('error', this.onEnd);
  }

  /** Moves reading onto a new socket (after a TLS upgrade); buffered bytes are a violation. */
  switchTo(socket: Duplex): void {
    if (this.buf.length > 0) throw new ProtocolViolation('received unencrypted data after SSL request');
    this.detach();
    this.attach(socket);
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  private async waitFor(ready: () => number): Promise<Buffer> {
    for (;;) {
      const len = ready();
      if (len >= 0) {
        const packet = this.buf.subarray(0, len);
        this.buf = this.buf.subarray(len);
        return packet;
      }
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  /** The next untyped startup-phase packet (length-prefixed). */
  readStartupPacket(): Promise<Buffer> {
    return this.waitFor(() => startupPacketLength(this.buf));
  }

  /** The next typed message (type byte + length), e.g. a SASL response. */
  readMessage(): Promise<Buffer> {
    return this.waitFor(() => {
      if (this.buf.length < 5) return -1;
      const len = this.buf.readInt32BE(1);
      if (len < 4 || len > MAX_AUTH_MESSAGE) throw new ProtocolViolation(`invalid message length ${len} during authentication`);
      return this.buf.length >= len + 1 ? len + 1 : -1;
    });
  }

  /** Stops reading and returns bytes received beyond the handshake. */
  finish(): Buffer | null {
    clearTimeout(this.timer);
    this.detach();
    const rest = this.buf;
    this.buf = Buffer.alloc(0);
    return rest.length > 0 ? rest : null;
  }
}
