/**
 * Citus's adaptive-executor slow start, for the tasks of one node: how many
 * connections serve them, and which connection runs which task.
 *
 * States per node: running (connections take tasks) → draining (no task
 * waits: nothing more opens) → done (every connection idle and every open
 * settled). A node starts with one connection (the session's own). While
 * tasks wait, every `intervalMs` (citus.executor_slow_start_interval) it
 * opens more: 1, then 2, 4, 8… at a time, as Citus does, never more than
 * tasks are waiting, never beyond `maxPoolSize` connections
 * (citus.max_adaptive_executor_pool_size).
 * `forceMax` (citus.force_max_query_parallelization) opens one connection per
 * task at once, within the same cap.
 *
 * Affinity: tasks pinned to a connection (shard groups a transaction block
 * already used there) run only on it; free tasks run on whichever connection
 * is idle first. A task that fails stops every connection from taking more
 * (`stopped`), so the statement fails fast; the caller cancels what runs.
 *
 * Connections opened here belong to the caller (returned by `runNodeTasks`):
 * it keeps them for its transaction or gives them back to the pool.
 */

export interface SlowStartSettings {
  maxPoolSize: number;
  intervalMs: number;
  forceMax: boolean;
}

export const DEFAULT_SLOW_START: SlowStartSettings = { maxPoolSize: 16, intervalMs: 10, forceMax: false };

/** citus.* settings of a session, with Citus's defaults. */
export function slowStartSettings(settings: ReadonlyMap<string, string>): SlowStartSettings {
  const size = Number(settings.get('citus.max_adaptive_executor_pool_size'));
  const interval = parseInterval(settings.get('citus.executor_slow_start_interval'));
  const force = settings.get('citus.force_max_query_parallelization');
  return {
    maxPoolSize: Number.isInteger(size) && size >= 1 ? size : DEFAULT_SLOW_START.maxPoolSize,
    intervalMs: interval ?? DEFAULT_SLOW_START.intervalMs,
    forceMax: force !== undefined && /^\s*'?(on|true|yes|1|t|y)'?\s*$/i.test(force),
  };
}

/** '10ms', '1s', '10' (ms, Citus's unit) → milliseconds. */
function parseInterval(v: string | undefined): number | null {
  if (v === undefined) return null;
  const m = /^\s*'?(\d+(?:\.\d+)?)\s*(ms|s|min)?'?\s*$/i.exec(v);
  if (!m) return null;
  const n = Number(m[1]);
  const unit = (m[2] ?? 'ms').toLowerCase();
  return unit === 's' ? n * 1000 : unit === 'min' ? n * 60_000 : n;
}

export interface NodeWork<L> {
  /** The node's first connection, ready to run tasks. */
  first: L;
  /** Task indexes that must run on a given connection (transaction-block affinity), in order. */
  pinned: Map<L, number[]>;
  /** Task indexes any connection may run, in order. */
  free: number[];
  /** Opens and readies one more connection; null when it cannot (the others carry on). */
  open(): Promise<L | null>;
}

/**
 * Runs one node's tasks (see the module comment). `run` returns false when
 * its task failed. Resolves, once every connection is idle, with the
 * connections opened here.
 */
export function runNodeTasks<L>(
  work: NodeWork<L>,
  settings: SlowStartSettings,
  run: (link: L, task: number) => Promise<boolean>,
  control: { stopped: boolean },
): Promise<L[]> {
  return new Promise((resolve) => {
    const opened: L[] = [];
    const free = work.free;
    let next = 0; // next free task
    let active = 0; // connection loops running
    let opening = 0;
    let connections = 0;
    let step = 1;
    let timer: NodeJS.Timeout | null = null;

    const waiting = (): number => free.length - next;
    const finish = (): void => {
      if (active > 0 || opening > 0) return;
      if (timer) clearInterval(timer);
      timer = null;
      resolve(opened);
    };
    const loop = async (link: L): Promise<void> => {
      active++;
      try {
        for (const t of work.pinned.get(link) ?? []) {
          if (control.stopped) return;
          if (!(await run(link, t))) control.stopped = true;
        }
        while (!control.stopped && next < free.length) {
          const t = free[next++]!;
          if (!(await run(link, t))) control.stopped = true;
        }
      } catch {
        control.stopped = true;
      } finally {
        active--;
        finish();
      }
    };
    const openMore = (n: number): void => {
      for (let i = 0; i < n; i++) {
        opening++;
        connections++;
        work.open().then(
          (link) => {
            opening--;
            if (link === null) {
              connections--;
            } else {
              opened.push(link);
              if (!control.stopped && next < free.length) void loop(link);
            }
            finish();
          },
          () => {
            opening--;
            connections--;
            finish();
          },
        );
      }
    };
    const tick = (): void => {
      const want = Math.min(step, waiting() - opening, settings.maxPoolSize - connections);
      if (control.stopped || waiting() === 0) {
        if (timer) clearInterval(timer);
        timer = null;
        return;
      }
      if (want > 0) {
        openMore(want);
        step *= 2;
      }
    };

    // Connections the block already has on this node (pinned tasks) run alongside the first.
    const links = new Set<L>([work.first, ...work.pinned.keys()]);
    connections = links.size;
    for (const l of links) void loop(l);
    if (settings.forceMax) openMore(Math.max(0, Math.min(waiting(), settings.maxPoolSize - connections)));
    else if (waiting() > 0 && connections < settings.maxPoolSize) {
      timer = setInterval(tick, settings.intervalMs);
      timer.unref?.();
    }
    finish();
  });
}
