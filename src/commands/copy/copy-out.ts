/**
 * `COPY table [(cols)] TO STDOUT` of a distributed or reference table,
 * streamed: each shard's own `COPY shard TO STDOUT` runs on the session's
 * connection to its node (the transaction's connection in a block, so the
 * transaction's own writes show; the client's role, so its privileges and
 * row-level security hold) — the nodes in parallel, each node's shards one
 * after the other — and their CopyData messages (one row each) go to the
 * client as they arrive, interleaved. Nothing is gathered on the
 * coordinator: when the client's socket backs up, the worker's socket is
 * paused until the client drains, so the worker waits (ClientWrite) rather
 * than the coordinator buffering.
 *
 * `COPY (SELECT …) TO STDOUT` of a SELECT whose per-shard results simply
 * concatenate (the multi-shard planner's tasks: filters, projections,
 * co-located joins, reference tables alongside) streams the same way: each
 * shard group's `COPY (<its SELECT>) TO STDOUT` in place of a shard's COPY.
 *
 * The stream is PostgreSQL's own: the coordinator PostgreSQL first runs the
 * client's statement on the tables' (empty) coordinator definitions, which
 * checks options, columns, the query and privileges with PostgreSQL's errors; the first
 * shard's CopyOutResponse (PostgreSQL's format codes) is forwarded; CSV
 * HEADER goes to the first shard's COPY only; binary: the 19-byte header
 * once at the start and the -1 trailer once at the end, each shard's own
 * cut out. The CommandComplete counts the rows of every shard.
 */
import type { Duplex } from 'node:stream';
import { Backend } from '../../protocol/constants.js';
import { PgError, toPgError } from '../../protocol/errors.js';
import { readErrorResponse } from '../../protocol/backend/error-response.js';
import { encodeMessage } from '../../protocol/writer.js';
import { encodeQuery } from '../../pool/frontend-encoders.js';
import { Completes, type BackendLink } from '../../executor/backend-link.js';
import { tagCount } from '../../executor/link-query.js';
import type { DistributedTable, WorkerNode } from '../../metadata/types.js';
import type { CopyOutQuery } from '../../planner/route.js';
import type { Node } from '../../sql/parse.js';
import { quoteIdent, quoteLiteral, quoteQualified } from '../../sql/quote.js';
import { BINARY_HEADER_MESSAGE, BINARY_TRAILER_MESSAGE, binaryBody } from './binary-transfer.js';
import { clientError } from './shard-errors.js';
import type { CopyCounters } from './copy-progress.js';

export interface CopyOutAccess {
  runAsClient(sql: string): Promise<unknown>;
  /** Runs `run` with the links that read the table's shards (consistent snapshots across nodes). */
  withReadLinks(run: (linkFor: (node: WorkerNode) => Promise<BackendLink>) => Promise<PgError | null>): Promise<PgError | null>;
  /** The client's socket. */
  client: Duplex;
  progress?: CopyCounters | null;
}

const COPY_DONE = encodeMessage((w) => w.begin(Backend.CopyDone).end());

function commandComplete(tag: string): Buffer {
  return encodeMessage((w) => w.begin(Backend.CommandComplete).cstring(tag).end());
}

/** A DefElem's argument as COPY option syntax. */
function optionArg(d: Node): string {
  const a = d.arg;
  if (!a) return '';
  if (a.A_Star) return ' *';
  if (a.List) return ` (${((a.List.items ?? []) as Node[]).map((i) => quoteIdent(i.String?.sval ?? '')).join(', ')})`;
  if (a.String) return ` ${quoteLiteral(a.String.sval ?? '')}`;
  if (a.Integer) return ` ${a.Integer.ival ?? 0}`;
  if (a.Boolean) return a.Boolean.boolval ? ' true' : ' false';
  if (a.Float) return ` ${a.Float.fval}`;
  return '';
}

/** The shards' option list: the client's options, HEADER only for the first shard. */
export function copyToOptions(stmt: Node, withHeader: boolean): string {
  const parts: string[] = [];
  for (const o of (stmt.options ?? []) as Node[]) {
    const d = o.DefElem;
    if (!d) continue;
    if (d.defname === 'header' && !withHeader) continue;
    parts.push(`${quoteIdent(d.defname)}${optionArg(d)}`);
  }
  return parts.length > 0 ? ` WITH (${parts.join(', ')})` : '';
}

function isBinary(stmt: Node): boolean {
  for (const o of (stmt.options ?? []) as Node[]) {
    const d = o.DefElem;
    if (d?.defname === 'format') return (d.arg?.String?.sval ?? '').toLowerCase() === 'binary';
  }
  return false;
}

/**
 * Writes CopyData to the client from several worker links at once: rows are
 * whole CopyData messages, so shards of different nodes interleave freely.
 * A link whose write finds the client's socket full is paused until it
 * drains; writes of one tick leave in one syscall.
 */
class ClientFlow {
  private readonly paused = new Set<BackendLink>();
  private waiting = false;
  private corked = false;
  private readonly uncork = () => {
    this.corked = false;
    this.client.uncork();
  };
  private readonly resume = () => {
    this.waiting = false;
    for (const l of this.paused) l.conn.socket.resume();
    this.paused.clear();
  };
  constructor(private readonly client: Duplex) {}

  write(message: Buffer, from: BackendLink): void {
    if (!this.corked) {
      this.corked = true;
      this.client.cork();
      process.nextTick(this.uncork);
    }
    if (this.client.write(message)) return;
    from.conn.socket.pause();
    this.paused.add(from);
    if (!this.waiting) {
      this.waiting = true;
      this.client.once('drain', this.resume);
    }
  }

  /** A link that is done streaming must not stay paused. */
  release(link: BackendLink): void {
    if (this.paused.delete(link)) link.conn.socket.resume();
  }

  end(): void {
    if (this.waiting) this.client.removeListener('drain', this.resume);
    this.resume();
  }
}

/** What one worker COPY reads: a shard (with the client's column list) or a query over one shard group. */
interface CopyPart {
  node: WorkerNode;
  /** The COPY's source: `shard [(cols)]` or `(SELECT …)`. */
  source: string;
}

function tableParts(table: DistributedTable, stmt: Node): CopyPart[] {
  const cols = ((stmt.attlist ?? []) as Node[]).map((c) => quoteIdent(c.String?.sval ?? ''));
  const colSql = cols.length > 0 ? ` (${cols.join(', ')})` : '';
  const shards = table.method === 'reference' ? table.shards.slice(0, 1) : table.shards;
  return shards.map((s) => ({ node: s.placements[0].node, source: `${quoteQualified(table.schema, s.shardName)}${colSql}` }));
}

/** A newline before the closing parenthesis: the query's text may end in a `--` comment. */
function queryParts(query: CopyOutQuery): CopyPart[] {
  return query.tasks.map((t) => ({ node: t.node, source: `(${t.sql}\n)` }));
}

/**
 * Streams the table's shards (or the query's shard groups) to the client:
 * nodes in parallel, each node's shards one after another. The first shard's node starts alone until its
 * first row (the CSV header, when asked for) is out. Returns the error, or
 * null once CopyDone and CommandComplete are written.
 */
export async function streamCopyTo(
  table: DistributedTable,
  stmt: Node,
  statement: string,
  access: CopyOutAccess,
  query: CopyOutQuery | null = null,
): Promise<PgError | null> {
  try {
    await access.runAsClient(statement);
  } catch (err) {
    return toPgError(err);
  }
  const binary = isBinary(stmt);
  const parts = query ? queryParts(query) : tableParts(table, stmt);
  const errorTables = query ? query.tables : [table];
  const byNode = new Map<number, { node: WorkerNode; indexes: number[] }>();
  parts.forEach((p, i) => {
    const g = byNode.get(p.node.nodeId) ?? { node: p.node, indexes: [] };
    g.indexes.push(i);
    byNode.set(p.node.nodeId, g);
  });
  const client = access.client;
  const progress = access.progress ?? null;
  const flow = new ClientFlow(client);
  let started = false;
  let count = 0;
  let failure: PgError | null = null;
  let firstOut: () => void = () => {};
  const firstRowOut = new Promise<void>((resolve) => (firstOut = resolve));
  const err = await access.withReadLinks(async (linkFor) => {
    const runNode = async (g: { node: WorkerNode; indexes: number[] }) => {
      const link = await linkFor(g.node);
      for (const index of g.indexes) {
        if (failure) return;
        const sql = `COPY ${parts[index].source} TO STDOUT${copyToOptions(stmt, index === 0)}`;
        const r = await copyShard(link, sql, binary, flow, (message) => {
          if (started) return;
          started = true;
          client.write(message);
          if (binary) client.write(BINARY_HEADER_MESSAGE);
        }, (bytes) => {
          if (index === 0) firstOut();
          if (!progress) return;
          progress.routed++;
          progress.bytes += bytes;
          progress.shardRows[index]++;
        });
        if (index === 0) firstOut();
        if (r.error) failure ??= clientError(r.error, errorTables, null, null);
        count += r.count;
      }
    };
    const groups = [...byNode.values()];
    const lead = groups.findIndex((g) => g.indexes[0] === 0);
    const leading = runNode(groups[lead]).catch((e) => void (failure ??= toPgError(e, '08006'))).finally(firstOut);
    await firstRowOut;
    await Promise.all([leading, ...groups.filter((_, i) => i !== lead).map((g) => runNode(g).catch((e) => void (failure ??= toPgError(e, '08006'))))]);
    return failure;
  });
  flow.end();
  if (err) return err;
  if (!started) return new PgError({ code: 'XX000', message: 'no shard answered the COPY' });
  if (binary) client.write(BINARY_TRAILER_MESSAGE);
  client.write(Buffer.concat([COPY_DONE, commandComplete(`COPY ${count}`)]));
  return null;
}

/**
 * One shard's COPY TO STDOUT: CopyData forwarded (binary: the shard's header
 * and trailer cut out) through the client flow.
 */
function copyShard(
  link: BackendLink,
  sql: string,
  binary: boolean,
  flow: ClientFlow,
  onResponse: (message: Buffer) => void,
  onRow: (bytes: number) => void,
): Promise<{ error: PgError | null; count: number }> {
  return new Promise((resolve) => {
    let error: PgError | null = null;
    let count = 0;
    const body = binaryBody(binary);
    link.collector = (type, buf, start, end) => {
      if (type === Backend.CopyData) {
        const message = body(buf.subarray(start, end));
        if (!message) return;
        onRow(message.length - 5);
        flow.write(message, link);
      } else if (type === Backend.CopyOutResponse) onResponse(Buffer.from(buf.subarray(start, end)));
      else if (type === Backend.CommandComplete) count = tagCount(buf.toString('utf8', start + 5, end - 1));
      else if (type === Backend.ErrorResponse) error ??= readErrorResponse(buf, start, end);
    };
    link.send(encodeQuery(sql), [{
      completes: Completes.Ready,
      forward: false,
      done: (err) => {
        link.collector = null;
        flow.release(link);
        resolve({ error: error ?? err ?? null, count });
      },
    }]);
  });
}
