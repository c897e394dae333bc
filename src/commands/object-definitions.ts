/**
 * Recreates, on a worker, objects a table depends on (object-dependencies.ts):
 * each object is read from the coordinator PostgreSQL as PostgreSQL prints it
 * (format_type, pg_get_constraintdef, pg_get_functiondef, with search_path =
 * pg_catalog so every name is qualified) and created on the worker only when
 * the worker has no object of that name — an object already there (created
 * by propagation, by an earlier distribution, or by hand) is left as it is.
 *
 *   extension  CREATE EXTENSION IF NOT EXISTS … WITH SCHEMA … CASCADE
 *   collation  CREATE COLLATION … (provider, locale, deterministic)
 *   enum       CREATE TYPE … AS ENUM (labels in sort order)
 *   composite  CREATE TYPE … AS (attributes)
 *   domain     CREATE DOMAIN … AS base [COLLATE] [DEFAULT] [NOT NULL] + its constraints
 *   range      CREATE TYPE … AS RANGE (SUBTYPE …)
 *   function   pg_get_functiondef (function bodies not checked: check_function_bodies = off)
 *
 * Objects are created by the internal role in the worker's transaction (so
 * they commit with the shards) and then given their coordinator owner, whose
 * role must exist there first (the caller runs ensureRoles on objectRoles).
 */
import type { InternalClient } from '../pool/internal-client.js';
import { PgError } from '../protocol/errors.js';
import { quoteIdent, quoteLiteral, quoteQualified } from '../sql/quote.js';
import { tableDependencies, type ObjectRef } from './object-dependencies.js';

type Query = Pick<InternalClient, 'query'>;

export interface ObjectDefinition {
  ref: ObjectRef;
  /** For messages: "type public.mood". */
  label: string;
  /** A query returning a row on a node that already has the object. */
  existsSql: string;
  existsParams: string[];
  create: string[];
  /** Roles the statements name (owners of the object and of its schema). */
  roles: string[];
}

/** The definitions of everything `relationIds` depend on, in creation order. */
export async function tableDependencyDefinitions(client: Query, relationIds: number[]): Promise<ObjectDefinition[]> {
  return readObjectDefinitions(client, await tableDependencies(client, relationIds));
}

/** Reads each object's definition on the coordinator (in `refs` order). */
export async function readObjectDefinitions(client: Query, refs: ObjectRef[]): Promise<ObjectDefinition[]> {
  const out: ObjectDefinition[] = [];
  for (const ref of refs) {
    const def = await readOne(client, ref);
    if (def) out.push(def);
  }
  return out;
}

async function one(client: Query, sql: string, oid: number): Promise<(string | null)[]> {
  const r = await client.query(sql, [String(oid)]);
  if (r.rows.length === 0) throw new PgError({ code: 'XX000', message: `cache lookup failed for object ${oid}` });
  return r.rows[0]!;
}

async function readOne(client: Query, ref: ObjectRef): Promise<ObjectDefinition | null> {
  switch (ref.kind) {
    case 'extension': {
      const [name, schema, schemaOwner] = await one(
        client,
        'SELECT e.extname, n.nspname, pg_get_userbyid(n.nspowner) FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.oid = $1',
        ref.oid,
      );
      return {
        ref,
        label: `extension ${name}`,
        existsSql: 'SELECT 1 FROM pg_catalog.pg_extension WHERE extname = $1',
        existsParams: [name!],
        create: [
          createSchema(schema!, schemaOwner!),
          `CREATE EXTENSION IF NOT EXISTS ${quoteIdent(name!)} WITH SCHEMA ${quoteIdent(schema!)} CASCADE`,
        ],
        roles: [schemaOwner!],
      };
    }
    case 'collation': {
      const [schema, name, owner, json, schemaOwner] = await one(
        client,
        `SELECT n.nspname, c.collname, pg_get_userbyid(c.collowner), to_jsonb(c)::text, pg_get_userbyid(n.nspowner)
         FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace WHERE c.oid = $1`,
        ref.oid,
      );
      const c = JSON.parse(json!) as Record<string, string | boolean | null>;
      const q = quoteQualified(schema!, name!);
      const options =
        c.collprovider === 'i'
          ? [`provider = icu`, `locale = ${quoteLiteral(String(c.colliculocale ?? c.colllocale ?? c.collcollate))}`]
          : [`provider = libc`, `lc_collate = ${quoteLiteral(String(c.collcollate))}`, `lc_ctype = ${quoteLiteral(String(c.collctype))}`];
      if (c.collisdeterministic === false) options.push('deterministic = false');
      return {
        ref,
        label: `collation ${schema}.${name}`,
        existsSql: 'SELECT 1 FROM pg_catalog.pg_collation c JOIN pg_catalog.pg_namespace n ON n.oid = c.collnamespace WHERE n.nspname = $1 AND c.collname = $2',
        existsParams: [schema!, name!],
        create: [createSchema(schema!, schemaOwner!), `CREATE COLLATION ${q} (${options.join(', ')})`, `ALTER COLLATION ${q} OWNER TO ${quoteIdent(owner!)}`],
        roles: [owner!, schemaOwner!],
      };
    }
    case 'type':
      return readType(client, ref);
    case 'function': {
      const [schema, name, kind, identity, owner, schemaOwner] = await one(
        client,
        `SELECT n.nspname, p.proname, p.prokind, p.oid::regprocedure::text, pg_get_userbyid(p.proowner), pg_get_userbyid(n.nspowner)
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = $1`,
        ref.oid,
      );
      if (kind === 'a' || kind === 'w') return null; // aggregates have no pg_get_functiondef; none appear in defaults
      const [text] = await one(client, 'SELECT pg_get_functiondef($1)', ref.oid);
      const what = kind === 'p' ? 'PROCEDURE' : 'FUNCTION';
      return {
        ref,
        label: `function ${schema}.${name}`,
        existsSql: 'SELECT 1 WHERE pg_catalog.to_regprocedure($1) IS NOT NULL',
        existsParams: [identity!],
        create: [createSchema(schema!, schemaOwner!), `SET LOCAL check_function_bodies = off`, text!, `ALTER ${what} ${identity} OWNER TO ${quoteIdent(owner!)}`],
        roles: [owner!, schemaOwner!],
      };
    }
  }
}

async function readType(client: Query, ref: ObjectRef): Promise<ObjectDefinition | null> {
  const id = String(ref.oid);
  const [schema, name, typtype, owner, base, notNull, defaultText, collation, relid, schemaOwner] = await one(
    client,
    `SELECT n.nspname, t.typname, t.typtype, pg_get_userbyid(t.typowner),
            CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END, t.typnotnull, pg_get_expr(t.typdefaultbin, 0),
            CASE WHEN t.typcollation <> 0 AND t.typcollation <> (SELECT b.typcollation FROM pg_type b WHERE b.oid = t.typbasetype)
                 THEN (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname) FROM pg_collation co
                       JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = t.typcollation) END,
            t.typrelid, pg_get_userbyid(n.nspowner)
     FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid = $1`,
    ref.oid,
  );
  const q = quoteQualified(schema!, name!);
  const create: string[] = [];
  let alter = 'TYPE';
  if (typtype === 'e') {
    const labels = await client.query('SELECT enumlabel FROM pg_enum WHERE enumtypid = $1 ORDER BY enumsortorder', [id]);
    create.push(`CREATE TYPE ${q} AS ENUM (${labels.rows.map((l) => quoteLiteral(l[0]!)).join(', ')})`);
  } else if (typtype === 'c') {
    const attrs = await client.query(
      `SELECT a.attname, format_type(a.atttypid, a.atttypmod),
              CASE WHEN a.attcollation <> 0 AND a.attcollation <> (SELECT b.typcollation FROM pg_type b WHERE b.oid = a.atttypid)
                   THEN (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname) FROM pg_collation co
                         JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation) END
       FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
      [relid!],
    );
    const cols = attrs.rows.map((a) => `${quoteIdent(a[0]!)} ${a[1]}${a[2] ? ` COLLATE ${a[2]}` : ''}`);
    create.push(`CREATE TYPE ${q} AS (${cols.join(', ')})`);
  } else if (typtype === 'd') {
    alter = 'DOMAIN';
    let text = `CREATE DOMAIN ${q} AS ${base}`;
    if (collation) text += ` COLLATE ${collation}`;
    if (defaultText !== null) text += ` DEFAULT ${defaultText}`;
    if (notNull === 't') text += ' NOT NULL';
    create.push(text);
    const checks = await client.query(
      `SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contypid = $1 AND contype = 'c' ORDER BY oid`,
      [id],
    );
    for (const c of checks.rows) create.push(`ALTER DOMAIN ${q} ADD CONSTRAINT ${quoteIdent(c[0]!)} ${c[1]}`);
  } else if (typtype === 'r') {
    const [subtype, rangeCollation] = await one(
      client,
      `SELECT format_type(r.rngsubtype, NULL),
              CASE WHEN r.rngcollation <> 0 AND r.rngcollation <> (SELECT b.typcollation FROM pg_type b WHERE b.oid = r.rngsubtype)
                   THEN (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname) FROM pg_collation co
                         JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = r.rngcollation) END
       FROM pg_range r WHERE r.rngtypid = $1`,
      ref.oid,
    );
    create.push(`CREATE TYPE ${q} AS RANGE (SUBTYPE = ${subtype}${rangeCollation ? `, COLLATION = ${rangeCollation}` : ''})`);
  } else {
    // A base type outside an extension needs C functions we cannot recreate: the shard's CREATE TABLE reports it.
    return null;
  }
  create.push(`ALTER ${alter} ${q} OWNER TO ${quoteIdent(owner!)}`);
  return {
    ref,
    label: `type ${schema}.${name}`,
    existsSql: 'SELECT 1 FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = $1 AND t.typname = $2',
    existsParams: [schema!, name!],
    create: [createSchema(schema!, schemaOwner!), ...create],
    roles: [owner!, schemaOwner!],
  };
}

function createSchema(schema: string, owner: string): string {
  return `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)} AUTHORIZATION ${quoteIdent(owner)}`;
}

/** Roles that must exist on a worker before `defs` are created there (their owners). */
export function objectRoles(defs: ObjectDefinition[]): string[] {
  return [...new Set(defs.flatMap((d) => d.roles))];
}

/**
 * Creates on one node, in `client`'s open transaction, every object of `defs`
 * it lacks, in order. `client` runs with search_path = pg_catalog.
 */
export async function ensureObjectsOn(client: Query, defs: ObjectDefinition[]): Promise<void> {
  for (const def of defs) {
    const present = await client.query(def.existsSql, def.existsParams);
    if (present.rows.length > 0) continue;
    for (const sql of def.create) await client.query(sql);
  }
}
