/**
 * The coordinator's per-shard write barrier: while a move cuts a shard group
 * over to its new node, writes to those shards (and only those) wait here,
 * in the coordinator process, before they are sent anywhere — then they are
 * planned again with the new catalog and go to the new placement. Reads
 * never look at the barrier.
 *
 * Per shard: `blocked` (a cutover is in progress) and `inFlight` (write
 * statements that passed the barrier and have not finished). A cutover
 * blocks, then waits until nothing is in flight: after that no statement of
 * this process can reach the old placement. Writes of *other* coordinator
 * processes wait on the move's table lock on the source node instead (see
 * move-shard.ts).
 *
 *   open ──block()──▶ blocked (new writes wait) ──drained()──▶ quiescent ──unblock()──▶ open
 */

interface ShardState {
  blockedBy: number;
  inFlight: number;
}

type Waiter = () => void;

class WriteBarrier {
  private readonly shards = new Map<string, ShardState>();
  private openWaiters: Waiter[] = [];
  private drainWaiters: Waiter[] = [];

  private state(database: string, shardId: number): ShardState {
    const key = database + '\0' + shardId;
    let s = this.shards.get(key);
    if (!s) {
      s = { blockedBy: 0, inFlight: 0 };
      this.shards.set(key, s);
    }
    return s;
  }

  private peek(database: string, shardId: number): ShardState | undefined {
    return this.shards.get(database + '\0' + shardId);
  }

  /** Whether any of the shards is being cut over now. */
  isBlocked(database: string, shardIds: Iterable<number>): boolean {
    for (const id of shardIds) if ((this.peek(database, id)?.blockedBy ?? 0) > 0) return true;
    return false;
  }

  /** Resolves once none of the shards is blocked any more (the caller plans again). */
  async waitUntilOpen(database: string, shardIds: readonly number[]): Promise<void> {
    while (this.isBlocked(database, shardIds)) await new Promise<void>((resolve) => this.openWaiters.push(resolve));
  }

  /**
   * Counts a write statement as in flight on these shards; returns its release
   * (idempotent), or null when one of them is blocked (wait, re-plan, retry).
   */
  tryEnter(database: string, shardIds: readonly number[]): (() => void) | null {
    if (shardIds.length === 0) return () => {};
    if (this.isBlocked(database, shardIds)) return null;
    const states = shardIds.map((id) => this.state(database, id));
    for (const s of states) s.inFlight++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const s of states) s.inFlight--;
      this.wake('drain');
    };
  }

  /** Stops new writes to the shards; returns the matching unblock (idempotent). */
  block(database: string, shardIds: readonly number[]): () => void {
    const states = shardIds.map((id) => this.state(database, id));
    for (const s of states) s.blockedBy++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      for (const s of states) s.blockedBy--;
      this.wake('open');
    };
  }

  /** Resolves when no write statement is in flight on the shards (after block()). */
  async drained(database: string, shardIds: readonly number[]): Promise<void> {
    const busy = () => shardIds.some((id) => (this.peek(database, id)?.inFlight ?? 0) > 0);
    while (busy()) await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
  }

  private wake(which: 'open' | 'drain'): void {
    const list = which === 'open' ? this.openWaiters : this.drainWaiters;
    if (list.length === 0) return;
    if (which === 'open') this.openWaiters = [];
    else this.drainWaiters = [];
    for (const w of list) w();
  }
}

/** One barrier per coordinator process: every session of this process shares it. */
export const writeBarrier = new WriteBarrier();
