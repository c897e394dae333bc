/**
 * The write barrier of shard moves (operations/write-barrier.ts) for a
 * route: a write waits there while its shard group is being cut over to a
 * new node, then is planned again.
 */
import type { Route } from '../planner/route.js';
import { writeBarrier } from '../operations/write-barrier.js';

/** Shards a route writes. */
export function writtenShards(route: Route): number[] {
  switch (route.kind) {
    case 'router':
      return route.isWrite ? route.task.shardIds : [];
    case 'multi-shard':
      return route.isWrite ? route.tasks.flatMap((t) => t.shardIds) : [];
    case 'copy-in':
      return route.table.method === 'hash' ? route.table.shards.map((s) => s.shardId) : [];
    case 'insert-select':
      return route.plan.target.method === 'hash' ? route.plan.target.shards.map((s) => s.shardId) : [];
    default:
      return [];
  }
}

/** Counts a write as in flight past the barrier; null while one of its shards is being cut over. */
export function enterWriteBarrier(database: string, route: Route): (() => void) | null {
  return writeBarrier.tryEnter(database, writtenShards(route));
}

export function waitForWriteBarrier(database: string, route: Route): Promise<void> {
  return writeBarrier.waitUntilOpen(database, writtenShards(route));
}
