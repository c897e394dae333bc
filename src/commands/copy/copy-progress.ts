/**
 * Progress of running COPYs, visible from any session of any coordinator
 * process: `pg_catalog.pgweave_stat_progress_copy` (catalog-schema.ts) reads
 * the unlogged table `pgweave.copy_progress` on the coordinator PostgreSQL,
 * which this module keeps current.
 *
 * The engine only increments counters in memory (`CopyCounters`, a few
 * additions per row). A `ProgressBoard` — one per coordinator process and
 * database — writes the counters of every COPY of that database in one
 * statement per tick (500 ms), never per row, and only when something
 * changed, so however many COPYs run, progress costs at most one internal
 * connection use per tick.
 *
 * An entry's states: new (not yet written) → live (its row exists) → ended.
 * An entry that ends before its first write is never written; a live one
 * that ends is deleted at once (an immediate tick). A coordinator process
 * that dies leaves rows behind; the view hides them, since their pid (the
 * backend of the client's connection to the coordinator PostgreSQL, what
 * `pg_backend_pid()` returns through pgweave) no longer runs with the same
 * backend_start. Writing progress never fails a COPY: errors are dropped.
 */
import { randomUUID } from 'node:crypto';

/** What the routing engine counts as the COPY runs. */
export interface CopyCounters {
  /** Bytes of COPY data received from the client. */
  bytes: number;
  /** Rows read and routed to a shard. */
  routed: number;
  /** Rows the shards' WHERE clause left out (known once their batch is answered). */
  excluded: number;
  /** Rows routed per shard, in the table's shard order. */
  shardRows: number[];
}

export interface ProgressIdentity {
  /** The coordinator PostgreSQL backend of the client's session. */
  pid: number;
  relid: number;
  command: 'COPY FROM' | 'COPY TO';
  /** Shard ids, in the order of `CopyCounters.shardRows`. */
  shardIds: string[];
}

/** Runs SQL on the coordinator PostgreSQL of the board's database as the internal role. */
export type ProgressStore = (sql: string, params: ReadonlyArray<string | null>) => Promise<unknown>;

export class CopyProgressEntry implements CopyCounters {
  bytes = 0;
  routed = 0;
  excluded = 0;
  readonly shardRows: number[];
  readonly id = randomUUID();
  state: 'new' | 'live' | 'ended' = 'new';
  /** The counters as last written. */
  written = '';

  constructor(readonly identity: ProgressIdentity, private readonly board: ProgressBoard) {
    this.shardRows = identity.shardIds.map(() => 0);
  }

  /** The COPY ended (committed, failed, or its client went away). */
  end(): void {
    this.board.close(this);
  }

  snapshot(): string {
    return `${this.bytes}/${this.routed}/${this.excluded}`;
  }
}

const TICK_MS = 500;

const WRITE_SQL = `
WITH gone AS (DELETE FROM pgweave.copy_progress WHERE id = ANY($1::text[]))
INSERT INTO pgweave.copy_progress AS p (id, pid, backend_start, relid, command, bytes_processed, tuples_processed, tuples_excluded, shards)
SELECT e.id, e.pid, (SELECT a.backend_start FROM pg_catalog.pg_stat_activity a WHERE a.pid = e.pid),
       e.relid, e.command, e.bytes, e.tuples, e.excluded, e.shards
FROM pg_catalog.jsonb_to_recordset($2::jsonb) AS e(id text, pid integer, relid oid, command text, bytes bigint, tuples bigint, excluded bigint, shards jsonb)
ON CONFLICT (id) DO UPDATE SET bytes_processed = EXCLUDED.bytes_processed, tuples_processed = EXCLUDED.tuples_processed,
  tuples_excluded = EXCLUDED.tuples_excluded, shards = EXCLUDED.shards, updated_at = pg_catalog.now()`;

export class ProgressBoard {
  private readonly entries = new Set<CopyProgressEntry>();
  private readonly deleting = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> | null = null;
  private again = false;

  constructor(private readonly store: ProgressStore) {}

  open(identity: ProgressIdentity): CopyProgressEntry {
    const e = new CopyProgressEntry(identity, this);
    this.entries.add(e);
    this.timer ??= setInterval(() => void this.tick(), TICK_MS).unref();
    return e;
  }

  close(e: CopyProgressEntry): void {
    if (e.state === 'ended') return;
    const wasLive = e.state === 'live';
    e.state = 'ended';
    this.entries.delete(e);
    if (wasLive) {
      this.deleting.add(e.id);
      void this.tick();
    }
    if (this.entries.size === 0 && this.deleting.size === 0) this.stop();
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Writes what changed since the last tick; one write at a time. */
  tick(): Promise<void> {
    if (this.writing) {
      this.again = true;
      return this.writing;
    }
    const gone = [...this.deleting];
    this.deleting.clear();
    const changed = [...this.entries].filter((e) => e.snapshot() !== e.written || e.state === 'new');
    if (gone.length === 0 && changed.length === 0) {
      if (this.entries.size === 0) this.stop();
      return Promise.resolve();
    }
    const rows = changed.map((e) => ({
      id: e.id,
      pid: e.identity.pid,
      relid: e.identity.relid,
      command: e.identity.command,
      bytes: e.bytes,
      tuples: Math.max(0, e.routed - e.excluded),
      excluded: e.excluded,
      shards: Object.fromEntries(e.identity.shardIds.map((id, i) => [id, e.shardRows[i]])),
    }));
    const snaps = changed.map((e) => e.snapshot());
    this.writing = (async () => {
      try {
        await this.store(WRITE_SQL, [`{${gone.map((g) => `"${g}"`).join(',')}}`, JSON.stringify(rows)]);
        changed.forEach((e, i) => {
          e.written = snaps[i];
          if (e.state === 'new') e.state = 'live';
          // It ended while its first row was being written: delete that row too.
          else if (e.state === 'ended') this.deleting.add(e.id);
        });
      } catch {
        // Progress is advisory; an ended entry's row is hidden by the view once its session is gone.
        changed.forEach((e) => {
          if (e.state === 'ended') this.deleting.add(e.id);
        });
      }
    })().finally(() => {
      this.writing = null;
      if (this.again || this.deleting.size > 0) {
        this.again = false;
        if (this.deleting.size > 0 || this.entries.size > 0) void this.tick();
      }
      if (this.entries.size === 0 && this.deleting.size === 0) this.stop();
    });
    return this.writing;
  }
}

const boards = new WeakMap<object, ProgressBoard>();

/** The board of one coordinator database, keyed by its internal pool (one per process and database). */
export function progressBoardFor(key: object, store: ProgressStore): ProgressBoard {
  let b = boards.get(key);
  if (!b) {
    b = new ProgressBoard(store);
    boards.set(key, b);
  }
  return b;
}
