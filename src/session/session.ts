/**
 * One client session: the statement loop between a client socket and the
 * PostgreSQL connection(s) that serve it.
 *
 * States: running → closing → closed. While running, client bytes are framed
 * into whole messages (each checked for a known type and a sane length) and
 * forwarded to the backend in the same chunks they arrived in; backend bytes
 * are forwarded to the client untouched, while a boundary scanner watches for
 * ReadyForQuery to track the transaction status and whether a request is in
 * flight. Nothing is decoded or copied on this path (DESIGN.md decision 5).
 *
 * A broken frontend stream gets FATAL 08P01 and ends this session only; a lost
 * backend gets FATAL 08006; a client that vanishes mid-query has its query
 * cancelled on the backend before the connection is dropped.
 */
import type { Duplex } from 'node:stream';
import { Backend, Frontend, type TransactionStatus } from '../protocol/constants.js';
import { MessageBoundaryScanner, MessageFramer } from '../protocol/framer.js';
import { PgError, ProtocolViolation, type ErrorFields } from '../protocol/errors.js';
import { MessageWriter } from '../protocol/writer.js';
import { writeErrorResponse } from '../protocol/backend/error-response.js';
import { sendCancelRequest, type BackendConnection } from '../pool/backend-connection.js';
import { encodeTerminate } from '../pool/frontend-encoders.js';

export interface SessionOptions {
  maxMessageSize: number;
}

/** Frontend message types a client may send once the session has started. */
const KNOWN_FRONTEND = new Uint8Array(256);
for (const t of [
  Frontend.Bind, Frontend.Close, Frontend.CopyData, Frontend.CopyDone, Frontend.CopyFail, Frontend.Describe,
  Frontend.Execute, Frontend.Flush, Frontend.FunctionCall, Frontend.Parse, Frontend.Query, Frontend.Sync,
  Frontend.Terminate,
]) KNOWN_FRONTEND[t] = 1;

export class Session {
  private readonly framer: MessageFramer;
  private readonly scanner = new MessageBoundaryScanner();
  private state: 'created' | 'running' | 'closing' | 'closed' = 'created';
  /** Requests (Query or Sync) sent to the backend and not yet answered by ReadyForQuery. */
  private inFlight = 0;
  transactionStatus: TransactionStatus = 'I';
  onClose: (() => void) | null = null;

  constructor(
    private readonly client: Duplex,
    private readonly backend: BackendConnection,
    options: SessionOptions,
  ) {
    this.framer = new MessageFramer(options.maxMessageSize);
  }

  start(leftover: Buffer | null): void {
    this.state = 'running';
    const { client, backend } = this;
    client.on('data', (chunk: Buffer) => this.onClientData(chunk));
    client.on('end', () => this.close());
    client.on('close', () => this.close());
    client.on('error', () => this.close());
    backend.socket.on('data', (chunk: Buffer) => this.onBackendData(chunk));
    backend.socket.on('close', () => this.onBackendLost());
    backend.socket.on('error', () => {});
    client.on('drain', () => backend.socket.resume());
    backend.socket.on('drain', () => client.resume());
    if (leftover) this.onClientData(leftover);
  }

  /** Cancels whatever the backend is running for this session (CancelRequest). */
  cancel(): void {
    if (this.state !== 'running') return;
    void sendCancelRequest(this.backend.host, this.backend.port, this.backend.key);
  }

  private onClientData(chunk: Buffer): void {
    if (this.state !== 'running') return;
    let whole: Buffer | null;
    try {
      whole = this.framer.take(chunk);
    } catch (err) {
      this.fatal(err as PgError);
      return;
    }
    if (whole === null) return;
    // Check every message's type and find a Terminate, without copying.
    let pos = 0;
    const n = whole.length;
    while (pos < n) {
      const type = whole[pos];
      if (KNOWN_FRONTEND[type] === 0) {
        if (pos > 0) this.toBackend(whole.subarray(0, pos));
        this.fatal(new ProtocolViolation(`invalid frontend message type ${type}`));
        return;
      }
      if (type === Frontend.Query || type === Frontend.Sync) this.inFlight++;
      else if (type === Frontend.Terminate) {
        if (pos > 0) this.toBackend(whole.subarray(0, pos));
        this.close();
        return;
      }
      pos += 1 + whole.readInt32BE(pos + 1);
    }
    this.toBackend(whole);
  }

  private toBackend(bytes: Buffer): void {
    if (!this.backend.socket.write(bytes)) this.client.pause();
  }

  private readonly onBackendMessage = (type: number, firstByte: number): void => {
    if (type === Backend.ReadyForQuery) {
      if (this.inFlight > 0) this.inFlight--;
      this.transactionStatus = firstByte === 0x54 ? 'T' : firstByte === 0x45 ? 'E' : 'I';
    }
  };

  private onBackendData(chunk: Buffer): void {
    try {
      this.scanner.scan(chunk, this.onBackendMessage);
    } catch {
      this.fatal(new PgError({ severity: 'FATAL', code: '08P01', message: 'the coordinator received a malformed message from PostgreSQL' }));
      return;
    }
    if (this.state === 'closed') return;
    if (!this.client.write(chunk)) this.backend.socket.pause();
  }

  private onBackendLost(): void {
    if (this.state !== 'running') return;
    this.fatal(new PgError({
      severity: 'FATAL',
      code: '08006',
      message: `the coordinator lost its connection to PostgreSQL at ${this.backend.host}:${this.backend.port}`,
    }));
  }

  /** Reports a FATAL error to the client and ends the session. */
  private fatal(err: PgError): void {
    if (this.state === 'closed') return;
    const fields: ErrorFields = { ...err.fields, severity: 'FATAL' };
    const w = new MessageWriter(256);
    writeErrorResponse(w, fields);
    if (!this.client.destroyed) this.client.end(w.flush());
    this.close();
  }

  close(): void {
    if (this.state === 'closed') return;
    const wasBusy = this.inFlight > 0;
    this.state = 'closed';
    const b = this.backend.socket;
    if (!b.destroyed) {
      if (wasBusy) {
        // The client is gone mid-request: stop the query before dropping the connection.
        void sendCancelRequest(this.backend.host, this.backend.port, this.backend.key).finally(() => b.end(encodeTerminate()));
      } else {
        b.end(encodeTerminate());
      }
    }
    if (!this.client.destroyed) this.client.end();
    this.onClose?.();
  }
}
