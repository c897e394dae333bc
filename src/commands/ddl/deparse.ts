/**
 * Turns a rewritten parse tree (a statement for one shard) back into SQL with
 * pgsql-deparser (DESIGN.md decision 2), and proves the result means the same
 * statement: the deparsed text is parsed again and its tree must equal the
 * tree that was deparsed (source locations aside).
 *
 * The check exists because the deparser drops or misplaces some clauses
 * (e.g. INCLUDE and WITH of a PRIMARY KEY constraint, the name of an EXCLUDE
 * constraint, `GRANTED BY`). A shard that silently got a different index or
 * constraint than the coordinator table would be worse than a clear error, so
 * a statement that does not survive the round trip is refused (0A000) before
 * anything runs. One known misordering, CREATE INDEX's WHERE before WITH /
 * TABLESPACE / NULLS NOT DISTINCT, is corrected here by deparsing the
 * clauses in PostgreSQL's grammar order.
 */
import { isDeepStrictEqual } from 'node:util';
import { Deparser } from 'pgsql-deparser';
import { PgError } from '../../protocol/errors.js';
import { parseSql, type Node } from '../../sql/parse.js';
import { quoteIdent } from '../../sql/quote.js';

type Context = Parameters<Deparser['visit']>[1];

/** The deparser with CREATE INDEX's trailing clauses in grammar order. */
class ShardDeparser extends Deparser {
  override IndexStmt(node: Node, context: Context): string {
    const head = super.IndexStmt({ ...node, whereClause: undefined, options: undefined, tableSpace: undefined, nulls_not_distinct: false }, context!);
    const out = [head];
    if (node.nulls_not_distinct) out.push('NULLS NOT DISTINCT');
    if (node.options?.length > 0) {
      const options = (node.options as Node[]).map((o) => this.visit(o, context!.spawn('IndexStmt')));
      out.push(`WITH (${options.join(', ')})`);
    }
    if (node.tableSpace) out.push('TABLESPACE ' + quoteIdent(node.tableSpace));
    if (node.whereClause) out.push('WHERE ' + this.visit(node.whereClause, context));
    return out.join(' ');
  }
}

/** The tree without source positions, which legitimately differ after a round trip. */
function withoutLocations(node: Node): Node {
  return JSON.parse(JSON.stringify(node, (key, value) => (key === 'location' || key === 'stmt_location' || key === 'stmt_len' ? undefined : value)));
}

/**
 * SQL for one statement node (e.g. `{ IndexStmt: {...} }`), checked to parse
 * back to the same tree. `what` names the statement in the error.
 */
export function deparseStatement(stmt: Node, what: string): string {
  let sql: string;
  try {
    sql = new ShardDeparser(stmt).deparseQuery();
  } catch (err) {
    throw notReproducible(what, (err as Error).message);
  }
  let back: Node;
  try {
    back = parseSql(sql).stmts[0]?.stmt;
  } catch (err) {
    throw notReproducible(what, (err as Error).message);
  }
  if (!isDeepStrictEqual(withoutLocations(back), withoutLocations(stmt))) throw notReproducible(what, null);
  return sql;
}

function notReproducible(what: string, reason: string | null): PgError {
  return new PgError({
    code: '0A000',
    message: `cannot propagate this ${what} to the shards of a distributed table`,
    detail:
      'pgweave rebuilds the statement for every shard from its parse tree and could not reproduce every clause of this one exactly' +
      (reason ? ` (${reason})` : '') +
      '.',
    hint: 'Write the statement without the unusual clause, or split it into several statements.',
  });
}
