/**
 * The objects a table needs on a worker before its shards can exist there,
 * as Citus creates them first: extensions, collations, types (enum,
 * composite, domain, range) and functions (column defaults, CHECK and domain
 * constraints, index expressions).
 *
 * PostgreSQL records what an object uses in pg_depend; the walk starts from
 * the table and the objects that belong to it (column defaults, constraints,
 * indexes) and follows their normal dependencies to types, collations,
 * functions and extensions, recursively (a domain's base type and its
 * constraints' functions, a composite's attribute types, a function's
 * argument types). An object that belongs to an extension stands for the
 * extension; an array type stands for its element type; built-in objects
 * (oid < 16384) exist everywhere. The result is in creation order: every
 * object after what it depends on.
 *
 * Reads run on the coordinator PostgreSQL with search_path = pg_catalog (the
 * catalog transaction), so every name PostgreSQL prints is qualified.
 */
import type { InternalClient } from '../pool/internal-client.js';

/** Objects below this oid come with PostgreSQL itself (FirstNormalObjectId). */
const FIRST_NORMAL_OID = 16384;

export type ObjectKind = 'extension' | 'collation' | 'type' | 'function';

export interface ObjectRef {
  kind: ObjectKind;
  oid: number;
}

type Query = Pick<InternalClient, 'query'>;

const CLASS_OF: Record<ObjectKind, string> = {
  extension: 'pg_extension',
  collation: 'pg_collation',
  type: 'pg_type',
  function: 'pg_proc',
};
/** The catalogs' own oids (fixed in PostgreSQL's source: pg_type 1247, pg_proc 1255, pg_extension 3079, pg_collation 3456). */
export const CLASS_OID: Record<ObjectKind, number> = { type: 1247, function: 1255, extension: 3079, collation: 3456 };
const KIND_OF_CLASS_OID: Record<number, ObjectKind> = Object.fromEntries(Object.entries(CLASS_OID).map(([k, v]) => [v, k as ObjectKind]));

/** The ref for a (classid, objid) pair, or null for catalogs other than those four. */
export function refOf(classId: number, oid: number): ObjectRef | null {
  const kind = KIND_OF_CLASS_OID[classId];
  return kind ? { kind, oid } : null;
}

function key(ref: ObjectRef): string {
  return `${ref.kind}:${ref.oid}`;
}

function oidArray(oids: number[]): string {
  return '{' + oids.join(',') + '}';
}

/** The objects `relationIds` depend on, each after its own dependencies. */
export async function tableDependencies(client: Query, relationIds: number[]): Promise<ObjectRef[]> {
  return dependencyClosure(client, await directTableReferences(client, relationIds));
}

/**
 * What the tables themselves (columns, defaults, constraints, indexes)
 * reference directly, without the closure. Every name is qualified, so it
 * also runs in a client's session with any search_path (ALTER TABLE reads
 * its new column's type there, before the change is committed).
 */
export async function directTableReferences(client: Query, relationIds: number[]): Promise<ObjectRef[]> {
  if (relationIds.length === 0) return [];
  const direct = await client.query(
    `WITH owned(classid, objid) AS (
       SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, c.oid FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) ANY($1::pg_catalog.oid[])
       UNION ALL SELECT 'pg_catalog.pg_attrdef'::pg_catalog.regclass, d.oid FROM pg_catalog.pg_attrdef d WHERE d.adrelid OPERATOR(pg_catalog.=) ANY($1::pg_catalog.oid[])
       UNION ALL SELECT 'pg_catalog.pg_constraint'::pg_catalog.regclass, k.oid FROM pg_catalog.pg_constraint k WHERE k.conrelid OPERATOR(pg_catalog.=) ANY($1::pg_catalog.oid[])
       UNION ALL SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, i.indexrelid FROM pg_catalog.pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) ANY($1::pg_catalog.oid[]))
     ${REFERENCES_OF_OWNED}`,
    [oidArray(relationIds)],
  );
  return refsOf(direct.rows);
}

/** Normal dependencies of the rows in `owned` on objects we create (catalogs by their fixed oids). */
const REFERENCES_OF_OWNED = `
SELECT DISTINCT d.refclassid::pg_catalog.int4, d.refobjid
FROM owned o JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) o.classid AND d.objid OPERATOR(pg_catalog.=) o.objid
WHERE d.deptype OPERATOR(pg_catalog.=) 'n' AND d.refobjid OPERATOR(pg_catalog.>=) ${FIRST_NORMAL_OID}::pg_catalog.oid
  AND d.refclassid::pg_catalog.int4 OPERATOR(pg_catalog.=) ANY ('{${Object.keys(KIND_OF_CLASS_OID).join(',')}}'::pg_catalog.int4[])`;

function refsOf(rows: (string | null)[][]): ObjectRef[] {
  return rows.map((r) => ({ kind: KIND_OF_CLASS_OID[Number(r[0])]!, oid: Number(r[1]) })).filter((r) => r.kind !== undefined);
}

/** What one object stands for on a worker: its extension, its element type, or itself. */
async function canonical(client: Query, ref: ObjectRef): Promise<ObjectRef | null> {
  if (ref.oid < FIRST_NORMAL_OID) return null;
  if (ref.kind === 'extension') return ref;
  const ext = await client.query(
    `SELECT refobjid FROM pg_depend WHERE classid = $1::regclass AND objid = $2 AND refclassid = 'pg_extension'::regclass AND deptype = 'e'`,
    [CLASS_OF[ref.kind], String(ref.oid)],
  );
  if (ext.rows.length > 0) return { kind: 'extension', oid: Number(ext.rows[0]![0]) };
  if (ref.kind === 'type') {
    const t = await client.query(
      `SELECT typelem FROM pg_type WHERE oid = $1 AND typelem <> 0 AND typsubscript = 'array_subscript_handler'::regproc`,
      [String(ref.oid)],
    );
    if (t.rows.length > 0) return canonical(client, { kind: 'type', oid: Number(t.rows[0]![0]) });
  }
  return ref;
}

/** The objects `ref` itself depends on (before canonicalization). */
async function dependenciesOf(client: Query, ref: ObjectRef): Promise<ObjectRef[]> {
  if (ref.kind === 'extension' || ref.kind === 'collation') return [];
  const owned =
    ref.kind === 'function'
      ? `SELECT 'pg_proc'::regclass, $1::oid`
      : `SELECT 'pg_type'::regclass, $1::oid
         UNION ALL SELECT 'pg_class'::regclass, t.typrelid FROM pg_type t WHERE t.oid = $1 AND t.typrelid <> 0
         UNION ALL SELECT 'pg_constraint'::regclass, k.oid FROM pg_constraint k WHERE k.contypid = $1`;
  const r = await client.query(`WITH owned(classid, objid) AS (${owned}) ${REFERENCES_OF_OWNED}`, [String(ref.oid)]);
  return refsOf(r.rows).filter((d) => !(d.kind === ref.kind && d.oid === ref.oid));
}

/** Whether `client` sees the object (one created in another session's open transaction is invisible). */
async function visible(client: Query, ref: ObjectRef): Promise<boolean> {
  const r = await client.query(`SELECT 1 FROM pg_catalog.${CLASS_OF[ref.kind]} WHERE oid = $1`, [String(ref.oid)]);
  return r.rows.length > 0;
}

/**
 * `roots` and everything they depend on, each after its own dependencies
 * (depth-first post-order over the dependency graph: creation order).
 * Objects `client` cannot see are left out: those created in a client's
 * still-open transaction reach the workers with that transaction.
 */
export async function dependencyClosure(client: Query, roots: ObjectRef[]): Promise<ObjectRef[]> {
  const out: ObjectRef[] = [];
  const seen = new Set<string>();
  const visit = async (raw: ObjectRef): Promise<void> => {
    if (raw.oid < FIRST_NORMAL_OID || !(await visible(client, raw))) return;
    const ref = await canonical(client, raw);
    if (!ref || seen.has(key(ref))) return;
    seen.add(key(ref));
    for (const dep of await dependenciesOf(client, ref)) await visit(dep);
    out.push(ref);
  };
  for (const r of roots) await visit(r);
  return out;
}
