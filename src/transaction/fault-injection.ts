/**
 * Fault points of the distributed commit protocol, for the fault tests.
 *
 * A crash is only interesting at a precise step of the protocol: before any
 * PREPARE, between two PREPAREs, right after the commit record committed,
 * between two COMMIT PREPAREDs. Random kills rarely land in the narrow
 * windows, so the commit code calls `faultPoint(step)` at each of them.
 *
 * - In-process tests install `faults.handler` (e.g. kill -9 a worker, then
 *   continue) — while a handler is installed the commit code runs its
 *   PREPAREs and COMMIT PREPAREDs one participant after another, so
 *   "between" means something.
 * - A coordinator started as a child process reads PGWEAVE_FAULTS, e.g.
 *   `after-record:0.02,between-commit-prepared:0.02`: at each such point it
 *   SIGKILLs itself with that probability (a real crash: no cleanup runs).
 *
 * Without either, faultPoint is a no-op and the protocol runs in parallel.
 */

export type FaultPoint = 'before-prepare' | 'between-prepares' | 'after-record' | 'between-commit-prepared';

export const FAULT_POINTS: readonly FaultPoint[] = ['before-prepare', 'between-prepares', 'after-record', 'between-commit-prepared'];

export const faults: { handler: ((point: FaultPoint) => void | Promise<void>) | null } = { handler: null };

const crashProbability = new Map<FaultPoint, number>();
for (const part of (process.env.PGWEAVE_FAULTS ?? '').split(',')) {
  const [name, p] = part.split(':');
  if (name && (FAULT_POINTS as readonly string[]).includes(name.trim())) crashProbability.set(name.trim() as FaultPoint, Math.min(1, Math.max(0, Number(p ?? '1') || 0)));
}

/** Whether fault points are armed (the commit code then runs participants sequentially). */
export function faultsArmed(): boolean {
  return faults.handler !== null || crashProbability.size > 0;
}

export async function faultPoint(point: FaultPoint): Promise<void> {
  const p = crashProbability.get(point);
  if (p !== undefined && Math.random() < p) {
    process.stderr.write(`pgweave: PGWEAVE_FAULTS: crashing at ${point}\n`);
    process.kill(process.pid, 'SIGKILL');
  }
  if (faults.handler) await faults.handler(point);
}
