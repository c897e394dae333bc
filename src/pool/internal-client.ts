/**
 * A decoding client over one BackendConnection, for the coordinator's own
 * queries (role verifiers, catalog, commit records). Client traffic never uses
 * it: that is forwarded as bytes. Queries queue and run one after another.
 */
import { Backend } from '../protocol/constants.js';
import { MessageFramer, forEachMessage } from '../protocol/framer.js';
import { PgError } from '../protocol/errors.js';
import { readErrorResponse } from '../protocol/backend/error-response.js';
import { readRowDescription } from '../protocol/backend/row-description.js';
import type { BackendConnection } from './backend-connection.js';
import { encodeExtendedQuery, encodeQuery, encodeTerminate } from './frontend-encoders.js';

export type Row = Array<string | null>;

export interface QueryResult {
  fields: string[];
  rows: Row[];
  /** CommandComplete tag of the last statement, e.g. "INSERT 0 1". */
  command: string;
}

interface Pending {
  resolve(r: QueryResult): void;
  reject(e: PgError): void;
  result: QueryResult;
  error: PgError | null;
}

function readDataRow(buf: Buffer, start: number): Row {
  let pos = start + 5;
  const n = buf.readInt16BE(pos);
  pos += 2;
  const row: Row = new Array(n);
  for (let i = 0; i < n; i++) {
    const len = buf.readInt32BE(pos);
    pos += 4;
    if (len < 0) row[i] = null;
    else {
      row[i] = buf.toString('utf8', pos, pos + len);
      pos += len;
    }
  }
  return row;
}

export class InternalClient {
  private readonly framer = new MessageFramer();
  private readonly queue: Pending[] = [];
  private closedError: PgError | null = null;
  /** Called for each NotificationResponse (LISTEN/NOTIFY cache invalidation), with the notifying backend's pid. */
  onNotification: ((channel: string, payload: string, senderPid: number) => void) | null = null;

  constructor(readonly conn: BackendConnection) {
    conn.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    conn.socket.on('error', () => {});
    conn.socket.on('close', () => this.failAll(new PgError({ code: '08006', message: `connection to PostgreSQL at ${conn.host}:${conn.port} was lost` })));
  }

  get closed(): boolean {
    return this.closedError !== null;
  }

  get busy(): boolean {
    return this.queue.length > 0;
  }

  /** Runs sql; with params it uses the extended protocol (one statement, text parameters). */
  query(sql: string, params?: ReadonlyArray<string | null>): Promise<QueryResult> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      this.queue.push({ resolve, reject, result: { fields: [], rows: [], command: '' }, error: null });
      this.conn.socket.write(params ? encodeExtendedQuery(sql, params) : encodeQuery(sql));
    });
  }

  close(): void {
    if (!this.closedError) {
      this.conn.socket.end(encodeTerminate());
      this.failAll(new PgError({ code: '08003', message: 'connection closed' }));
    }
  }

  private failAll(err: PgError): void {
    this.closedError ??= err;
    for (const p of this.queue.splice(0)) p.reject(err);
  }

  private onData(chunk: Buffer): void {
    let whole: Buffer | null;
    try {
      whole = this.framer.take(chunk);
    } catch (err) {
      this.failAll(err as PgError);
      this.conn.socket.destroy();
      return;
    }
    if (!whole) return;
    const buf = whole;
    forEachMessage(buf, (type, start, end) => {
      if (type === Backend.NotificationResponse) {
        const senderPid = buf.readInt32BE(start + 5);
        let pos = start + 9;
        const z1 = buf.indexOf(0, pos);
        const channel = buf.toString('utf8', pos, z1);
        pos = z1 + 1;
        const payload = buf.toString('utf8', pos, buf.indexOf(0, pos));
        this.onNotification?.(channel, payload, senderPid);
        return;
      }
      const head = this.queue[0];
      if (!head) return;
      switch (type) {
        case Backend.RowDescription:
          head.result = { fields: readRowDescription(buf.subarray(start, end)).map((f) => f.name), rows: [], command: '' };
          break;
        case Backend.DataRow:
          head.result.rows.push(readDataRow(buf, start));
          break;
        case Backend.CommandComplete:
          head.result.command = buf.toString('utf8', start + 5, end - 1);
          break;
        case Backend.ErrorResponse:
          head.error ??= readErrorResponse(buf, start, end);
          break;
        case Backend.ReadyForQuery:
          this.queue.shift();
          if (head.error) head.reject(head.error);
          else head.resolve(head.result);
          break;
        default:
          break;
      }
    });
  }
}
