/**
 * The catalog tables shard operations own, in schema `pgweave` of each
 * distributed database on the coordinator PostgreSQL, created idempotently
 * the first time an operation runs in a database:
 *
 * - `pgweave.cleanup`: what an operation created on the nodes (Citus's
 *   pg_dist_cleanup), written *before* the object is created, so an
 *   operation killed at any point leaves a list of what to remove.
 * - `pgweave.rebalance_job` / `pgweave.rebalance_task`: the background
 *   rebalancer's state, so any session of any coordinator can see progress.
 */
import type { InternalPool } from '../pool/internal-pool.js';

/** Advisory lock key space (first key) of operations; the second key is an operation id. */
export const OPERATION_LOCK_KEY = 0x70677778;
/** Advisory lock key space of shard groups being moved; the second key is the group's first shard id. */
export const SHARD_GROUP_LOCK_KEY = 0x70677779;
/** Advisory lock key of the rebalancer (one job per database). */
export const REBALANCE_LOCK_KEY = 0x7067777a;

const SCHEMA_SQL = `
CREATE SCHEMA IF NOT EXISTS pgweave;
CREATE SEQUENCE IF NOT EXISTS pgweave.operation_id_seq AS bigint MINVALUE 1;
CREATE TABLE IF NOT EXISTS pgweave.cleanup (
  record_id bigserial PRIMARY KEY,
  operation_id bigint NOT NULL,
  object_type int NOT NULL,
  object_name text NOT NULL,
  node_group_id int NOT NULL,
  policy_type int NOT NULL,
  shard_id bigint,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS pgweave.rebalance_job (
  job_id bigserial PRIMARY KEY,
  state text NOT NULL,
  strategy text NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  message text
);
CREATE TABLE IF NOT EXISTS pgweave.rebalance_task (
  job_id bigint NOT NULL REFERENCES pgweave.rebalance_job ON DELETE CASCADE,
  task_id int NOT NULL,
  shard_id bigint NOT NULL,
  source_group int NOT NULL,
  target_group int NOT NULL,
  shard_size bigint NOT NULL DEFAULT 0,
  state text NOT NULL DEFAULT 'runnable',
  message text,
  started_at timestamptz,
  finished_at timestamptz,
  blocked_ms int,
  PRIMARY KEY (job_id, task_id)
);
`;

const ensured = new Map<InternalPool, Promise<void>>();

/** Creates the operation tables in the pool's database once per process. */
export function ensureOperationsSchema(pool: InternalPool): Promise<void> {
  let p = ensured.get(pool);
  if (!p) {
    p = pool.withClient(async (c) => {
      // Two coordinators creating the tables at once would collide on pg_type: serialize.
      await c.query('BEGIN');
      try {
        await c.query(`SELECT pg_catalog.pg_advisory_xact_lock(${OPERATION_LOCK_KEY}, 0)`);
        await c.query(SCHEMA_SQL);
        await c.query('COMMIT');
      } catch (err) {
        await c.query('ROLLBACK').catch(() => {});
        throw err;
      }
    });
    p.catch(() => ensured.delete(pool));
    ensured.set(pool, p);
  }
  return p;
}
