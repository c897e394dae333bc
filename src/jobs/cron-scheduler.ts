/**
 * The cron scheduler: every coordinator process runs one; exactly one of
 * them — the holder of a session advisory lock on the coordinator
 * PostgreSQL — runs jobs. If the leader dies its connection closes, the lock
 * is released, and another process takes over at its next tick (≤ 1 s).
 *
 *   every second (aligned to the wall clock):
 *     not leader → pg_try_advisory_lock(CRON_LOCK_KEY, 1) on a dedicated connection
 *     leader     → read cron.job; for every second since the last tick, start
 *                  the jobs whose schedule matches it
 *
 * No overlapping runs of one job: a job that is due while it runs gets one
 * queued run, started when the current run ends (pg_cron's rule). Across a
 * leader change, each run holds a session advisory lock on its own backend
 * (CRON_RUN_LOCK_KEY, jobid); a new leader whose attempt finds the lock held
 * (the dead leader's query still running) skips that instant.
 *
 * A job's command runs as one simple Query through an in-process session of
 * the coordinator (`openSession`, supplied by the server layer), so it can
 * use distributed tables and pgweave functions. cron.job_run_details gets a
 * row per run: running → succeeded | failed, with pg_cron's return_message.
 */
import type { Duplex } from 'node:stream';
import { Duplex as DuplexStream } from 'node:stream';
import { Backend } from '../protocol/constants.js';
import { MessageFramer, forEachMessage } from '../protocol/framer.js';
import { readErrorResponse } from '../protocol/backend/error-response.js';
import { connectBackend } from '../pool/backend-connection.js';
import { encodeQuery, encodeTerminate } from '../pool/frontend-encoders.js';
import { InternalClient } from '../pool/internal-client.js';
import type { NodePools } from '../pool/node-pools.js';
import type { NodeAddress } from '../metadata/types.js';
import { CRON_LOCK_KEY, CRON_RUN_LOCK_KEY, ensureCronSchema } from './cron-schema.js';
import { cronMatches, parseCronSchedule, type CronSchedule } from './cron-schedule.js';

export interface CronSchedulerOptions {
  pools: NodePools;
  coordinator: NodeAddress;
  /** Database holding the cron schema (the coordinator's internal database). */
  internalDatabase: string;
  /** Opens a coordinator session (internal role) in `database`; returns the client end of its stream. */
  openSession(database: string, applicationName: string): Promise<Duplex>;
  tickMs?: number;
}

interface JobRow {
  jobid: string;
  schedule: string;
  command: string;
  database: string;
  username: string;
}

/** Outcome of one Query on a job session. */
interface QueryOutcome {
  ok: boolean;
  message: string;
  rows: Array<Array<string | null>>;
}

/** Two connected in-memory streams (Node 20 has no stream.duplexPair). */
export function duplexPair(): [Duplex, Duplex] {
  let a!: DuplexStream;
  let b!: DuplexStream;
  const make = (other: () => DuplexStream) =>
    new DuplexStream({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        other().push(chunk);
        cb();
      },
      final(cb) {
        other().push(null);
        cb();
      },
    });
  a = make(() => b);
  b = make(() => a);
  return [a, b];
}

/** A minimal protocol client over a session stream: one simple Query at a time. */
class JobSession {
  private readonly framer = new MessageFramer();
  private pending: { resolve(o: QueryOutcome): void; outcome: QueryOutcome; rowCount: number; tag: string } | null = null;
  private ended = false;

  constructor(private readonly stream: Duplex) {
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    const onEnd = () => {
      this.ended = true;
      const p = this.pending;
      this.pending = null;
      p?.resolve({ ok: false, message: 'the job session ended', rows: [] });
    };
    stream.on('end', onEnd);
    stream.on('close', onEnd);
    stream.on('error', onEnd);
  }

  query(sql: string): Promise<QueryOutcome> {
    if (this.ended) return Promise.resolve({ ok: false, message: 'the job session ended', rows: [] });
    return new Promise((resolve) => {
      this.pending = { resolve, outcome: { ok: true, message: '', rows: [] }, rowCount: 0, tag: '' };
      this.stream.write(encodeQuery(sql));
    });
  }

  private onData(chunk: Buffer): void {
    const whole = this.framer.take(chunk);
    if (!whole) return;
    forEachMessage(whole, (type, start, end) => {
      const p = this.pending;
      if (!p) return;
      switch (type) {
        case Backend.RowDescription:
          p.rowCount = 0;
          break;
        case Backend.DataRow: {
          p.rowCount++;
          if (p.outcome.rows.length < 10) p.outcome.rows.push(decodeRow(whole, start));
          break;
        }
        case Backend.CommandComplete: {
          const tag = whole.toString('utf8', start + 5, end - 1);
          // pg_cron: "N row(s)" for statements that return rows, else the command tag.
          p.outcome.message = /^(SELECT|FETCH|SHOW)\b/.test(tag) ? `${p.rowCount} row${p.rowCount === 1 ? '' : 's'}` : tag;
          break;
        }
        case Backend.ErrorResponse:
          if (p.outcome.ok) {
            p.outcome.ok = false;
            p.outcome.message = readErrorResponse(whole, start, end).message;
          }
          break;
        case Backend.ReadyForQuery:
          this.pending = null;
          p.resolve(p.outcome);
          break;
        default:
          break;
      }
    });
  }

  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.stream.end(encodeTerminate());
  }
}

function decodeRow(buf: Buffer, start: number): Array<string | null> {
  let pos = start + 5;
  const n = buf.readInt16BE(pos);
  pos += 2;
  const row: Array<string | null> = [];
  for (let i = 0; i < n; i++) {
    const len = buf.readInt32BE(pos);
    pos += 4;
    if (len < 0) row.push(null);
    else {
      row.push(buf.toString('utf8', pos, pos + len));
      pos += len;
    }
  }
  return row;
}

export class CronScheduler {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private lock: InternalClient | null = null;
  private acquiring = false;
  private lastTick = 0;
  private readonly schedules = new Map<string, CronSchedule | null>();
  private readonly running = new Set<string>();
  private readonly queued = new Set<string>();
  private readonly sessions = new Set<JobSession>();
  private ticking = false;
  /** Becomes true while this process leads (tests and `status` read it). */
  leader = false;

  constructor(private readonly opts: CronSchedulerOptions) {}

  private get pool() {
    return this.opts.pools.get(this.opts.coordinator.host, this.opts.coordinator.port, this.opts.internalDatabase);
  }

  start(): void {
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    const tick = this.opts.tickMs ?? 1000;
    const delay = tick - (Date.now() % tick) + 5;
    this.timer = setTimeout(() => {
      void this.tick().finally(() => this.schedule());
    }, delay);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.ticking || this.stopped) return;
    this.ticking = true;
    try {
      if (!this.lock || this.lock.closed) {
        if (this.leader) this.leader = false;
        await this.tryLead();
      }
      if (this.leader && this.lock && !this.lock.closed) await this.runDueJobs();
    } catch {
      // A failed tick (PostgreSQL restarting, say) is retried at the next one.
    } finally {
      this.ticking = false;
    }
  }

  private async tryLead(): Promise<void> {
    if (this.acquiring) return;
    this.acquiring = true;
    try {
      await ensureCronSchema(this.pool, `${this.opts.coordinator.host}:${this.opts.coordinator.port}/${this.opts.internalDatabase}`);
      const conn = await connectBackend({
        host: this.opts.coordinator.host,
        port: this.opts.coordinator.port,
        database: this.opts.internalDatabase,
        user: this.opts.pools.internal.user,
        credentials: { password: this.opts.pools.internal.password },
        params: [['application_name', `pgweave cron leader (pid ${process.pid})`]],
      });
      conn.socket.setKeepAlive(true, 5000);
      conn.socket.unref();
      const client = new InternalClient(conn);
      const r = await client.query(`SELECT pg_catalog.pg_try_advisory_lock(${CRON_LOCK_KEY}, 1)`);
      if (r.rows[0]?.[0] !== 't' || this.stopped) {
        client.close();
        return;
      }
      this.lock = client;
      this.leader = true;
      this.lastTick = Math.floor(Date.now() / 1000) * 1000 - 1000;
      await this.markInterruptedRuns();
    } finally {
      this.acquiring = false;
    }
  }

  /** Runs left 'running' by a leader that died are marked failed once their backend is gone. */
  private async markInterruptedRuns(): Promise<void> {
    await this.pool.query(
      `UPDATE cron.job_run_details d SET status = 'failed', end_time = pg_catalog.clock_timestamp(),
         return_message = 'job interrupted: the coordinator running it stopped'
       WHERE d.status IN ('starting', 'running') AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a WHERE a.pid = d.job_pid)`,
    );
  }

  private scheduleOf(text: string): CronSchedule | null {
    if (!this.schedules.has(text)) {
      let parsed: CronSchedule | null = null;
      try {
        parsed = parseCronSchedule(text);
      } catch {
        parsed = null;
      }
      this.schedules.set(text, parsed);
    }
    return this.schedules.get(text)!;
  }

  private async runDueJobs(): Promise<void> {
    const now = Math.floor(Date.now() / 1000) * 1000;
    // Catch up at most a minute of missed seconds (a stalled event loop), never a backlog.
    const from = Math.max(this.lastTick + 1000, now - 60_000);
    if (from > now) return;
    const r = await this.pool.query('SELECT jobid, schedule, command, database, username FROM cron.job WHERE active ORDER BY jobid');
    const jobs: JobRow[] = r.rows.map((row) => ({ jobid: row[0]!, schedule: row[1]!, command: row[2]!, database: row[3]!, username: row[4]! }));
    for (const job of jobs) {
      const s = this.scheduleOf(job.schedule);
      if (!s) continue;
      for (let t = from; t <= now; t += 1000) {
        if (cronMatches(s, t)) {
          this.trigger(job);
          break;
        }
      }
    }
    this.lastTick = now;
    if (now % 30_000 === 0) await this.markInterruptedRuns().catch(() => {});
  }

  private trigger(job: JobRow): void {
    if (this.running.has(job.jobid)) {
      this.queued.add(job.jobid);
      return;
    }
    this.running.add(job.jobid);
    void this.run(job).finally(() => {
      this.running.delete(job.jobid);
      if (this.queued.delete(job.jobid) && this.leader && !this.stopped) this.trigger(job);
    });
  }

  private async run(job: JobRow): Promise<void> {
    let session: JobSession | null = null;
    let runid: string | null = null;
    try {
      const superuser = await this.pool.query('SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = $1', [job.username]);
      if (superuser.rows[0]?.[0] !== 't') {
        await this.record(job, null, 'failed', `pgweave runs cron jobs only for superusers; role "${job.username}" is not one`, true);
        return;
      }
      session = new JobSession(await this.opts.openSession(job.database, `pgweave cron (pid ${process.pid})`));
      this.sessions.add(session);
      const guard = await session.query(`SELECT pg_catalog.pg_try_advisory_lock(${CRON_RUN_LOCK_KEY}, ${BigInt(job.jobid) % 2147483648n}::int), pg_catalog.pg_backend_pid()`);
      if (!guard.ok || guard.rows[0]?.[0] !== 't') return; // a previous run still holds the job (another leader's)
      if (!this.leader || this.stopped) return;
      runid = await this.record(job, guard.rows[0]?.[1] ?? null, 'running', null, false);
      const outcome = await session.query(job.command);
      await this.finish(runid, outcome.ok ? 'succeeded' : 'failed', outcome.message);
    } catch (err) {
      if (runid) await this.finish(runid, 'failed', (err as Error).message).catch(() => {});
      else await this.record(job, null, 'failed', (err as Error).message, true).catch(() => {});
    } finally {
      if (session) {
        this.sessions.delete(session);
        session.close();
      }
    }
  }

  private async record(job: JobRow, pid: string | null, status: string, message: string | null, ended: boolean): Promise<string> {
    const r = await this.pool.query(
      `INSERT INTO cron.job_run_details (jobid, job_pid, database, username, command, status, return_message, start_time, end_time)
       VALUES ($1, $2, $3, $4, $5, $6, $7, pg_catalog.clock_timestamp(), CASE WHEN $8 THEN pg_catalog.clock_timestamp() END) RETURNING runid`,
      [job.jobid, pid, job.database, job.username, job.command, status, message, ended ? 'true' : 'false'],
    );
    return r.rows[0]![0]!;
  }

  private async finish(runid: string, status: string, message: string): Promise<void> {
    await this.pool.query(
      `UPDATE cron.job_run_details SET status = $2, return_message = $3, end_time = pg_catalog.clock_timestamp() WHERE runid = $1`,
      [runid, status, message],
    );
  }

  /** Stops ticking and gives up leadership; job sessions still running are closed. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.leader = false;
    this.lock?.close();
    this.lock = null;
    for (const s of this.sessions) s.close();
    this.sessions.clear();
  }
}

/** Whether cron is disabled for this process (PGWEAVE_CRON=off). */
export function cronDisabled(): boolean {
  return ['off', '0', 'false', 'no'].includes((process.env.PGWEAVE_CRON ?? '').toLowerCase());
}
