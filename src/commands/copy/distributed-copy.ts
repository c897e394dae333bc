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
 */
import { PgError, toPgError } from '../../protocol/errors.js';
import { Frontend } from '../../protocol/constants.js';
import { encodeMessage } from '../../protocol/writer.js';
import { encodeQuery, encodeExtendedQuery } from '../../pool/frontend-encoders.js';
import type { BackendLink } from '../../executor/backend-link.js';
import { queryOnLink, tagCount } from '../../executor/link-query.js';
import { findShardIndex } from '../../metadata/shard-interval.js';
import type { DistributedTable, WorkerNode } from '../../metadata/types.js';
import { hashCallSql, UnsupportedHashInputError, type DistributionValueHasher } from '../../sql/hash.js';
import { quoteIdent, quoteQualified } from '../../sql/quote.js';
import type { CopyOptions } from './copy-options.js';
import { BINARY_HEADER, BINARY_TRAILER, BinaryRowReader, makeLineReader, type RowReader } from './copy-rows.js';
import type { BinaryHasher } from './binary-values.js';
import { LinkPipeline, lostError, type PipelineResult } from './link-pipeline.js';
import { clientError } from './shard-errors.js';
import type { CopyCounters } from './copy-progress.js';

/** What the engine needs of the client's session. */
export interface RoutingAccess {
  runAsClient(sql: string, params?: ReadonlyArray<string | null>): Promise<{ fields: string[]; rows: Array<Array<string | null>>; command: string }>;
  inTransactionBlock: boolean;
  linkFor(node: WorkerNode, isWrite: boolean): Promise<BackendLink>;
  commitMultiNode(written: BackendLink[], readOnly: BackendLink[]): Promise<void>;
}

/** A column whose value the coordinator computes per row (a sequence, or the distribution column's default). */
export interface EvaluatedColumn {
  name: string;
  /** SQL computing the value (cast to the column type). */
  expression: string;
  /** Binary COPY: the column type's send function, for the binary form. */
  sendFunction: string | null;
}

export interface RouterConfig {
  table: DistributedTable;
  opts: CopyOptions;
  /** Columns the incoming rows carry, in order. */
  columns: string[];
  /** Columns the coordinator appends to every row. */
  evaluated: EvaluatedColumn[];
  /** Index of the distribution column among columns + evaluated (-1 for reference tables). */
  distIndex: number;
  textHasher: DistributionValueHasher | null;
  binaryHasher: BinaryHasher | null;
  /** ` WHERE …` for the shards' COPYs, or ''. */
  whereSql: string;
  /** Line numbers count the header. */
  skipHeader: boolean;
  headerMatch: boolean;
  /**
   * Instead of COPY, each batch runs this statement for shard i with the
   * batch's column values as text[] parameters ($1 … $n, one per column):
   * INSERT … ON CONFLICT / RETURNING. Text format rows only.
   */
  insertSqlFor?: (shardIndex: number) => string;
  /** Line numbers in errors (COPY) or not (INSERT … SELECT). */
  reportLines: boolean;
  /**
   * Text rows carry one more, last field: the distribution column's hash,
   * computed by the coordinator PostgreSQL. It decides the shard and is cut
   * off before the row is forwarded.
   */
  hashColumn?: boolean;
  /** Counters read by the progress view (copy-progress.ts); incremented here, written elsewhere. */
  progress?: CopyCounters | null;
}

const COPY_DONE = encodeMessage((w) => w.begin(Frontend.CopyDone).end());
const HIGH_WATER = 4 << 20;
const BATCH_ROWS_COORDINATOR = 4000;

/** One shard's rows waiting to be sent. */
class ShardBuffer {
  buf: Buffer | null = null;
  len = 0;
  lines: number[] = [];
  rows: Buffer[] | null = null;
  constructor(readonly capacity: number, private readonly prefix: Buffer | null) {}

  private start(): void {
    this.buf = Buffer.allocUnsafe(this.capacity);
    this.buf[0] = Frontend.CopyData;
    this.len = 5;
    if (this.prefix) {
      this.prefix.copy(this.buf, 5);
      this.len += this.prefix.length;
    }
    this.lines = [];
  }

  get empty(): boolean {
    return this.buf === null;
  }

  /** Whether `n` more bytes fit (the binary trailer kept free). */
  fits(n: number): boolean {
    return this.buf === null ? 5 + (this.prefix?.length ?? 0) + n + 2 <= this.capacity : this.len + n + 2 <= this.capacity;
  }

  add(src: Buffer, s: number, e: number, line: number, tail: Buffer | null = null): void {
    if (this.buf === null) this.start();
    src.copy(this.buf!, this.len, s, e);
    this.len += e - s;
    if (tail) {
      tail.copy(this.buf!, this.len);
      this.len += tail.length;
    }
    this.lines.push(line);
  }

  /** The buffered rows as one CopyData message, and their client lines; the buffer starts over. */
  take(trailer: Buffer | null): { message: Buffer; lines: number[] } {
    const buf = this.buf!;
    if (trailer) {
      trailer.copy(buf, this.len);
      this.len += trailer.length;
    }
    buf.writeInt32BE(this.len - 1, 1);
    const out = { message: buf.subarray(0, this.len), lines: this.lines };
    this.buf = null;
    this.len = 0;
    this.lines = [];
    return out;
  }
}

/** One oversized row, sent alone. */
function singleRowMessage(prefix: Buffer | null, row: Buffer, trailer: Buffer | null): Buffer {
  const parts = [Buffer.alloc(5), ...(prefix ? [prefix] : []), row, ...(trailer ? [trailer] : [])];
  const total = parts.reduce((n, p) => n + p.length, 0);
  parts[0][0] = Frontend.CopyData;
  parts[0].writeInt32BE(total - 1, 1);
  return Buffer.concat(parts, total);
}

function textArrayLiteral(values: ReadonlyArray<string | null>): string {
  let s = '{';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) s += ',';
    const v = values[i];
    s += v === null ? 'NULL' : '"' + v.replace(/[\\"]/g, '\\$&') + '"';
  }
  return s + '}';
}

interface PendingRow {
  bytes: Buffer;
  line: number;
  value: string | null;
}

export class DistributedCopy {
  private readonly reader: RowReader | null;
  private readonly binary: BinaryRowReader | null;
  private readonly buffers: ShardBuffer[];
  private readonly shardQueries: Buffer[];
  private readonly pipelines = new Map<number, LinkPipeline>();
  private readonly connecting = new Map<number, Promise<LinkPipeline>>();
  private carry: Buffer | null = null;
  private carryChunks: Buffer[] = [];
  private carryPending = 0;
  private headerDone = false;
  private ended = false;
  private line = 0;
  private failure: PgError | null = null;
  private count = 0;
  private finished = false;
  private readonly hashQueue: PendingRow[] = [];
  private readonly evalQueue: Array<{ bytes: Buffer; contentEnd: number; line: number }> = [];
  private readonly ownBlock: boolean;
  /** RETURNING output (insert mode). */
  rowDescription: Buffer | null = null;
  readonly returned: Buffer[] = [];

  constructor(private readonly c: RouterConfig, private readonly access: RoutingAccess) {
    const binary = c.opts.format === 'binary';
    this.reader = binary ? null : makeLineReader(c.opts);
    this.binary = binary ? new BinaryRowReader() : null;
    const shards = c.table.method === 'reference' ? c.table.shards.slice(0, 1) : c.table.shards;
    const capacity = Math.max(64 << 10, Math.min(1 << 20, Math.floor((16 << 20) / shards.length)));
    this.buffers = shards.map(() => new ShardBuffer(capacity, binary ? BINARY_HEADER : null));
    const cols = [...c.columns, ...c.evaluated.map((e) => e.name)].map(quoteIdent).join(', ');
    this.shardQueries = shards.map((s) =>
      encodeQuery(`COPY ${quoteQualified(c.table.schema, s.shardName)} (${cols}) FROM STDIN${c.opts.shardOptions}${c.whereSql}`),
    );
    this.ownBlock = !access.inTransactionBlock;
  }

  get failed(): PgError | null {
    return this.failure;
  }

  private fail(err: PgError): void {
    this.failure ??= err;
  }

  private where(line: number): string | undefined {
    return this.c.reportLines ? `COPY ${this.c.table.name}, line ${line}` : undefined;
  }

  private whereWith(line: number, more: string): string | undefined {
    return this.c.reportLines ? `COPY ${this.c.table.name}, line ${line}${more}` : undefined;
  }

  // ---- connections --------------------------------------------------------

  private pipelineFor(node: WorkerNode): LinkPipeline | Promise<LinkPipeline> {
    const ready = this.pipelines.get(node.nodeId);
    if (ready) return ready;
    let pending = this.connecting.get(node.nodeId);
    if (!pending) {
      pending = (async () => {
        const link = await this.access.linkFor(node, true);
        const p = new LinkPipeline(link);
        if (this.ownBlock) void p.send(encodeQuery('BEGIN')).then((r) => r.error && this.fail(r.error));
        this.pipelines.set(node.nodeId, p);
        return p;
      })();
      this.connecting.set(node.nodeId, pending);
    }
    return pending;
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
    await this.backpressure();
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
        const p = this.addToShard(findShardIndex(hash | 0, this.buffers.length), buf, pos, cut, this.line, r.terminator());
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
    if (c.distIndex < 0) return this.addToShard(0, src, s, e, line);
    if (value === undefined) return this.addToShard(0, src, s, e, line); // too few fields: the shard reports it
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
    return this.addToShard(findShardIndex(hash, this.buffers.length), src, s, e, line);
  }

  private routeBinary(buf: Buffer, start: number, end: number, line: number): Promise<void> | void {
    const c = this.c;
    if (c.distIndex < 0) return this.addToShard(0, buf, start, end, line);
    const f = this.binary!.field(buf, start, c.distIndex);
    if (f === undefined) return this.addToShard(0, buf, start, end, line);
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
    return this.addToShard(findShardIndex(hash, this.buffers.length), buf, start, end, line);
  }

  private addToShard(index: number, src: Buffer, s: number, e: number, line: number, tail: Buffer | null = null): Promise<void> | void {
    const b = this.buffers[index];
    const progress = this.c.progress;
    if (progress) {
      progress.routed++;
      progress.shardRows[index]++;
    }
    const size = e - s + (tail?.length ?? 0);
    if (b.fits(size)) {
      b.add(src, s, e, line, tail);
      return;
    }
    const flushed = b.empty ? undefined : this.flush(index);
    if (b.fits(size)) {
      b.add(src, s, e, line, tail);
      return flushed;
    }
    // A row larger than a batch goes alone.
    const binary = this.binary !== null;
    const row = tail ? Buffer.concat([src.subarray(s, e), tail]) : src.subarray(s, e);
    if (this.c.insertSqlFor) {
      const sent = this.sendBatch(index, null, [line], singleRowMessage(null, row, null));
      return flushed ? flushed.then(() => sent) : sent;
    }
    const message = singleRowMessage(binary ? BINARY_HEADER : null, row, binary ? BINARY_TRAILER : null);
    const sent = this.sendBatch(index, message, [line], null);
    return flushed ? flushed.then(() => sent) : sent;
  }

  /** Sends shard `index`'s buffered rows. */
  private flush(index: number): Promise<void> | void {
    const b = this.buffers[index];
    if (b.empty) return;
    if (this.c.insertSqlFor) {
      const rows = b.take(null);
      return this.sendBatch(index, null, rows.lines, rows.message);
    }
    const { message, lines } = b.take(this.binary ? BINARY_TRAILER : null);
    return this.sendBatch(index, message, lines, null);
  }

  private sendBatch(index: number, copyData: Buffer | null, lines: number[], insertRows: Buffer | null): Promise<void> | void {
    const shard = this.c.table.method === 'reference' ? this.c.table.shards[0] : this.c.table.shards[index];
    const nodes = shard.placements.map((p) => p.node);
    let waits: Promise<void>[] | null = null;
    nodes.forEach((node, placementIndex) => {
      const p = this.pipelineFor(node);
      const go = (pipe: LinkPipeline) => this.sendOn(pipe, index, copyData, lines, insertRows, placementIndex === 0);
      if (p instanceof LinkPipeline) go(p);
      else (waits ??= []).push(p.then(go));
    });
    if (waits) return Promise.all(waits as Promise<void>[]).then(() => undefined);
  }

  private sendOn(pipe: LinkPipeline, index: number, copyData: Buffer | null, lines: number[], insertRows: Buffer | null, counts: boolean): void {
    let result: Promise<PipelineResult>;
    if (insertRows) {
      result = pipe.send(this.insertBatch(index, insertRows), [], true);
    } else {
      result = pipe.send(this.shardQueries[index], [copyData!, COPY_DONE]);
    }
    void result.then((r) => {
      if (r.error) {
        const lineOf = this.c.reportLines ? (n: number) => lines[n - 1] ?? null : null;
        this.fail(clientError(r.error, [this.c.table], this.c.table.name, lineOf));
        return;
      }
      if (!counts) return;
      const written = tagCount(r.tag);
      this.count += written;
      if (this.c.progress && this.c.whereSql) this.c.progress.excluded += lines.length - written;
      if (r.rowDescription) this.rowDescription ??= r.rowDescription;
      for (const row of r.rows) this.returned.push(row);
    });
  }

  /** An INSERT … SELECT FROM unnest($1::text[], …) for a batch of text-format rows. */
  private insertBatch(index: number, message: Buffer): Buffer {
    const r = this.reader!;
    const columns = this.c.columns;
    const arrays: Array<Array<string | null>> = columns.map(() => []);
    const body = message.subarray(5);
    let pos = 0;
    while (pos < body.length) {
      const end = r.rowEnd(body, pos);
      const stop = end < 0 ? body.length : end;
      const values = r.fields(body, pos, r.contentEnd(body, pos, stop), columns);
      for (let i = 0; i < columns.length; i++) arrays[i].push(values[i] ?? null);
      pos = stop;
    }
    return encodeExtendedQuery(this.c.insertSqlFor!(index), arrays.map(textArrayLiteral));
  }

  // ---- coordinator-computed values -----------------------------------------

  /**
   * A query on the coordinator whose failure must not fail the client's
   * transaction block (a value PostgreSQL rejects is reported as the COPY's
   * error, with its line, and only then fails the block).
   */
  private async guarded(sql: string, params: ReadonlyArray<string | null>) {
    if (!this.access.inTransactionBlock) return this.access.runAsClient(sql, params);
    await this.access.runAsClient('SAVEPOINT pgweave_copy_hash');
    try {
      const r = await this.access.runAsClient(sql, params);
      await this.access.runAsClient('RELEASE SAVEPOINT pgweave_copy_hash');
      return r;
    } catch (err) {
      await this.access.runAsClient('ROLLBACK TO SAVEPOINT pgweave_copy_hash; RELEASE SAVEPOINT pgweave_copy_hash').catch(() => {});
      throw err;
    }
  }

  /** Hashes queued distribution values on the coordinator PostgreSQL, then routes their rows. */
  private async resolveHashes(): Promise<void> {
    if (this.hashQueue.length === 0 || this.failure) return;
    const rows = this.hashQueue.splice(0);
    const t = this.c.table;
    const sql = `SELECT ${hashCallSql(t.hashFunction!, `u.v::${t.distributionColumnSqlType ?? t.distributionColumnType}`)} FROM pg_catalog.unnest($1::text[]) WITH ORDINALITY AS u(v, i) ORDER BY u.i`;
    let hashes: number[];
    try {
      const r = await this.guarded(sql, [textArrayLiteral(rows.map((x) => x.value))]);
      hashes = r.rows.map((x) => Number(x[0]));
    } catch {
      // Find the row PostgreSQL rejects, for its message and line.
      for (const row of rows) {
        try {
          await this.guarded(`SELECT ${hashCallSql(t.hashFunction!, `$1::${t.distributionColumnSqlType ?? t.distributionColumnType}`)}`, [row.value]);
        } catch (err) {
          const e = toPgError(err);
          this.fail(new PgError({ ...e.fields, where: this.whereWith(row.line, `, column ${t.distributionColumn}: "${row.value}"`) }));
          return;
        }
      }
      this.fail(new PgError({ code: 'XX000', message: 'could not hash the distribution column values' }));
      return;
    }
    for (let i = 0; i < rows.length; i++) {
      const p = this.addToShard(findShardIndex(hashes[i] | 0, this.buffers.length), rows[i].bytes, 0, rows[i].bytes.length, rows[i].line);
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
    const inner = c.evaluated.map((e, i) => `${e.expression} AS e${i}`).join(', ');
    const outer = c.evaluated.map((e, i) => (binary ? `pg_catalog.encode(${e.sendFunction}(q.e${i}), 'hex')` : `q.e${i}::text`));
    if (binary && distEvaluated >= 0) outer.push(`q.e${distEvaluated}::text`);
    let values: Array<Array<string | null>>;
    try {
      const r = await this.access.runAsClient(
        `SELECT ${outer.join(', ')} FROM (SELECT ${inner} FROM pg_catalog.generate_series(1, $1::int) OFFSET 0) AS q`,
        [String(rows.length)],
      );
      values = r.rows;
    } catch (err) {
      this.fail(new PgError({ ...toPgError(err).fields, where: this.where(rows[0].line) }));
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
        if (c.distIndex < 0) p = this.addToShard(0, bytes, 0, bytes.length, row.line);
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

  private async backpressure(): Promise<void> {
    for (const p of this.pipelines.values()) {
      while (p.backlog > HIGH_WATER && !p.lost && !this.failure) await p.drained();
    }
  }

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
    for (let i = 0; i < this.buffers.length && !this.failure; i++) {
      const p = this.flush(i);
      if (p) await p;
    }
    await Promise.all(this.connecting.values());
    await Promise.all([...this.pipelines.values()].map((p) => p.idle()));
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
      await this.rollback();
      throw this.failure;
    }
    for (const p of this.pipelines.values()) p.release();
    if (this.ownBlock) {
      const links = [...this.pipelines.values()].map((p) => p.link);
      try {
        if (links.length === 1) {
          if (links[0].lost || links[0].conn.socket.destroyed) throw lostError(links[0]);
          const r = await queryOnLink(links[0], 'COMMIT');
          if (r.error) throw r.error;
          if (r.tag !== 'COMMIT') throw new PgError({ code: '40000', message: 'the transaction was rolled back' });
        } else if (links.length > 1) {
          await this.access.commitMultiNode(links, []);
        }
      } catch (err) {
        for (const l of links) if (!l.lost && l.status !== 0x49) await queryOnLink(l, 'ROLLBACK');
        throw clientError(toPgError(err), [this.c.table], null, null);
      }
    }
    return this.count;
  }

  /** Nothing of this stream may remain. */
  async abort(reason: PgError): Promise<void> {
    // The client's CopyFail: PostgreSQL names the line it was about to read.
    if (reason.code === '57014' && this.c.reportLines && reason.fields.where === undefined) reason.fields.where = this.where(this.line + 1);
    this.fail(reason);
    this.finished = true;
    await this.rollback();
  }

  private rolledBack = false;

  private async rollback(): Promise<void> {
    if (this.rolledBack) return;
    this.rolledBack = true;
    await Promise.allSettled(this.connecting.values());
    const pipes = [...this.pipelines.values()];
    await Promise.all(pipes.map((p) => p.idle()));
    for (const p of pipes) p.release();
    if (this.ownBlock) {
      await Promise.all(pipes.filter((p) => !p.lost).map((p) => queryOnLink(p.link, 'ROLLBACK')));
    } else {
      // PostgreSQL: an error inside a transaction block fails the block. The
      // coordinator's part of the block says so until the client rolls back.
      await this.access.runAsClient(`DO $pgweave$BEGIN RAISE EXCEPTION 'COPY failed'; END$pgweave$`).catch(() => {});
    }
  }
}
