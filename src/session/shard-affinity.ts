/**
 * Owns connection–shard affinity in a transaction block: every shard group
 * (executor/shard-groups.ts) stays on the block's connection that first
 * used it, since that connection holds its locks and uncommitted writes.
 *
 * State: accesses are recorded as is (`accessed`, no allocation on the
 * router path) and bound to shard-group keys (`bound`) only when a lookup
 * needs them; `clear` at the end of every block.
 */
import type { BackendLink } from '../executor/backend-link.js';
import type { WorkerNode } from '../metadata/types.js';
import { shardGroupKey } from '../executor/shard-groups.js';
import type { SessionServices } from './services.js';

export class ShardAffinity {
  /** Shard group → the block's connection that used it. */
  private readonly bound = new Map<string, BackendLink>();
  /** Accesses not yet bound: link, node id, shard ids, flattened. */
  private accessed: Array<BackendLink | number | readonly number[]> = [];

  constructor(private readonly services: SessionServices) {}

  /** The connection a shard group of the node is bound to, or null. */
  linkFor(node: WorkerNode, shardIds: readonly number[]): BackendLink | null {
    if (this.accessed.length > 0) this.bindAccessed();
    if (this.bound.size === 0) return null;
    const catalog = this.services.catalog();
    if (!catalog) return null;
    for (const id of shardIds) {
      const link = this.bound.get(shardGroupKey(catalog, node.nodeId, id));
      if (link && !link.lost) return link;
    }
    return null;
  }

  /** A statement of the block used these shards of the node on `link`. */
  note(link: BackendLink, node: WorkerNode, shardIds: readonly number[]): void {
    this.accessed.push(link, node.nodeId, shardIds);
  }

  clear(): void {
    this.bound.clear();
    this.accessed = [];
  }

  private bindAccessed(): void {
    const catalog = this.services.catalog();
    const list = this.accessed;
    this.accessed = [];
    if (!catalog) return;
    for (let i = 0; i < list.length; i += 3) {
      const link = list[i] as BackendLink;
      for (const id of list[i + 2] as readonly number[]) {
        const key = shardGroupKey(catalog, list[i + 1] as number, id);
        if (!this.bound.has(key)) this.bound.set(key, link);
      }
    }
  }
}
