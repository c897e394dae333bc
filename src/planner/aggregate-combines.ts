/**
 * Final-step SQL of the aggregates whose combine is more than re-applying
 * an aggregate (aggregate-pushdown-planner.ts), each reproducing
 * PostgreSQL's own result exactly (DESIGN.md decision 1).
 *
 * Variance and standard deviation of integers and numeric: PostgreSQL
 * accumulates count N, sum S and sum of squares Q exactly (numeric or
 * int128) and finishes in numeric_stddev_internal: NULL without rows (or
 * with one, for the sample forms); NaN when any input was NaN or infinite;
 * 0 when N·Q − S² ≤ 0; else (N·Q − S²) / (N·(N−1)) (or N·N), divided at
 * the scale numeric division picks — which SQL's `/` picks the same way
 * from the same operands, so the partials N, S, Q (exact too) give the very
 * digits. The standard deviation is that quotient's square root at the
 * quotient's scale, rounded half away from zero; SQL's sqrt() picks another
 * scale, so the root is computed on integers: floor(√(v·10^2r)) corrected
 * by squaring (exact), then rounded by comparing squares. Float inputs
 * (Youngs–Cramer accumulation in PostgreSQL) are pulled instead.
 *
 * array_agg, jsonb_agg, jsonb_object_agg and json_object_agg without ORDER
 * BY: their order is unspecified in PostgreSQL too, so the per-shard
 * results are concatenated — through their text forms, which the types'
 * input functions read back exactly (arrays of a type whose delimiter is
 * not a comma, box, are pulled). The types come from format_type with the
 * column's typmod, -1 here, which writes `bpchar[]` and `"bit"[]`, never
 * the `character[]` that SQL would read as char(1)[]. string_agg with a
 * constant delimiter is string_agg of the partial strings.
 */

/** N·Q − S² and the guards of PostgreSQL's numeric_stddev_internal, over the partial columns. */
export function varianceSql(sample: boolean, count: string, sum: string, squares: string): string {
  const n = `COALESCE(sum(${count}), 0)::numeric`;
  const s = `sum(${sum})::numeric`;
  const q = `sum(${squares})`;
  const spread = `(${n} * ${q} - ${s} * ${s})`;
  return `CASE WHEN ${n} = 0 THEN NULL${sample ? ` WHEN ${n} <= 1 THEN NULL` : ''}` +
    ` WHEN ${q} IN ('NaN'::numeric, 'Infinity'::numeric) THEN 'NaN'::numeric` +
    ` WHEN ${spread} <= 0 THEN 0::numeric` +
    ` ELSE ${spread} / (${n} * ${sample ? `(${n} - 1)` : n}) END`;
}

/** The square root of a numeric variance at its own scale, rounded half up (as PostgreSQL's sqrt_var rounds). */
export function stddevSql(variance: string): string {
  return `(SELECT CASE WHEN z.v IS NULL THEN NULL WHEN z.v = 'NaN'::numeric THEN 'NaN'::numeric WHEN z.v = 0 THEN 0::numeric` +
    ` ELSE round((e.f + CASE WHEN 4 * b.big >= (2 * e.f + 1) * (2 * e.f + 1) THEN 1 ELSE 0 END) * ('1e-' || b.r)::numeric, b.r) END` +
    ` FROM (SELECT ${variance} AS v) z,` +
    ` LATERAL (SELECT scale(z.v) AS r, z.v * ('1e' || (2 * scale(z.v)))::numeric AS big) b,` +
    ` LATERAL (SELECT trunc(sqrt(b.big)) AS f0) c,` +
    ` LATERAL (SELECT CASE WHEN c.f0 * c.f0 > b.big THEN c.f0 - 1 WHEN (c.f0 + 1) * (c.f0 + 1) <= b.big THEN c.f0 + 1 ELSE c.f0 END AS f) e)`;
}

/** The text between the outer brackets of a partial's text form (`skip` characters each side). */
function inner(column: string, skip: number): string {
  return `substr(${column}::text, ${skip + 1}, length(${column}::text) - ${2 * skip})`;
}

/** array_agg of every shard's array_agg, or null for element types whose array delimiter is not a comma. */
export function arrayConcatSql(column: string, type: string): string | null {
  if (!type.endsWith('[]') || type.startsWith('box')) return null;
  return `('{' || string_agg(${inner(column, 1)}, ',') || '}')::${type}`;
}

/** One JSON array or object of the shards' partial ones (jsonb_agg, jsonb_object_agg, json_object_agg). */
export function jsonConcatSql(name: 'jsonb_agg' | 'jsonb_object_agg' | 'json_object_agg', column: string): string {
  if (name === 'jsonb_agg') return `('[' || string_agg(${inner(column, 1)}, ', ') || ']')::jsonb`;
  if (name === 'jsonb_object_agg') return `('{' || string_agg(${inner(column, 1)}, ', ') || '}')::jsonb`;
  return `('{ ' || string_agg(${inner(column, 2)}, ', ') || ' }')::json`;
}
