/**
 * The statements of differential-edge.test.ts, by phase (the later phases
 * in differential-edge-more.ts). Each phase is a
 * function so the statements are built when the phase runs (in the order
 * written; no randomness: a difference is reproduced by running the file
 * again). `ordered` only where the statement's ORDER BY fixes the complete
 * row order (or PostgreSQL defines it: RETURNING of a multi-row VALUES);
 * `multi` for statements meant to touch several shard groups; `unsupported`
 * for statements pgweave documents as unsupported, with the SQLSTATE it
 * must answer.
 */
import type { Statement } from './support.js';

export interface EdgeStatement extends Statement {
  unsupported?: string;
  /**
   * A difference known and not fixed yet (why): reported, not failed — as
   * long as it is this difference only (`known.field` differs, nothing else).
   */
  known?: { field: 'types' | 'order' | 'error'; why: string };
}

/** A whole-row value of a shard row reports the shard's row type (another OID than the table's on the coordinator). */
export const WHOLE_ROW: EdgeStatement['known'] = { field: 'types', why: 'a whole-row value carries the type OID of the shard row type, not the coordinator table row type' };

/** Tenants the router statements pin to (both workers hold some of them). */
export const SOME = [1, 2, 3, 5, 8, 11];

export const s = (kind: string, sql: string, extra: Partial<EdgeStatement> = {}): EdgeStatement => ({ kind, sql, ...extra });
export const ordered = (kind: string, sql: string, extra: Partial<EdgeStatement> = {}): EdgeStatement => ({ kind, sql, ordered: true, ...extra });

/** `f(t)` for each of the tenants: the simple protocol. */
export function perTenant(f: (t: number) => EdgeStatement | EdgeStatement[], tenants = SOME): EdgeStatement[] {
  return tenants.flatMap((t) => f(t));
}

export const uuidOf = (t: number, u: number): string => `${(t * 100 + u).toString(16).padStart(8, '0')}-0000-4000-8000-${String(t * 1000 + u).padStart(12, '0')}`;

export function EDGE_READS(): EdgeStatement[] {
  return [
    // DISTINCT ON
    ...perTenant((t) => ordered('distinct on', `SELECT DISTINCT ON (user_id) user_id, order_id, amount FROM app.orders WHERE tenant_id = ${t} ORDER BY user_id, amount DESC, order_id`)),
    ...perTenant((t) => ordered('distinct on', `SELECT DISTINCT ON (status) status, placed_at FROM app.orders WHERE tenant_id = $1 ORDER BY status, placed_at DESC, order_id`, { params: [t] })),
    // LATERAL
    ...perTenant((t) =>
      s('lateral', `SELECT u.user_id, last.order_id, last.amount FROM app.users u LEFT JOIN LATERAL (SELECT o.order_id, o.amount FROM app.orders o WHERE o.tenant_id = u.tenant_id AND o.user_id = u.user_id ORDER BY o.placed_at DESC, o.order_id LIMIT 2) last ON true WHERE u.tenant_id = ${t}`),
    ),
    ...perTenant((t) => s('lateral', `SELECT t.name, x.tag FROM app.tenants t, LATERAL unnest(t.tags) WITH ORDINALITY AS x(tag, n) WHERE t.tenant_id = ${t}`)),
    ...perTenant((t) => s('lateral', `SELECT t.tenant_id, kv.key, kv.value FROM app.tenants t CROSS JOIN LATERAL jsonb_each(t.settings) kv WHERE t.tenant_id = $1`, { params: [t] })),
    // GROUPING SETS / ROLLUP / CUBE
    ...perTenant((t) => s('grouping sets', `SELECT status, currency, count(*), sum(amount), grouping(status, currency) FROM app.orders WHERE tenant_id = ${t} GROUP BY GROUPING SETS ((status), (currency), ())`)),
    ...perTenant((t) => s('cube', `SELECT status, qty, count(*), max(amount) FROM app.orders WHERE tenant_id = ${t} GROUP BY CUBE (status, qty)`)),
    ...perTenant((t) => ordered('rollup', `SELECT user_id, status, sum(amount) AS s FROM app.orders WHERE tenant_id = ${t} GROUP BY ROLLUP (user_id, status) ORDER BY user_id NULLS LAST, status NULLS LAST`)),
    // FILTER
    ...perTenant((t) =>
      s('filter', `SELECT count(*) FILTER (WHERE status = 'paid') AS paid, sum(amount) FILTER (WHERE currency <> 'EUR') AS foreign_amount, avg(qty) FILTER (WHERE weight IS NOT NULL), array_agg(order_id ORDER BY order_id) FILTER (WHERE qty > 2) FROM app.orders WHERE tenant_id = ${t}`),
    ),
    // window frames
    ...perTenant((t) =>
      ordered(
        'window frame',
        `SELECT order_id, amount, sum(amount) OVER (ORDER BY placed_at, order_id ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING) AS s3, avg(amount) OVER (ORDER BY placed_at, order_id ROWS UNBOUNDED PRECEDING) AS running_avg, first_value(order_id) OVER w, last_value(order_id) OVER w, nth_value(amount, 2) OVER w FROM app.orders WHERE tenant_id = ${t} WINDOW w AS (PARTITION BY user_id ORDER BY order_id RANGE BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) ORDER BY placed_at, order_id`,
      ),
    ),
    ...perTenant((t) =>
      ordered(
        'window frame',
        `SELECT order_id, placed_at, count(*) OVER (ORDER BY placed_at RANGE BETWEEN interval '7 days' PRECEDING AND CURRENT ROW) AS week, ntile(3) OVER (ORDER BY order_id), percent_rank() OVER (ORDER BY amount, order_id), cume_dist() OVER (ORDER BY amount, order_id) FROM app.orders WHERE tenant_id = ${t} ORDER BY order_id`,
      ),
    ),
    ...perTenant((t) => ordered('window frame', `SELECT order_id, sum(qty) OVER (ORDER BY order_id GROUPS BETWEEN 1 PRECEDING AND CURRENT ROW EXCLUDE CURRENT ROW) FROM app.orders WHERE tenant_id = ${t} ORDER BY order_id`)),
    // recursive CTEs
    ...perTenant((t) =>
      ordered(
        'recursive cte',
        `WITH RECURSIVE chain(user_id, depth, path) AS (SELECT user_id, 1, ARRAY[user_id] FROM app.users WHERE tenant_id = ${t} AND user_id = 1 UNION ALL SELECT u.user_id, c.depth + 1, c.path || u.user_id FROM chain c JOIN app.users u ON u.tenant_id = ${t} AND u.user_id = c.user_id + 1) SELECT * FROM chain ORDER BY depth`,
      ),
    ),
    ...perTenant((t) => ordered('recursive cte', `WITH RECURSIVE d(day) AS (SELECT date '2024-01-01' UNION ALL SELECT (day + 1)::date FROM d WHERE day < date '2024-01-10') SELECT d.day, count(o.order_id) FROM d LEFT JOIN app.orders o ON o.tenant_id = ${t} AND o.placed_at::date = d.day GROUP BY d.day ORDER BY d.day`)),
    // reference joins, mixed-case identifiers, schema-qualified names
    ...perTenant((t) => s('reference join', `SELECT o.order_id, o.amount * c."Rate" AS in_eur, c."Code" FROM app.orders o JOIN public."Currencies" c ON c."Code" = o.currency WHERE o.tenant_id = ${t}`)),
    ...perTenant((t) => s('reference join', `SELECT t.name, p.name AS plan, p.price, 'sso' = ANY (p.features) AS sso FROM app.tenants t JOIN plans p USING (plan_id) WHERE t.tenant_id = ${t}`)),
    ...perTenant((t) => s('quoted identifiers', `SELECT a."Id", a."Action", a."Detail"->>'ip' AS ip, a."Detail" FROM app."AuditLog" AS a WHERE a."TenantId" = ${t}`)),
    ...perTenant((t) => s('quoted identifiers', `SELECT "Action", count(*) AS "Count" FROM app."AuditLog" WHERE "TenantId" = $1 GROUP BY "Action"`, { params: [t] })),
    // numeric precision and float output
    ...perTenant((t) => s('numeric', `SELECT order_id, amount, gross, amount / 3 AS third, round(amount / 7, 10), amount * 1.000001, (amount::float8 / 3)::text, weight, weight * 0.1 AS w10, sqrt(abs(weight)) FROM app.orders WHERE tenant_id = ${t}`)),
    ...perTenant((t) => s('numeric', `SELECT sum(amount), avg(amount), avg(qty), sum(qty), var_samp(amount), stddev_pop(weight), sum(weight), avg(weight), bit_or(qty), every(qty > 0) FROM app.orders WHERE tenant_id = ${t}`)),
    ...perTenant((t) => s('numeric', `SELECT user_id, score, score::int, score::float4, -score, score % 7, trunc(score, 1), scale(score), to_char(score, 'FM9999.000') FROM app.users WHERE tenant_id = ${t}`)),
    // dates, intervals, timestamps
    ...perTenant((t) =>
      s('datetime', `SELECT user_id, born, age(date '2024-06-01', born), born + interval '1 month', extract(year FROM born), date_part('dow', born), to_char(born, 'Dy DD Mon YYYY'), created_at - interval '36 hours 5 minutes' FROM app.users WHERE tenant_id = ${t}`),
    ),
    ...perTenant((t) => s('datetime', `SELECT order_id, placed_at, placed_at AT TIME ZONE 'Asia/Tokyo', date_trunc('month', placed_at), justify_hours(placed_at - timestamptz '2024-01-01'), placed_at::date FROM app.orders WHERE tenant_id = ${t}`)),
    // collations, NULLS FIRST/LAST, LIMIT/OFFSET
    ...perTenant((t) => ordered('collation', `SELECT display_name FROM app.users WHERE tenant_id = ${t} ORDER BY display_name COLLATE "C" NULLS FIRST, user_id`)),
    ...perTenant((t) => ordered('collation', `SELECT display_name, lower(display_name) FROM app.users WHERE tenant_id = ${t} ORDER BY display_name DESC NULLS LAST, user_id`)),
    ...perTenant((t) => ordered('collation', `SELECT name FROM app.tenants WHERE tenant_id = ${t} AND name > 'Tenant' COLLATE "C" ORDER BY name`)),
    ...perTenant((t) => ordered('limit offset', `SELECT order_id, amount FROM app.orders WHERE tenant_id = ${t} ORDER BY amount DESC NULLS LAST, order_id LIMIT 3 OFFSET 1`)),
    ...perTenant((t) => ordered('limit offset', `SELECT order_id FROM app.orders WHERE tenant_id = $1 ORDER BY order_id OFFSET $2 ROWS FETCH FIRST $3 ROWS ONLY`, { params: [t, 1, 2] })),
    ...perTenant((t) => ordered('limit offset', `SELECT order_id, amount FROM app.orders WHERE tenant_id = ${t} ORDER BY amount DESC FETCH FIRST 1 ROWS WITH TIES`)),
    // jsonb and arrays
    ...perTenant((t) => s('jsonb', `SELECT tenant_id, settings->'theme', settings->>'seats', (settings->>'seats')::int * 2, settings ? 'beta', settings @> '{"beta": true}', jsonb_set(settings, '{seats}', '0'), settings - 'theme' FROM app.tenants WHERE tenant_id = ${t}`)),
    ...perTenant((t) => s('arrays', `SELECT tags, array_length(tags, 1), tags[1], tags[2:3], cardinality(tags), array_to_string(tags, '|', '-'), 'beta' = ANY (tags), tags && '{alpha,delta}' FROM app.tenants WHERE tenant_id = ${t}`)),
    ...perTenant((t) => s('bytea uuid', `SELECT user_id, avatar, length(avatar), encode(avatar, 'base64'), uid, uid::text, md5(email) FROM app.users WHERE tenant_id = ${t}`)),
    // parameters of many types (extended protocol)
    ...perTenant((t) => s('param bigint text', `SELECT user_id, email FROM app.users WHERE tenant_id = $1::bigint AND email LIKE $2`, { params: [String(t), `u%@t${t}.example`] })),
    ...perTenant((t) => s('param numeric', `SELECT order_id, amount FROM app.orders WHERE tenant_id = $1 AND amount > $2::numeric`, { params: [t, '99.995'] })),
    ...perTenant((t) => s('param numeric', `SELECT $2::numeric(10,4) * amount, $2 + amount FROM app.orders WHERE tenant_id = $1`, { params: [t, '1.23456'] })),
    ...perTenant((t) => s('param bool', `SELECT tenant_id, name FROM app.tenants WHERE tenant_id = $1 AND active = $2`, { params: [t, true] })),
    ...perTenant((t) => s('param bool', `SELECT tenant_id, active IS NOT DISTINCT FROM $2 FROM app.tenants WHERE tenant_id = $1`, { params: [t, null] })),
    ...perTenant((t) => s('param timestamptz', `SELECT order_id FROM app.orders WHERE tenant_id = $1 AND placed_at >= $2 AND placed_at < $3`, { params: [t, '2024-02-01 00:00:00+00', '2024-05-01T00:00:00Z'] })),
    ...perTenant((t) => s('param date', `SELECT user_id, born FROM app.users WHERE tenant_id = $1 AND born < $2::date`, { params: [t, '1980-06-15'] })),
    ...perTenant((t) => s('param uuid', `SELECT user_id, email FROM app.users WHERE tenant_id = $1 AND uid = $2`, { params: [t, uuidOf(t, 2)] })),
    ...perTenant((t) => s('param jsonb', `SELECT tenant_id FROM app.tenants WHERE tenant_id = $1 AND settings @> $2::jsonb`, { params: [t, JSON.stringify({ beta: true })] })),
    ...perTenant((t) => s('param jsonb', `SELECT tenant_id, settings || $2 FROM app.tenants WHERE tenant_id = $1`, { params: [t, { extra: [1, 'two', null] }] })),
    ...perTenant((t) => s('param array', `SELECT order_id FROM app.orders WHERE tenant_id = $1 AND status = ANY ($2)`, { params: [t, ['paid', 'shipped']] })),
    ...perTenant((t) => s('param array', `SELECT order_id FROM app.orders WHERE tenant_id = $1 AND user_id <> ALL ($2::bigint[])`, { params: [t, [1, 2]] })),
    ...perTenant((t) => s('param array', `SELECT tenant_id, tags || $2::text[] FROM app.tenants WHERE tenant_id = $1`, { params: [t, ['x', null, 'y z']] })),
    ...perTenant((t) => s('param bytea', `SELECT user_id FROM app.users WHERE tenant_id = $1 AND avatar IS DISTINCT FROM $2`, { params: [t, Buffer.from([0, 0x1f, 0xff])] })),
    ...perTenant((t) => s('param null', `SELECT user_id, coalesce(display_name, $2) FROM app.users WHERE tenant_id = $1 AND ($3::numeric IS NULL OR score > $3)`, { params: [t, null, null] })),
    ...perTenant((t) => s('param named', `SELECT count(*), sum(amount) FROM app.orders WHERE tenant_id = $1 AND status = $2`, { params: [t, 'paid'], name: 'edge_count_paid' })),
    ...perTenant((t) => s('param interval', `SELECT order_id, placed_at + $2::interval FROM app.orders WHERE tenant_id = $1`, { params: [t, '1 day 02:03:04.5'] })),
    // IN lists and = ANY within one tenant (router) and across shards (multi-shard)
    ...perTenant((t) => s('in list', `SELECT tenant_id, user_id FROM app.users WHERE tenant_id IN (${t}) AND user_id IN (1, 3, 5)`)),
    s('in list across shards', `SELECT tenant_id, count(*) FROM app.users WHERE tenant_id IN (1, 2, 3, 4, 5, 6) GROUP BY tenant_id`, { multi: true }),
    ordered('in list across shards', `SELECT tenant_id, user_id, email FROM app.users WHERE tenant_id IN (2, 7, 11) ORDER BY tenant_id, user_id`, { multi: true }),
    ordered('any array across shards', `SELECT tenant_id, name FROM app.tenants WHERE tenant_id = ANY ($1) ORDER BY name COLLATE "C"`, { params: [[3, 9, 12, 99]], multi: true }),
    s('any array across shards', `SELECT tenant_id, sum(amount) FROM app.orders WHERE tenant_id = ANY ($1::bigint[]) GROUP BY tenant_id`, { params: [[1, 4, 6, 10]], multi: true }),
    s('any array one tenant', `SELECT count(*) FROM app.orders WHERE tenant_id = ANY ($1::bigint[])`, { params: [[5]] }),
    // multi-shard reads of the same corners
    ordered('multi-shard distinct on', `SELECT DISTINCT ON (tenant_id) tenant_id, order_id, amount FROM app.orders ORDER BY tenant_id, amount DESC, order_id`, { multi: true }),
    s('multi-shard grouping sets', `SELECT status, currency, count(*), sum(amount) FROM app.orders GROUP BY GROUPING SETS ((status), (currency), ())`, { multi: true }),
    s('multi-shard cube', `SELECT status, qty > 2 AS big, count(*) FROM app.orders GROUP BY CUBE (status, qty > 2)`, { multi: true }),
    // avg/sum of float8 over shards adds in another order than one scan: the last digits may differ (as
    // under PostgreSQL's own parallel aggregation), so float results across shards are compared rounded.
    s('multi-shard filter', `SELECT currency, count(*) FILTER (WHERE status = 'paid'), sum(amount) FILTER (WHERE qty > 1), round(avg(weight)::numeric, 9) FROM app.orders GROUP BY currency`, { multi: true }),
    ordered('multi-shard window', `SELECT tenant_id, count(*), rank() OVER (ORDER BY count(*) DESC, tenant_id) FROM app.orders GROUP BY tenant_id ORDER BY tenant_id`, { multi: true }),
    ordered('multi-shard order nulls', `SELECT tenant_id, user_id, display_name FROM app.users ORDER BY display_name NULLS FIRST, tenant_id, user_id LIMIT 10`, { multi: true }),
    ordered('multi-shard order nulls', `SELECT tenant_id, user_id, score FROM app.users ORDER BY score DESC NULLS LAST, tenant_id, user_id LIMIT 7 OFFSET 3`, { multi: true }),
    ordered('multi-shard collate', `SELECT display_name FROM app.users WHERE display_name IS NOT NULL ORDER BY display_name COLLATE "C", tenant_id, user_id`, { multi: true }),
    s('multi-shard numeric', `SELECT avg(amount), sum(gross), avg(qty), sum(weight) = sum(weight), stddev(amount), min(weight), max(score) FROM app.orders JOIN app.users USING (tenant_id, user_id)`, { multi: true }),
    s('multi-shard reference join', `SELECT c."Code", sum(o.amount * c."Rate") FROM app.orders o JOIN "Currencies" c ON c."Code" = o.currency GROUP BY c."Code"`, { multi: true }),
    s('multi-shard quoted', `SELECT "Action", count(*), count(DISTINCT "TenantId") FROM app."AuditLog" GROUP BY "Action"`, { multi: true }),
    s('multi-shard jsonb', `SELECT settings->>'theme' AS theme, count(*), jsonb_agg(tenant_id ORDER BY tenant_id) FROM app.tenants GROUP BY 1`, { multi: true }),
    s('multi-shard params', `SELECT tenant_id, count(*) FROM app.orders WHERE placed_at < $1 AND status <> $2 GROUP BY tenant_id`, { params: ['2024-03-15 12:00:00+00', 'cancelled'], multi: true }),
    s('multi-shard lateral', `SELECT t.tenant_id, x.tag FROM app.tenants t CROSS JOIN LATERAL unnest(t.tags) x(tag)`, { multi: true }),
    ordered('multi-shard limit ties', `SELECT tenant_id, order_id, qty FROM app.orders ORDER BY qty DESC, tenant_id, order_id LIMIT 5`, { multi: true }),
    s('multi-shard exists', `SELECT t.tenant_id FROM app.tenants t WHERE EXISTS (SELECT 1 FROM app.orders o WHERE o.tenant_id = t.tenant_id AND o.amount > 1500)`, { multi: true }),
  ];
}

export function EDGE_SESSION(): EdgeStatement[] {
  const out: EdgeStatement[] = [];
  for (const zone of ['America/New_York', 'Asia/Kolkata', '+05:30', 'UTC']) {
    out.push(s('set', `SET TimeZone = '${zone}'`));
    out.push(...perTenant((t) => s('timezone', `SELECT order_id, placed_at, placed_at::date, date_trunc('day', placed_at), extract(hour FROM placed_at), to_char(placed_at, 'YYYY-MM-DD HH24:MI TZ') FROM app.orders WHERE tenant_id = ${t}`), [1, 8]));
    out.push(...perTenant((t) => s('timezone param', `SELECT order_id FROM app.orders WHERE tenant_id = $1 AND placed_at < $2::timestamp`, { params: [t, '2024-03-01 00:00:00'] }), [2, 5]));
    out.push(...perTenant((t) => s('timezone param', `SELECT $2::timestamptz, tenant_id FROM app.tenants WHERE tenant_id = $1`, { params: [t, '2024-07-01 12:00:00'] }), [3]));
    out.push(s('timezone multi-shard', `SELECT placed_at::date AS d, count(*) FROM app.orders GROUP BY 1`, { multi: true }));
    out.push(s('timezone multi-shard', `SELECT tenant_id, min(placed_at), max(placed_at)::text FROM app.orders GROUP BY tenant_id`, { multi: true }));
  }
  out.push(s('set', `SET DateStyle = 'SQL, DMY'`));
  out.push(...perTenant((t) => s('datestyle', `SELECT born, created_at FROM app.users WHERE tenant_id = ${t}`), [1, 2, 11]));
  out.push(s('datestyle multi-shard', `SELECT born FROM app.users WHERE born IS NOT NULL`, { multi: true }));
  out.push(s('set', `SET IntervalStyle = 'iso_8601'`));
  out.push(...perTenant((t) => s('intervalstyle', `SELECT order_id, placed_at - timestamptz '2024-01-01 00:00:00+00' FROM app.orders WHERE tenant_id = ${t}`), [3, 8]));
  out.push(s('set', `RESET IntervalStyle`));
  out.push(s('set', `RESET DateStyle`));
  out.push(s('set', `SET extra_float_digits = 0`));
  out.push(...perTenant((t) => s('float digits', `SELECT order_id, weight, weight / 3, weight::float4 / 7 FROM app.orders WHERE tenant_id = ${t}`), [1, 5]));
  out.push(s('float digits multi-shard', `SELECT min(weight) / 3, max(weight)::float4 / 7 FROM app.orders`, { multi: true }));
  out.push(s('set', `RESET extra_float_digits`));
  out.push(s('set', `SET search_path = app, public`));
  out.push(...perTenant((t) => s('search_path', `SELECT u.email, o.amount FROM users u JOIN orders o USING (tenant_id, user_id) WHERE u.tenant_id = ${t}`), [2, 11]));
  out.push(...perTenant((t) => s('search_path', `SELECT "Action" FROM "AuditLog" WHERE "TenantId" = $1`, { params: [t] }), [1, 3]));
  out.push(...perTenant((t) => s('search_path', `UPDATE tenants SET settings = settings || '{"touched": 1}' WHERE tenant_id = ${t} RETURNING tenant_id, settings`), [5]));
  out.push(s('search_path multi-shard', `SELECT count(*) FROM orders o JOIN plans p ON p.plan_id = o.qty`, { multi: true }));
  out.push(s('set', `RESET search_path`));
  out.push(s('search_path reset', `SELECT count(*) FROM app.orders WHERE tenant_id = 3`));
  out.push(s('search_path reset', `SELECT count(*) FROM orders WHERE tenant_id = 3`));
  // A multi-statement simple query with a SET in the middle.
  out.push(s('multi-statement', `SET TimeZone = 'Europe/Berlin'; SELECT placed_at FROM app.orders WHERE tenant_id = 2; RESET TimeZone`));
  out.push(s('multi-statement', `SELECT placed_at FROM app.orders WHERE tenant_id = 5; SET TimeZone = 'Asia/Tokyo'; SELECT placed_at FROM app.orders WHERE tenant_id = 5; RESET TimeZone; SELECT placed_at FROM app.orders WHERE tenant_id = 5`));
  out.push(s('multi-statement', `SET search_path = app; SELECT count(*), sum(amount) FROM orders WHERE tenant_id = 4; SELECT u.email FROM users u WHERE u.tenant_id = 4; RESET search_path`));
  out.push(s('multi-statement', `SET TimeZone = 'America/Los_Angeles'; SELECT min(placed_at), max(placed_at) FROM app.orders; RESET TimeZone`, { multi: true }));
  out.push(s('set local', `BEGIN; SET LOCAL TimeZone = 'Pacific/Auckland'; SELECT order_id, placed_at::text FROM app.orders WHERE tenant_id = 8; COMMIT`));
  out.push(s('set local', `BEGIN`));
  out.push(s('set local', `SET LOCAL TimeZone = 'Asia/Kathmandu'`));
  out.push(...perTenant((t) => s('set local', `SELECT order_id, placed_at FROM app.orders WHERE tenant_id = $1`, { params: [t] }), [1, 8]));
  out.push(s('set local', `COMMIT`));
  out.push(...perTenant((t) => s('after set local', `SELECT order_id, placed_at FROM app.orders WHERE tenant_id = ${t}`), [8]));
  return out;
}

export function EDGE_WRITES(): EdgeStatement[] {
  return [
    // RETURNING expressions and *
    ...perTenant((t) => s('returning', `UPDATE app.orders SET qty = qty + 1 WHERE tenant_id = ${t} AND status = 'new' RETURNING *, amount * qty AS total, gross - amount AS tax, tableoid::regclass IS NOT NULL`)),
    ...perTenant((t) => s('returning', `UPDATE app.users u SET score = coalesce(u.score, 0) + 1.5 WHERE u.tenant_id = ${t} AND u.user_id = 1 RETURNING u.score, u.score * 2, upper(u.email)`)),
    ...perTenant((t) => s('returning whole row', `UPDATE app.users u SET score = score + 0.5 WHERE u.tenant_id = ${t} AND u.user_id = 2 RETURNING u`, { known: WHOLE_ROW }), [1, 8]),
    ...perTenant((t) => s('whole row', `SELECT t FROM app.tenants t WHERE t.tenant_id = ${t}`, { known: WHOLE_ROW }), [3]),
    ...perTenant((t) => s('whole row', `SELECT row_to_json(t), t::text FROM app.tenants t WHERE t.tenant_id = ${t}`), [3, 4]),
    // UPDATE … FROM a reference table, DELETE … USING
    ...perTenant((t) => s('update from reference', `UPDATE app.orders o SET amount = round(o.amount * c."Rate", 2), currency = 'EUR' FROM "Currencies" c WHERE c."Code" = o.currency AND o.currency = 'JPY' AND o.tenant_id = ${t} RETURNING o.order_id, o.amount, o.gross, c."Rate"`)),
    ...perTenant((t) => s('update from reference', `UPDATE app.tenants t SET settings = jsonb_set(t.settings, '{plan}', to_jsonb(p.name)) FROM plans p WHERE p.plan_id = t.plan_id AND t.tenant_id = $1 RETURNING t.settings`, { params: [t] })),
    ...perTenant((t) => s('update from co-located', `UPDATE app.users u SET display_name = coalesce(u.display_name, 'buyer') || '*' FROM app.orders o WHERE o.tenant_id = u.tenant_id AND o.user_id = u.user_id AND o.amount > 1000 AND u.tenant_id = ${t} RETURNING u.user_id, u.display_name`)),
    ...perTenant((t) => s('delete using', `DELETE FROM app.orders o USING "Currencies" c WHERE c."Code" = o.currency AND c."Rate" < 0.01 AND o.tenant_id = ${t} AND o.status = 'cancelled' RETURNING o.order_id, o.amount`)),
    ...perTenant((t) => s('delete using', `DELETE FROM app."AuditLog" a USING app.tenants t WHERE t.tenant_id = a."TenantId" AND NOT t.active AND a."TenantId" = $1 RETURNING a."Id"`, { params: [t] })),
    // ON CONFLICT variants
    ...perTenant((t) =>
      s('on conflict where', `INSERT INTO app.users AS u (tenant_id, user_id, email, score) VALUES (${t}, 1, 'dup@x', 10.5), (${t}, 2, 'dup2@x', 0.25) ON CONFLICT (tenant_id, user_id) DO UPDATE SET score = EXCLUDED.score + coalesce(u.score, 0) WHERE u.score IS NULL OR u.score < 100 RETURNING u.tenant_id, u.user_id, u.score, u.email`, { ordered: true }),
    ),
    ...perTenant((t) => s('on conflict on constraint', `INSERT INTO app.users (tenant_id, user_id, email) VALUES (${t}, 999, 'u1@t${t}.example') ON CONFLICT ON CONSTRAINT users_email_key DO UPDATE SET display_name = 'conflicted ' || EXCLUDED.user_id RETURNING user_id, display_name`)),
    ...perTenant((t) => s('on conflict on constraint', `INSERT INTO app.users (tenant_id, user_id, email) VALUES ($1, $2, $3) ON CONFLICT ON CONSTRAINT users_pkey DO NOTHING RETURNING *`, { params: [t, 1, `other@t${t}`] })),
    ...perTenant((t) => s('on conflict excluded', `INSERT INTO app.tenants (tenant_id, name, plan_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id) DO UPDATE SET plan_id = greatest(app.tenants.plan_id, EXCLUDED.plan_id), tags = array_append(app.tenants.tags, EXCLUDED.name) RETURNING tenant_id, plan_id, tags, created_at`, { params: [t, 'again', 3, '2025-01-01 00:00:00+00'] })),
    // defaults: bigserial, identity, generated columns, DEFAULT keyword
    ...perTenant((t) => s('defaults', `INSERT INTO app.orders (tenant_id, user_id, amount, placed_at) VALUES (${t}, 1, 12.34, '2024-06-01 10:00:00+00') RETURNING *`)),
    ...perTenant((t) => s('defaults', `INSERT INTO app.orders (tenant_id, user_id, amount, currency, placed_at, status) VALUES (${t}, 2, 0.01, DEFAULT, '2024-06-02 10:00:00+00', DEFAULT) RETURNING order_id, currency, status, gross`)),
    ...perTenant((t) => s('defaults param', `INSERT INTO app.orders (tenant_id, user_id, amount, placed_at, weight) VALUES ($1, $2, $3, $4, $5) RETURNING order_id, amount, gross, weight, qty`, { params: [t, 1, '999.999', '2024-06-03T08:00:00Z', 1.5] })),
    ...perTenant((t) => s('identity', `INSERT INTO app."AuditLog" ("TenantId", "Action", "At", "Detail") VALUES (${t}, 'edge', '2024-06-01 00:00:00+00', '{"n": [1, 2.50, null]}') RETURNING "Id", "Detail"`)),
    ...perTenant((t) => s('identity param', `INSERT INTO app."AuditLog" ("TenantId", "Action", "At", "Detail") VALUES ($1, $2, $3, $4) RETURNING *`, { params: [t, 'param', '2024-06-02 00:00:00+00', { deep: { a: [true, false] } }] })),
    ...perTenant((t) => s('generated column', `INSERT INTO app.orders (tenant_id, user_id, amount, placed_at, gross) VALUES (${t}, 1, 5, '2024-06-04 00:00:00+00', 1)`)),
    ...perTenant((t) => s('generated column', `UPDATE app.orders SET gross = 1 WHERE tenant_id = ${t}`)),
    ...perTenant((t) => s('generated column', `UPDATE app.orders SET amount = amount + 0.01 WHERE tenant_id = ${t} AND order_id = (SELECT min(order_id) FROM app.orders WHERE tenant_id = ${t}) RETURNING amount, gross`)),
    // writable CTEs by tenant key
    ...perTenant((t) =>
      s('writable cte', `WITH ins AS (INSERT INTO app.orders (tenant_id, order_id, user_id, amount, placed_at, status) VALUES (${t}, ${80000 + t}, 2, 42.42, '2024-06-05 00:00:00+00', 'paid'), (${t}, ${80100 + t}, 1, 1.5, '2024-06-05 00:00:00+00', 'new') RETURNING order_id, amount, gross) SELECT count(*), sum(amount), sum(gross) FROM ins`),
    ),
    ...perTenant((t) =>
      s('writable cte', `WITH ins AS (INSERT INTO app.orders (tenant_id, order_id, user_id, amount, placed_at) VALUES ($1, $2, $3, $4, $5) RETURNING *) SELECT o.order_id, o.amount, i.amount FROM app.orders o JOIN ins i ON i.tenant_id = o.tenant_id AND o.order_id < i.order_id WHERE o.tenant_id = $1`, { params: [t, 80200 + t, 1, '7.77', '2024-06-07 00:00:00+00'] }),
    ),
    ...perTenant((t) =>
      s('writable cte', `WITH upd AS (UPDATE app.users SET score = 0 WHERE tenant_id = ${t} AND score < 0 RETURNING user_id), log AS (INSERT INTO app."AuditLog" ("TenantId", "Id", "Action", "At") SELECT ${t}, 7000 + user_id, 'reset ' || user_id, '2024-06-06 00:00:00+00' FROM upd RETURNING "Action") SELECT (SELECT count(*) FROM upd) AS reset, (SELECT count(*) FROM log) AS logged`),
    ),
    // Documented: an INSERT in WITH that leaves out a column whose default the coordinator computes (bigserial, identity).
    ...perTenant((t) => s('writable cte, coordinator default', `WITH ins AS (INSERT INTO app.orders (tenant_id, user_id, amount, placed_at) VALUES (${t}, 2, 1, '2024-06-05 00:00:00+00') RETURNING order_id) SELECT count(*) FROM ins`, { unsupported: '0A000' }), [1, 2]),
    ...perTenant((t) => s('writable cte, coordinator default', `WITH ins AS (INSERT INTO app."AuditLog" ("TenantId", "Action", "At") SELECT "TenantId", 'again', "At" FROM app."AuditLog" WHERE "TenantId" = ${t} RETURNING 1) SELECT count(*) FROM ins`, { unsupported: '0A000' }), [3]),
    // Column references qualified by schema and table, in router statements.
    ...perTenant((t) => s('schema-qualified columns', `SELECT app.orders.order_id, app.orders.amount, public.plans.name FROM app.orders JOIN public.plans ON public.plans.plan_id = app.orders.qty WHERE app.orders.tenant_id = ${t}`), [1, 8]),
    ...perTenant((t) => s('schema-qualified columns', `UPDATE app.users SET display_name = app.users.email WHERE app.users.tenant_id = $1 AND app.users.display_name IS NULL RETURNING app.users.user_id, app.users.display_name`, { params: [t] }), [2, 5]),
    ...perTenant((t) => s('schema-qualified columns', `DELETE FROM app."AuditLog" WHERE app."AuditLog"."TenantId" = ${t} AND app."AuditLog"."Action" = 'never' RETURNING app."AuditLog".*`), [3]),
    ...perTenant((t) => s('writable cte', `WITH del AS (DELETE FROM app.orders WHERE tenant_id = $1 AND amount < $2 RETURNING *) SELECT status, count(*) FROM del GROUP BY status`, { params: [t, 5] })),
    // INSERT … SELECT within one tenant (ORDER BY: the rows take sequence values in the order they come)
    ...perTenant((t) => s('insert select', `INSERT INTO app."AuditLog" ("TenantId", "Action", "At", "Detail") SELECT tenant_id, 'order ' || order_id, placed_at, jsonb_build_object('amount', amount) FROM app.orders WHERE tenant_id = ${t} AND status = 'paid' ORDER BY order_id RETURNING "TenantId", "Action", "Detail"`)),
    ...perTenant((t) => s('insert select', `INSERT INTO app.orders (tenant_id, user_id, amount, placed_at, status) SELECT tenant_id, user_id, 1, '2024-07-01 00:00:00+00', 'copy' FROM app.users WHERE tenant_id = ${t} AND user_id <= 2 ORDER BY user_id`)),
    // multi-row INSERTs: RETURNING in VALUES order, within and across shards
    ordered('multi-row insert one tenant', `INSERT INTO app.orders (tenant_id, user_id, amount, placed_at) VALUES (4, 1, 3, '2024-08-01 00:00:00+00'), (4, 2, 1, '2024-08-02 00:00:00+00'), (4, 1, 2, '2024-08-03 00:00:00+00') RETURNING order_id, amount`),
    ordered(
      'multi-row insert across shards',
      `INSERT INTO app.orders (tenant_id, order_id, user_id, amount, placed_at) VALUES (1, 90001, 1, 1, '2024-09-01 00:00:00+00'), (2, 90002, 1, 2, '2024-09-01 00:00:00+00'), (3, 90003, 1, 3, '2024-09-01 00:00:00+00'), (1, 90004, 1, 4, '2024-09-01 00:00:00+00'), (7, 90005, 1, 5, '2024-09-01 00:00:00+00'), (12, 90006, 1, 6, '2024-09-01 00:00:00+00'), (2, 90007, 1, 7, '2024-09-01 00:00:00+00') RETURNING tenant_id, order_id, amount`,
      { multi: true },
    ),
    ordered('multi-row insert across shards serial', `INSERT INTO app.orders (tenant_id, user_id, amount, placed_at) VALUES (9, 1, 10, '2024-09-02 00:00:00+00'), (6, 1, 20, '2024-09-02 00:00:00+00'), (9, 2, 30, '2024-09-02 00:00:00+00'), (10, 1, 40, '2024-09-02 00:00:00+00') RETURNING *`, { multi: true }),
    ordered('multi-row insert across shards identity', `INSERT INTO app."AuditLog" ("TenantId", "Action", "At") VALUES (5, 'a', '2024-09-03 00:00:00+00'), (11, 'b', '2024-09-03 00:00:00+00'), (5, 'c', '2024-09-03 00:00:00+00'), (2, 'd', '2024-09-03 00:00:00+00') RETURNING "TenantId", "Id", "Action"`, { multi: true }),
    ordered('multi-row insert params', `INSERT INTO app.users (tenant_id, user_id, email, score, born, uid) VALUES ($1, $2, $3, $4, $5, $6), ($7, $8, $9, $10, $11, $12) RETURNING tenant_id, user_id, score, born, uid`, {
      params: [12, 50, 'p1@x', '1.5', '2000-02-29', uuidOf(12, 50), 3, 50, 'p2@x', null, null, null],
      multi: true,
    }),
    ordered('multi-row on conflict across shards', `INSERT INTO app.users (tenant_id, user_id, email) VALUES (8, 1, 'z@x'), (1, 1, 'z@x'), (6, 77, 'new@x') ON CONFLICT (tenant_id, user_id) DO UPDATE SET email = EXCLUDED.email || '.' || app.users.tenant_id RETURNING tenant_id, user_id, email`, { multi: true }),
    // errors: the same SQLSTATE as PostgreSQL
    ...perTenant((t) => s('error', `INSERT INTO app.users (tenant_id, user_id, email) VALUES (${t}, 1, 'again')`), [1, 2]),
    ...perTenant((t) => s('error', `UPDATE app.orders SET amount = amount / 0 WHERE tenant_id = ${t}`), [3]),
    ...perTenant((t) => s('error', `INSERT INTO app.orders (tenant_id, user_id, amount, placed_at) VALUES (${t}, 1, 1e20, now())`), [5]),
    ...perTenant((t) => s('error', `SELECT (settings->>'theme')::int FROM app.tenants WHERE tenant_id = ${t}`), [8]),
    ...perTenant((t) => s('error param', `SELECT * FROM app.users WHERE tenant_id = $1 AND uid = $2`, { params: [t, 'not-a-uuid'] }), [8]),
    // documented as unsupported: the Citus error
    s('unsupported', `UPDATE app.orders SET tenant_id = 99 WHERE tenant_id = 1`, { unsupported: '0A000' }),
  ];
}

export function EDGE_MULTI(): EdgeStatement[] {
  return [
    s('multi-shard update returning', `UPDATE app.orders SET status = 'archived' WHERE placed_at < '2024-01-15 00:00:00+00' RETURNING tenant_id, order_id, status`, { multi: true }),
    s('multi-shard update from reference', `UPDATE app.orders o SET amount = o.amount + 1 FROM "Currencies" c WHERE c."Code" = o.currency AND c."Code" = 'GBP' RETURNING o.tenant_id, o.order_id, o.amount, o.gross`, { multi: true }),
    s('multi-shard delete using', `DELETE FROM app.orders o USING plans p WHERE p.plan_id = o.qty AND p.price > 500 RETURNING o.tenant_id, o.order_id`, { multi: true }),
    s('multi-shard update in list', `UPDATE app.users SET score = score * 2 WHERE tenant_id IN (1, 5, 9) AND score IS NOT NULL RETURNING tenant_id, user_id, score`, { multi: true }),
    s('multi-shard update any param', `UPDATE app.tenants SET active = NOT active WHERE tenant_id = ANY ($1::bigint[]) RETURNING tenant_id, active`, { params: [[2, 3, 10]], multi: true }),
    s('multi-shard delete param', `DELETE FROM app."AuditLog" WHERE "At" < $1 RETURNING "TenantId", "Id"`, { params: ['2024-02-03 00:00:00+00'], multi: true }),
    s('multi-shard update generated', `UPDATE app.orders SET amount = amount * 2 WHERE status = 'copy' RETURNING tenant_id, order_id, amount, gross`, { multi: true }),
    // Documented: a data-modifying WITH that does not route to one shard group.
    s('multi-shard writable cte', `WITH d AS (DELETE FROM app.orders WHERE status = 'archived' RETURNING tenant_id) SELECT count(*) FROM d`, { multi: true, unsupported: '0A000' }),
    s('multi-shard count', `SELECT tenant_id, count(*), sum(amount), sum(gross) FROM app.orders GROUP BY tenant_id`, { multi: true }),
    s('multi-shard count', `SELECT count(*), count(display_name), sum(score) FROM app.users`, { multi: true }),
  ];
}
