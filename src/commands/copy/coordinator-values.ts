/**
 * Values the routing engine (distributed-copy.ts) has the coordinator
 * PostgreSQL compute, in batches: the hash of distribution values our own
 * hash code cannot read (`hashOnCoordinator`), and the columns the coordinator
 * fills for every row — sequences, identity, the distribution column's
 * default (`evaluateOnCoordinator`).
 *
 * A value PostgreSQL rejects becomes the COPY's error with the client's line
 * (the rejected row is looked for one by one); inside the client's
 * transaction block the hash queries run under a savepoint so that only the
 * COPY's error, not the query's, fails the block.
 */
import { PgError, toPgError } from '../../protocol/errors.js';
import { hashCallSql } from '../../sql/hash.js';
import { textArrayLiteral } from './shard-buffer.js';
import { copyWhere, type RouterConfig, type RoutingAccess } from './routing-config.js';

/** A row waiting for its distribution value's hash. */
export interface PendingRow {
  bytes: Buffer;
  line: number;
  value: string | null;
}

/**
 * A query on the coordinator whose failure must not fail the client's
 * transaction block (a value PostgreSQL rejects is reported as the COPY's
 * error, with its line, and only then fails the block).
 */
async function guarded(access: RoutingAccess, sql: string, params: ReadonlyArray<string | null>) {
  if (!access.inTransactionBlock) return access.runAsClient(sql, params);
  await access.runAsClient('SAVEPOINT pgweave_copy_hash');
  try {
    const r = await access.runAsClient(sql, params);
    await access.runAsClient('RELEASE SAVEPOINT pgweave_copy_hash');
    return r;
  } catch (err) {
    await access.runAsClient('ROLLBACK TO SAVEPOINT pgweave_copy_hash; RELEASE SAVEPOINT pgweave_copy_hash').catch(() => {});
    throw err;
  }
}

/** The hashes of `rows`' distribution values, in order, or the error of the first value PostgreSQL rejects. */
export async function hashOnCoordinator(access: RoutingAccess, c: RouterConfig, rows: PendingRow[]): Promise<number[] | PgError> {
  const t = c.table;
  const sql = `SELECT ${hashCallSql(t.hashFunction!, `u.v::${t.distributionColumnSqlType ?? t.distributionColumnType}`)} FROM pg_catalog.unnest($1::text[]) WITH ORDINALITY AS u(v, i) ORDER BY u.i`;
  try {
    const r = await guarded(access, sql, [textArrayLiteral(rows.map((x) => x.value))]);
    return r.rows.map((x) => Number(x[0]));
  } catch {
    // Find the row PostgreSQL rejects, for its message and line.
    for (const row of rows) {
      try {
        await guarded(access, `SELECT ${hashCallSql(t.hashFunction!, `$1::${t.distributionColumnSqlType ?? t.distributionColumnType}`)}`, [row.value]);
      } catch (err) {
        const e = toPgError(err);
        return new PgError({ ...e.fields, where: copyWhere(c, row.line, `, column ${t.distributionColumn}: "${row.value}"`) });
      }
    }
    return new PgError({ code: 'XX000', message: 'could not hash the distribution column values' });
  }
}

/**
 * The evaluated columns' values for `count` rows (text; binary: the send
 * function's bytes in hex, then the distribution value as text when it is
 * one of them), or the error, placed at `firstLine`.
 */
export async function evaluateOnCoordinator(
  access: RoutingAccess,
  c: RouterConfig,
  count: number,
  firstLine: number,
): Promise<Array<Array<string | null>> | PgError> {
  const binary = c.opts.format === 'binary';
  const distEvaluated = c.distIndex >= c.columns.length ? c.distIndex - c.columns.length : -1;
  const inner = c.evaluated.map((e, i) => `${e.expression} AS e${i}`).join(', ');
  const outer = c.evaluated.map((e, i) => (binary ? `pg_catalog.encode(${e.sendFunction}(q.e${i}), 'hex')` : `q.e${i}::text`));
  if (binary && distEvaluated >= 0) outer.push(`q.e${distEvaluated}::text`);
  try {
    const r = await access.runAsClient(
      `SELECT ${outer.join(', ')} FROM (SELECT ${inner} FROM pg_catalog.generate_series(1, $1::int) OFFSET 0) AS q`,
      [String(count)],
    );
    return r.rows;
  } catch (err) {
    return new PgError({ ...toPgError(err).fields, where: copyWhere(c, firstLine) });
  }
}
