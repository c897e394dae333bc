/**
 * pg_cron's schedule syntax, parsed and matched in UTC (pg_cron's default
 * cron.timezone is GMT):
 *
 *   ┌ minute (0-59)  ┌ hour (0-23)  ┌ day of month (1-31, or $ = last day)
 *   │                │              │   ┌ month (1-12 or jan-dec)
 *   │                │              │   │   ┌ day of week (0-7 or sun-sat; 0 and 7 are Sunday)
 *   *                *              *   *   *
 *
 * Each field is a list of `*`, `N`, `N-M`, each with an optional `/STEP`
 * (`N/STEP` runs from N to the field's maximum). When both day fields are
 * restricted a day matches if either does (Vixie cron's rule, which pg_cron
 * follows). Also: `@yearly` `@annually` `@monthly` `@weekly` `@daily`
 * `@midnight` `@hourly`, and `N seconds` (1 ≤ N ≤ 59): every N seconds,
 * at the seconds of the epoch divisible by N, so that any leader computes
 * the same instants.
 */

export type CronSchedule =
  | { kind: 'seconds'; every: number; text: string }
  | {
      kind: 'fields';
      text: string;
      minutes: boolean[];
      hours: boolean[];
      days: boolean[];
      lastDay: boolean;
      months: boolean[];
      weekdays: boolean[];
      dayStar: boolean;
      weekdayStar: boolean;
    };

export class CronSyntaxError extends Error {}

const MACROS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

const MONTH_NAMES = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  names?: string[];
  /** Value of names[0]. */
  nameBase?: number;
}

const FIELDS: FieldSpec[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: MONTH_NAMES, nameBase: 1 },
  { name: 'day of week', min: 0, max: 7, names: DAY_NAMES, nameBase: 0 },
];

function value(token: string, spec: FieldSpec, text: string): number {
  if (/^\d+$/.test(token)) {
    const n = Number(token);
    if (n < spec.min || n > spec.max) throw new CronSyntaxError(`invalid schedule: ${text} (${spec.name} ${n} is outside ${spec.min}-${spec.max})`);
    return n;
  }
  const i = spec.names?.indexOf(token) ?? -1;
  if (i >= 0) return i + spec.nameBase!;
  throw new CronSyntaxError(`invalid schedule: ${text} (bad ${spec.name} "${token}")`);
}

function parseField(field: string, spec: FieldSpec, text: string): { set: boolean[]; star: boolean; last: boolean } {
  const set = new Array<boolean>(spec.max + 1).fill(false);
  let star = false;
  let last = false;
  for (const item of field.split(',')) {
    if (item === '') throw new CronSyntaxError(`invalid schedule: ${text} (empty item in ${spec.name})`);
    if (item === '$' && spec.name === 'day of month') {
      last = true;
      continue;
    }
    const [range, stepText, extra] = item.split('/');
    if (extra !== undefined) throw new CronSyntaxError(`invalid schedule: ${text} (bad step in ${spec.name})`);
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText) || Number(stepText) === 0) throw new CronSyntaxError(`invalid schedule: ${text} (bad step "${stepText}" in ${spec.name})`);
      step = Number(stepText);
    }
    let lo: number;
    let hi: number;
    if (range === '*') {
      lo = spec.min;
      hi = spec.max;
      if (stepText === undefined) star = true;
    } else if (range!.includes('-')) {
      const [a, b, more] = range!.split('-');
      if (more !== undefined) throw new CronSyntaxError(`invalid schedule: ${text} (bad range in ${spec.name})`);
      lo = value(a!, spec, text);
      hi = value(b!, spec, text);
      if (hi < lo) throw new CronSyntaxError(`invalid schedule: ${text} (range ${range} runs backwards)`);
    } else {
      lo = value(range!, spec, text);
      hi = stepText === undefined ? lo : spec.max;
    }
    for (let v = lo; v <= hi; v += step) set[v] = true;
  }
  return { set, star, last };
}

export function parseCronSchedule(input: string): CronSchedule {
  const text = input.trim().toLowerCase().replace(/\s+/g, ' ');
  const seconds = /^(\d+) seconds?$/.exec(text);
  if (seconds) {
    const every = Number(seconds[1]);
    if (every < 1 || every > 59) throw new CronSyntaxError(`invalid schedule: ${input} (seconds must be between 1 and 59)`);
    return { kind: 'seconds', every, text };
  }
  const expanded = MACROS[text] ?? text;
  if (expanded.startsWith('@')) throw new CronSyntaxError(`invalid schedule: ${input}`);
  const fields = expanded.split(' ');
  if (fields.length !== 5) throw new CronSyntaxError(`invalid schedule: ${input} (expected 5 fields, or "N seconds")`);
  const [minute, hour, day, month, weekday] = fields.map((f, i) => parseField(f, FIELDS[i]!, input));
  if (day!.last && day!.star) throw new CronSyntaxError(`invalid schedule: ${input}`);
  const weekdays = weekday!.set.slice(0, 7);
  if (weekday!.set[7]) weekdays[0] = true;
  return {
    kind: 'fields',
    text,
    minutes: minute!.set,
    hours: hour!.set,
    days: day!.set,
    lastDay: day!.last,
    months: month!.set,
    weekdays,
    dayStar: day!.star,
    weekdayStar: weekday!.star,
  };
}

/** Whether the schedule fires at this instant (a whole UTC second, in epoch milliseconds). */
export function cronMatches(s: CronSchedule, epochMs: number): boolean {
  const seconds = Math.floor(epochMs / 1000);
  if (s.kind === 'seconds') return seconds % s.every === 0;
  const d = new Date(seconds * 1000);
  if (d.getUTCSeconds() !== 0) return false;
  if (!s.minutes[d.getUTCMinutes()] || !s.hours[d.getUTCHours()] || !s.months[d.getUTCMonth() + 1]) return false;
  const lastDayOfMonth = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate();
  const dayMatch = !!s.days[d.getUTCDate()] || (s.lastDay && d.getUTCDate() === lastDayOfMonth);
  const weekdayMatch = !!s.weekdays[d.getUTCDay()];
  if (s.dayStar || s.weekdayStar) return (s.dayStar || dayMatch) && (s.weekdayStar || weekdayMatch);
  return dayMatch || weekdayMatch;
}

/** The next instant (epoch ms, whole second) after `afterMs` at which the schedule fires; searches up to ~5 years. */
export function nextCronTime(s: CronSchedule, afterMs: number): number | null {
  let t = (Math.floor(afterMs / 1000) + 1) * 1000;
  if (s.kind === 'seconds') {
    while (!cronMatches(s, t)) t += 1000;
    return t;
  }
  // advance to the next whole minute, then minute by minute (bounded)
  t = Math.ceil(t / 60000) * 60000;
  for (let i = 0; i < 60 * 24 * 366 * 5; i++, t += 60000) if (cronMatches(s, t)) return t;
  return null;
}
