/**
 * Owns a session's worker links while they are parked: idle between
 * transaction blocks, kept by the session (listeners, prepared statements
 * — its next block needs no pool round trip) yet offered to other sessions
 * through the idle pool (pool/idle-connection-pool.ts `park`). A session
 * that finds no idle connection claims the longest-parked one: its holder
 * lets go (`letGo`) unless it is using the link again. The session takes a
 * link back before it uses it (`unpark`), all of them before a session-level
 * SET reaches them (`unparkAll`), and gives them to the pool when it ends
 * (`releaseAll`).
 */
import type { BackendLink } from '../executor/backend-link.js';
import type { WorkerNode } from '../metadata/types.js';
import type { ParkedConnection, SessionServices } from './services.js';

/** What parking needs from the session. */
export interface ParkingHost {
  readonly workers: Map<number, BackendLink>;
  readonly workerNodes: ReadonlyMap<number, WorkerNode>;
  readonly services: SessionServices;
  /** Whether the link may go to another session now (running session, idle link outside its cycle and any block). */
  mayLetGo(link: BackendLink): boolean;
  /** The link is the session's no more. */
  forget(nodeId: number, link: BackendLink): void;
}

export class ParkedLinks {
  private readonly parked = new Map<number, ParkedConnection>();

  constructor(private readonly host: ParkingHost) {}

  has(nodeId: number): boolean {
    return this.parked.has(nodeId);
  }

  /** Offers the session's idle link to a node; false when there is no pool to park in. */
  park(nodeId: number, node: WorkerNode, link: BackendLink): boolean {
    const parked = this.host.services.parkNode?.(node, link.conn, link.prepared, () => this.letGo(nodeId, link)) ?? null;
    if (parked) this.parked.set(nodeId, parked);
    return parked !== null;
  }

  /** Another session claims a parked link: no longer this session's, unless it is in use again (then parked again when idle). */
  private letGo(nodeId: number, link: BackendLink): boolean {
    this.parked.delete(nodeId);
    if (this.host.workers.get(nodeId) !== link || !this.host.mayLetGo(link)) return false;
    this.host.forget(nodeId, link);
    link.detach();
    return true;
  }

  /** The session uses its parked link to a node again (or closes it): nobody else may claim it. */
  unpark(nodeId: number): void {
    const parked = this.parked.get(nodeId);
    const node = this.host.workerNodes.get(nodeId);
    if (parked !== undefined && this.parked.delete(nodeId) && node) this.host.services.unparkNode?.(node, parked);
  }

  /** Before session-level SETs: they go to every link the session holds. */
  unparkAll(): void {
    for (const nodeId of [...this.parked.keys()]) this.unpark(nodeId);
  }

  /** The session ends: its parked links, idle outside any transaction, go to the pool. */
  releaseAll(): void {
    for (const nodeId of [...this.parked.keys()]) {
      const link = this.host.workers.get(nodeId);
      const node = this.host.workerNodes.get(nodeId);
      this.unpark(nodeId);
      if (!link || !node || !link.reusable || link.inTransaction) continue;
      this.host.workers.delete(nodeId);
      this.host.services.releaseNode(node, link.detach(), link.prepared);
    }
  }
}
