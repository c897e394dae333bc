/**
 * Owns a transaction block's extra connections (slow start,
 * multi-shard-run.ts: connections beyond the session's one per node, which
 * join the block and commit or roll back with it) and, through
 * shard-affinity.ts, which of the block's connections holds each shard
 * group. At the block's end the extra connections go back (to the pool, or
 * closed) once their last reply is in.
 */
import type { BackendLink } from '../executor/backend-link.js';
import type { WorkerNode } from '../metadata/types.js';
import { ShardAffinity } from './shard-affinity.js';
import type { SessionServices } from './services.js';

/** Connections beyond the session's one per node (slow start): opened as the client, given back after use. */
export interface ExtraConnections {
  open(node: WorkerNode): Promise<BackendLink>;
  /** Gives back an idle link outside any transaction (to the pool when `poolable`, else closes it). */
  release(node: WorkerNode, link: BackendLink, poolable: boolean): void;
}

export class BlockExtras {
  private joined: Array<{ node: WorkerNode; link: BackendLink }> = [];
  /** Shard group → the block's connection that used it. */
  private readonly affinity: ShardAffinity;

  constructor(
    services: SessionServices,
    readonly connections: ExtraConnections | null,
  ) {
    this.affinity = new ShardAffinity(services);
  }

  /** The extra connections that joined the block. */
  get links(): BackendLink[] {
    return this.joined.map((e) => e.link);
  }

  /** An extra connection joined the block. */
  add(node: WorkerNode, link: BackendLink): void {
    this.joined.push({ node, link });
  }

  /** The connection of the block a shard group is bound to, or null; without extras, only when `evenWithoutExtras`. */
  linkFor(node: WorkerNode, shardIds: readonly number[], evenWithoutExtras: boolean): BackendLink | null {
    // Without extra connections every shard group is on the node's one connection (the router path stops here).
    if (this.joined.length === 0 && !evenWithoutExtras) return null;
    return this.affinity.linkFor(node, shardIds);
  }

  /** Binds the shard groups a statement of the block used to the connection it used. */
  note(link: BackendLink, node: WorkerNode, shardIds: readonly number[]): void {
    this.affinity.note(link, node, shardIds);
  }

  /**
   * The block ended: its extra connections go back once their last reply
   * is in (COMMIT PREPARED may still be on its way); one lost or left in a
   * transaction is closed.
   */
  endBlock(poolable: boolean): void {
    for (const { node, link } of this.joined) {
      link.inTransaction = false;
      link.wroteInTransaction = false;
      this.connections?.release(node, link, poolable);
    }
    this.joined = [];
    this.affinity.clear();
  }
}
