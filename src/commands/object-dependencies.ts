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
const KIND_OF: Record<string, ObjectKind> = Object.fromEntries(Object.entries(CLASS_OF).map(([k, v]) => [v, k as ObjectKind]));

function key(ref: ObjectRef): string {
  return `${ref.kind}:${ref.oid}`;
}

function oidArray(oids: number[]): string {
  return '{' + oids.join(',') + '}';
}

/** The objects `relationIds` depend on, each after its own dependencies. */
export async function tableDependencies(client: Query, relationIds: number[]): Promise<ObjectRef[]> {
  if (relationIds.length === 0) return [];
  const direct = await client.query(
    `WITH owned(classid, objid) AS (
       SELECT 'pg_class'::regclass, c.oid FROM pg_class c WHERE c.oid = ANY($1::oid[])
       UNION ALL SELECT 'pg_attrdef'::regclass, d.oid FROM pg_attrdef d WHERE d.adrelid = ANY($1::oid[])
       UNION ALL SELECT 'pg_constraint'::regclass, k.oid FROM pg_constraint k WHERE k.conrelid = ANY($1::oid[])
       UNION ALL SELECT 'pg_class'::regclass, i.indexrelid FROM pg_index i WHERE i.indrelid = ANY($1::oid[]))
     ${REFERENCES_OF_OWNED}`,
    [oidArray(relationIds)],
  );
  return orderedClosure(client, refsOf(direct.rows));
}

/** Normal dependencies of the rows in `owned` on objects we create. */
const REFERENCES_OF_OWNED = `
SELECT DISTINCT d.refclassid::regclass::text, d.refobjid
FROM owned o JOIN pg_depend d ON d.classid = o.classid AND d.objid = o.objid
WHERE d.deptype = 'n' AND d.refobjid >= ${FIRST_NORMAL_OID}
  AND d.refclassid IN ('pg_type'::regclass, 'pg_collation'::regclass, 'pg_proc'::regclass, 'pg_extension'::regclass)`;

function refsOf(rows: (string | null)[][]): ObjectRef[] {
  return rows.map((r) => ({ kind: KIND_OF[r[0]!]!, oid: Number(r[1]) })).filter((r) => r.kind !== undefined);
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

/** Depth-first post-order over the dependency graph: creation order. */
async function orderedClosure(client: Query, roots: ObjectRef[]): Promise<ObjectRef[]> {
  const out: ObjectRef[] = [];
  const seen = new Set<string>();
  const visit = async (raw: ObjectRef): Promise<void> => {
    const ref = await canonical(client, raw);
    if (!ref || seen.has(key(ref))) return;
    seen.add(key(ref));
    for (const dep of await dependenciesOf(client, ref)) await visit(dep);
    out.push(ref);
  };
  for (const r of roots) await visit(r);
  return out;
}
