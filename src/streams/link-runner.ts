/**
 * Runs one statement on a session's worker link (the client's own
 * connection, inside its transaction block if it has one) and decodes the
 * result, for stream functions called through a session.
 */
import type { BackendLink } from '../executor/backend-link.js';
import { collectOnLink, decodeDataRow, decodeFieldNames } from '../executor/link-query.js';
import { encodeExtendedQuery, encodeQuery } from '../pool/frontend-encoders.js';
import type { Rowset } from './access.js';

export async function queryOnSessionLink(link: BackendLink, sql: string, params?: ReadonlyArray<string | null>): Promise<Rowset> {
  await link.idle();
  const r = await collectOnLink(link, params ? encodeExtendedQuery(sql, params) : encodeQuery(sql));
  if (r.error) throw r.error;
  return { fields: decodeFieldNames(r.rowDescription), rows: r.rows.map(decodeDataRow), command: r.tag };
}
