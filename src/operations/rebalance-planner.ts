/**
 * Plans the moves that even out a cluster: pure functions over the current
 * placement of shard groups, so plans are testable and the same plan is shown
 * (get_rebalance_table_shards_plan) and run (rebalance_table_shards,
 * citus_rebalance_start, citus_drain_node).
 *
 * Rules, in order:
 * 1. Drain: a shard group on a node that should not have shards (or is being
 *    drained) moves to the least loaded node that should.
 * 2. by_shard_count (default): within each colocation group, while the most
 *    loaded node holds at least two shard groups more than the least loaded,
 *    one moves from the first to the second — Citus's balance per colocation
 *    group, so joins stay local and every table spreads evenly.
 *    by_disk_size: across all groups, while the heaviest node exceeds the
 *    lightest by more than `threshold` of the average, the largest shard group
 *    whose move narrows the gap moves.
 */

export type RebalanceStrategy = 'by_shard_count' | 'by_disk_size';

export interface PlanNode {
  groupId: number;
  /** Receives shards (shouldhaveshards, active, not being drained). */
  eligible: boolean;
}

export interface PlanShardGroup {
  colocationId: number;
  /** The shard id that names the group (the first table's shard). */
  shardId: number;
  /** Node group holding it now. */
  groupId: number;
  /** Bytes of all its shards (by_disk_size). */
  size: number;
}

export interface PlannedMove {
  shardId: number;
  colocationId: number;
  sourceGroup: number;
  targetGroup: number;
  size: number;
}

export interface PlanOptions {
  strategy: RebalanceStrategy;
  /** by_disk_size: the tolerated spread as a fraction of the average load. */
  threshold: number;
  maxMoves: number;
  drainOnly: boolean;
  excludedShards: ReadonlySet<number>;
}

export function planRebalance(nodes: PlanNode[], groups: PlanShardGroup[], opts: PlanOptions): PlannedMove[] {
  const eligible = nodes.filter((n) => n.eligible).map((n) => n.groupId);
  if (eligible.length === 0) return [];
  const where = new Map(groups.map((g) => [g.shardId, g.groupId]));
  const moves: PlannedMove[] = [];
  const cost = (g: PlanShardGroup) => (opts.strategy === 'by_disk_size' ? Math.max(g.size, 1) : 1);
  const loadKey = (g: PlanShardGroup) => (opts.strategy === 'by_disk_size' ? 'all' : String(g.colocationId));
  // load[key][groupId]
  const loads = new Map<string, Map<number, number>>();
  const loadOf = (key: string) => {
    let m = loads.get(key);
    if (!m) loads.set(key, (m = new Map(eligible.map((e) => [e, 0]))));
    return m;
  };
  for (const g of groups) {
    const m = loadOf(loadKey(g));
    if (m.has(g.groupId)) m.set(g.groupId, m.get(g.groupId)! + cost(g));
  }
  const move = (g: PlanShardGroup, target: number) => {
    const m = loadOf(loadKey(g));
    const from = where.get(g.shardId)!;
    if (m.has(from)) m.set(from, m.get(from)! - cost(g));
    m.set(target, m.get(target)! + cost(g));
    where.set(g.shardId, target);
    moves.push({ shardId: g.shardId, colocationId: g.colocationId, sourceGroup: from, targetGroup: target, size: g.size });
  };
  const lightest = (m: Map<number, number>) => [...m].sort((a, b) => a[1] - b[1] || a[0] - b[0])[0]![0];

  // 1. Drain.
  for (const g of groups) {
    if (eligible.includes(g.groupId) || opts.excludedShards.has(g.shardId)) continue;
    if (moves.length >= opts.maxMoves) return moves;
    move(g, lightest(loadOf(loadKey(g))));
  }
  if (opts.drainOnly) return moves;

  // 2. Balance each load domain.
  for (const [key, m] of loads) {
    const domain = groups.filter((g) => loadKey(g) === key && !opts.excludedShards.has(g.shardId));
    const total = [...m.values()].reduce((a, b) => a + b, 0);
    const average = total / m.size;
    for (let guard = 0; guard < domain.length * eligible.length + 1; guard++) {
      if (moves.length >= opts.maxMoves) return moves;
      const sorted = [...m].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
      const [heavy, heavyLoad] = sorted[0]!;
      const [light, lightLoad] = sorted[sorted.length - 1]!;
      const gap = heavyLoad - lightLoad;
      if (opts.strategy === 'by_disk_size' ? gap <= opts.threshold * average : gap <= 1) break;
      // The largest group on the heavy node whose move narrows the gap (count: any, cost 1).
      const candidates = domain.filter((g) => where.get(g.shardId) === heavy && cost(g) < gap).sort((a, b) => cost(b) - cost(a) || a.shardId - b.shardId);
      const pick = candidates[0];
      if (!pick) break;
      move(pick, light);
    }
  }
  return moves;
}
