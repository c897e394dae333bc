/**
 * The per-shard COPY streams of the routing engine (distributed-copy.ts):
 * routed rows land in a bounded buffer per shard (shard-buffer.ts); a full
 * buffer becomes one `COPY shard FROM STDIN` (Query + CopyData + CopyDone
 * written at once) — or one `INSERT … FROM unnest(…)` in insert mode — on the
 * session's connection to each of the shard's placements' nodes, pipelined
 * behind the node's earlier batches (link-pipeline.ts).
 *
 * Also the flow control (`backpressure`: wait while a node's socket is above
 * the high-water mark) and the end of the stream: outside a transaction block
 * each node's connection got a BEGIN of ours before its first batch, and
 * `commit` ends it with COMMIT (one node) or the session's two-phase commit
 * (several); `rollback` undoes every node, or, inside the client's block,
 * leaves the block failed as PostgreSQL does.
 *
 * Errors from the shards are reported through `fail` in the client's terms
 * (shard-errors.ts): names unsharded, batch lines mapped to client lines.
 */
import { PgError, toPgError } from '../../protocol/errors.js';
import { Frontend } from '../../protocol/constants.js';
import { encodeMessage } from '../../protocol/writer.js';
import { encodeQuery, encodeExtendedQuery } from '../../pool/frontend-encoders.js';
import { queryOnLink, tagCount } from '../../executor/link-query.js';
import type { Shard, WorkerNode } from '../../metadata/types.js';
import { quoteIdent, quoteQualified } from '../../sql/quote.js';
import { BINARY_HEADER, BINARY_TRAILER, type RowReader } from './copy-rows.js';
import { LinkPipeline, lostError, type PipelineResult } from './link-pipeline.js';
import { clientError } from './shard-errors.js';
import { ShardBuffer, singleRowMessage, textArrayLiteral } from './shard-buffer.js';
import type { RouterConfig, RoutingAccess } from './routing-config.js';

const COPY_DONE = encodeMessage((w) => w.begin(Frontend.CopyDone).end());
const HIGH_WATER = 4 << 20;

export class ShardStreams {
  /** The shards rows are routed to, in order (ranges may be uneven after splits); one for a reference table. */
  readonly shards: ReadonlyArray<Shard>;
  private readonly binary: boolean;
  private readonly buffers: ShardBuffer[];
  private readonly shardQueries: Buffer[];
  private readonly pipelines = new Map<number, LinkPipeline>();
  private readonly connecting = new Map<number, Promise<LinkPipeline>>();
  private readonly ownBlock: boolean;
  private rolledBack = false;
  /** Rows the shards report written (first placement of each shard). */
  count = 0;
  /** RETURNING output (insert mode). */
  rowDescription: Buffer | null = null;
  readonly returned: Buffer[] = [];

  constructor(
    private readonly c: RouterConfig,
    private readonly access: RoutingAccess,
    /** Text rows' reader (insert mode splits batches back into values). */
    private readonly reader: RowReader | null,
    private readonly fail: (err: PgError) => void,
    private readonly failed: () => boolean,
  ) {
    this.binary = c.opts.format === 'binary';
    const shards = c.table.method === 'reference' ? c.table.shards.slice(0, 1) : c.table.shards;
    const capacity = Math.max(64 << 10, Math.min(1 << 20, Math.floor((16 << 20) / shards.length)));
    this.buffers = shards.map(() => new ShardBuffer(capacity, this.binary ? BINARY_HEADER : null));
    this.shards = shards;
    const cols = [...c.columns, ...c.evaluated.map((e) => e.name)].map(quoteIdent).join(', ');
    this.shardQueries = shards.map((s) =>
      encodeQuery(`COPY ${quoteQualified(c.table.schema, s.shardName)} (${cols}) FROM STDIN${c.opts.shardOptions}${c.whereSql}`),
    );
    this.ownBlock = !access.inTransactionBlock;
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

  // ---- batches --------------------------------------------------------------

  /** Buffers one row (bytes s…e of src, then `tail`) for shard `index`; sends the buffer when full. */
  add(index: number, src: Buffer, s: number, e: number, line: number, tail: Buffer | null = null): Promise<void> | void {
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
    const binary = this.binary;
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

  // ---- flow control and the end ----------------------------------------------

  /** Waits while a node's socket holds more than the high-water mark. */
  async backpressure(): Promise<void> {
    for (const p of this.pipelines.values()) {
      while (p.backlog > HIGH_WATER && !p.lost && !this.failed()) await p.drained();
    }
  }

  /** Sends every buffer and waits for every node's answer. */
  async flushAll(): Promise<void> {
    for (let i = 0; i < this.buffers.length && !this.failed(); i++) {
      const p = this.flush(i);
      if (p) await p;
    }
    await Promise.all(this.connecting.values());
    await Promise.all([...this.pipelines.values()].map((p) => p.idle()));
  }

  /** Commits our own transaction on every node written (nothing inside the client's block). */
  async commit(): Promise<void> {
    for (const p of this.pipelines.values()) p.release();
    if (!this.ownBlock) return;
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

  /** Nothing of the stream may remain (once, however often called). */
  async rollback(): Promise<void> {
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
