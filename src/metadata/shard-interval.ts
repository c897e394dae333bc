/**
 * Hash ranges of the shards of a hash-distributed table, laid out exactly as
 * Citus lays them out (DESIGN.md decision 3), so that a Citus user's shards
 * and pgweave's hold the same rows and workers can compute placement in SQL.
 *
 * The 2^32 int32 hash values are cut into shardCount ranges of
 * floor(2^32 / shardCount) values each, starting at INT32_MIN; the last shard
 * also takes the remainder, up to INT32_MAX. Shard ids are consecutive from
 * the first id the catalog hands out (102008 for the first table, as in Citus).
 * Because the layout is uniform, finding a hash's shard is arithmetic, not a
 * search.
 */

/** The hash range [minValue, maxValue] (inclusive, int32) of one shard. */
export interface ShardInterval {
  shardId: number;
  minValue: number;
  maxValue: number;
}

/** The first shard id of a new cluster, as in Citus. */
export const FIRST_SHARD_ID = 102008;

export const INT32_MIN = -2147483648;
export const INT32_MAX = 2147483647;
/** How many int32 hash values there are. */
const HASH_TOKEN_COUNT = 4294967296;
/** Citus's upper limit on the shard count of a table (citus.shard_count). */
export const MAX_SHARD_COUNT = 64000;

function assertShardCount(shardCount: number): void {
  if (!Number.isInteger(shardCount) || shardCount < 1 || shardCount > MAX_SHARD_COUNT) {
    throw new RangeError(`shard count must be an integer between 1 and ${MAX_SHARD_COUNT}, got ${shardCount}`);
  }
}

/** How many hash values each shard (but possibly the last) covers. */
export function hashTokenIncrement(shardCount: number): number {
  assertShardCount(shardCount);
  return Math.floor(HASH_TOKEN_COUNT / shardCount);
}

/**
 * The shards of a table with `shardCount` shards, ids from `firstShardId`:
 * shard i covers [INT32_MIN + i·inc, INT32_MIN + (i+1)·inc − 1], the last one up
 * to INT32_MAX.
 */
export function computeShardIntervals(shardCount: number, firstShardId: number): ShardInterval[] {
  const increment = hashTokenIncrement(shardCount);
  if (!Number.isSafeInteger(firstShardId) || firstShardId < 1) throw new RangeError(`invalid first shard id ${firstShardId}`);
  const intervals: ShardInterval[] = [];
  for (let i = 0; i < shardCount; i++) {
    const minValue = INT32_MIN + i * increment;
    const maxValue = i === shardCount - 1 ? INT32_MAX : minValue + increment - 1;
    intervals.push({ shardId: firstShardId + i, minValue, maxValue });
  }
  return intervals;
}

/**
 * The index (0-based) of the shard whose interval holds `hash`, for a table
 * laid out by computeShardIntervals. Hashes past the last full increment
 * belong to the last shard, as in Citus's FindShardIntervalIndex.
 */
export function findShardIndex(hash: number, shardCount: number): number {
  if ((hash | 0) !== hash) throw new RangeError(`hash ${hash} is not an int32`);
  const index = Math.floor((hash - INT32_MIN) / hashTokenIncrement(shardCount));
  return index < shardCount ? index : shardCount - 1;
}

/**
 * The index of the shard holding `hash` among `shards` (sorted by minValue,
 * covering the int32 range): O(1) arithmetic for Citus's uniform layout, a
 * binary search once splits (citus_split_shard_by_split_points,
 * isolate_tenant_to_new_shard) made the ranges uneven.
 */
export function findShardIndexIn(shards: ReadonlyArray<{ minValue: number; maxValue: number }>, hash: number): number {
  const n = shards.length;
  const guess = findShardIndex(hash | 0, n);
  const s = shards[guess];
  if (!s || (s.minValue <= hash && hash <= s.maxValue)) return guess;
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (shards[mid]!.minValue <= hash) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
