/**
 * Shard hash ranges match Citus's layout, and findShardIndex (arithmetic)
 * agrees with a search over those ranges, at the boundaries and at random.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  computeShardIntervals,
  findShardIndex,
  FIRST_SHARD_ID,
  INT32_MAX,
  INT32_MIN,
  type ShardInterval,
} from '../../src/metadata/shard-interval.js';

const SHARD_COUNTS = [1, 2, 3, 7, 32, 1000, 64000];

/** The reference: a linear scan over the intervals. */
function searchShardIndex(intervals: ShardInterval[], hash: number): number {
  const index = intervals.findIndex((s) => s.minValue <= hash && hash <= s.maxValue);
  assert.notEqual(index, -1, `hash ${hash} is in no interval`);
  return index;
}

test('the first shard id is 102008, as in Citus', () => {
  assert.equal(FIRST_SHARD_ID, 102008);
});

test('intervals are contiguous, cover all of int32, and number the shards from the first id', () => {
  for (const count of SHARD_COUNTS) {
    const intervals = computeShardIntervals(count, FIRST_SHARD_ID);
    assert.equal(intervals.length, count);
    const increment = Math.floor(2 ** 32 / count);
    assert.equal(intervals[0]!.minValue, INT32_MIN);
    assert.equal(intervals[count - 1]!.maxValue, INT32_MAX);
    intervals.forEach((s, i) => {
      assert.equal(s.shardId, FIRST_SHARD_ID + i);
      assert.equal(s.minValue, INT32_MIN + i * increment, `count ${count} shard ${i} min`);
      if (i < count - 1) {
        assert.equal(s.maxValue, s.minValue + increment - 1);
        assert.equal(intervals[i + 1]!.minValue, s.maxValue + 1, 'contiguous');
      }
      assert.ok(s.minValue <= s.maxValue);
      assert.ok(Number.isInteger(s.minValue) && Number.isInteger(s.maxValue));
    });
  }
});

test('known layouts: Citus with 32 shards, and the uneven last shard of 3', () => {
  const thirtyTwo = computeShardIntervals(32, FIRST_SHARD_ID);
  assert.deepEqual(thirtyTwo[0], { shardId: 102008, minValue: -2147483648, maxValue: -2013265921 });
  assert.deepEqual(thirtyTwo[16], { shardId: 102024, minValue: 0, maxValue: 134217727 });
  assert.deepEqual(thirtyTwo[31], { shardId: 102039, minValue: 2013265920, maxValue: 2147483647 });
  assert.deepEqual(computeShardIntervals(3, 5), [
    { shardId: 5, minValue: -2147483648, maxValue: -715827884 },
    { shardId: 6, minValue: -715827883, maxValue: 715827881 },
    { shardId: 7, minValue: 715827882, maxValue: 2147483647 }, // one value wider
  ]);
  assert.deepEqual(computeShardIntervals(1, 9), [{ shardId: 9, minValue: INT32_MIN, maxValue: INT32_MAX }]);
});

test('findShardIndex agrees with the intervals at every boundary', () => {
  let checked = 0;
  for (const count of SHARD_COUNTS) {
    const intervals = computeShardIntervals(count, FIRST_SHARD_ID);
    for (const [i, s] of intervals.entries()) {
      for (const hash of [s.minValue, s.minValue + 1, s.maxValue - 1, s.maxValue]) {
        if (hash < s.minValue || hash > s.maxValue) continue;
        assert.equal(findShardIndex(hash, count), i, `count ${count}, hash ${hash}`);
        checked++;
      }
    }
    for (const hash of [INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX - 1, INT32_MAX]) {
      assert.equal(findShardIndex(hash, count), searchShardIndex(intervals, hash), `count ${count}, hash ${hash}`);
      checked++;
    }
  }
  assert.ok(checked > 4 * 64000);
});

test('findShardIndex agrees with a linear search for random hashes', () => {
  let state = 0x2545f491;
  const nextHash = (): number => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state | 0;
  };
  for (const count of SHARD_COUNTS.filter((c) => c <= 1000)) {
    const intervals = computeShardIntervals(count, FIRST_SHARD_ID);
    for (let n = 0; n < 5000; n++) {
      const hash = nextHash();
      assert.equal(findShardIndex(hash, count), searchShardIndex(intervals, hash), `count ${count}, hash ${hash}`);
    }
  }
});

test('bad arguments are rejected', () => {
  assert.throws(() => computeShardIntervals(0, FIRST_SHARD_ID), RangeError);
  assert.throws(() => computeShardIntervals(1.5, FIRST_SHARD_ID), RangeError);
  assert.throws(() => computeShardIntervals(64001, FIRST_SHARD_ID), RangeError);
  assert.throws(() => findShardIndex(2 ** 31, 4), RangeError);
  assert.throws(() => findShardIndex(0, 0), RangeError);
});
