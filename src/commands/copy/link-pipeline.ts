/**
 * Pipelined statements on one BackendLink: many COPY batches (Query +
 * CopyData + CopyDone, written at once) and other statements are sent
 * without waiting for the previous answer; each completes at its own
 * ReadyForQuery, in order, as PostgreSQL answers them. collectOnLink would
 * need a round trip per statement and owns the link's single collector slot,
 * so a pipeline installs one collector that hands each reply to the oldest
 * unfinished entry.
 *
 * After an error inside a transaction block every later statement fails
 * with 25P02 and PostgreSQL ignores CopyData outside COPY mode, so a
 * pipeline can run ahead safely: the first error is the one that counts.
 */
import { Backend } from '../../protocol/constants.js';
import { PgError } from '../../protocol/errors.js';
import { readErrorResponse } from '../../protocol/backend/error-response.js';
import { Completes, type BackendLink } from '../../executor/backend-link.js';

export interface PipelineResult {
  tag: string;
  error: PgError | null;
  rowDescription: Buffer | null;
  rows: Buffer[];
}

interface Entry {
  result: PipelineResult;
  /** Keep DataRows (RETURNING). */
  keepRows: boolean;
  resolve: (r: PipelineResult) => void;
}

export class LinkPipeline {
  private readonly entries: Entry[] = [];
  private head = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(readonly link: BackendLink) {
    link.collector = (type, buf, start, end) => this.onReply(type, buf, start, end);
  }

  get pending(): number {
    return this.entries.length - this.head;
  }

  get lost(): boolean {
    return this.link.lost || this.link.conn.socket.destroyed;
  }

  /** Bytes written to the worker but not yet taken by the kernel. */
  get backlog(): number {
    return this.link.conn.socket.writableLength;
  }

  /**
   * Sends `first` (a Query or an extended-protocol batch ending in Sync) plus
   * `more` raw bytes (CopyData…CopyDone); resolves at its ReadyForQuery.
   */
  send(first: Buffer, more: Buffer[] = [], keepRows = false): Promise<PipelineResult> {
    if (this.lost) {
      return Promise.resolve({ tag: '', error: lostError(this.link), rowDescription: null, rows: [] });
    }
    return new Promise((resolve) => {
      const entry: Entry = { result: { tag: '', error: null, rowDescription: null, rows: [] }, keepRows, resolve };
      this.entries.push(entry);
      this.link.send(first, [{
        completes: Completes.Ready,
        forward: false,
        done: (err) => {
          if (err && !entry.result.error) entry.result.error = err;
          this.head++;
          resolve(entry.result);
          if (this.head === this.entries.length) {
            this.entries.length = 0;
            this.head = 0;
            const ws = this.idleWaiters;
            this.idleWaiters = [];
            for (const w of ws) w();
          }
        },
      }]);
      const socket = this.link.conn.socket;
      for (const b of more) socket.write(b);
    });
  }

  /** Resolves once every sent statement has answered. */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Resolves when the socket's write buffer drains (or the link is gone). */
  drained(): Promise<void> {
    const socket = this.link.conn.socket;
    if (this.lost || socket.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        socket.off('drain', done);
        socket.off('close', done);
        resolve();
      };
      socket.on('drain', done);
      socket.on('close', done);
    });
  }

  /** Gives the link back to the session (its collector slot freed). */
  release(): void {
    if (this.link.collector) this.link.collector = null;
  }

  private onReply(type: number, buf: Buffer, start: number, end: number): void {
    const e = this.entries[this.head];
    if (!e) return;
    switch (type) {
      case Backend.CommandComplete:
        e.result.tag = buf.toString('utf8', start + 5, end - 1);
        break;
      case Backend.ErrorResponse:
        e.result.error ??= readErrorResponse(buf, start, end);
        break;
      case Backend.RowDescription:
        if (e.keepRows) e.result.rowDescription ??= Buffer.from(buf.subarray(start, end));
        break;
      case Backend.DataRow:
        if (e.keepRows) e.result.rows.push(Buffer.from(buf.subarray(start, end)));
        break;
      default:
        break;
    }
  }
}

export function lostError(link: BackendLink): PgError {
  return new PgError({ code: '08006', message: `connection to the worker at ${link.conn.host}:${link.conn.port} was lost` });
}
