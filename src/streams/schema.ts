/**
 * The durable state of streams, as SQL: schema `pgweave_streams` in each
 * database of the coordinator PostgreSQL (topics, consumer groups, members,
 * leases with their committed offsets) and in the same database on every
 * worker holding a topic's shards (one offset counter row per partition and
 * the triggers that number events).
 *
 * The lease bookkeeping runs as PL/pgSQL on the coordinator PostgreSQL so
 * that one round trip both heartbeats and rebalances, under one advisory
 * lock per (group, topic). commit_offsets is the one function clients call
 * directly: it runs in the client's own transaction, so an offset commits
 * atomically with whatever else that transaction wrote (exactly-once).
 *
 * Offsets (see README.md): the BEFORE INSERT statement trigger locks the
 * partition's counter row (SELECT … FOR UPDATE, a no-op when this
 * transaction already holds it), the row trigger numbers rows from a
 * transaction-local setting, and the AFTER INSERT statement trigger writes
 * the counter back.
 * The lock is held until commit, so offsets are assigned in commit order
 * and a rolled back transaction gives its numbers back.
 */
import type { InternalClient } from '../pool/internal-client.js';
import type { InternalPool } from '../pool/internal-pool.js';
import { quoteIdent, quoteLiteral, quoteQualified } from '../sql/quote.js';

/** Bumped whenever the coordinator-side SQL below changes (functions are replaced). */
export const STREAMS_SCHEMA_VERSION = 4;
/** classid of advisory locks taken by streams ('pgws'). */
export const STREAMS_LOCK_KEY = 0x70677773;
/** SQLSTATE of a commit by a consumer that no longer holds the partition (fenced). */
export const FENCED_SQLSTATE = 'PW001';
/** NOTIFY channel on the coordinator PostgreSQL: payload = topic name. */
export const STREAMS_CHANNEL = 'pgweave_streams';

const COORDINATOR_TABLES = `
CREATE SCHEMA IF NOT EXISTS pgweave_streams;
REVOKE ALL ON SCHEMA pgweave_streams FROM PUBLIC;
GRANT USAGE ON SCHEMA pgweave_streams TO PUBLIC;
CREATE TABLE IF NOT EXISTS pgweave_streams.schema_version (singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton), version int NOT NULL);
CREATE TABLE IF NOT EXISTS pgweave_streams.topic (
  name text PRIMARY KEY,
  relation_schema text NOT NULL,
  relation_name text NOT NULL,
  relid oid NOT NULL,
  partitions int NOT NULL,
  payload_type text NOT NULL DEFAULT 'jsonb' CHECK (payload_type IN ('jsonb', 'bytea')),
  retention interval,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS pgweave_streams.topic_partition (
  topic text NOT NULL REFERENCES pgweave_streams.topic (name) ON DELETE CASCADE,
  partition int NOT NULL,
  shard_id bigint NOT NULL,
  anchor_key text NOT NULL,
  PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS pgweave_streams.consumer_group (
  group_name text NOT NULL,
  topic text NOT NULL REFERENCES pgweave_streams.topic (name) ON DELETE CASCADE,
  lease_timeout_ms int NOT NULL DEFAULT 10000,
  max_deliveries int,
  dead_letter_topic text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (group_name, topic)
);
CREATE TABLE IF NOT EXISTS pgweave_streams.consumer (
  group_name text NOT NULL,
  topic text NOT NULL,
  consumer_id text NOT NULL,
  joined_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  last_heartbeat timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (group_name, topic, consumer_id),
  FOREIGN KEY (group_name, topic) REFERENCES pgweave_streams.consumer_group ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS pgweave_streams.lease (
  group_name text NOT NULL,
  topic text NOT NULL,
  partition int NOT NULL,
  owner text,
  new_owner text,
  epoch bigint NOT NULL DEFAULT 0,
  next_offset bigint NOT NULL DEFAULT 0,
  head_offset bigint,
  head_deliveries int NOT NULL DEFAULT 0,
  committed_at timestamptz,
  PRIMARY KEY (group_name, topic, partition),
  FOREIGN KEY (group_name, topic) REFERENCES pgweave_streams.consumer_group ON DELETE CASCADE
);
`;

const COORDINATOR_FUNCTIONS = `
-- Heartbeat + rebalance for one consumer; returns the leases it holds afterwards.
CREATE OR REPLACE FUNCTION pgweave_streams.acquire(p_group text, p_topic text, p_consumer text)
RETURNS TABLE (partition int, epoch bigint, next_offset bigint, head_offset bigint, head_deliveries int)
LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
DECLARE
  v_timeout int;
  v_partitions int;
  v_live int;
  v_upper int;
  v_mine int;
  v_claimed int;
  v_victim text;
  v_victim_load int;
BEGIN
  PERFORM pg_advisory_xact_lock(${STREAMS_LOCK_KEY}, hashtext(p_group || '/' || p_topic));
  SELECT g.lease_timeout_ms INTO v_timeout FROM pgweave_streams.consumer_group g WHERE g.group_name = p_group AND g.topic = p_topic;
  IF v_timeout IS NULL THEN
    RAISE EXCEPTION 'consumer group "%" does not consume topic "%"', p_group, p_topic USING ERRCODE = '42704';
  END IF;
  INSERT INTO pgweave_streams.consumer AS c (group_name, topic, consumer_id) VALUES (p_group, p_topic, p_consumer)
    ON CONFLICT (group_name, topic, consumer_id) DO UPDATE SET last_heartbeat = clock_timestamp();
  DELETE FROM pgweave_streams.consumer c WHERE c.group_name = p_group AND c.topic = p_topic
    AND c.last_heartbeat < clock_timestamp() - make_interval(secs => v_timeout / 1000.0);
  -- Leases of consumers that left or stopped heartbeating expire.
  UPDATE pgweave_streams.lease l SET owner = NULL
    WHERE l.group_name = p_group AND l.topic = p_topic AND l.owner IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM pgweave_streams.consumer c WHERE c.group_name = p_group AND c.topic = p_topic AND c.consumer_id = l.owner);
  UPDATE pgweave_streams.lease l SET new_owner = NULL
    WHERE l.group_name = p_group AND l.topic = p_topic AND l.new_owner IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM pgweave_streams.consumer c WHERE c.group_name = p_group AND c.topic = p_topic AND c.consumer_id = l.new_owner);
  -- Hand over what others asked this consumer for (it is between batches now).
  UPDATE pgweave_streams.lease l SET owner = l.new_owner, new_owner = NULL, epoch = l.epoch + 1
    WHERE l.group_name = p_group AND l.topic = p_topic AND l.owner = p_consumer AND l.new_owner IS NOT NULL;
  -- Take what was promised to this consumer and is free now.
  UPDATE pgweave_streams.lease l SET owner = p_consumer, new_owner = NULL, epoch = l.epoch + 1
    WHERE l.group_name = p_group AND l.topic = p_topic AND l.owner IS NULL AND l.new_owner = p_consumer;

  SELECT count(*) INTO v_partitions FROM pgweave_streams.lease l WHERE l.group_name = p_group AND l.topic = p_topic;
  SELECT count(*) INTO v_live FROM pgweave_streams.consumer c WHERE c.group_name = p_group AND c.topic = p_topic;
  v_upper := (v_partitions + v_live - 1) / v_live;
  SELECT count(*) INTO v_mine FROM pgweave_streams.lease l WHERE l.group_name = p_group AND l.topic = p_topic AND l.owner = p_consumer;

  -- Claim free partitions, up to the fair share ceil(P / C).
  IF v_mine < v_upper THEN
    UPDATE pgweave_streams.lease l SET owner = p_consumer, new_owner = NULL, epoch = l.epoch + 1
      WHERE l.group_name = p_group AND l.topic = p_topic AND l.partition IN (
        SELECT f.partition FROM pgweave_streams.lease f
        WHERE f.group_name = p_group AND f.topic = p_topic AND f.owner IS NULL AND f.new_owner IS NULL
        ORDER BY f.partition LIMIT v_upper - v_mine);
    GET DIAGNOSTICS v_claimed = ROW_COUNT;
    v_mine := v_mine + v_claimed;
  END IF;

  -- Ask the most loaded consumer for one partition while it holds two more than
  -- this one (loads count promised partitions to the receiver): when nobody
  -- can ask any more, shares differ by at most one.
  LOOP
    SELECT s.who, s.load INTO v_victim, v_victim_load FROM (
      SELECT x.who, count(*)::int AS load FROM (
        SELECT l.owner AS who FROM pgweave_streams.lease l
          WHERE l.group_name = p_group AND l.topic = p_topic AND l.owner IS NOT NULL AND l.new_owner IS NULL
        UNION ALL
        SELECT l.new_owner FROM pgweave_streams.lease l
          WHERE l.group_name = p_group AND l.topic = p_topic AND l.new_owner IS NOT NULL
      ) x GROUP BY x.who) s
    WHERE s.who <> p_consumer ORDER BY s.load DESC, s.who LIMIT 1;
    EXIT WHEN v_victim IS NULL;
    SELECT count(*) INTO v_mine FROM pgweave_streams.lease l
      WHERE l.group_name = p_group AND l.topic = p_topic
        AND ((l.owner = p_consumer AND l.new_owner IS NULL) OR l.new_owner = p_consumer);
    EXIT WHEN v_victim_load < v_mine + 2;
    -- SKIP LOCKED: a lease whose owner is committing right now is not waited for (no lock cycles with commits).
    UPDATE pgweave_streams.lease l SET new_owner = p_consumer
      WHERE l.group_name = p_group AND l.topic = p_topic AND l.partition = (
        SELECT f.partition FROM pgweave_streams.lease f
        WHERE f.group_name = p_group AND f.topic = p_topic AND f.owner = v_victim AND f.new_owner IS NULL
        ORDER BY f.partition DESC LIMIT 1 FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS v_claimed = ROW_COUNT;
    EXIT WHEN v_claimed = 0;
    v_victim := NULL;
  END LOOP;

  RETURN QUERY SELECT l.partition, l.epoch, l.next_offset, l.head_offset, l.head_deliveries
    FROM pgweave_streams.lease l
    WHERE l.group_name = p_group AND l.topic = p_topic AND l.owner = p_consumer ORDER BY l.partition;
END $fn$;

-- A consumer leaves: its leases are free at once (no waiting for expiry).
CREATE OR REPLACE FUNCTION pgweave_streams.leave(p_group text, p_topic text, p_consumer text)
RETURNS int LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
DECLARE v_count int;
BEGIN
  PERFORM pg_advisory_xact_lock(${STREAMS_LOCK_KEY}, hashtext(p_group || '/' || p_topic));
  DELETE FROM pgweave_streams.consumer c WHERE c.group_name = p_group AND c.topic = p_topic AND c.consumer_id = p_consumer;
  UPDATE pgweave_streams.lease l SET owner = l.new_owner, new_owner = NULL, epoch = l.epoch + 1
    WHERE l.group_name = p_group AND l.topic = p_topic AND l.owner = p_consumer;
  GET DIAGNOSTICS v_count = ROW_COUNT;
  UPDATE pgweave_streams.lease l SET new_owner = NULL
    WHERE l.group_name = p_group AND l.topic = p_topic AND l.new_owner = p_consumer;
  RETURN v_count;
END $fn$;

-- The lease-expiry job: consumers that stopped heartbeating lose their leases.
CREATE OR REPLACE FUNCTION pgweave_streams.expire_leases()
RETURNS int LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
DECLARE v_group record; v_count int := 0; v_n int;
BEGIN
  FOR v_group IN SELECT g.group_name, g.topic, g.lease_timeout_ms FROM pgweave_streams.consumer_group g ORDER BY 1, 2 LOOP
    PERFORM pg_advisory_xact_lock(${STREAMS_LOCK_KEY}, hashtext(v_group.group_name || '/' || v_group.topic));
    DELETE FROM pgweave_streams.consumer c WHERE c.group_name = v_group.group_name AND c.topic = v_group.topic
      AND c.last_heartbeat < clock_timestamp() - make_interval(secs => v_group.lease_timeout_ms / 1000.0);
    UPDATE pgweave_streams.lease l SET owner = NULL
      WHERE l.group_name = v_group.group_name AND l.topic = v_group.topic AND l.owner IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM pgweave_streams.consumer c
                        WHERE c.group_name = l.group_name AND c.topic = l.topic AND c.consumer_id = l.owner);
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_count := v_count + v_n;
    UPDATE pgweave_streams.lease l SET new_owner = NULL
      WHERE l.group_name = v_group.group_name AND l.topic = v_group.topic AND l.new_owner IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM pgweave_streams.consumer c
                        WHERE c.group_name = l.group_name AND c.topic = l.topic AND c.consumer_id = l.new_owner);
  END LOOP;
  RETURN v_count;
END $fn$;

-- Called by clients, inside their own transaction: the offsets commit with
-- the transaction's other writes or not at all. offsets = [[partition, epoch, next_offset], ...].
CREATE OR REPLACE FUNCTION pgweave_streams.commit_offsets(p_group text, p_topic text, p_consumer text, p_offsets jsonb)
RETURNS int LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE v_rel oid; v_item record; v_count int := 0; v_now record;
BEGIN
  SELECT t.relid INTO v_rel FROM pgweave_streams.topic t WHERE t.name = p_topic;
  IF v_rel IS NULL THEN
    RAISE EXCEPTION 'topic "%" does not exist', p_topic USING ERRCODE = '42704';
  END IF;
  IF NOT has_table_privilege(session_user, v_rel, 'SELECT') THEN
    RAISE EXCEPTION 'permission denied for topic %', p_topic USING ERRCODE = '42501';
  END IF;
  FOR v_item IN
    SELECT (e->>0)::int AS p, (e->>1)::bigint AS ep, (e->>2)::bigint AS o
    FROM jsonb_array_elements(p_offsets) e ORDER BY 1
  LOOP
    UPDATE pgweave_streams.lease l
      SET next_offset = GREATEST(l.next_offset, v_item.o), head_deliveries = 0, committed_at = clock_timestamp()
      WHERE l.group_name = p_group AND l.topic = p_topic AND l.partition = v_item.p
        AND l.owner = p_consumer AND l.epoch = v_item.ep;
    IF NOT FOUND THEN
      SELECT l.owner, l.epoch INTO v_now FROM pgweave_streams.lease l
        WHERE l.group_name = p_group AND l.topic = p_topic AND l.partition = v_item.p;
      RAISE EXCEPTION 'consumer "%" no longer holds partition % of topic "%" in group "%"', p_consumer, v_item.p, p_topic, p_group
        USING ERRCODE = '${FENCED_SQLSTATE}',
              DETAIL = format('The commit carries lease epoch %s; the partition is now held by %s at epoch %s.',
                              v_item.ep, coalesce(quote_literal(v_now.owner), 'nobody'), coalesce(v_now.epoch::text, '?')),
              HINT = 'Another consumer took the partition over (the lease expired or was handed off); the batch will be delivered to it.';
    END IF;
    v_count := v_count + 1;
  END LOOP;
  RETURN v_count;
END $fn$;
REVOKE ALL ON FUNCTION pgweave_streams.commit_offsets(text, text, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgweave_streams.commit_offsets(text, text, text, jsonb) TO PUBLIC;
REVOKE ALL ON FUNCTION pgweave_streams.acquire(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgweave_streams.leave(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgweave_streams.expire_leases() FROM PUBLIC;
`;

/** Worker side: the counters and the offset-numbering triggers (run on each worker database). */
const WORKER_SCHEMA = `
CREATE SCHEMA IF NOT EXISTS pgweave_streams;
REVOKE ALL ON SCHEMA pgweave_streams FROM PUBLIC;
CREATE TABLE IF NOT EXISTS pgweave_streams.partition_counter (
  shard_id bigint PRIMARY KEY,
  partition int NOT NULL,
  next_offset bigint NOT NULL DEFAULT 0
);
-- BEFORE INSERT, per statement. TG_ARGV: shard id. Locks the partition's
-- counter row until commit (a no-op when this transaction holds it already)
-- and starts the statement's numbering at the counter (or further, after
-- earlier statements of the transaction).
CREATE OR REPLACE FUNCTION pgweave_streams.lock_offsets() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  v_setting text := 'pgweave_streams.next_' || TG_ARGV[0];
  v_cached text := current_setting(v_setting, true);
  v_locked bigint;
BEGIN
  SELECT c.next_offset INTO v_locked FROM pgweave_streams.partition_counter c WHERE c.shard_id = TG_ARGV[0]::bigint FOR UPDATE;
  IF v_locked IS NULL THEN
    RAISE EXCEPTION 'no offset counter for shard % of a topic', TG_ARGV[0] USING ERRCODE = 'XX000';
  END IF;
  IF v_cached IS NULL OR v_cached = '' OR v_cached::bigint < v_locked THEN
    PERFORM set_config(v_setting, v_locked::text, true);
  END IF;
  RETURN NULL;
END $fn$;
-- BEFORE INSERT, per row. TG_ARGV: shard id, partition number. Cheap on
-- purpose (no query, no SET clause): the statement trigger holds the lock.
-- Forging the setting can only skip numbers (a gap) or collide with the
-- UNIQUE index on event_offset, never number a row below a committed one.
CREATE OR REPLACE FUNCTION pgweave_streams.assign_offset() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  v_setting text := 'pgweave_streams.next_' || TG_ARGV[0];
  v_next text := pg_catalog.current_setting(v_setting, true);
BEGIN
  IF v_next IS NULL OR v_next = '' THEN
    RAISE EXCEPTION 'offsets of shard % are not locked', TG_ARGV[0] USING ERRCODE = 'XX000';
  END IF;
  NEW.event_offset := v_next::bigint;
  NEW.partition := TG_ARGV[1]::int;
  NEW.published_at := pg_catalog.clock_timestamp();
  PERFORM pg_catalog.set_config(v_setting, (v_next::bigint + 1)::text, true);
  RETURN NEW;
END $fn$;
-- AFTER INSERT, per statement: the counter moves past what the statement numbered.
CREATE OR REPLACE FUNCTION pgweave_streams.store_offset() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE v_cached text := current_setting('pgweave_streams.next_' || TG_ARGV[0], true);
BEGIN
  IF v_cached IS NOT NULL AND v_cached <> '' THEN
    UPDATE pgweave_streams.partition_counter c SET next_offset = v_cached::bigint
      WHERE c.shard_id = TG_ARGV[0]::bigint AND c.next_offset < v_cached::bigint;
  END IF;
  RETURN NULL;
END $fn$;
-- BEFORE UPDATE, per row: an event's position is not editable.
CREATE OR REPLACE FUNCTION pgweave_streams.protect_offset() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  IF NEW.event_offset IS DISTINCT FROM OLD.event_offset OR NEW.partition IS DISTINCT FROM OLD.partition
     OR NEW.published_at IS DISTINCT FROM OLD.published_at THEN
    RAISE EXCEPTION 'the event_offset, partition and published_at of an event cannot be changed' USING ERRCODE = '0A000';
  END IF;
  RETURN NEW;
END $fn$;
`;

const ensured = new Set<string>();
const ensuring = new Map<string, Promise<void>>();

/**
 * Creates or upgrades schema pgweave_streams in one database of the
 * coordinator PostgreSQL; cheap after the first call in a process.
 */
export function ensureCoordinatorSchema(pool: InternalPool, key: string): Promise<void> {
  if (ensured.has(key)) return Promise.resolve();
  let pending = ensuring.get(key);
  if (!pending) {
    pending = pool
      .withClient(async (client) => {
        const current = await schemaVersion(client);
        if (current >= STREAMS_SCHEMA_VERSION) return;
        await client.query('BEGIN');
        try {
          await client.query(`SELECT pg_catalog.pg_advisory_xact_lock(${STREAMS_LOCK_KEY}, 0)`);
          if ((await schemaVersion(client)) < STREAMS_SCHEMA_VERSION) {
            await client.query(COORDINATOR_TABLES);
            await client.query(COORDINATOR_FUNCTIONS);
            await client.query(
              `INSERT INTO pgweave_streams.schema_version (version) VALUES (${STREAMS_SCHEMA_VERSION})
               ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version`,
            );
          }
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => {});
          throw err;
        }
      })
      .then(
        () => {
          ensured.add(key);
          ensuring.delete(key);
        },
        (err) => {
          ensuring.delete(key);
          throw err;
        },
      );
    ensuring.set(key, pending);
  }
  return pending;
}

async function schemaVersion(client: InternalClient): Promise<number> {
  const exists = await client.query(`SELECT pg_catalog.to_regclass('pgweave_streams.schema_version') IS NOT NULL`);
  if (exists.rows[0]?.[0] !== 't') return 0;
  const r = await client.query('SELECT COALESCE(pg_catalog.max(version), 0) FROM pgweave_streams.schema_version');
  return Number(r.rows[0]?.[0] ?? 0);
}

/** Worker-side schema, for a worker transaction that is about to add a topic's shards. */
export function workerSchemaSql(): string {
  return `SELECT pg_catalog.pg_advisory_xact_lock(${STREAMS_LOCK_KEY}, 0);\n${WORKER_SCHEMA}`;
}

/** The statements that turn one shard of a topic's table into a numbered partition. */
export function partitionStatements(schema: string, table: string, shardId: number, partition: number): string[] {
  const shard = quoteQualified(schema, `${table}_${shardId}`);
  const args = `${quoteLiteral(String(shardId))}, ${quoteLiteral(String(partition))}`;
  return [
    `INSERT INTO pgweave_streams.partition_counter (shard_id, partition, next_offset) VALUES (${shardId}, ${partition}, 0) ON CONFLICT (shard_id) DO NOTHING`,
    `CREATE UNIQUE INDEX ${quoteIdent(`${table}_${shardId}_event_offset_key`)} ON ${shard} (event_offset)`,
    `CREATE INDEX ${quoteIdent(`${table}_${shardId}_published_at_brin`)} ON ${shard} USING brin (published_at)`,
    `CREATE TRIGGER pgweave_lock_offsets BEFORE INSERT ON ${shard} FOR EACH STATEMENT EXECUTE FUNCTION pgweave_streams.lock_offsets(${quoteLiteral(String(shardId))})`,
    `CREATE TRIGGER pgweave_assign_offset BEFORE INSERT ON ${shard} FOR EACH ROW EXECUTE FUNCTION pgweave_streams.assign_offset(${args})`,
    `CREATE TRIGGER pgweave_store_offset AFTER INSERT ON ${shard} FOR EACH STATEMENT EXECUTE FUNCTION pgweave_streams.store_offset(${quoteLiteral(String(shardId))})`,
    `CREATE TRIGGER pgweave_protect_offset BEFORE UPDATE ON ${shard} FOR EACH ROW EXECUTE FUNCTION pgweave_streams.protect_offset()`,
  ];
}

/** The events table of a topic, created through the client's own session (the client owns it). */
export function eventsTableSql(qualifiedName: string, payloadType: 'jsonb' | 'bytea'): string {
  return `CREATE TABLE ${qualifiedName} (
  key text NOT NULL,
  partition int NOT NULL DEFAULT 0,
  event_offset bigint NOT NULL DEFAULT 0,
  payload ${payloadType},
  headers jsonb,
  published_at timestamptz NOT NULL DEFAULT now()
)`;
}
