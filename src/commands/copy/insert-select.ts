/**
 * Runs an INSERT … SELECT planned by src/planner/insert-select-planner.ts.
 *
 * First the coordinator PostgreSQL checks the statement (EXPLAIN of the
 * original text: columns, types, ON CONFLICT arbiters, identity columns,
 * privileges — PostgreSQL's own errors).
 *
 * pushdown: the shard-to-shard task list runs as a multi-shard write, unless
 * a column the INSERT leaves out draws from a sequence or is an identity
 * column (the shards have no sequences): then the coordinator mode runs.
 *
 * repartition and coordinator: the SELECT's rows are gathered in a
 * temporary table on the coordinator — for repartition the SELECT runs on
 * every source shard group and streams (COPY … TO STDOUT → COPY FROM STDIN)
 * into a table typed like the SELECT's output; for coordinator the tables
 * are pulled and the coordinator runs the SELECT. An `INSERT INTO staging
 * SELECT …` on the coordinator then gives the rows exactly PostgreSQL's
 * INSERT semantics: assignment casts, defaults, sequences in row order.
 * Why through the coordinator rather than worker to worker: the shards'
 * connections belong to the client's transaction, and a node cannot read
 * and write on one connection at once; PostgreSQL workers have no way to
 * push rows to each other without extensions. The staging table spills to
 * disk, so memory stays bounded.
 *
 * Last, `COPY staging TO STDOUT` streams the rows, with their distribution
 * hash computed by the coordinator PostgreSQL, into the routing engine
 * (distributed-copy.ts): as COPY batches per shard, or — with ON CONFLICT or
 * RETURNING — as `INSERT INTO shard … SELECT FROM unnest($1::text[], …)
 * ON CONFLICT … RETURNING …` per batch, the client's clauses intact.
 */
import { PgError, toPgError } from '../../protocol/errors.js';
import type { BackendLink } from '../../executor/backend-link.js';
import { byOrdinal, collectOnLink, decodeDataRow, queryOnLink, streamCopyOut, type CollectedResult } from '../../executor/link-query.js';
import { encodeQuery } from '../../pool/frontend-encoders.js';
import { Frontend } from '../../protocol/constants.js';
import { encodeMessage } from '../../protocol/writer.js';
import type { WorkerNode } from '../../metadata/types.js';
import { quoteIdent, quoteLiteral, quoteQualified } from '../../sql/quote.js';
import { hashCallSql } from '../../sql/hash.js';
import type { InsertSelectPlan } from '../../planner/insert-select-planner.js';
import { ordinalValueSql } from '../../planner/insert-planner.js';
import { isRecordColumnError } from '../../planner/record-columns.js';
import type { PullTable, Route } from '../../planner/route.js';
import { readCopyOptions } from './copy-options.js';
import { loadColumns, needsCoordinator, type TableColumn } from './copy-in.js';
import { DistributedCopy } from './distributed-copy.js';
import type { RoutingAccess } from './routing-config.js';
import { clientError } from './shard-errors.js';
import { runWorkerRepartition, type WorkerRepartition } from './worker-repartition.js';
import { BINARY_HEADER_MESSAGE, BINARY_TRAILER_MESSAGE, binaryBody, copyFormat, copyOutExactly, portableTypeSql, sameEncoding } from './binary-transfer.js';

export interface InsertSelectAccess extends RoutingAccess {
  settings: ReadonlyMap<string, string>;
  /** The session's coordinator PostgreSQL link (idle). */
  coordinator: BackendLink;
  /** The statement's parameters as text (extended protocol), or null. */
  params: ReadonlyArray<string | null> | null;
  /** Copies tables into temporary tables on the coordinator (the session's pull). */
  pull(pulls: PullTable[]): Promise<PgError | null>;
  /** Runs reads on the shards of `tables` with consistent snapshots (the session's pull protocol). */
  withSnapshots(tables: PullTable[], run: (linkFor: (node: WorkerNode) => Promise<BackendLink>) => Promise<PgError | null>): Promise<PgError | null>;
  /** Runs a multi-shard task list (the pushdown plan) as the session runs multi-shard writes. */
  runMultiShard(route: Extract<Route, { kind: 'multi-shard' }>): Promise<CollectedResult>;
}

const COPY_DONE = encodeMessage((w) => w.begin(Frontend.CopyDone).end());
function copyFail(message: string): Buffer {
  return encodeMessage((w) => w.begin(Frontend.CopyFail).cstring(message).end());
}

function failed(error: PgError): CollectedResult {
  return { rowDescription: null, rows: [], tag: '', error };
}

export async function executeInsertSelect(plan: InsertSelectPlan, access: InsertSelectAccess): Promise<CollectedResult> {
  try {
    await access.runAsClient(`EXPLAIN (COSTS OFF) ${plan.statement}`, access.params ?? undefined);
  } catch (err) {
    return failed(toPgError(err));
  }
  let columns: TableColumn[];
  try {
    columns = await loadColumns(access, plan.target);
  } catch (err) {
    return failed(toPgError(err));
  }
  let p = plan;
  if (p.mode === 'pushdown') {
    const given = p.columns ?? columns.map((c) => c.name);
    const needy = columns.filter((c) => !given.includes(c.name) && needsCoordinator(p.target, c));
    if (needy.length === 0) {
      const r = await access.runMultiShard({ kind: 'multi-shard', tasks: p.tasks, isWrite: true, commandTag: 'INSERT' });
      if (r.error) r.error = clientError(r.error, [p.target, ...p.sources], null, null);
      return r;
    }
    p = p.fallback!;
  }
  if (p.mode === 'repartition') {
    let onWorkers: WorkerRepartition | null;
    try {
      onWorkers = await workerRepartitionPlan(p, access, columns);
    } catch (err) {
      return failed(toPgError(err));
    }
    if (onWorkers) {
      const r = await runWorkerRepartition(onWorkers, access);
      if (r.error) r.error = clientError(r.error, [p.target, ...p.sources], null, null);
      return r;
    }
  }
  const staging = p.staging;
  const raw = `pgweave_insert_raw_${p.target.relationId}`;
  try {
    const err = await gather(p, access, columns, staging, raw);
    if (err) return failed(clientError(renameStaging(err, staging, p.target.name), [p.target, ...p.sources], null, null));
    return await route(p, access, columns, staging);
  } catch (err) {
    return failed(toPgError(err));
  } finally {
    const temps = [staging, raw, ...p.pulls.map((t) => t.tempName)].map((t) => `pg_temp.${quoteIdent(t)}`);
    await access.runAsClient(`DROP TABLE IF EXISTS ${temps.join(', ')}`).catch(() => {});
  }
}

/**
 * A repartition plan the workers can run among themselves (worker-repartition.ts),
 * or null when the rows must go through the coordinator: a target with
 * several placements per shard, columns left out whose values come from
 * sequences on the coordinator, a SELECT that does not feed the target's
 * distribution column, or a client that may not create the staging tables
 * in the target's schema.
 */
async function workerRepartitionPlan(p: InsertSelectPlan, access: InsertSelectAccess, columns: TableColumn[]): Promise<WorkerRepartition | null> {
  const target = p.target;
  if (target.method !== 'hash' || target.shards.some((s) => s.placements.length !== 1)) return null;
  const priv = await access.runAsClient(`SELECT pg_catalog.has_schema_privilege($1, 'CREATE')`, [target.schema]);
  if (priv.rows[0]?.[0] !== 't') return null;
  // The SELECT's output types from its RowDescription: no temporary table on the coordinator.
  await access.coordinator.idle();
  const shape = await collectOnLink(access.coordinator, encodeQuery(`SELECT * FROM (${p.selectSql}) AS q LIMIT 0`));
  if (shape.error) throw shape.error;
  const fields = fieldTypes(shape.rowDescription);
  // record / record[] (a function returning record): no table holds them; the coordinator path refuses it clearly.
  if (fields.some((f) => f.oid === RECORD_OID || f.oid === RECORD_ARRAY_OID)) return null;
  const width = fields.length;
  const described = width === 0 ? [] : (await access.runAsClient(
    `SELECT pg_catalog.format_type(t.o, t.m), ${portableTypeSql('t.o')} FROM ROWS FROM (pg_catalog.unnest($1::oid[]), pg_catalog.unnest($2::int4[])) WITH ORDINALITY AS t(o, m, i) ORDER BY t.i`,
    [`{${fields.map((f) => f.oid).join(',')}}`, `{${fields.map((f) => f.typmod).join(',')}}`],
  )).rows;
  const types = described.map((r) => r[0]!);
  const targetColumns = p.columns ?? columns.map((c) => c.name).slice(0, width);
  if (targetColumns.length !== width) return null;
  if (targetColumns.some((name) => columns.find((c) => c.name === name)?.generated)) return null;
  if (columns.some((c) => !targetColumns.includes(c.name) && needsCoordinator(target, c))) return null;
  const distIndex = targetColumns.indexOf(target.distributionColumn!);
  if (distIndex < 0) return null;
  return { plan: p, types, targetColumns, distIndex, portable: described.every((r) => r[1] === 't') };
}

const RECORD_OID = 2249;
const RECORD_ARRAY_OID = 2287;

/** Type oid and typmod of each field of a raw RowDescription. */
function fieldTypes(rowDescription: Buffer | null): Array<{ oid: number; typmod: number }> {
  if (!rowDescription) return [];
  let pos = 5;
  const n = rowDescription.readInt16BE(pos);
  pos += 2;
  const out: Array<{ oid: number; typmod: number }> = [];
  for (let i = 0; i < n; i++) {
    pos = rowDescription.indexOf(0, pos) + 1 + 6;
    out.push({ oid: rowDescription.readUInt32BE(pos), typmod: rowDescription.readInt32BE(pos + 6) });
    pos += 12;
  }
  return out;
}

/** Errors of the staging INSERT name the staging table: the client knows its table. */
function renameStaging(err: PgError, staging: string, name: string): PgError {
  const f = { ...err.fields };
  for (const key of ['message', 'detail', 'where', 'table'] as const) if (f[key] !== undefined) f[key] = f[key]!.split(staging).join(name);
  return new PgError(f);
}

/** Fills the staging table with the statement's rows, as the target would receive them. */
async function gather(p: InsertSelectPlan, access: InsertSelectAccess, columns: TableColumn[], staging: string, raw: string): Promise<PgError | null> {
  const run = (sql: string, params?: ReadonlyArray<string | null>) => access.runAsClient(sql, params);
  const target = quoteQualified(p.target.schema, p.target.name);
  const stagingName = `pg_temp.${quoteIdent(staging)}`;
  try {
    // NOT NULL is left to the shards (their errors name the table); identity columns draw from the target's sequence.
    const alters = columns.filter((c) => !c.generated).map((c) => `ALTER ${quoteIdent(c.name)} DROP NOT NULL`);
    for (const c of columns.filter((x) => x.identity)) {
      alters.push(`ALTER ${quoteIdent(c.name)} SET DEFAULT pg_catalog.nextval(pg_catalog.pg_get_serial_sequence(${quoteLiteralText(target)}, ${quoteLiteralText(c.name)}))`);
    }
    await run(
      `DROP TABLE IF EXISTS ${stagingName}; CREATE TEMP TABLE ${quoteIdent(staging)} (LIKE ${target} INCLUDING DEFAULTS INCLUDING GENERATED)` +
        (alters.length > 0 ? `; ALTER TABLE ${stagingName} ${alters.join(', ')}` : ''),
    );
  } catch (err) {
    return toPgError(err);
  }
  const columnList = p.columns ? ` (${p.columns.map(quoteIdent).join(', ')})` : '';
  if (p.mode === 'coordinator') {
    const err = await access.pull(p.pulls);
    if (err) return err;
    try {
      await run(p.stagingSql, access.params ?? undefined);
    } catch (err) {
      return toPgError(err);
    }
    return null;
  }
  // repartition: a table typed like the SELECT's output, filled from the shards
  const rawName = `pg_temp.${quoteIdent(raw)}`;
  let width: number;
  try {
    width = (await run(`SELECT * FROM (${p.selectSql}) AS q LIMIT 0`)).fields.length;
    const names = Array.from({ length: width }, (_, i) => `c${i}`);
    await run(`DROP TABLE IF EXISTS ${rawName}; CREATE TEMP TABLE ${quoteIdent(raw)} (${names.join(', ')}) AS ${p.selectSql} WITH NO DATA`);
  } catch (err) {
    const e = toPgError(err);
    // A record the planner could not see (a function returning record; ROW(…) goes to the coordinator mode).
    if (isRecordColumnError(e)) {
      return new PgError({ code: '0A000', message: `INSERT … SELECT of an anonymous record column from tables not co-located with the target is not supported (${e.message})`, hint: 'Cast the record to the target column\'s type.' });
    }
    return e;
  }
  // Output typed exactly like the target columns (and no literal to type): the shards' rows go straight into the staging table.
  const targetColumns = p.columns ?? columns.map((c) => c.name).slice(0, width);
  let direct = false;
  let portable = false;
  try {
    const described = (await run(`SELECT pg_catalog.format_type(atttypid, atttypmod), ${portableTypeSql('atttypid')} FROM pg_catalog.pg_attribute WHERE attrelid = $1::pg_catalog.regclass AND attnum > 0 ORDER BY attnum`, [rawName])).rows;
    const types = described.map((r) => r[0]);
    portable = described.every((r) => r[1] === 't');
    direct = types.length === targetColumns.length && p.literals.every((l) => l === null) &&
      targetColumns.every((name, i) => columns.find((c) => c.name === name)?.sqlType === types[i] && !columns.find((c) => c.name === name)?.generated);
  } catch (err) {
    return toPgError(err);
  }
  const into = direct ? `${stagingName} (${targetColumns.map(quoteIdent).join(', ')})` : rawName;
  const tables: PullTable[] = p.sources.map((t) => ({ table: t, tempName: '', filterSql: null, refName: t.name }));
  const err = await access.withSnapshots(tables, (linkFor) => streamTasks(p, access.coordinator, into, linkFor, portable));
  if (err) return err;
  if (direct) return null;
  const exprs = Array.from({ length: width }, (_, i) => p.literals[i] ?? `r.c${i}`);
  try {
    await run(`INSERT INTO ${stagingName}${columnList} SELECT ${exprs.join(', ')} FROM ${rawName} AS r`);
  } catch (e) {
    return toPgError(e);
  }
  return null;
}

function quoteLiteralText(v: string): string {
  return "'" + v.replace(/'/g, "''") + "'";
}

/** Streams every task's SELECT from its shard into a coordinator table (one COPY FROM STDIN fed by all). */
async function streamTasks(p: InsertSelectPlan, coordinator: BackendLink, into: string, linkFor: (node: WorkerNode) => Promise<BackendLink>, portable: boolean): Promise<PgError | null> {
  const byNode = new Map<number, { node: WorkerNode; sqls: string[] }>();
  for (const t of p.tasks) {
    const g = byNode.get(t.node.nodeId) ?? { node: t.node, sqls: [] };
    g.sqls.push(t.sql);
    byNode.set(t.node.nodeId, g);
  }
  const groups = [...byNode.values()];
  let links: BackendLink[];
  try {
    links = await Promise.all(groups.map((g) => linkFor(g.node)));
  } catch (err) {
    return toPgError(err, '08006');
  }
  // Binary when the types allow (binary-transfer.ts): exact floats, and no text to print or parse.
  const binary = portable && sameEncoding([coordinator, ...links]);
  const copyIn = collectOnLink(coordinator, encodeQuery(`COPY ${into} FROM STDIN${copyFormat(binary)}`));
  const sink = coordinator.conn.socket;
  if (binary) sink.write(BINARY_HEADER_MESSAGE);
  let failure: PgError | null = null;
  // The coordinator's socket backs up: every shard waits for one 'drain'.
  const paused = new Set<BackendLink>();
  let waiting = false;
  const onDrain = () => {
    waiting = false;
    for (const l of paused) l.conn.socket.resume();
    paused.clear();
  };
  await Promise.all(
    groups.map(async (g, i) => {
      try {
        const link = links[i];
        for (const sql of g.sqls) {
          if (failure) return;
          const body = binaryBody(binary);
          const err = await copyOutExactly(link, sql, binary, async (out) => (await streamCopyOut(link, out, (whole) => {
            const msg = body(whole);
            if (msg && !sink.write(msg)) {
              link.conn.socket.pause();
              paused.add(link);
              if (!waiting) {
                waiting = true;
                sink.once('drain', onDrain);
              }
            }
          })).error);
          if (err) failure ??= err;
        }
      } catch (err) {
        failure ??= toPgError(err, '08006');
      }
    }),
  );
  // The coordinator link is pooled: no listener of this statement stays on it.
  if (waiting) {
    sink.removeListener('drain', onDrain);
    onDrain();
  }
  if (binary && !failure) sink.write(BINARY_TRAILER_MESSAGE);
  sink.write(failure ? copyFail('a shard query failed') : COPY_DONE);
  const done = await copyIn;
  return failure ?? done.error;
}

/** Streams the staging rows into the target's shards. */
async function route(p: InsertSelectPlan, access: InsertSelectAccess, columns: TableColumn[], staging: string): Promise<CollectedResult> {
  const target = p.target;
  const names = columns.filter((c) => !c.generated).map((c) => c.name);
  const hashed = target.method === 'hash';
  const selectList = names.map(quoteIdent);
  // RETURNING: each row also carries its position in the staging table, filled in the SELECT's order and read
  // back in it (a fresh temporary table, scanned from its start), so the returned rows are sorted by it.
  const ordered = p.ordinalTailSql !== null && names.length > 0;
  const carried = ordered ? [...names, ORDINAL_COLUMN] : names;
  if (ordered) selectList.push('pg_catalog.row_number() OVER ()');
  if (hashed) selectList.push(hashCallSql(target.hashFunction!, quoteIdent(target.distributionColumn!)));
  const engine = new DistributedCopy(
    {
      table: target,
      opts: readCopyOptions({}),
      columns: carried,
      evaluated: [],
      distIndex: hashed ? carried.length : -1,
      textHasher: null,
      binaryHasher: null,
      whereSql: '',
      skipHeader: false,
      headerMatch: false,
      insertSqlFor: p.insertsRows ? insertSqlBuilder(p, columns.filter((c) => !c.generated), ordered) : undefined,
      reportLines: false,
      hashColumn: hashed,
    },
    access,
  );
  const coordinator = access.coordinator;
  const socket = coordinator.conn.socket;
  let chain: Promise<void> = Promise.resolve();
  let depth = 0;
  let paused = false;
  let failure: PgError | null = null;
  const restore = await exactFloatText(coordinator);
  if (restore instanceof PgError) return failed(restore);
  const out = await streamCopyOut(coordinator, `COPY (SELECT ${selectList.join(', ')} FROM pg_temp.${quoteIdent(staging)}) TO STDOUT`, (msg) => {
    const payload = msg.subarray(5);
    depth++;
    if (depth > 16 && !paused) {
      paused = true;
      socket.pause();
    }
    chain = chain
      .then(() => (failure ? undefined : engine.data(payload)))
      .catch((err) => {
        failure ??= toPgError(err);
      })
      .finally(() => {
        depth--;
        if (paused && depth < 4) {
          paused = false;
          socket.resume();
        }
      });
  });
  await chain;
  if (paused) socket.resume();
  if (restore && coordinator.status !== 0x45) await queryOnLink(coordinator, restore);
  const error = failure ?? out.error;
  if (error) {
    await engine.abort(error);
    return failed(error);
  }
  let count: number;
  try {
    count = await engine.finish();
  } catch (err) {
    return failed(toPgError(err));
  }
  const result = { rowDescription: engine.rowDescription, rows: engine.returned, tag: `INSERT 0 ${count}`, error: null };
  if (ordered) byOrdinal(result);
  return result;
}

/** The staging row's position, an extra unnest array of the per-shard INSERT (insertSqlBuilder). */
const ORDINAL_COLUMN = 'pgweave_values_row';

/**
 * Raises extra_float_digits to 1 on the coordinator connection when the
 * session has it at 0 or less, so the staging rows' floats leave as exact
 * text (their routing engine reads text); the COPY reads stored values
 * only, so no text the statement computes changes. Returns the SQL that
 * sets the session's value back ('' when nothing changed): inside a block
 * both are local to the block's transaction, whose end would restore the
 * value anyway.
 */
async function exactFloatText(coordinator: BackendLink): Promise<string | PgError> {
  const local = coordinator.status === 0x49 ? 'false' : 'true';
  const r = await queryOnLink(coordinator,
    `SELECT s.v, CASE WHEN s.v::pg_catalog.int4 < 1 THEN pg_catalog.set_config('extra_float_digits', '1', ${local}) END ` +
    `FROM (SELECT pg_catalog.current_setting('extra_float_digits') AS v) s`);
  if (r.error) return r.error;
  const previous = decodeDataRow(r.rows[0])[0]!;
  return Number(previous) < 1 ? `SELECT pg_catalog.set_config('extra_float_digits', ${quoteLiteral(previous)}, ${local})` : '';
}

/** The per-shard `INSERT … SELECT FROM unnest(…) ON CONFLICT … RETURNING …`: the client's clauses as written. */
function insertSqlBuilder(p: InsertSelectPlan, columns: TableColumn[], ordered: boolean): (shardIndex: number) => string {
  const alias = quoteIdent(p.insert.relation.alias?.aliasname ?? p.target.name);
  const cols = columns.map((c) => quoteIdent(c.name)).join(', ');
  const inputs = columns.map((_, i) => `c${i}`);
  const values = columns.map((c, i) => `u.c${i}::${c.sqlType}`);
  if (ordered) {
    // Evaluated as its row is fetched, just before the row is inserted and its RETURNING computed.
    inputs.push(ORDINAL_COLUMN);
    values[0] = ordinalValueSql(values[0]!, `u.${ORDINAL_COLUMN}`);
  }
  const arrays = inputs.map((_, i) => `pg_catalog.unnest($${i + 1}::text[])`).join(', ');
  const select = `SELECT ${values.join(', ')} FROM ROWS FROM (${arrays}) AS u(${inputs.join(', ')})`;
  const override = p.insert.override === 'OVERRIDING_SYSTEM_VALUE' ? ' OVERRIDING SYSTEM VALUE' : p.insert.override === 'OVERRIDING_USER_VALUE' ? ' OVERRIDING USER VALUE' : '';
  const tail = ordered ? p.ordinalTailSql : p.tailSql;
  return (i) => {
    const shard = p.target.method === 'reference' ? p.target.shards[0] : p.target.shards[i];
    return `INSERT INTO ${quoteQualified(p.target.schema, shard.shardName)} AS ${alias} (${cols})${override} ${select} ${tail}`;
  };
}
