/**
 * Whether a SELECT only reads: it changes nothing on the node that runs it
 * — no row locks (FOR UPDATE/SHARE), no SELECT INTO, no data-modifying
 * WITH, and no call of a function, operator or cast that could write,
 * take a lock or change session state. Such a statement may run inside
 * another statement's transaction without anyone telling the difference,
 * which is what lets the executor send several sessions' reads to a worker
 * behind one Sync (executor/pipelined-channel.ts).
 *
 * Functions are judged by name against built-ins known to only compute:
 * a call of anything else, or of a schema-qualified name outside
 * pg_catalog, makes the statement count as possibly writing. So does an
 * operator or a cast spelled with a schema outside pg_catalog. Unqualified
 * operators and casts are taken as built-in.
 */
import type { Node } from '../sql/parse.js';
import { someNode } from '../sql/tree-walk.js';

/** Built-in functions that compute a value and nothing else (and do not assign a transaction id). */
const PURE_FUNCTIONS = new Set([
  // aggregates
  'count', 'sum', 'avg', 'min', 'max', 'bool_and', 'bool_or', 'every', 'bit_and', 'bit_or', 'string_agg', 'array_agg',
  'json_agg', 'jsonb_agg', 'json_object_agg', 'jsonb_object_agg', 'stddev', 'stddev_pop', 'stddev_samp', 'variance',
  'var_pop', 'var_samp', 'percentile_cont', 'percentile_disc', 'mode',
  // window functions
  'row_number', 'rank', 'dense_rank', 'percent_rank', 'cume_dist', 'ntile', 'lag', 'lead', 'first_value', 'last_value', 'nth_value',
  // numbers
  'abs', 'ceil', 'ceiling', 'floor', 'round', 'trunc', 'mod', 'power', 'sqrt', 'exp', 'ln', 'log', 'sign', 'div', 'greatest', 'least', 'random',
  // text
  'lower', 'upper', 'length', 'char_length', 'character_length', 'octet_length', 'substr', 'substring', 'trim', 'btrim', 'ltrim',
  'rtrim', 'concat', 'concat_ws', 'replace', 'split_part', 'position', 'strpos', 'left', 'right', 'lpad', 'rpad', 'repeat',
  'reverse', 'initcap', 'format', 'md5', 'starts_with', 'regexp_replace', 'regexp_match', 'regexp_matches', 'to_char', 'to_number',
  // dates and times
  'now', 'date_trunc', 'date_part', 'extract', 'age', 'to_date', 'to_timestamp', 'make_date', 'make_timestamp', 'make_interval',
  'clock_timestamp', 'statement_timestamp', 'transaction_timestamp', 'timezone',
  // arrays, json, misc
  'array_length', 'cardinality', 'unnest', 'array_position', 'array_to_string', 'string_to_array', 'generate_series',
  'coalesce', 'nullif', 'json_build_object', 'jsonb_build_object', 'json_build_array', 'jsonb_build_array', 'to_json', 'to_jsonb',
  'jsonb_extract_path', 'jsonb_extract_path_text', 'json_extract_path', 'json_extract_path_text', 'row_to_json',
]);

export function readsOnly(select: Node): boolean {
  return !select.intoClause && !someNode(select, mayChangeSomething);
}

/** A node that writes, locks rows, or calls something not known to only compute. */
function mayChangeSomething(o: Node): boolean {
  if (o.InsertStmt || o.UpdateStmt || o.DeleteStmt || o.MergeStmt || o.LockingClause) return true;
  if (o.FuncCall) return !pureName(o.FuncCall.funcname, true);
  if (o.A_Expr) return !pureName(o.A_Expr.name, false);
  if (o.TypeCast) return !pureName(o.TypeCast.typeName?.names, false);
  return false;
}

/** A name list (schema-qualified or not): built-in, and for functions also known to only compute. */
function pureName(names: Node[] | undefined, isFunction: boolean): boolean {
  if (!Array.isArray(names) || names.length === 0) return !isFunction;
  const parts = names.map((n: Node) => n?.String?.sval as string | undefined);
  if (parts.length > 1 && parts[parts.length - 2] !== 'pg_catalog') return false;
  if (!isFunction) return true;
  const last = parts[parts.length - 1];
  return last !== undefined && PURE_FUNCTIONS.has(last);
}
