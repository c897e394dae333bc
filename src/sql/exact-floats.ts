/**
 * Exact float text from a query whose rows a session reads or moves as text
 * (an INSERT's evaluated values, a text-format COPY between nodes), whatever
 * the session's extra_float_digits — at 0 or less PostgreSQL prints float4,
 * float8 (and the geometric types, arrays and composites of them) rounded.
 * Raising the setting before the query would also change text the query
 * computes itself (`f::text`), which must keep the session's setting. So
 * the query becomes a materialized CTE, and the outer SELECT's one-time
 * filter counts the CTE's rows — computing all of them — and only then sets
 * extra_float_digits for the transaction: every row is printed after, with
 * the new value. The caller restores the session's value afterwards (or
 * rolls the transaction back).
 */

/**
 * `query`'s rows, printed with exact floats, as CTE `name`: a SELECT is
 * written MATERIALIZED so PostgreSQL cannot fold it into the outer query;
 * a data-modifying statement with RETURNING (`dataModifying`) runs to its
 * end before anything reads it anyway.
 */
export function exactFloatsQuery(name: string, query: string, dataModifying = false): string {
  return `WITH ${name} AS ${dataModifying ? '' : 'MATERIALIZED '}(${query}) SELECT ${name}.* FROM ${name} ` +
    `WHERE (SELECT pg_catalog.set_config('extra_float_digits', '3', true) FROM (SELECT pg_catalog.count(*) FROM ${name}) pgweave_all) IS NOT NULL`;
}
