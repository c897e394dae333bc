/**
 * Routes a stream of COPY rows into the shards of one distributed or
 * reference table: the engine under `COPY … FROM STDIN` (copy-in.ts) and
 * under INSERT … SELECT's coordinator-routed modes (insert-select.ts).
 *
 * Rows are found (copy-rows.ts), hashed by their distribution column value
 * exactly as PostgreSQL hashes it (values our hash code cannot read are hashed
 * by the coordinator PostgreSQL, in batches) and copied, byte for byte, into
 * a buffer per shard. A full buffer becomes one `COPY shard FROM STDIN`
 * (Query + CopyData + CopyDone written at once) on the session's connection
 * to the shard's node, pipelined behind the node's earlier batches
 * (link-pipeline.ts). Reference tables: every batch to every placement.
 *
 * Connections: one per node, the session's own (so the COPY is part of the
 * client's transaction block when one is open). Shards of a node take turns
 * on it batch by batch; nodes work in parallel. More connections per node
 * could not join the client's transaction, and with one COPY batch always
 * queued per node the worker is never idle — the coordinator's parsing, not
 * the worker, is the limit on two cores.
 *
 * Memory: shard buffers are bounded (16 MB in all), and `data()` resolves
 * only once every node's socket has drained below a high-water mark, so a
 * fast client waits for the slowest node rather than filling the
 * coordinator.
 *
 * Atomicity: outside a transaction block each node's connection gets a BEGIN
 * of ours before its first batch; at the end one node commits with COMMIT,
 * several with two-phase commit (`commitMultiNode`). Any error rolls every
 * node back. Inside the client's block nothing is committed here: an error
 * leaves the block failed, as in PostgreSQL, and the client's COMMIT or
 * ROLLBACK decides.
 *
 * Errors keep PostgreSQL's text with the client's names and line numbers:
 * each batch remembers which client line each of its rows came from.
 *
 * This file: the input stage (rows found in the stream, the header checked,
 * a partial row carried to the next piece) and the routing (a row's shard
 * from its distribution value). The stages it drives: shard-streams.ts (the
 * per-shard buffers and COPY streams, flow control, commit and rollback),
 * shard-buffer.ts (batch encoding), coordinator-values.ts (values computed
 * by the coordinator PostgreSQL); its inputs: routing-config.ts.
 */
import { PgError, toPgError } from '../../protocol/errors.js';
import { findShardIndexIn } from '../../metadata/shard-interval.js';
import { UnsupportedHashInputError } from '../../sql/hash.js';
import { BinaryRowReader, makeLineReader, type RowReader } from './copy-rows.js';
import { copyWhere, type RouterConfig, type RoutingAccess } from './routing-config.js';
import { ShardStreams } from './shard-streams.js';
import { evaluateOnCoordinator, hashOnCoordinator, type PendingRow } from './coordinator-values.js';

const BATCH_ROWS_COORDINATOR = 4000;

export class DistributedCopy {
  private readonly reader: RowReader | null;
  private readonly binary: BinaryRowReader | null;
  private readonly streams: ShardStreams;
  private carry: Buffer | null = null;
  private carryChunks: Buffer[] = [];
  private carryPending = 0;
  private headerDone = false;
  private ended = false;
  private line = 0;
  private failure: PgError | null = null;
  private finished = false;
  private readonly hashQueue: PendingRow[] = [];
  private readonly evalQueue: Array<{ bytes: Buffer; contentEnd: number; line: number }> = [];

  constructor(private readonly c: RouterConfig, private readonly access: RoutingAccess) {
    const binary = c.opts.format === 'binary';
    this.reader = binary ? null : makeLineReader(c.opts);
    this.binary = binary ? new BinaryRowReader() : null;
    this.streams = new ShardStreams(c, access, this.reader, (err) => this.fail(err), () => this.failure !== null);
  }

  /** RETURNING output (insert mode). */
  get rowDescription(): Buffer | null {
    return this.streams.rowDescription;
  }

  get returned(): Buffer[] {
    return this.streams.returned;
  }

  get failed(): PgError | null {
    return this.failure;
  }

  private fail(err: PgError): void {
    this.failure ??= err;
  }

  private where(line: number): string | undefined {
    return copyWhere(this.c, line);
  }

  private whereWith(line: number, more: string): string | undefined {
    return copyWhere(this.c, line, more);
  }

  private route(hash: number): number {
    return findShardIndexIn(this.streams.shards, hash);
  }

  // ---- input --------------------------------------------------------------

  /** One piece of the stream. Resolves when more may be sent. */
  async data(payload: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.ended || this.finished) return;
    if (this.c.progress) this.c.progress.bytes += payload.length;
    let buf: Buffer;
    if (this.carry) {
      // A long row arriving in pieces is joined once it can be complete, not piece by piece.
      if (this.reader ? this.waitingForTerminator(payload) : this.carryPending + payload.length < this.carry.length) {
        this.carryChunks.push(payload);
        this.carryPending += payload.length;
        return;
      }
      buf = Buffer.concat([this.carry, ...this.carryChunks, payload]);
      this.carry = null;
      this.carryChunks = [];
      this.carryPending = 0;
    } else buf = payload;
    const pos = this.binary ? await this.scanBinary(buf, false) : await this.scanLines(buf, false);
    if (pos < buf.length && !this.ended) this.carry = buf.subarray(pos);
    await this.streams.backpressure();
    if (this.failure) throw this.failure;
  }

  /** True when a carried partial row certainly does not end in `payload`. */
  private waitingForTerminator(payload: Buffer): boolean {
    const eol = (this.reader as unknown as { eol: string | null }).eol;
    if (eol === null) return payload.indexOf(0x0a) < 0 && payload.indexOf(0x0d) < 0;
    return payload.indexOf(eol === 'cr' ? 0x0d : 0x0a) < 0;
  }

  private async scanLines(buf: Buffer, final: boolean): Promise<number> {
    const r = this.reader!;
    const c = this.c;
    let pos = 0;
    const n = buf.length;
    while (pos < n) {
      let end = r.rowEnd(buf, pos);
      if (end < 0) {
        if (!final) break;
        end = n;
      }
      this.line++;
      const ce = r.contentEnd(buf, pos, end);
      if (c.skipHeader && !this.headerDone) {
        this.headerDone = true;
        if (c.headerMatch) this.checkHeader(buf, pos, ce);
        pos = end;
        continue;
      }
      if (r.isEndMarker(buf, pos, ce)) {
        this.ended = true;
        return n;
      }
      const terminated = ce < end;
      if (c.hashColumn) {
        const cut = buf.lastIndexOf(c.opts.delimiter, ce - 1);
        const hash = cut >= pos ? Number(buf.toString('latin1', cut + 1, ce)) : NaN;
        if (!Number.isInteger(hash)) {
          this.fail(new PgError({ code: '23502', message: 'cannot perform an INSERT with NULL in the partition column' }));
          return n;
        }
        const p = this.streams.add(this.route(hash | 0), buf, pos, cut, this.line, r.terminator());
        if (p) await p;
        pos = end;
        continue;
      }
      if (c.evaluated.length > 0) {
        this.evalQueue.push({ bytes: buf.subarray(pos, ce), contentEnd: ce - pos, line: this.line });
        if (this.evalQueue.length >= BATCH_ROWS_COORDINATOR) await this.resolveEvaluated();
      } else {
        const value = c.distIndex >= 0 ? r.field(buf, pos, ce, c.distIndex, c.columns[c.distIndex]) : undefined;
        const p = terminated
          ? this.routeRow(buf, pos, end, value, this.line)
          : this.routeRow(Buffer.concat([buf.subarray(pos, ce), r.terminator()]), 0, ce - pos + r.terminator().length, value, this.line);
        if (p) await p;
      }
      if (this.failure) return n;
      pos = end;
    }
    return pos;
  }

  private async scanBinary(buf: Buffer, final: boolean): Promise<number> {
    const r = this.binary!;
    let pos = 0;
    if (!this.headerDone) {
      const h = r.readHeader(buf, 0);
      if (h === -2 || (h === -1 && final)) {
        this.fail(new PgError({ code: '22P04', message: 'COPY file signature not recognized' }));
        return buf.length;
      }
      if (h === -1) return 0;
      pos = h;
      this.headerDone = true;
    }
    const n = buf.length;
    while (pos < n) {
      const end = r.rowEnd(buf, pos);
      if (end < 0) {
        if (final) {
          this.line++;
          this.fail(new PgError({ code: '22P04', message: 'unexpected EOF in COPY data', where: this.where(this.line) }));
          return n;
        }
        break;
      }
      if (r.ended) {
        this.ended = true;
        return n;
      }
      this.line++;
      const c = this.c;
      if (c.evaluated.length > 0) {
        this.evalQueue.push({ bytes: buf.subarray(pos, end), contentEnd: end - pos, line: this.line });
        if (this.evalQueue.length >= BATCH_ROWS_COORDINATOR) await this.resolveEvaluated();
      } else {
        const p = this.routeBinary(buf, pos, end, this.line);
        if (p) await p;
      }
      if (this.failure) return n;
      pos = end;
    }
    return pos;
  }

  private checkHeader(buf: Buffer, start: number, contentEnd: number): void {
    const names = this.c.columns;
    const fields = this.reader!.fields(buf, start, contentEnd, names);
    const where = `COPY ${this.c.table.name}, line 1: "${buf.toString('utf8', start, contentEnd)}"`;
    if (fields.length !== names.length) {
      this.fail(new PgError({ code: '22P04', message: `wrong number of fields in header line: got ${fields.length}, expected ${names.length}`, where }));
      return;
    }
    for (let i = 0; i < names.length; i++) {
      const v = fields[i];
      if (v === null) {
        this.fail(new PgError({ code: '22P04', message: `column name mismatch in header line field ${i + 1}: got null value ("${this.c.opts.nullString.toString('utf8')}"), expected "${names[i]}"`, where }));
        return;
      }
      if (v !== names[i]) {
        this.fail(new PgError({ code: '22P04', message: `column name mismatch in header line field ${i + 1}: got "${v}", expected "${names[i]}"`, where }));
        return;
      }
    }
  }

  // ---- routing --------------------------------------------------------------

  /** Routes one complete row (terminator included) whose distribution value is `value`. */
  private routeRow(src: Buffer, s: number, e: number, value: string | null | undefined, line: number): Promise<void> | void {
    const c = this.c;
    if (c.distIndex < 0) return this.streams.add(0, src, s, e, line);
    if (value === undefined) return this.streams.add(0, src, s, e, line); // too few fields: the shard reports it
    if (value === null) {
      this.fail(new PgError({ code: '23502', message: 'cannot perform an INSERT with NULL in the partition column', where: this.where(line) }));
      return;
    }
    let hash: number;
    try {
      if (!c.textHasher) throw new UnsupportedHashInputError(c.table.distributionColumnType ?? '', value, 'no hasher');
      hash = c.textHasher(value);
    } catch (err) {
      if (!(err instanceof UnsupportedHashInputError)) throw err;
      this.hashQueue.push({ bytes: Buffer.from(src.subarray(s, e)), line, value });
      if (this.hashQueue.length >= BATCH_ROWS_COORDINATOR) return this.resolveHashes();
      return;
    }
    return this.streams.add(this.route(hash), src, s, e, line);
  }

  private routeBinary(buf: Buffer, start: number, end: number, line: number): Promise<void> | void {
    const c = this.c;
    if (c.distIndex < 0) return this.streams.add(0, buf, start, end, line);
    const f = this.binary!.field(buf, start, c.distIndex);
    if (f === undefined) return this.streams.add(0, buf, start, end, line);
    if (f === null) {
      this.fail(new PgError({ code: '23502', message: 'cannot perform an INSERT with NULL in the partition column', where: this.where(line) }));
      return;
    }
    let hash: number;
    try {
      hash = c.binaryHasher!(buf, f[0], f[1]);
    } catch (err) {
      this.fail(new PgError({ ...toPgError(err, '22P03').fields, where: this.whereWith(line, `, column ${c.table.distributionColumn}`) }));
      return;
    }
    return this.streams.add(this.route(hash), buf, start, end, line);
  }

  // ---- coordinator-computed values -----------------------------------------

  /** Hashes queued distribution values on the coordinator PostgreSQL, then routes their rows. */
  private async resolveHashes(): Promise<void> {
    if (this.hashQueue.length === 0 || this.failure) return;
    const rows = this.hashQueue.splice(0);
    const hashes = await hashOnCoordinator(this.access, this.c, rows);
    if (hashes instanceof PgError) {
      this.fail(hashes);
      return;
    }
    for (let i = 0; i < rows.length; i++) {
      const p = this.streams.add(this.route(hashes[i] | 0), rows[i].bytes, 0, rows[i].bytes.length, rows[i].line);
      if (p) await p;
    }
  }

  /** Computes the evaluated columns of queued rows on the coordinator, appends them, routes the rows. */
  private async resolveEvaluated(): Promise<void> {
    if (this.evalQueue.length === 0 || this.failure) return;
    const rows = this.evalQueue.splice(0);
    const c = this.c;
    const binary = this.binary !== null;
    const distEvaluated = c.distIndex >= c.columns.length ? c.distIndex - c.columns.length : -1;
    const values = await evaluateOnCoordinator(this.access, c, rows.length, rows[0].line);
    if (values instanceof PgError) {
      this.fail(values);
      return;
    }
    const r = this.reader;
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i];
      const vals = values[i];
      let p: Promise<void> | void;
      if (binary) {
        const extra = c.evaluated.map((_, k) => (vals[k] === null ? null : Buffer.from(vals[k]!, 'hex')));
        const bytes = this.binary!.append(row.bytes, 0, row.bytes.length, extra);
        if (c.distIndex < 0) p = this.streams.add(0, bytes, 0, bytes.length, row.line);
        else if (distEvaluated >= 0) p = this.routeRow(bytes, 0, bytes.length, vals[c.evaluated.length], row.line);
        else p = this.routeBinary(bytes, 0, bytes.length, row.line);
      } else {
        const expected = c.columns.length;
        const got = r!.fieldCount(row.bytes, 0, row.contentEnd);
        if (got !== expected && !(expected === 0 && row.contentEnd === 0)) {
          const message = got < expected ? `missing data for column "${c.columns[got]}"` : 'extra data after last expected column';
          this.fail(new PgError({ code: '22P04', message, where: this.whereWith(row.line, `: "${row.bytes.toString('utf8', 0, row.contentEnd)}"`) }));
          return;
        }
        const bytes = expected === 0
          ? Buffer.concat([Buffer.from(c.evaluated.map((_, k) => vals[k]).map((v) => (v === null ? '\\N' : v)).join('\t')), r!.terminator()])
          : r!.append(row.bytes, 0, row.contentEnd, vals.slice(0, c.evaluated.length));
        const value = c.distIndex < 0 ? undefined : distEvaluated >= 0 ? vals[distEvaluated] : r!.field(bytes, 0, r!.contentEnd(bytes, 0, bytes.length), c.distIndex, c.columns[c.distIndex]);
        p = this.routeRow(bytes, 0, bytes.length, value, row.line);
      }
      if (p) await p;
      if (this.failure) return;
    }
  }

  // ---- end ----------------------------------------------------------------

  /** Sends everything still buffered and waits for every node's answer. */
  private async drain(): Promise<void> {
    if (this.carry || this.carryChunks.length > 0) {
      const buf = Buffer.concat([...(this.carry ? [this.carry] : []), ...this.carryChunks]);
      this.carry = null;
      this.carryChunks = [];
      this.carryPending = 0;
      if (!this.ended && buf.length > 0) {
        if (this.binary) await this.scanBinary(buf, true);
        else await this.scanLines(buf, true);
      }
    } else if (this.binary && !this.headerDone && !this.failure && this.line === 0) {
      // an empty binary stream still needs its header
      await this.scanBinary(Buffer.alloc(0), true);
    }
    await this.resolveEvaluated();
    await this.resolveHashes();
    await this.streams.flushAll();
  }

  /** End of the stream: commits (outside a client block) and returns the number of rows written. */
  async finish(): Promise<number> {
    this.finished = true;
    try {
      if (!this.failure) await this.drain();
    } catch (err) {
      this.fail(toPgError(err));
    }
    if (this.failure) {
      await this.streams.rollback();
      throw this.failure;
    }
    await this.streams.commit();
    return this.streams.count;
  }

  /** Nothing of this stream may remain. */
  async abort(reason: PgError): Promise<void> {
    // The client's CopyFail: PostgreSQL names the line it was about to read.
    if (reason.code === '57014' && this.c.reportLines && reason.fields.where === undefined) reason.fields.where = this.where(this.line + 1);
    this.fail(reason);
    this.finished = true;
    await this.streams.rollback();
  }
}
