/**
 * `COPY table FROM STDIN` into a distributed or reference table: checks the
 * statement, works out which columns the coordinator must fill in, and hands
 * the stream to the routing engine (distributed-copy.ts).
 *
 * PostgreSQL validates the statement (DESIGN.md decision 1): the COPY, with
 * the client's options, column list and WHERE clause, is started on one shard
 * and abandoned at once with CopyFail — option conflicts, unknown columns,
 * generated columns in the list, missing INSERT privilege all get
 * PostgreSQL's own error (shard names turned back into the table's). Inside a
 * transaction block this runs under a savepoint, so a valid statement leaves
 * no trace and an invalid one fails the block, as in PostgreSQL.
 *
 * Columns the client leaves out get their defaults on the shards, except
 * those the shards cannot compute: sequence-backed defaults and identity
 * columns (shards have no sequences) and the distribution column's default
 * (its value decides the shard). Those are evaluated on the coordinator
 * PostgreSQL in batches — exactly one nextval() per row, in row order — and
 * appended to each row. Leaving out a distribution column without a default
 * is refused, as Citus does.
 */
import { deparseSync } from 'pgsql-deparser';
import { PgError } from '../../protocol/errors.js';
import { Frontend } from '../../protocol/constants.js';
import { encodeMessage } from '../../protocol/writer.js';
import { encodeQuery } from '../../pool/frontend-encoders.js';
import type { DistributedTable } from '../../metadata/types.js';
import { distributionValueHasher, type DistributionValueHasher } from '../../sql/hash.js';
import type { Node } from '../../sql/parse.js';
import { quoteIdent, quoteLiteral, quoteQualified } from '../../sql/quote.js';
import { readCopyOptions, textDecodeFor } from './copy-options.js';
import { binaryHasher } from './binary-values.js';
import { DistributedCopy } from './distributed-copy.js';
import type { EvaluatedColumn, RoutingAccess } from './routing-config.js';
import { LinkPipeline } from './link-pipeline.js';
import { clientError } from './shard-errors.js';
import type { CopyProgressEntry } from './copy-progress.js';

export interface CopyInAccess extends RoutingAccess {
  settings: ReadonlyMap<string, string>;
  /** Starts publishing this COPY's progress (copy-progress.ts); absent: no progress view. */
  openProgress?(relid: number, shardIds: string[]): CopyProgressEntry | null;
}

/** Structurally the session's CopyInSink (src/session/services.ts). */
export interface CopyInStream {
  readonly columnCount: number;
  readonly binary: boolean;
  data(payload: Buffer): Promise<void>;
  done(): Promise<string>;
  abort(reason: PgError): Promise<void>;
}

export interface TableColumn {
  name: string;
  /** format_type text. */
  sqlType: string;
  generated: boolean;
  identity: boolean;
  defaultExpr: string | null;
  /** The default draws from a sequence. */
  sequenceDefault: boolean;
  /** Base type (through domains). */
  baseTypeOid: number;
  /** typsend, regproc text. */
  sendFunction: string;
}

/** The table's columns as the coordinator PostgreSQL describes them, read as the client. */
export async function loadColumns(access: Pick<RoutingAccess, 'runAsClient'>, table: DistributedTable): Promise<TableColumn[]> {
  const r = await access.runAsClient(
    `SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attgenerated <> '', a.attidentity <> '',
            pg_catalog.pg_get_expr(d.adbin, d.adrelid),
            EXISTS (SELECT 1 FROM pg_catalog.pg_depend dep JOIN pg_catalog.pg_class s ON s.oid = dep.refobjid AND s.relkind = 'S'
                    WHERE dep.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND dep.objid = d.oid
                      AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass),
            CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END,
            t.typsend::pg_catalog.regproc::text
     FROM pg_catalog.pg_attribute a
     JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
     LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE a.attrelid = $1::pg_catalog.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [String(table.relationId)],
  );
  return r.rows.map((c) => ({
    name: c[0]!,
    sqlType: c[1]!,
    generated: c[2] === 't',
    identity: c[3] === 't',
    defaultExpr: c[4],
    sequenceDefault: c[5] === 't',
    baseTypeOid: Number(c[6]),
    sendFunction: c[7]!,
  }));
}

/** The coordinator-side value of a column left out: its sequence or default, cast to the column type. */
export function evaluatedColumn(table: DistributedTable, c: TableColumn): EvaluatedColumn {
  const expr = c.identity
    ? `pg_catalog.nextval(pg_catalog.pg_get_serial_sequence(${quoteLiteral(quoteQualified(table.schema, table.name))}, ${quoteLiteral(c.name)}))`
    : `(${c.defaultExpr})`;
  return { name: c.name, expression: `CAST(${expr} AS ${c.sqlType})`, sendFunction: c.sendFunction };
}

/** Whether the shards cannot compute this column's value when it is left out. */
export function needsCoordinator(table: DistributedTable, c: TableColumn): boolean {
  if (c.generated) return false;
  return c.identity || c.sequenceDefault || (c.name === table.distributionColumn && c.defaultExpr !== null);
}

export function distributionHasher(table: DistributedTable, settings: ReadonlyMap<string, string>): DistributionValueHasher | null {
  if (table.method !== 'hash') return null;
  try {
    const h = distributionValueHasher(table.distributionColumnSqlType ?? table.distributionColumnType!);
    const tz = settings.get('timezone');
    return tz ? (text) => h(text, { sessionTimeZone: tz }) : (text) => h(text);
  } catch {
    return null; // the coordinator PostgreSQL hashes every value
  }
}

const VALIDATION_MARK = 'pgweave validates the COPY statement';
const COPY_FAIL = encodeMessage((w) => w.begin(Frontend.CopyFail).cstring(VALIDATION_MARK).end());

/** Has PostgreSQL check the statement on one shard; throws its error. */
async function validateOnShard(table: DistributedTable, copy: Node, options: string, whereSql: string, access: CopyInAccess): Promise<void> {
  const shard = table.shards[0];
  const link = await access.linkFor(shard.placements[0].node, false);
  const pipe = new LinkPipeline(link);
  try {
    const cols = copy.attlist ? ` (${(copy.attlist as Node[]).map((a) => quoteIdent(a.String.sval)).join(', ')})` : '';
    const sql = `COPY ${quoteQualified(table.schema, shard.shardName)}${cols} FROM STDIN${options}${whereSql}`;
    if (access.inTransactionBlock) void pipe.send(encodeQuery('SAVEPOINT pgweave_copy_check'));
    const r = await pipe.send(encodeQuery(sql), [COPY_FAIL]);
    const valid = r.error?.code === '57014' && r.error.message.includes(VALIDATION_MARK);
    if (access.inTransactionBlock && valid) {
      await pipe.send(encodeQuery('ROLLBACK TO SAVEPOINT pgweave_copy_check; RELEASE SAVEPOINT pgweave_copy_check'));
    }
    if (!valid) throw clientError(r.error ?? new PgError({ code: 'XX000', message: 'COPY validation did not fail as expected' }), [table], table.name, null);
  } finally {
    pipe.release();
  }
}

export async function beginCopyIn(statement: string, stmt: Node, table: DistributedTable, access: CopyInAccess): Promise<CopyInStream> {
  void statement;
  const copy = stmt.CopyStmt ?? stmt;
  const opts = readCopyOptions(copy);
  if (opts.encoding === null) opts.decode = textDecodeFor(access.settings.get('client_encoding'));
  const whereSql = copy.whereClause ? ` WHERE ${deparseSync(copy.whereClause)}` : '';
  await validateOnShard(table, copy, opts.validationOptions, whereSql, access);
  if (opts.decode === null && table.method === 'hash' && opts.format !== 'binary') {
    throw new PgError({
      code: '0A000',
      message: `COPY into a distributed table from encoding "${opts.encoding ?? access.settings.get('client_encoding')}" is not supported`,
      hint: 'Convert the data to UTF8 (or LATIN1) first: the distribution column\'s value must be read to choose its shard.',
    });
  }
  const columns = await loadColumns(access, table);
  const clientColumns: string[] = copy.attlist
    ? (copy.attlist as Node[]).map((a) => a.String.sval as string)
    : columns.filter((c) => !c.generated).map((c) => c.name);
  const omitted = columns.filter((c) => !c.generated && !clientColumns.includes(c.name));
  const evaluated = omitted.filter((c) => needsCoordinator(table, c));
  let distIndex = -1;
  if (table.method === 'hash') {
    const dist = table.distributionColumn!;
    distIndex = clientColumns.indexOf(dist);
    if (distIndex < 0) {
      const e = evaluated.findIndex((c) => c.name === dist);
      if (e < 0) {
        throw new PgError({
          code: '23502',
          message: 'cannot perform an INSERT without a partition column value',
          detail: `The COPY into "${table.name}" leaves out its distribution column "${dist}", which has no default.`,
        });
      }
      distIndex = clientColumns.length + e;
    }
  }
  const textHasher = distributionHasher(table, access.settings);
  const distColumn = columns.find((c) => c.name === table.distributionColumn);
  const bin = opts.format === 'binary' && table.method === 'hash' && distIndex < clientColumns.length
    ? binaryHasher(distColumn?.baseTypeOid ?? 0, table.distributionColumnSqlType ?? distColumn?.sqlType ?? '', textHasher)
    : null;
  const routedShards = table.method === 'reference' ? table.shards.slice(0, 1) : table.shards;
  const progress = access.openProgress?.(table.relationId, routedShards.map((s) => String(s.shardId))) ?? null;
  const engine = new DistributedCopy(
    {
      table,
      opts,
      columns: clientColumns,
      evaluated: evaluated.map((c) => evaluatedColumn(table, c)),
      distIndex,
      textHasher,
      binaryHasher: bin,
      whereSql,
      skipHeader: opts.header && opts.format !== 'binary',
      headerMatch: opts.headerMatch,
      reportLines: true,
      progress,
    },
    access,
  );
  return {
    columnCount: clientColumns.length,
    binary: opts.format === 'binary',
    data: (payload) => engine.data(payload),
    done: async () => {
      try {
        return `COPY ${await engine.finish()}`;
      } finally {
        progress?.end();
      }
    },
    abort: (reason) => {
      // The progress row goes first: a rollback may wait on a node that is gone.
      progress?.end();
      return engine.abort(reason);
    },
  };
}
