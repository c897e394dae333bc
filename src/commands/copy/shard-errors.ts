/**
 * Errors from a shard, told in terms of the client's statement: shard names
 * (`events_102008`, `events_pkey_102008`) become the names the client knows,
 * and the line of a COPY batch (`CONTEXT: COPY events_102008, line 3`)
 * becomes the line of the client's stream that row came from.
 */
import { PgError, type ErrorFields } from '../../protocol/errors.js';
import type { DistributedTable } from '../../metadata/types.js';

/** Replaces `<name>_<shardid>` by `<name>` for the shard ids of `tables`. */
export function unshardNames(text: string, tables: readonly DistributedTable[]): string {
  let out = text;
  for (const t of tables) {
    const ids = new Set(t.shards.map((s) => String(s.shardId)));
    out = out.replace(/([A-Za-z0-9_$\u0080-\uffff]+)_(\d+)/g, (m, name: string, id: string) => (ids.has(id) ? name : m));
  }
  return out;
}

/**
 * The shard's error as the client's: names unsharded; `lineOf(n)` maps the
 * batch's line n to the client's line (null: drop the line information).
 */
export function clientError(err: PgError, tables: readonly DistributedTable[], copyTable: string | null, lineOf: ((n: number) => number | null) | null): PgError {
  const f: ErrorFields = { ...err.fields };
  for (const key of ['message', 'detail', 'hint', 'constraint', 'table'] as const) {
    if (f[key] !== undefined) f[key] = unshardNames(f[key]!, tables);
  }
  if (f.where !== undefined) {
    f.where = f.where
      .split('\n')
      .map((line) => {
        const m = /^COPY ([^,]+), line (\d+)(.*)$/s.exec(line);
        if (!m) return unshardNames(line, tables);
        const clientLine = lineOf ? lineOf(Number(m[2])) : null;
        const name = copyTable ?? unshardNames(m[1], tables);
        return clientLine === null ? `COPY ${name}${unshardNames(m[3], tables)}` : `COPY ${name}, line ${clientLine}${unshardNames(m[3], tables)}`;
      })
      .join('\n');
  }
  return new PgError(f);
}
