/**
 * Backpressure for one writable socket that many producers write to: a
 * client socket fed by all of its session's backend links, or the
 * coordinator PostgreSQL's socket fed by every shard of a pull.
 *
 * States: open → full → open. A write the socket refuses (write() returned
 * false) makes the gate full: the producer's source socket is paused and
 * remembered, and one 'drain' listener is armed — one for the whole gate,
 * however many producers or messages are waiting, so listeners never pile
 * up (MaxListenersExceededWarning) and a drain costs one callback. On
 * 'drain' (or when the socket closes, so nothing waits forever) every paused
 * source resumes and every `drained()` promise resolves.
 *
 * One gate per socket, found with `writeGateFor`, so independent producers
 * share it without being wired together.
 *
 * Coalescing. The first write of an event-loop turn corks the sink until the
 * turn's check phase (setImmediate): every write of the turn — a session's
 * own replies (ParseComplete … ReadyForQuery) and the bytes its backend
 * links forward — leaves in one socket write, in the order written. Nothing
 * waits past the current turn, and write()'s verdict (backpressure) is the
 * same corked or not.
 *
 * Holding. A session that has a client Sync still to answer in the chunk
 * it is working through (`hold` … `release`) keeps the sink corked past
 * the turn's end: its own replies of earlier turns (BindComplete at Bind)
 * then leave together with those written after a backend round trip
 * (NoData, CommandComplete, ReadyForQuery), as PostgreSQL sends nothing
 * before a Sync or Flush either. A write the sink refuses (a big result)
 * ends the cork at once, so a held gate never waits for a drain that
 * cannot come.
 */
import type { Writable } from 'node:stream';

/** What a producer pauses while the sink is full (a backend socket). */
export interface Pausable {
  pause(): unknown;
  resume(): unknown;
}

export class WriteGate {
  private armed = false;
  private readonly paused = new Set<Pausable>();
  private drain: Promise<void> | null = null;
  private resolveDrain: (() => void) | null = null;
  private corked = false;
  /** Holders keeping the cork past the turn (`hold`); an uncork due meanwhile waits for the last release. */
  private holds = 0;
  private uncorkDue = false;

  constructor(private readonly sink: Writable) {}

  /** Writes bytes (leaving at the end of this turn); when the sink is full, pauses `source` (if given) until it drains. Returns write()'s verdict. */
  write(bytes: Buffer, source?: Pausable): boolean {
    if (!this.corked && !this.sink.destroyed) {
      this.corked = true;
      this.sink.cork();
      setImmediate(this.uncork);
    }
    if (this.sink.write(bytes)) return true;
    if (this.holds > 0) this.flushNow();
    if (source) {
      source.pause();
      this.paused.add(source);
    }
    this.arm();
    return false;
  }

  /** Whether the sink has refused bytes it has not flushed yet. */
  get full(): boolean {
    return this.sink.writableNeedDrain;
  }

  /** Resolves once the sink has drained (at once when it is not full). Shared by every waiter. */
  drained(): Promise<void> {
    if (!this.sink.writableNeedDrain || this.sink.destroyed) return Promise.resolve();
    this.arm();
    this.drain ??= new Promise((resolve) => (this.resolveDrain = resolve));
    return this.drain;
  }

  /** A source leaves (detached, closed): it is resumed by its new owner, not by this gate. */
  forget(source: Pausable): void {
    this.paused.delete(source);
  }

  /** Keeps this turn's and later turns' writes corked until `release` (or a refused write). */
  hold(): void {
    this.holds++;
  }

  /** Ends one `hold`; with none left, the writes held back leave at the end of this turn. */
  release(): void {
    if (this.holds === 0 || --this.holds > 0 || !this.uncorkDue) return;
    this.uncorkDue = false;
    setImmediate(this.uncork);
  }

  private readonly uncork = (): void => {
    if (!this.corked) return;
    if (this.holds > 0) {
      this.uncorkDue = true;
      return;
    }
    this.corked = false;
    this.sink.uncork();
  };

  /** A refused write under a hold: what is buffered leaves now (the drain needs it), later writes cork anew. */
  private flushNow(): void {
    if (!this.corked) return;
    this.corked = false;
    this.uncorkDue = false;
    this.sink.uncork();
  }

  private arm(): void {
    if (this.armed) return;
    this.armed = true;
    this.sink.once('drain', this.onDrain);
    this.sink.once('close', this.onDrain);
  }

  private readonly onDrain = (): void => {
    this.armed = false;
    this.sink.removeListener('drain', this.onDrain);
    this.sink.removeListener('close', this.onDrain);
    const sources = [...this.paused];
    this.paused.clear();
    const resolve = this.resolveDrain;
    this.drain = null;
    this.resolveDrain = null;
    for (const s of sources) s.resume();
    resolve?.();
  };
}

const gates = new WeakMap<Writable, WriteGate>();

/** The one gate of a socket. */
export function writeGateFor(sink: Writable): WriteGate {
  let gate = gates.get(sink);
  if (!gate) {
    gate = new WriteGate(sink);
    gates.set(sink, gate);
  }
  return gate;
}
