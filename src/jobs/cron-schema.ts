/**
 * pg_cron's SQL interface, in schema `cron` of the coordinator PostgreSQL's
 * internal database (pg_cron's cron.database_name; "postgres" by default):
 * cron.job, cron.job_run_details, cron.schedule (2 and 3 arguments),
 * cron.schedule_in_database, cron.unschedule (by id or name) and
 * cron.alter_job, with pg_cron's column names and signatures. They are
 * plain SQL objects: calls run on the coordinator PostgreSQL like any local
 * function, and the scheduler (cron-scheduler.ts) reads cron.job.
 *
 * As with pg_cron's defaults, only superusers may schedule (EXECUTE is
 * revoked from PUBLIC) and users see only their own jobs and runs (row-level
 * security). Jobs run through an in-process session of the internal role,
 * so the scheduler refuses to run a job whose owner is not a superuser.
 */
import type { InternalPool } from '../pool/internal-pool.js';

export const CRON_SCHEMA_VERSION = 2;
/** classid of cron advisory locks ('pgwc'); objid 0 = schema creation, 1 = leadership; CRON_RUN_LOCK_KEY + jobid = one run. */
export const CRON_LOCK_KEY = 0x70677763;
export const CRON_RUN_LOCK_KEY = 0x70677772;

const CRON_SQL = `
CREATE SCHEMA IF NOT EXISTS cron;
GRANT USAGE ON SCHEMA cron TO PUBLIC;
CREATE TABLE IF NOT EXISTS cron.schema_version (singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton), version int NOT NULL);
CREATE SEQUENCE IF NOT EXISTS cron.jobid_seq;
CREATE SEQUENCE IF NOT EXISTS cron.runid_seq;
CREATE TABLE IF NOT EXISTS cron.job (
  jobid bigint PRIMARY KEY DEFAULT pg_catalog.nextval('cron.jobid_seq'),
  schedule text NOT NULL,
  command text NOT NULL,
  nodename text NOT NULL DEFAULT 'localhost',
  nodeport int NOT NULL DEFAULT pg_catalog.current_setting('port')::int,
  database text NOT NULL DEFAULT pg_catalog.current_database(),
  username text NOT NULL DEFAULT CURRENT_USER,
  active boolean NOT NULL DEFAULT true,
  jobname text,
  UNIQUE (username, jobname)
);
-- Version 2: the server's port, also for sessions on its Unix-domain socket (inet_server_port() is NULL there).
ALTER TABLE cron.job ALTER COLUMN nodeport SET DEFAULT pg_catalog.current_setting('port')::int;
CREATE TABLE IF NOT EXISTS cron.job_run_details (
  jobid bigint,
  runid bigint PRIMARY KEY DEFAULT pg_catalog.nextval('cron.runid_seq'),
  job_pid int,
  database text,
  username text,
  command text,
  status text,
  return_message text,
  start_time timestamptz,
  end_time timestamptz
);
CREATE INDEX IF NOT EXISTS job_run_details_jobid_idx ON cron.job_run_details (jobid, runid);
ALTER TABLE cron.job ENABLE ROW LEVEL SECURITY;
ALTER TABLE cron.job_run_details ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS cron_job_policy ON cron.job;
CREATE POLICY cron_job_policy ON cron.job USING (username = CURRENT_USER);
DROP POLICY IF EXISTS cron_job_run_details_policy ON cron.job_run_details;
CREATE POLICY cron_job_run_details_policy ON cron.job_run_details USING (username = CURRENT_USER);
REVOKE ALL ON cron.job, cron.job_run_details FROM PUBLIC;
GRANT SELECT ON cron.job TO PUBLIC;
GRANT SELECT, DELETE ON cron.job_run_details TO PUBLIC;

-- The schedule syntax of cron-schedule.ts, checked when a job is scheduled.
CREATE OR REPLACE FUNCTION cron.validate_schedule(p_schedule text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog AS $fn$
DECLARE
  s text := regexp_replace(lower(btrim(p_schedule)), '\\s+', ' ', 'g');
  fields text[];
  lo int[] := ARRAY[0, 0, 1, 1, 0];
  hi int[] := ARRAY[59, 23, 31, 12, 7];
  months text[] := ARRAY['jan','feb','mar','apr','may','jun','jul','aug','sep','oct','nov','dec'];
  days text[] := ARRAY['sun','mon','tue','wed','thu','fri','sat'];
  item text;
  range_part text;
  bounds text[];
  b text;
  v int;
  m text[];
BEGIN
  m := regexp_match(s, '^(\\d+) seconds?$');
  IF m IS NOT NULL THEN
    IF m[1]::bigint BETWEEN 1 AND 59 THEN RETURN; END IF;
    RAISE EXCEPTION 'invalid schedule: %', p_schedule USING ERRCODE = '22023', HINT = 'Use between 1 and 59 seconds.';
  END IF;
  IF s IN ('@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly') THEN RETURN; END IF;
  fields := string_to_array(s, ' ');
  IF coalesce(array_length(fields, 1), 0) <> 5 THEN
    RAISE EXCEPTION 'invalid schedule: %', p_schedule USING ERRCODE = '22023',
      HINT = 'A schedule is five cron fields (minute hour day-of-month month day-of-week), an @macro, or "N seconds".';
  END IF;
  FOR i IN 1..5 LOOP
    FOREACH item IN ARRAY string_to_array(fields[i], ',') LOOP
      IF item = '$' AND i = 3 THEN CONTINUE; END IF;
      IF item !~ '^(\\*|[0-9a-z]+(-[0-9a-z]+)?)(/[1-9][0-9]*)?$' THEN
        RAISE EXCEPTION 'invalid schedule: %', p_schedule USING ERRCODE = '22023';
      END IF;
      range_part := split_part(item, '/', 1);
      CONTINUE WHEN range_part = '*';
      bounds := string_to_array(range_part, '-');
      FOREACH b IN ARRAY bounds LOOP
        IF b ~ '^[0-9]{1,4}$' THEN
          v := b::int;
        ELSIF i = 4 AND b = ANY (months) THEN
          v := array_position(months, b);
        ELSIF i = 5 AND b = ANY (days) THEN
          v := array_position(days, b) - 1;
        ELSE
          RAISE EXCEPTION 'invalid schedule: %', p_schedule USING ERRCODE = '22023';
        END IF;
        IF v < lo[i] OR v > hi[i] THEN
          RAISE EXCEPTION 'invalid schedule: %', p_schedule USING ERRCODE = '22023',
            DETAIL = format('%s is outside %s-%s', v, lo[i], hi[i]);
        END IF;
      END LOOP;
    END LOOP;
  END LOOP;
END $fn$;

CREATE OR REPLACE FUNCTION cron.schedule(job_name text, schedule text, command text) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
DECLARE v_jobid bigint;
BEGIN
  PERFORM cron.validate_schedule(schedule);
  IF job_name IS NULL THEN
    INSERT INTO cron.job (schedule, command) VALUES (schedule, command) RETURNING jobid INTO v_jobid;
  ELSE
    INSERT INTO cron.job (schedule, command, jobname) VALUES (schedule, command, job_name)
      ON CONFLICT (username, jobname) DO UPDATE SET schedule = EXCLUDED.schedule, command = EXCLUDED.command,
        database = EXCLUDED.database, active = true
      RETURNING jobid INTO v_jobid;
  END IF;
  RETURN v_jobid;
END $fn$;

CREATE OR REPLACE FUNCTION cron.schedule(schedule text, command text) RETURNS bigint
LANGUAGE sql SET search_path = pg_catalog AS $fn$ SELECT cron.schedule(NULL::text, schedule, command) $fn$;

CREATE OR REPLACE FUNCTION cron.schedule_in_database(job_name text, schedule text, command text, database text,
                                                     username text DEFAULT NULL, active boolean DEFAULT true) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
DECLARE v_jobid bigint;
BEGIN
  PERFORM cron.validate_schedule(schedule);
  INSERT INTO cron.job (schedule, command, database, username, active, jobname)
    VALUES (schedule, command, database, coalesce(username, CURRENT_USER), active, job_name)
    ON CONFLICT (username, jobname) DO UPDATE SET schedule = EXCLUDED.schedule, command = EXCLUDED.command,
      database = EXCLUDED.database, active = EXCLUDED.active
    RETURNING jobid INTO v_jobid;
  RETURN v_jobid;
END $fn$;

CREATE OR REPLACE FUNCTION cron.unschedule(job_id bigint) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
BEGIN
  DELETE FROM cron.job WHERE jobid = job_id;
  IF NOT FOUND THEN RAISE EXCEPTION 'could not find valid entry for job %', job_id USING ERRCODE = '42704'; END IF;
  RETURN true;
END $fn$;

CREATE OR REPLACE FUNCTION cron.unschedule(job_name text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
BEGIN
  DELETE FROM cron.job WHERE jobname = job_name AND username = CURRENT_USER;
  IF NOT FOUND THEN RAISE EXCEPTION 'could not find valid entry for job ''%''', job_name USING ERRCODE = '42704'; END IF;
  RETURN true;
END $fn$;

CREATE OR REPLACE FUNCTION cron.alter_job(job_id bigint, schedule text DEFAULT NULL, command text DEFAULT NULL,
                                          database text DEFAULT NULL, username text DEFAULT NULL, active boolean DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
BEGIN
  IF schedule IS NOT NULL THEN PERFORM cron.validate_schedule(schedule); END IF;
  UPDATE cron.job j SET schedule = coalesce(alter_job.schedule, j.schedule), command = coalesce(alter_job.command, j.command),
    database = coalesce(alter_job.database, j.database), username = coalesce(alter_job.username, j.username),
    active = coalesce(alter_job.active, j.active)
  WHERE j.jobid = job_id;
  IF NOT FOUND THEN RAISE EXCEPTION 'could not find valid entry for job %', job_id USING ERRCODE = '42704'; END IF;
END $fn$;

REVOKE ALL ON FUNCTION cron.schedule(text, text, text), cron.schedule(text, text),
  cron.schedule_in_database(text, text, text, text, text, boolean), cron.unschedule(bigint), cron.unschedule(text),
  cron.alter_job(bigint, text, text, text, text, boolean) FROM PUBLIC;
`;

const ensured = new Set<string>();

/** Creates (or upgrades) the cron schema in the internal database; idempotent, serialized by an advisory lock. */
export async function ensureCronSchema(pool: InternalPool, key: string): Promise<void> {
  if (ensured.has(key)) return;
  await pool.withClient(async (client) => {
    const exists = await client.query(`SELECT pg_catalog.to_regclass('cron.schema_version') IS NOT NULL`);
    if (exists.rows[0]?.[0] === 't') {
      const v = await client.query('SELECT COALESCE(pg_catalog.max(version), 0) FROM cron.schema_version');
      if (Number(v.rows[0]?.[0]) >= CRON_SCHEMA_VERSION) return;
    }
    await client.query('BEGIN');
    try {
      await client.query(`SELECT pg_catalog.pg_advisory_xact_lock(${CRON_LOCK_KEY}, 0)`);
      const again = await client.query(`SELECT pg_catalog.to_regclass('cron.schema_version') IS NOT NULL`);
      const current = again.rows[0]?.[0] === 't' ? Number((await client.query('SELECT COALESCE(pg_catalog.max(version), 0) FROM cron.schema_version')).rows[0]?.[0]) : 0;
      if (current < CRON_SCHEMA_VERSION) {
        await client.query(CRON_SQL);
        await client.query(
          `INSERT INTO cron.schema_version (version) VALUES (${CRON_SCHEMA_VERSION}) ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version`,
        );
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    }
  });
  ensured.add(key);
}
