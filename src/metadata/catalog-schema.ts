/**
 * The distributed catalog's storage: tables in schema `pgweave` of each
 * database on the coordinator PostgreSQL, plus Citus-compatible read-only
 * views in pg_catalog (pg_dist_node, pg_dist_partition, pg_dist_shard,
 * pg_dist_placement, pg_dist_colocation, pg_dist_shard_placement,
 * citus_tables, citus_shards) and Citus's shard_name() function, so Citus
 * users' queries and tools work unchanged (DESIGN.md decision 4). Beyond
 * Citus, `pgweave_stat_progress_copy` shows running COPYs with
 * pg_stat_progress_copy's columns (pgweave.copy_progress, written by
 * src/commands/copy/copy-progress.ts).
 *
 * Everything durable lives here, never in a coordinator process (several
 * processes can serve one cluster). The tables are written only through the
 * internal role; clients read them through the views (SELECT granted to
 * public), and the schema itself is closed to PUBLIC.
 *
 * A new database's catalog starts with the nodes registered in the template
 * database ("postgres", where `pgweave up` registers the workers); from then
 * on each database's node list is its own (DESIGN.md decision 10).
 *
 * ensureCatalog is idempotent and safe to call from several processes at
 * once: a transaction-level advisory lock serializes creators, and a version
 * row lets every later call return after one cheap query. Bumping
 * CATALOG_VERSION recreates the views (they are derived, nothing is lost).
 */
import type { NodePools } from '../pool/node-pools.js';
import type { NodeAddress } from './types.js';

export const CATALOG_VERSION = 3;
/** Key of the advisory lock that serializes catalog creation (and, as key2 = 1, catalog changes). */
export const CATALOG_LOCK_KEY = 0x70677776; // 'pgwv'

const TABLES = `
CREATE SCHEMA IF NOT EXISTS pgweave;
REVOKE ALL ON SCHEMA pgweave FROM PUBLIC;
DO $do$ BEGIN
  IF pg_catalog.to_regtype('pg_catalog.noderole') IS NULL THEN
    CREATE TYPE pg_catalog.noderole AS ENUM ('primary', 'secondary', 'unavailable');
  END IF;
END $do$;
CREATE SEQUENCE IF NOT EXISTS pgweave.nodeid_seq AS integer MINVALUE 1;
CREATE SEQUENCE IF NOT EXISTS pgweave.groupid_seq AS integer MINVALUE 1;
CREATE TABLE IF NOT EXISTS pgweave.node (
  nodeid integer PRIMARY KEY DEFAULT nextval('pgweave.nodeid_seq'),
  groupid integer NOT NULL,
  nodename text NOT NULL,
  nodeport integer NOT NULL,
  noderack text NOT NULL DEFAULT 'default',
  hasmetadata boolean NOT NULL DEFAULT false,
  isactive boolean NOT NULL DEFAULT true,
  noderole pg_catalog.noderole NOT NULL DEFAULT 'primary',
  nodecluster name NOT NULL DEFAULT 'default',
  metadatasynced boolean NOT NULL DEFAULT false,
  shouldhaveshards boolean NOT NULL DEFAULT true,
  UNIQUE (nodename, nodeport)
);
CREATE SEQUENCE IF NOT EXISTS pgweave.colocationid_seq AS integer MINVALUE 1;
CREATE TABLE IF NOT EXISTS pgweave.colocation (
  colocationid integer PRIMARY KEY DEFAULT nextval('pgweave.colocationid_seq'),
  shardcount integer NOT NULL,
  replicationfactor integer NOT NULL,
  distributioncolumntype oid NOT NULL,
  distributioncolumncollation oid NOT NULL
);
CREATE TABLE IF NOT EXISTS pgweave.partition (
  logicalrelid oid PRIMARY KEY,
  partmethod "char" NOT NULL,
  distattnum smallint,
  colocationid integer NOT NULL,
  repmodel "char" NOT NULL,
  autoconverted boolean NOT NULL DEFAULT false
);
CREATE SEQUENCE IF NOT EXISTS pgweave.shardid_seq AS bigint START 102008 MINVALUE 1;
CREATE TABLE IF NOT EXISTS pgweave.shard (
  shardid bigint PRIMARY KEY DEFAULT nextval('pgweave.shardid_seq'),
  logicalrelid oid NOT NULL,
  shardstorage "char" NOT NULL DEFAULT 't',
  shardminvalue text,
  shardmaxvalue text
);
CREATE INDEX IF NOT EXISTS shard_logicalrelid_idx ON pgweave.shard (logicalrelid);
CREATE SEQUENCE IF NOT EXISTS pgweave.placementid_seq AS bigint MINVALUE 1;
CREATE TABLE IF NOT EXISTS pgweave.placement (
  placementid bigint PRIMARY KEY DEFAULT nextval('pgweave.placementid_seq'),
  shardid bigint NOT NULL REFERENCES pgweave.shard ON DELETE CASCADE,
  shardstate integer NOT NULL DEFAULT 1,
  shardlength bigint NOT NULL DEFAULT 0,
  groupid integer NOT NULL,
  shardsize bigint,
  sizerefreshed timestamptz
);
CREATE INDEX IF NOT EXISTS placement_shardid_idx ON pgweave.placement (shardid);
CREATE INDEX IF NOT EXISTS placement_groupid_idx ON pgweave.placement (groupid);
CREATE TABLE IF NOT EXISTS pgweave.transaction (
  gid text PRIMARY KEY,
  groupid integer NOT NULL,
  created timestamptz NOT NULL DEFAULT now()
);
-- Progress of running COPYs (src/commands/copy/copy-progress.ts): unlogged, rewritten every tick.
CREATE UNLOGGED TABLE IF NOT EXISTS pgweave.copy_progress (
  id text PRIMARY KEY,
  pid integer NOT NULL,
  backend_start timestamptz,
  relid oid NOT NULL,
  command text NOT NULL,
  type text NOT NULL DEFAULT 'PIPE',
  bytes_processed bigint NOT NULL DEFAULT 0,
  bytes_total bigint NOT NULL DEFAULT 0,
  tuples_processed bigint NOT NULL DEFAULT 0,
  tuples_excluded bigint NOT NULL DEFAULT 0,
  shards jsonb,
  started_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  updated_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE TABLE IF NOT EXISTS pgweave.catalog_version (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  version integer NOT NULL
);
`;

const SHARD_NAME_FUNCTION = `
CREATE OR REPLACE FUNCTION pg_catalog.shard_name(object_name regclass, shard_id bigint)
RETURNS text LANGUAGE plpgsql STABLE STRICT SET search_path = pg_catalog AS $fn$
DECLARE
  rel name;
  nsp name;
  suffix text := '_' || shard_id;
  base text;
BEGIN
  IF shard_id <= 0 THEN
    RAISE EXCEPTION 'shard_id cannot be zero or negative value' USING ERRCODE = '22023';
  END IF;
  SELECT c.relname, n.nspname INTO rel, nsp
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = object_name;
  IF rel IS NULL THEN
    RAISE EXCEPTION 'object_name does not reference a valid relation' USING ERRCODE = '22023';
  END IF;
  IF octet_length(rel) < 64 - length(suffix) THEN
    base := rel || suffix;
  ELSE
    base := rel;
    WHILE octet_length(base) > 64 - length(suffix) - 10 LOOP
      base := left(base, -1);
    END LOOP;
    base := base || '_' || lpad(to_hex(hashtext(rel::text)), 8, '0') || suffix;
  END IF;
  IF nsp = 'public' THEN
    RETURN quote_ident(base);
  END IF;
  RETURN quote_ident(nsp) || '.' || quote_ident(base);
END $fn$;
`;

/**
 * The support function 1 of the default hash opclass of a type (through
 * domains, binary-coercible types and the polymorphic opclasses), as a quoted
 * qualified name, or NULL: how PostgreSQL itself would hash the column, so
 * the coordinator can ask PostgreSQL for the hash of any distribution column.
 */
const HASH_FUNCTION_FUNCTION = `
CREATE OR REPLACE FUNCTION pgweave.hash_function(typid oid)
RETURNS text LANGUAGE plpgsql STABLE STRICT SET search_path = pg_catalog AS $fn$
DECLARE
  base oid := typid;
  kind "char";
  cat "char";
  result text;
  argtype oid;
BEGIN
  LOOP
    SELECT typtype, typcategory INTO kind, cat FROM pg_type WHERE oid = base;
    EXIT WHEN kind IS DISTINCT FROM 'd';
    SELECT typbasetype INTO base FROM pg_type WHERE oid = base;
  END LOOP;
  SELECT quote_ident(n.nspname) || '.' || quote_ident(p.proname), p.proargtypes[0] INTO result, argtype
  FROM pg_opclass opc
  JOIN pg_am am ON am.oid = opc.opcmethod AND am.amname = 'hash'
  JOIN pg_amproc ap ON ap.amprocfamily = opc.opcfamily AND ap.amprocnum = 1
       AND ap.amproclefttype = opc.opcintype AND ap.amprocrighttype = opc.opcintype
  JOIN pg_proc p ON p.oid = ap.amproc
  JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE opc.opcdefault AND (
        opc.opcintype = base
     OR EXISTS (SELECT 1 FROM pg_cast c WHERE c.castsource = base AND c.casttarget = opc.opcintype AND c.castmethod = 'b')
     OR (opc.opcintype = 'anyenum'::regtype AND kind = 'e')
     OR (opc.opcintype = 'anyarray'::regtype AND cat = 'A')
     OR (opc.opcintype = 'anyrange'::regtype AND kind = 'r')
     OR (opc.opcintype = 'anymultirange'::regtype AND kind = 'm')
     OR (opc.opcintype = 'record'::regtype AND kind = 'c'))
  ORDER BY opc.opcintype = base DESC, opc.oid
  LIMIT 1;
  IF result IS NOT NULL AND argtype <> base
     AND NOT EXISTS (SELECT 1 FROM pg_cast c WHERE c.castsource = base AND c.casttarget = argtype AND c.castmethod = 'b')
     AND argtype NOT IN ('anyenum'::regtype, 'anyarray'::regtype, 'anyrange'::regtype, 'anymultirange'::regtype, 'record'::regtype) THEN
    -- date (hashint4), bool (hashchar), timestamptz (timestamp_hash), bytea
    -- (hashvarlena): the support function does not accept the type in SQL.
    RETURN 'pgweave.element_hash';
  END IF;
  RETURN result;
END $fn$;
/*
 * The default hash opclass's hash of any value, through hash_array of a
 * one-element array (hash_array starts at 1 and adds 31·h, so h = result − 31
 * modulo 2^32): for types whose support function SQL cannot call directly.
 * Workers get the same expression inline (src/sql/hash.ts hashCallSql).
 */
CREATE OR REPLACE FUNCTION pgweave.element_hash(value anyelement)
RETURNS int4 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
SELECT (((pg_catalog.hash_array(ARRAY[value])::int8 + 2147483617) % 4294967296 + 4294967296) % 4294967296 - 2147483648)::int4
$fn$;
/* The base type of a domain (itself for other types). */
CREATE OR REPLACE FUNCTION pgweave.base_type(typid oid)
RETURNS oid LANGUAGE plpgsql STABLE STRICT SET search_path = pg_catalog AS $fn$
DECLARE
  base oid := typid;
  kind "char";
BEGIN
  LOOP
    SELECT typtype INTO kind FROM pg_type WHERE oid = base;
    EXIT WHEN kind IS DISTINCT FROM 'd';
    SELECT typbasetype INTO base FROM pg_type WHERE oid = base;
  END LOOP;
  RETURN base;
END $fn$;
`;

/**
 * The rows of pgweave.copy_progress whose session still runs. SECURITY
 * DEFINER: pg_stat_activity hides other roles' backend_start from ordinary
 * users, and a pid alone may have been reused after a coordinator crash.
 */
const COPY_PROGRESS_FUNCTION = `
CREATE OR REPLACE FUNCTION pgweave.live_copy_progress()
RETURNS SETOF pgweave.copy_progress LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $fn$
  SELECT p.* FROM pgweave.copy_progress p
  WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a WHERE a.pid = p.pid AND a.backend_start IS NOT DISTINCT FROM p.backend_start)
$fn$;
GRANT EXECUTE ON FUNCTION pgweave.live_copy_progress() TO PUBLIC;
`;

const VIEW_NAMES = [
  'pgweave_stat_progress_copy',
  'citus_shards',
  'citus_tables',
  'pg_dist_shard_placement',
  'pg_dist_placement',
  'pg_dist_shard',
  'pg_dist_partition',
  'pg_dist_colocation',
  'pg_dist_node',
];

const VIEWS = `
CREATE VIEW pg_catalog.pgweave_stat_progress_copy AS
  SELECT p.pid, d.oid AS datid, d.datname, p.relid, p.command, p.type, p.bytes_processed, p.bytes_total,
         p.tuples_processed, p.tuples_excluded, p.relid::pg_catalog.regclass AS relname, p.shards, p.started_at, p.updated_at
  FROM pgweave.live_copy_progress() p
  JOIN pg_catalog.pg_database d ON d.datname = pg_catalog.current_database()
  ORDER BY p.started_at, p.pid;
CREATE VIEW pg_catalog.pg_dist_node AS
  SELECT nodeid, groupid, nodename, nodeport, noderack, hasmetadata, isactive, noderole,
         nodecluster, metadatasynced, shouldhaveshards
  FROM pgweave.node;
CREATE VIEW pg_catalog.pg_dist_colocation AS
  SELECT colocationid, shardcount, replicationfactor, distributioncolumntype, distributioncolumncollation
  FROM pgweave.colocation;
CREATE VIEW pg_catalog.pg_dist_partition AS
  SELECT p.logicalrelid::pg_catalog.regclass AS logicalrelid,
         p.partmethod,
         CASE WHEN a.attnum IS NULL THEN NULL::text ELSE pg_catalog.format(
           '{VAR :varno 1 :varattno %s :vartype %s :vartypmod %s :varcollid %s :varlevelsup 0 :varnosyn 1 :varattnosyn %s :location -1}',
           a.attnum, a.atttypid, a.atttypmod, a.attcollation, a.attnum) END AS partkey,
         p.colocationid,
         p.repmodel,
         p.autoconverted
  FROM pgweave.partition p
  JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid
  LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = p.logicalrelid AND a.attnum = p.distattnum;
CREATE VIEW pg_catalog.pg_dist_shard AS
  SELECT s.logicalrelid::pg_catalog.regclass AS logicalrelid, s.shardid, s.shardstorage, s.shardminvalue, s.shardmaxvalue
  FROM pgweave.shard s JOIN pg_catalog.pg_class c ON c.oid = s.logicalrelid;
CREATE VIEW pg_catalog.pg_dist_placement AS
  SELECT placementid, shardid, shardstate, shardlength, groupid
  FROM pgweave.placement;
CREATE VIEW pg_catalog.pg_dist_shard_placement AS
  SELECT pl.shardid, pl.shardstate, pl.shardlength, n.nodename, n.nodeport, pl.placementid
  FROM pgweave.placement pl JOIN pgweave.node n ON n.groupid = pl.groupid AND n.noderole = 'primary';
CREATE VIEW pg_catalog.citus_tables AS
  SELECT p.logicalrelid AS table_name,
         CASE WHEN p.partkey IS NOT NULL THEN 'distributed' WHEN p.repmodel = 't' THEN 'reference' ELSE 'local' END AS citus_table_type,
         COALESCE(a.attname::text, '<none>') AS distribution_column,
         p.colocationid AS colocation_id,
         pg_catalog.pg_size_pretty(sizes.table_size) AS table_size,
         (SELECT pg_catalog.count(*) FROM pgweave.shard s WHERE s.logicalrelid = p.logicalrelid) AS shard_count,
         pg_catalog.pg_get_userbyid(c.relowner) AS table_owner,
         am.amname AS access_method
  FROM pg_catalog.pg_dist_partition p
  JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid
  JOIN pgweave.partition pp ON pp.logicalrelid = p.logicalrelid
  LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = pp.logicalrelid AND a.attnum = pp.distattnum
  LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
  LEFT JOIN (SELECT s.logicalrelid, pg_catalog.sum(pl.shardsize) AS table_size
             FROM pgweave.shard s JOIN pgweave.placement pl ON pl.shardid = s.shardid
             GROUP BY s.logicalrelid) sizes ON sizes.logicalrelid = p.logicalrelid
  ORDER BY p.logicalrelid::text;
CREATE VIEW pg_catalog.citus_shards AS
  SELECT s.logicalrelid AS table_name,
         s.shardid,
         pg_catalog.shard_name(s.logicalrelid, s.shardid) AS shard_name,
         CASE WHEN p.partkey IS NOT NULL THEN 'distributed' WHEN p.repmodel = 't' THEN 'reference' ELSE 'local' END AS citus_table_type,
         p.colocationid AS colocation_id,
         n.nodename,
         n.nodeport,
         pl.shardsize AS shard_size
  FROM pg_catalog.pg_dist_shard s
  JOIN pgweave.placement pl ON pl.shardid = s.shardid
  JOIN pgweave.node n ON n.groupid = pl.groupid AND n.noderole = 'primary'
  JOIN pg_catalog.pg_dist_partition p ON p.logicalrelid = s.logicalrelid
  WHERE pl.shardstate = 1
  ORDER BY s.logicalrelid::text, s.shardid;
`;

function grants(): string {
  return VIEW_NAMES.map((v) => `GRANT SELECT ON pg_catalog.${v} TO PUBLIC;`).join('\n');
}

const created = new Set<string>();
const creating = new Map<string, Promise<void>>();

/**
 * Creates (or upgrades) the catalog in `database` on the coordinator
 * PostgreSQL. Cheap after the first call in a process.
 */
export function ensureCatalog(pools: NodePools, coordinator: NodeAddress, database: string, templateDatabase = 'postgres'): Promise<void> {
  const key = `${coordinator.host}:${coordinator.port}/${database}`;
  if (created.has(key)) return Promise.resolve();
  let pending = creating.get(key);
  if (!pending) {
    pending = createCatalog(pools, coordinator, database, templateDatabase).then(
      () => {
        created.add(key);
        creating.delete(key);
      },
      (err) => {
        creating.delete(key);
        throw err;
      },
    );
    creating.set(key, pending);
  }
  return pending;
}

/** Forgets that the catalog exists (tests that drop and recreate a database). */
export function forgetCatalog(coordinator: NodeAddress, database: string): void {
  created.delete(`${coordinator.host}:${coordinator.port}/${database}`);
}

/** The catalog version in this database, 0 when there is no catalog yet; never raises an error (safe inside a transaction). */
async function currentVersion(query: (sql: string) => Promise<{ rows: (string | null)[][] }>): Promise<number> {
  const exists = await query(`SELECT pg_catalog.to_regclass('pgweave.catalog_version') IS NOT NULL`);
  if (exists.rows[0]?.[0] !== 't') return 0;
  const r = await query('SELECT COALESCE(pg_catalog.max(version), 0) FROM pgweave.catalog_version');
  return Number(r.rows[0]?.[0] ?? 0);
}

/**
 * The nodes a new database's catalog starts with: those registered in the
 * template database (where `pgweave up` registers the workers), so a new
 * database can distribute tables at once. Later node changes are per database.
 */
async function templateNodes(pools: NodePools, coordinator: NodeAddress, database: string, template: string): Promise<string | null> {
  if (database === template) return null;
  const pool = pools.get(coordinator.host, coordinator.port, template);
  const has = await pool.query(`SELECT pg_catalog.to_regclass('pgweave.node') IS NOT NULL`).catch(() => null);
  if (has?.rows[0]?.[0] !== 't') return null;
  const r = await pool.query(
    `SELECT pg_catalog.json_agg(n) FROM (SELECT nodeid, groupid, nodename, nodeport, noderack, isactive, noderole, nodecluster, shouldhaveshards
     FROM pgweave.node ORDER BY nodeid) n`,
  );
  return r.rows[0]?.[0] ?? null;
}

const SEED_NODES = `
INSERT INTO pgweave.node (nodeid, groupid, nodename, nodeport, noderack, isactive, noderole, nodecluster, shouldhaveshards)
SELECT nodeid, groupid, nodename, nodeport, noderack, isactive, noderole, nodecluster, shouldhaveshards
FROM pg_catalog.json_populate_recordset(NULL::pgweave.node, $1::json)
ON CONFLICT DO NOTHING`;

async function createCatalog(pools: NodePools, coordinator: NodeAddress, database: string, template: string): Promise<void> {
  const pool = pools.get(coordinator.host, coordinator.port, database);
  await pool.withClient(async (client) => {
    if ((await currentVersion((sql) => client.query(sql))) >= CATALOG_VERSION) return;
    await client.query('BEGIN');
    try {
      await client.query(`SELECT pg_catalog.pg_advisory_xact_lock(${CATALOG_LOCK_KEY}, 0)`);
      if ((await currentVersion((sql) => client.query(sql))) < CATALOG_VERSION) {
        await client.query('SET LOCAL allow_system_table_mods = on');
        const fresh = (await client.query(`SELECT pg_catalog.to_regclass('pgweave.node') IS NULL`)).rows[0]?.[0] === 't';
        await client.query(TABLES);
        const seed = fresh ? await templateNodes(pools, coordinator, database, template) : null;
        if (seed) {
          await client.query(SEED_NODES, [seed]);
          await client.query(`SELECT pg_catalog.setval('pgweave.nodeid_seq', (SELECT pg_catalog.max(nodeid) FROM pgweave.node));
                              SELECT pg_catalog.setval('pgweave.groupid_seq', GREATEST(1, (SELECT pg_catalog.max(groupid) FROM pgweave.node)))`);
        }
        await client.query(SHARD_NAME_FUNCTION);
        await client.query(HASH_FUNCTION_FUNCTION);
        await client.query(COPY_PROGRESS_FUNCTION);
        await client.query(VIEW_NAMES.map((v) => `DROP VIEW IF EXISTS pg_catalog.${v};`).join('\n'));
        await client.query(VIEWS);
        await client.query(grants());
        await client.query(
          `INSERT INTO pgweave.catalog_version (version) VALUES (${CATALOG_VERSION})
           ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version`,
        );
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    }
  });
}
