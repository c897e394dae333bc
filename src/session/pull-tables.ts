/**
 * Executes the data movement of a `pull` route: for each table, a fresh
 * temporary table on the coordinator PostgreSQL (LIKE the distributed table's
 * coordinator definition), filled by one COPY FROM STDIN fed with the
 * CopyData messages of every shard's COPY TO STDOUT — forwarded as bytes,
 * shards of different nodes in parallel, with backpressure from the
 * coordinator's socket. Runs as the client's role everywhere, so privileges
 * and row-level security apply to what is pulled. The rows travel in binary
 * when every column type allows it (commands/copy/binary-transfer.ts: exact
 * floats whatever the session's extra_float_digits), each shard's header and
 * trailer cut out between the one header and trailer of the COPY FROM; in
 * text, with floats printed exactly all the same (`textCopyOut`).
 */
import { PgError, toPgError } from '../protocol/errors.js';
import { Frontend } from '../protocol/constants.js';
import { encodeMessage } from '../protocol/writer.js';
import { encodeQuery } from '../pool/frontend-encoders.js';
import type { BackendLink } from '../executor/backend-link.js';
import { collectOnLink, decodeDataRow, queryOnLink, streamCopyOut } from '../executor/link-query.js';
import { writeGateFor } from '../executor/write-gate.js';
import { quoteIdent, quoteLiteral, quoteQualified } from '../sql/quote.js';
import type { WorkerNode } from '../metadata/types.js';
import type { PullTable } from '../planner/route.js';
import type { CopyCounters } from '../commands/copy/copy-progress.js';
import { BINARY_HEADER_MESSAGE, BINARY_TRAILER_MESSAGE, binaryBody, copyFormat, FLOAT_DIGITS_SQL, portableColumnsSql, sameEncoding, textCopyOut } from '../commands/copy/binary-transfer.js';

const COPY_DONE = encodeMessage((w) => w.begin(Frontend.CopyDone).end());

function copyFail(message: string): Buffer {
  return encodeMessage((w) => w.begin(Frontend.CopyFail).cstring(message).end());
}

export async function pullTables(
  coordinator: BackendLink,
  pulls: PullTable[],
  linkFor: (node: WorkerNode) => Promise<BackendLink>,
  /** COPY … TO of a distributed table: rows and bytes pulled, for the progress view (first table's shards). */
  progress: CopyCounters | null = null,
): Promise<PgError | null> {
  for (const [tableIndex, p] of pulls.entries()) {
    const temp = quoteIdent(p.tempName);
    // Partial results (p.prepared): the executor created the table from the worker query already.
    const create = p.prepared ? '' : `DROP TABLE IF EXISTS pg_temp.${temp}; CREATE TEMP TABLE ${temp} (LIKE ${quoteQualified(p.table.schema, p.table.name)}); `;
    const prep = await queryOnLink(coordinator, `${create}SELECT (${portableColumnsSql(`${quoteLiteral(`pg_temp.${temp}`)}::pg_catalog.regclass`)}), ${FLOAT_DIGITS_SQL}`);
    if (prep.error) return prep.error;
    const sinkSocket = coordinator.conn.socket;
    // Every shard's rows share the coordinator socket's one 'drain' listener (executor/write-gate.ts).
    const sink = writeGateFor(sinkSocket);
    // Reference tables: one placement holds every row.
    const shards = p.table.method === 'reference' ? p.table.shards.slice(0, 1) : p.table.shards.filter((s) => !p.prepared || p.prepared.has(s.shardName));
    const byNode = new Map<number, { node: WorkerNode; names: string[] }>();
    for (const s of shards) {
      const node = s.placements[0].node;
      const g = byNode.get(node.nodeId) ?? { node, names: [] };
      g.names.push(s.shardName);
      byNode.set(node.nodeId, g);
    }
    const groups = [...byNode.values()];
    let links: BackendLink[];
    try {
      links = await Promise.all(groups.map((g) => linkFor(g.node)));
    } catch (err) {
      await queryOnLink(coordinator, `DROP TABLE IF EXISTS pg_temp.${temp}`);
      return toPgError(err, '08006');
    }
    let failure: PgError | null = null;
    const [portable, floatDigits] = decodeDataRow(prep.rows[prep.rows.length - 1]);
    const binary = portable === 't' && sameEncoding([coordinator, ...links]);
    const copyIn = collectOnLink(coordinator, encodeQuery(`COPY pg_temp.${temp} FROM STDIN${copyFormat(binary)}`));
    if (binary) sink.write(BINARY_HEADER_MESSAGE);
    let corked = false;
    const uncork = () => {
      corked = false;
      sinkSocket.uncork();
    };
    await Promise.all(groups.map(async (g, i) => {
      const link = links[i];
      for (const name of g.names) {
        if (failure) return;
        const shardIndex = progress && tableIndex === 0 ? shards.findIndex((s) => s.shardName === name) : -1;
        const where = p.filterSql ? ` WHERE ${p.filterSql}` : '';
        const query = p.prepared ? p.prepared.get(name)! : `SELECT * FROM ${quoteQualified(p.table.schema, name)} AS ${quoteIdent(p.refName)}${where}`;
        // Text: the session's extra_float_digits must not round the floats on their way (binary-transfer.ts).
        const { sql, after } = binary ? { sql: `COPY (${query}) TO STDOUT${copyFormat(true)}`, after: null } : textCopyOut(query, floatDigits ?? null);
        const body = binaryBody(binary);
        const r = await streamCopyOut(link, sql, (whole) => {
          const msg = body(whole);
          if (!msg) return;
          if (progress) {
            progress.routed++;
            progress.bytes += msg.length - 5;
            if (shardIndex >= 0) progress.shardRows[shardIndex]++;
          }
          // One CopyData per row: corked until the end of the tick, they leave in one write, not one syscall each.
          if (!corked) {
            corked = true;
            sinkSocket.cork();
            process.nextTick(uncork);
          }
          sink.write(msg, link.conn.socket);
        });
        if (r.error) failure ??= r.error;
        else if (after) {
          const restored = await queryOnLink(link, after);
          if (restored.error) failure ??= restored.error;
        }
      }
    }).map((p) => p.catch((err) => { failure ??= err instanceof PgError ? err : new PgError({ code: '08006', message: String(err) }); })));
    if (binary && !failure) sink.write(BINARY_TRAILER_MESSAGE);
    sinkSocket.write(failure ? copyFail('pull from a shard failed') : COPY_DONE);
    const done = await copyIn;
    if (failure || done.error) {
      // Leave nothing behind: a later pull may run as another role (SET ROLE) and could not drop it.
      await queryOnLink(coordinator, `DROP TABLE IF EXISTS pg_temp.${temp}`);
      return failure ?? done.error;
    }
    // The table's indexes (their key columns, built after the load: one sort instead of random inserts into a
    // btree larger than temp_buffers) and statistics, so the coordinator plans joins and correlated subqueries
    // over the pulled rows as it would over the real table.
    if (p.prepared) continue;
    const keys = await queryOnLink(
      coordinator,
      `SELECT (SELECT string_agg('(' || pg_get_indexdef(i.indexrelid, k, true) || ')', ', ' ORDER BY k) FROM generate_series(1, i.indnkeyatts) k)
         FROM pg_index i WHERE i.indrelid = ${quoteLiteral(quoteQualified(p.table.schema, p.table.name))}::regclass AND i.indpred IS NULL`,
    );
    if (keys.error) return keys.error;
    const indexes = keys.rows.map((r) => `CREATE INDEX ON pg_temp.${temp} (${decodeDataRow(r)[0]}); `).join('');
    const analyzed = await queryOnLink(coordinator, `${indexes}ANALYZE pg_temp.${temp}`);
    if (analyzed.error) return analyzed.error;
  }
  return null;
}

/** DROP of a pull's temporary tables once the statement that read them is done. */
export function dropPulledTables(pulls: PullTable[]): Buffer {
  return encodeQuery(`DROP TABLE IF EXISTS ${pulls.map((p) => 'pg_temp.' + quoteIdent(p.tempName)).join(', ')}`);
}
