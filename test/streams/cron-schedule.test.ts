/** pg_cron's schedule syntax (src/jobs/cron-schedule.ts): parsing and matching, in UTC. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CronSyntaxError, cronMatches, nextCronTime, parseCronSchedule } from '../../src/jobs/cron-schedule.js';

const at = (iso: string) => Date.parse(iso);

test('N seconds fires every N seconds of the epoch', () => {
  const s = parseCronSchedule('10 seconds');
  assert.equal(cronMatches(s, at('2024-05-01T12:00:10Z')), true);
  assert.equal(cronMatches(s, at('2024-05-01T12:00:11Z')), false);
  assert.equal(nextCronTime(s, at('2024-05-01T12:00:10.500Z')), at('2024-05-01T12:00:20Z'));
  assert.equal(parseCronSchedule('1 second').kind, 'seconds');
  assert.throws(() => parseCronSchedule('0 seconds'), CronSyntaxError);
  assert.throws(() => parseCronSchedule('60 seconds'), CronSyntaxError);
});

test('five fields: lists, ranges, steps, names', () => {
  const s = parseCronSchedule('*/15 9-17 * jan,jul mon-fri');
  assert.equal(cronMatches(s, at('2024-07-01T09:15:00Z')), true); // a Monday in July
  assert.equal(cronMatches(s, at('2024-07-01T09:16:00Z')), false);
  assert.equal(cronMatches(s, at('2024-07-06T09:15:00Z')), false); // Saturday
  assert.equal(cronMatches(s, at('2024-08-01T09:15:00Z')), false); // August
  assert.equal(cronMatches(s, at('2024-07-01T18:00:00Z')), false);
  assert.equal(cronMatches(s, at('2024-07-01T09:15:30Z')), false, 'only at second 0');
  const t = parseCronSchedule('5/20 * * * *');
  assert.deepEqual([5, 25, 45].map((m) => cronMatches(t, Date.UTC(2024, 0, 1, 0, m))), [true, true, true]);
  assert.equal(cronMatches(t, Date.UTC(2024, 0, 1, 0, 6)), false);
});

test('day of month and day of week: either matches when both are restricted', () => {
  const s = parseCronSchedule('0 0 13 * 5'); // the 13th, or any Friday
  assert.equal(cronMatches(s, at('2024-09-13T00:00:00Z')), true); // Friday 13th
  assert.equal(cronMatches(s, at('2024-09-06T00:00:00Z')), true); // a Friday
  assert.equal(cronMatches(s, at('2024-10-13T00:00:00Z')), true); // a Sunday the 13th
  assert.equal(cronMatches(s, at('2024-10-14T00:00:00Z')), false);
  const sunday = parseCronSchedule('0 0 * * 7');
  assert.equal(cronMatches(sunday, at('2024-10-13T00:00:00Z')), true);
  const last = parseCronSchedule('30 23 $ * *');
  assert.equal(cronMatches(last, at('2024-02-29T23:30:00Z')), true);
  assert.equal(cronMatches(last, at('2024-02-28T23:30:00Z')), false);
});

test('macros and errors', () => {
  assert.equal(nextCronTime(parseCronSchedule('@hourly'), at('2024-01-01T10:20:00Z')), at('2024-01-01T11:00:00Z'));
  assert.equal(nextCronTime(parseCronSchedule('@daily'), at('2024-01-01T10:20:00Z')), at('2024-01-02T00:00:00Z'));
  assert.equal(nextCronTime(parseCronSchedule('@weekly'), at('2024-01-01T10:20:00Z')), at('2024-01-07T00:00:00Z'));
  for (const bad of ['* * * *', '60 * * * *', '* 24 * * *', '* * 0 * *', '* * * 13 *', '* * * * 8', '1-0 * * * *', '*/0 * * * *', 'x * * * *', '@reboot']) {
    assert.throws(() => parseCronSchedule(bad), CronSyntaxError, bad);
  }
});
