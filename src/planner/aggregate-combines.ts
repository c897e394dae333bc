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
 * by squaring (exact), then rounded by comparing squares.
 *
 * Variance and standard deviation of float4/float8, and the two-argument
 * float families (covar_pop/covar_samp/corr/regr_*): PostgreSQL accumulates
 * them in double precision (Youngs–Cramer: float8_accum's {N, Sx, Sxx},
 * float8_regr_accum's six sums), so no exact sums reproduce them. They are
 * split exactly as PostgreSQL's own parallel plans split them: each shard
 * returns its transition state (pgweave_float8_accum_state /
 * pgweave_float8_regr_accum_state: the built-in transition function, the
 * state as the result), the coordinator merges the states with the built-in
 * combine function (pgweave_float8_combine_state / …regr_combine_state,
 * whose first merge into the zero state copies it) and finishes with the
 * built-in final function (float8_var_pop, float8_stddev_samp, float8_corr…).
 * No rounding is added beyond those of a parallel plan; as there, the low
 * bits depend on the order rows and states are accumulated in. Whether a
 * variance's input is float is known once the types are (the partial sum's
 * type): the worker query computes both kinds of partials, the float state
 * of an integer or numeric input accumulating nothing
 * (pgweave_float8_accum_input, overloaded as var_pop is so PostgreSQL
 * resolves it alike, is inlined to NULL for those types: a numeric input
 * never reaches a float cast that could overflow).
 *
 * json_agg without ORDER BY: PostgreSQL separates elements by ", " and puts
 * "\n " before each later element that is not NULL and whose JSON category
 * is array or composite (json_agg_transfn; domains looked through, records
 * included). The shards' arrays are joined with the separator the next
 * partial's first element gets: ", \n " when the category is structured and
 * the element is not `null` (a structured element starts with `[` or `{`).
 * The category comes from the worker as a constant per query
 * (pgweave_json_structured over a NULL of the argument's type, folded by the
 * worker's planner). json_agg over no rows is NULL, as string_agg of no
 * partials is.
 *
 * The pgweave_* functions live in pg_catalog of the coordinator's and every
 * worker's database (SUPPORT_FUNCTIONS_SQL), created by the internal role on
 * first use (server/session-services.ts), so every role may call them.
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
import { CATALOG_LOCK_KEY } from '../metadata/catalog-schema.js';

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

/** Names of the pgweave_* support functions the split aggregates call (pg_catalog of every database). */
export const SUPPORT = {
  accumInput: 'pg_catalog.pgweave_float8_accum_input',
  accumState: 'pg_catalog.pgweave_float8_accum_state',
  combineState: 'pg_catalog.pgweave_float8_combine_state',
  regrAccumState: 'pg_catalog.pgweave_float8_regr_accum_state',
  regrCombineState: 'pg_catalog.pgweave_float8_regr_combine_state',
  jsonStructured: 'pg_catalog.pgweave_json_structured',
} as const;

/** The final functions of the float variances, by aggregate name. */
const FLOAT_VARIANCE_FINAL: Record<string, string> = {
  var_pop: 'float8_var_pop', var_samp: 'float8_var_samp', variance: 'float8_var_samp',
  stddev_pop: 'float8_stddev_pop', stddev_samp: 'float8_stddev_samp', stddev: 'float8_stddev_samp',
};

/** The float8_regr_accum family; each finishes with the built-in `float8_<name>`. */
export const REGRESSIONS: ReadonlySet<string> = new Set([
  'covar_pop', 'covar_samp', 'corr', 'regr_avgx', 'regr_avgy', 'regr_intercept', 'regr_r2', 'regr_slope', 'regr_sxx', 'regr_sxy', 'regr_syy',
]);

/** A float variance or standard deviation from the shards' float8_accum states. */
export function floatVarianceSql(name: string, states: string): string {
  return `pg_catalog.${FLOAT_VARIANCE_FINAL[name]}(${SUPPORT.combineState}(${states}))`;
}

/** covar_pop, corr, regr_slope… from the shards' float8_regr_accum states. */
export function regressionSql(name: string, states: string): string {
  return `pg_catalog.float8_${name}(${SUPPORT.regrCombineState}(${states}))`;
}

/** One json_agg of the shards' json_agg arrays; `structured`: the worker's category flag column. */
export function jsonAggConcatSql(column: string, structured: string): string {
  return `('[' || string_agg(${inner(column, 1)}, CASE WHEN ${structured} AND substr(${column}::text, 2, 1) <> 'n' THEN E', \\n ' ELSE ', ' END) || ']')::json`;
}

const FLOAT8 = 'pg_catalog.float8';
const accumInput = (type: string, body: string) =>
  `CREATE FUNCTION ${SUPPORT.accumInput}(${type}) RETURNS ${FLOAT8} LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT ${body}';`;
const stateAggregate = (name: string, args: string, sfunc: string, combine: string, zeros: number) =>
  `CREATE AGGREGATE ${name}(${args}) (sfunc = pg_catalog.${sfunc}, stype = ${FLOAT8}[], initcond = '{${Array(zeros).fill(0).join(',')}}', ` +
  `combinefunc = pg_catalog.${combine}, parallel = safe);`;

/**
 * Creates the support functions in one database, idempotently: an advisory
 * lock (the catalog's key, key2 = 2) serializes concurrent creators (several coordinators, sessions), the
 * last object created tells a later call there is nothing to do.
 */
export const SUPPORT_FUNCTIONS_SQL = `DO $do$ BEGIN
  PERFORM pg_catalog.pg_advisory_xact_lock(${CATALOG_LOCK_KEY}, 2);
  IF pg_catalog.to_regprocedure('${SUPPORT.jsonStructured}(anyelement)') IS NULL THEN
    ${accumInput(FLOAT8, '$1')}
    ${accumInput('pg_catalog.float4', `$1::${FLOAT8}`)}
    ${['int2', 'int4', 'int8', 'numeric'].map((t) => accumInput(`pg_catalog.${t}`, `NULL::${FLOAT8}`)).join('\n    ')}
    ${stateAggregate(SUPPORT.accumState, FLOAT8, 'float8_accum', 'float8_combine', 3)}
    ${stateAggregate(SUPPORT.combineState, `${FLOAT8}[]`, 'float8_combine', 'float8_combine', 3)}
    ${stateAggregate(SUPPORT.regrAccumState, `${FLOAT8}, ${FLOAT8}`, 'float8_regr_accum', 'float8_regr_combine', 6)}
    ${stateAggregate(SUPPORT.regrCombineState, `${FLOAT8}[]`, 'float8_regr_combine', 'float8_regr_combine', 6)}
    CREATE FUNCTION ${SUPPORT.jsonStructured}(anyelement) RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
      WITH RECURSIVE d(t) AS (
        SELECT pg_catalog.pg_typeof($1)::pg_catalog.oid
        UNION ALL SELECT y.typbasetype FROM pg_catalog.pg_type y JOIN d ON y.oid = d.t WHERE y.typtype = 'd')
      SELECT (y.typelem <> 0 AND y.typsubscript = 'pg_catalog.array_subscript_handler'::pg_catalog.regproc)
        OR y.typtype = 'c' OR y.oid = 'pg_catalog.record'::pg_catalog.regtype
      FROM d JOIN pg_catalog.pg_type y ON y.oid = d.t WHERE y.typtype <> 'd'
    $fn$;
  END IF;
END $do$`;
