/**
 * The statements of differential-edge.test.ts, by phase. Each phase is a
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
const WHOLE_ROW: EdgeStatement['known'] = { field: 'types', why: 'a whole-row value carries the type OID of the shard row type, not the coordinator table row type' };

/** Tenants the router statements pin to (both workers hold some of them). */
const SOME = [1, 2, 3, 5, 8, 11];

const s = (kind: string, sql: string, extra: Partial<EdgeStatement> = {}): EdgeStatement => ({ kind, sql, ...extra });
const ordered = (kind: string, sql: string, extra: Partial<EdgeStatement> = {}): EdgeStatement => ({ kind, sql, ordered: true, ...extra });

/** `f(t)` for each of the tenants: the simple protocol. */
function perTenant(f: (t: number) => EdgeStatement | EdgeStatement[], tenants = SOME): EdgeStatement[] {
  return tenants.flatMap((t) => f(t));
}

const uuidOf = (t: number, u: number): string => `${(t * 100 + u).toString(16).padStart(8, '0')}-0000-4000-8000-${String(t * 1000 + u).padStart(12, '0')}`;

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

/** Distribution-key comparisons of other types and forms, cursors, locking, MERGE, views, sequences. */
export function EDGE_MORE(): EdgeStatement[] {
  return [
    // the distribution column compared with values of other types and spellings
    s('key forms', `SELECT count(*) FROM app.orders WHERE tenant_id = 3.0`),
    s('key forms', `SELECT count(*) FROM app.orders WHERE tenant_id = 3.5`),
    s('key forms', `SELECT count(*) FROM app.orders WHERE tenant_id = 3::int`),
    s('key forms', `SELECT count(*) FROM app.orders WHERE tenant_id = '3'`),
    s('key forms', `SELECT count(*) FROM app.orders WHERE tenant_id = 3::numeric`),
    s('key forms', `SELECT count(*) FROM app.orders WHERE 3 = tenant_id`),
    s('key forms', `SELECT count(*) FROM app.orders WHERE tenant_id = $1`, { params: [' 7 '] }),
    s('key forms', `SELECT count(*) FROM app.orders WHERE tenant_id = $1`, { params: ['+7'] }),
    s('key forms', `SELECT count(*) FROM app.orders WHERE tenant_id = $1`, { params: ['007'] }),
    s('key forms', `SELECT count(*) FROM app.orders WHERE tenant_id = $1`, { params: [BigInt(9)] }),
    s('key forms', `SELECT count(*) FROM app.orders WHERE tenant_id = $1`, { params: [null] }),
    s('key forms', `SELECT count(*) FROM app.orders WHERE tenant_id = $1::numeric`, { params: ['4.0'] }),
    s('key forms', `SELECT count(*) FROM app.orders WHERE tenant_id IN ($1, $2)`, { params: [6, 6] }),
    s('key forms', `SELECT tenant_id, count(*) FROM app.orders WHERE tenant_id IN ($1, $2) GROUP BY tenant_id`, { params: [6, 10], multi: true }),
    s('key forms', `SELECT tenant_id, count(*) FROM app.orders WHERE tenant_id = 1 OR tenant_id = 2 GROUP BY tenant_id`, { multi: true }),
    s('key forms', `SELECT tenant_id, count(*) FROM app.orders WHERE tenant_id BETWEEN 2 AND 4 GROUP BY tenant_id`, { multi: true }),
    s('key forms', `SELECT count(*) FROM app.orders WHERE tenant_id = 2 AND tenant_id = 3`),
    s('key forms', `SELECT count(*) FROM app.orders WHERE tenant_id = 99999`),
    s('key forms', `SELECT count(*) FROM app.orders WHERE tenant_id = -1`),
    s('key forms', `SELECT count(*) FROM app.orders WHERE tenant_id = 9223372036854775807`),
    s('key forms', `SELECT count(*) FROM app.orders WHERE tenant_id = 9223372036854775808`),
    // LIMIT/OFFSET as parameters
    ordered('limit params', `SELECT order_id FROM app.orders WHERE tenant_id = $1 ORDER BY order_id LIMIT $2 OFFSET $3`, { params: [8, 2, 1] }),
    ordered('limit params', `SELECT tenant_id, order_id FROM app.orders ORDER BY tenant_id, order_id LIMIT $1 OFFSET $2`, { params: [4, 3], multi: true }),
    // locking reads and multi-column assignment
    ...perTenant((t) => s('locking', `SELECT user_id FROM app.users WHERE tenant_id = ${t} ORDER BY user_id FOR UPDATE`, { ordered: true }), [2, 8]),
    ...perTenant((t) => s('locking', `SELECT user_id FROM app.users WHERE tenant_id = ${t} FOR SHARE SKIP LOCKED`), [3]),
    ...perTenant((t) => s('multi-column set', `UPDATE app.users SET (display_name, score) = (SELECT 'n' || count(*), sum(amount) FROM app.orders o WHERE o.tenant_id = ${t} AND o.user_id = app.users.user_id) WHERE tenant_id = ${t} AND user_id = 2 RETURNING display_name, score`), [4, 9]),
    // Documented: cursors over distributed tables, and MERGE into them.
    s('cursor', `DECLARE c1 CURSOR WITH HOLD FOR SELECT order_id, amount FROM app.orders WHERE tenant_id = 2 ORDER BY order_id`, { unsupported: '0A000' }),
    ...perTenant((t) =>
      s('merge', `MERGE INTO app.users u USING (VALUES (${t}::bigint, 1::bigint, 'm1@x'), (${t}, 60, 'm60@x')) AS v(t, id, e) ON u.tenant_id = v.t AND u.user_id = v.id AND u.tenant_id = ${t} WHEN MATCHED THEN UPDATE SET display_name = 'merged' WHEN NOT MATCHED THEN INSERT (tenant_id, user_id, email) VALUES (v.t, v.id, v.e)`, { unsupported: '0A000' }),
    [6]),
    // sequences after INSERTs evaluated on the coordinator
    s('sequence', `INSERT INTO app.orders (tenant_id, user_id, amount, placed_at) VALUES (7, 1, 1, '2024-10-01 00:00:00+00')`),
    s('sequence', `SELECT currval('app.orders_order_id_seq')`),
    s('sequence', `SELECT lastval()`),
    s('default values', `INSERT INTO app."AuditLog" DEFAULT VALUES`),
    // views and temporary tables over distributed tables
    // Documented: views over distributed tables.
    s('view', `CREATE VIEW app.paid_orders AS SELECT tenant_id, order_id, amount, gross FROM app.orders WHERE status = 'paid'`, { unsupported: '0A000' }),
    s('temp table', `CREATE TEMP TABLE wanted (tenant_id bigint, user_id bigint)`),
    s('temp table', `INSERT INTO wanted VALUES (1, 1), (2, 2), (3, 1)`),
    s('temp table', `SELECT u.tenant_id, u.user_id, u.email FROM app.users u JOIN wanted w USING (tenant_id, user_id)`, { multi: true }),
    s('temp table', `SELECT u.user_id, u.email FROM app.users u JOIN wanted w USING (tenant_id, user_id) WHERE u.tenant_id = 2`),
    s('temp table', `SELECT u.user_id FROM app.users u WHERE u.tenant_id = $1 AND u.user_id IN (SELECT user_id FROM wanted WHERE tenant_id = $1)`, { params: [3] }),
    s('temp table', `SELECT w.tenant_id, (SELECT count(*) FROM app.orders o WHERE o.tenant_id = w.tenant_id) FROM wanted w`, { multi: true }),
    s('temp table', `UPDATE app.users u SET score = 1 FROM wanted w WHERE w.tenant_id = u.tenant_id AND w.user_id = u.user_id AND u.tenant_id = 2`, { unsupported: '0A000' }),
    s('local table', `CREATE TABLE public.vip (tenant_id bigint PRIMARY KEY, note text)`),
    s('local table', `INSERT INTO vip VALUES (2, 'gold'), (5, 'silver'), (77, 'none')`),
    s('local table', `SELECT t.tenant_id, t.name, v.note FROM app.tenants t JOIN vip v USING (tenant_id) WHERE t.tenant_id = 5`),
    s('local table', `SELECT t.tenant_id, v.note FROM app.tenants t LEFT JOIN vip v USING (tenant_id)`, { multi: true }),
    s('local table', `SELECT v.tenant_id, t.name FROM vip v LEFT JOIN app.tenants t USING (tenant_id)`, { multi: true }),
    s('temp table', `DROP TABLE wanted`),
    // set operations and TABLE
    s('set operations', `SELECT user_id FROM app.users WHERE tenant_id = 1 UNION ALL SELECT user_id FROM app.users WHERE tenant_id = 2`, { multi: true }),
    s('set operations', `SELECT user_id FROM app.users WHERE tenant_id = 3 INTERSECT SELECT user_id FROM app.orders WHERE tenant_id = 3`),
    s('set operations', `TABLE "Currencies"`),
    s('set operations', `TABLE app.tenants`, { multi: true }),
    s('values', `SELECT v.x, t.name FROM (VALUES (1), (2), (5)) v(x) JOIN app.tenants t ON t.tenant_id = v.x`, { multi: true }),
    s('generate_series', `SELECT g, count(o.order_id) FROM generate_series(1, 5) g LEFT JOIN app.orders o ON o.tenant_id = 11 AND o.qty = g GROUP BY g`),
    s('jsonpath', `SELECT tenant_id, jsonb_path_query_array(settings, '$.* ? (@.type() == "number")') FROM app.tenants WHERE tenant_id = 12`),
  ];
}

/** Parameters of awkward values and types, prepared statements reused across shards, INSERT … SELECT variants. */
export function EDGE_PARAMS(): EdgeStatement[] {
  const odd = `O'Brien \\ "quoted" ünï 中文 😀\nline2\ttab`;
  return [
    ...perTenant((t) => s('named across shards', `SELECT user_id, email, score FROM app.users WHERE tenant_id = $1 AND born >= $2::date ORDER BY user_id`, { params: [t, '1970-01-01'], name: 'edge_users_born', ordered: true }), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
    ...perTenant((t) => s('named across shards', `UPDATE app.users SET score = score + $2 WHERE tenant_id = $1 AND uid = ANY ($3::uuid[]) RETURNING user_id, score`, { params: [t, '0.125', [uuidOf(t, 1), uuidOf(t, 3)]], name: 'edge_bump_uids' }), [1, 4, 7, 10]),
    ...perTenant((t) => s('odd text', `UPDATE app.users SET display_name = $2 WHERE tenant_id = $1 AND user_id = 1 RETURNING display_name, length(display_name), octet_length(display_name)`, { params: [t, odd] }), [2, 6]),
    s('odd text simple', `UPDATE app.users SET display_name = E'tab\\there ''q'' \\\\ back' WHERE tenant_id = 3 AND user_id = 1 RETURNING display_name`),
    ordered('odd text multi-row', `INSERT INTO app."AuditLog" ("TenantId", "Id", "Action", "At", "Detail") VALUES ($1, 9001, $2, $3, $4), ($5, 9002, $2, $3, $6) RETURNING "TenantId", "Action", "At", "Detail"`, {
      params: [1, odd, '2024-11-01T10:00:00+05:30', { k: odd, n: 1.5e300, a: [true, null] }, 2, JSON.stringify([odd])],
      multi: true,
    }),
    ordered('date param multi-row', `INSERT INTO app."AuditLog" ("TenantId", "Id", "Action", "At") VALUES ($1, 9003, 'd', $2), ($3, 9004, 'd', $2) RETURNING "TenantId", "At"`, { params: [4, new Date(Date.UTC(2024, 10, 2, 3, 4, 5, 678)), 9], multi: true }),
    ordered('bool and interval params', `SELECT tenant_id, active = $2, $3::interval * 2 FROM app.tenants WHERE tenant_id = $1`, { params: [5, 'yes', 'P1DT2H'] }),
    ...perTenant((t) => s('numeric params', `SELECT amount + $2, amount * $3::numeric(20,10), round(amount / $2, 4) FROM app.orders WHERE tenant_id = $1`, { params: [t, '0.0000001', '3.3333333333'] }), [8]),
    s('numeric overflow param', `UPDATE app.orders SET amount = $2 WHERE tenant_id = $1 AND order_id = 90001`, { params: [1, '12345678901234567890.5'] }),
    s('bytea param', `UPDATE app.users SET avatar = $2 WHERE tenant_id = $1 AND user_id = 2 RETURNING avatar`, { params: [7, Buffer.from('\x00\x01hello\xff', 'latin1')] }),
    // Documented: binary-format parameters (node-postgres sends a Buffer so) in an INSERT whose rows go to several shards.
    ordered('bytea param multi-row', `INSERT INTO app.users (tenant_id, user_id, email, avatar) VALUES ($1, 70, 'b1@x', $2), ($3, 70, 'b2@x', $2) RETURNING tenant_id, avatar`, { params: [1, Buffer.from([1, 2, 3]), 2], multi: true, unsupported: '0A000' }),
    ordered('bytea param multi-row', `INSERT INTO app.users (tenant_id, user_id, email, avatar) VALUES ($1, 70, 'b1@x', $2), ($3, 70, 'b2@x', $2) RETURNING tenant_id, avatar`, { params: [1, '\\x010203', 2], multi: true }),
    // multi-row INSERT across shards with ON CONFLICT DO NOTHING: with rows skipped, which of a shard's rows came back is
    // not known, so the rows come in shard order (the same rows).
    ordered('on conflict do nothing across shards', `INSERT INTO app.users (tenant_id, user_id, email) VALUES (5, 1, 'x1@x'), (1, 80, 'x80@x'), (11, 1, 'x2@x'), (2, 80, 'x81@x'), (12, 80, 'x82@x') ON CONFLICT DO NOTHING RETURNING tenant_id, user_id`, {
      multi: true,
      known: { field: 'order', why: 'RETURNING rows of a multi-shard INSERT whose ON CONFLICT skipped rows come in shard order, not VALUES order' },
    }),
    ordered('on conflict do nothing across shards', `INSERT INTO app.users (tenant_id, user_id, email) VALUES (5, 81, 'x1@x'), (1, 81, 'x80@x'), (11, 81, 'x2@x') ON CONFLICT DO NOTHING RETURNING tenant_id, user_id`, { multi: true }),
    // INSERT … SELECT within one tenant and from reference tables
    ...perTenant((t) => s('insert select on conflict', `INSERT INTO app.users (tenant_id, user_id, email, score) SELECT tenant_id, user_id, email, 99 FROM app.users WHERE tenant_id = ${t} ON CONFLICT (tenant_id, user_id) DO UPDATE SET score = EXCLUDED.score - 1 RETURNING user_id, score`), [3, 9]),
    ...perTenant((t) => s('insert select reference', `INSERT INTO app.orders (tenant_id, order_id, user_id, amount, currency, placed_at) SELECT ${t}, 95000 + row_number() OVER (ORDER BY "Code"), 1, "Rate" * 100, "Code", '2024-12-01 00:00:00+00' FROM "Currencies" RETURNING order_id, amount, currency, gross`), [6]),
    s('insert select across tenants', `INSERT INTO app."AuditLog" ("TenantId", "Id", "Action", "At") SELECT tenant_id, 9500 + tenant_id, 'sweep', '2024-12-02 00:00:00+00' FROM app.tenants WHERE plan_id > 1`, { multi: true }),
    s('insert select across tenants', `SELECT "TenantId", "Id" FROM app."AuditLog" WHERE "Action" = 'sweep'`, { multi: true }),
    // errors: PostgreSQL's SQLSTATE, whichever way the statement is planned
    s('error key param', `SELECT count(*) FROM app.orders WHERE tenant_id = $1`, { params: ['abc'] }),
    s('error key param', `SELECT count(*) FROM app.orders WHERE tenant_id = $1`, { params: ['9223372036854775808'] }),
    s('error key param', `UPDATE app.orders SET qty = 2 WHERE tenant_id = $1`, { params: ['1.5'] }),
    s('error key param', `INSERT INTO app.users (tenant_id, user_id, email) VALUES ($1, 1, 'e')`, { params: [null] }),
    s('error key param', `INSERT INTO app.users (tenant_id, user_id, email) VALUES ($1, 1, 'e')`, { params: ['x'] }),
    s('error multi-row', `INSERT INTO app.users (tenant_id, user_id, email) VALUES (1, 500, 'ok@x'), (2, 1, 'dup@x'), (3, 500, 'fine@x')`, { multi: true }),
    s('error multi-row', `INSERT INTO app.users (tenant_id, user_id, email) VALUES (1, 500, 'ok@x'), (2, 1, 'dup@x'), (3, 500, NULL)`, {
      multi: true,
      known: { field: 'error', why: 'rows failing on several shards: the shards run in parallel and the first error to arrive is the answer, not the first row\'s' },
    }),
    s('error multi-row', `INSERT INTO app.users (tenant_id, user_id, email) VALUES (1, 501, 'ok@x'), (2, 501, 'also@x'), (NULL, 501, 'n@x')`, { multi: true }),
    s('error multi-shard', `SELECT tenant_id, 1 / (qty - qty) FROM app.orders`, { multi: true }),
    s('error multi-shard', `UPDATE app.orders SET qty = qty / 0 WHERE amount > 100000`, { multi: true }),
    s('error multi-shard', `UPDATE app.users SET email = NULL WHERE tenant_id IN (4, 5)`, { multi: true }),
    s('error router', `SELECT 'x'::int FROM app.tenants WHERE tenant_id = 4`),
    s('error router', `INSERT INTO app.users (tenant_id, user_id, email, born) VALUES (4, 600, 'd@x', '2024-02-30')`),
    s('error router', `SELECT nosuchcolumn FROM app.tenants WHERE tenant_id = 4`),
    s('error router', `SELECT * FROM app.nosuchtable WHERE tenant_id = 4`),
    s('error router', `SELECT count(*) FROM app.tenants WHERE tenant_id = 4 GROUP BY nosuch`),
    s('error extended', `SELECT $1::int + count(*) FROM app.orders WHERE tenant_id = $2`, { params: ['1.5', 3] }),
    s('after errors', `SELECT count(*) FROM app.users`, { multi: true }),
  ];
}

/** Settings inside transaction blocks: SET LOCAL ends with the block, a SET in a rolled-back block is undone. */
export function EDGE_BLOCK_SETTINGS(): EdgeStatement[] {
  const probe = (kind: string): EdgeStatement[] => [
    s(kind, `SELECT count(*) FROM orders WHERE tenant_id = 1`),
    s(kind, `SELECT current_setting('search_path'), current_setting('TimeZone')`),
    s(kind, `SELECT placed_at FROM app.orders WHERE tenant_id = 3`),
    s(kind, `SELECT placed_at FROM app.orders WHERE tenant_id = $1`, { params: [4] }),
  ];
  return [
    s('set local', `BEGIN`),
    s('set local', `SET LOCAL search_path = app, public`),
    s('set local', `SET LOCAL TimeZone = 'Asia/Tokyo'`),
    ...probe('inside block'),
    s('set local', `COMMIT`),
    ...probe('after set local'),
    s('set rolled back', `BEGIN`),
    s('set rolled back', `SET search_path = app, public`),
    s('set rolled back', `SET TimeZone = 'America/Sao_Paulo'`),
    ...probe('inside block'),
    s('set rolled back', `ROLLBACK`),
    ...probe('after rollback'),
    s('set in savepoint', `BEGIN`),
    s('set in savepoint', `SAVEPOINT a`),
    s('set in savepoint', `SET search_path = app, public`),
    s('set in savepoint', `SET TimeZone = 'Europe/Helsinki'`),
    s('set in savepoint', `ROLLBACK TO SAVEPOINT a`),
    ...probe('after rollback to savepoint'),
    s('set in savepoint', `COMMIT`),
    s('set committed', `BEGIN`),
    s('set committed', `SET TimeZone = 'Australia/Adelaide'`),
    s('set committed', `COMMIT`),
    ...probe('after committed set'),
    s('reset all', `RESET ALL`),
    ...probe('after reset all'),
    // SET LOCAL outside a block does nothing (a warning)
    s('set local outside a block', `SET LOCAL search_path = app, public`),
    s('set local outside a block', `SET LOCAL TimeZone = 'Asia/Tokyo'`),
    ...probe('after set local outside a block'),
  ];
}

/** Multi-shard query shapes that need a merge step or the coordinator, and prepared statements across search_path changes. */
export function EDGE_SHAPES(): EdgeStatement[] {
  const m = { multi: true };
  return [
    s('multi-shard locking', `SELECT tenant_id FROM app.tenants WHERE active FOR UPDATE`, m),
    s('ordered-set aggregates', `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY amount), percentile_disc(0.9) WITHIN GROUP (ORDER BY qty), mode() WITHIN GROUP (ORDER BY currency) FROM app.orders`, m),
    s('ordered-set aggregates', `SELECT status, percentile_cont(0.25) WITHIN GROUP (ORDER BY amount) FROM app.orders GROUP BY status`, m),
    s('distinct aggregates', `SELECT count(DISTINCT currency), count(DISTINCT (currency, status)), array_agg(DISTINCT status ORDER BY status) FROM app.orders`, m),
    s('distinct aggregates', `SELECT currency, count(DISTINCT user_id), sum(DISTINCT qty) FROM app.orders GROUP BY currency`, m),
    s('window partition by key', `SELECT tenant_id, order_id, row_number() OVER (PARTITION BY tenant_id ORDER BY order_id), sum(amount) OVER (PARTITION BY tenant_id) FROM app.orders`, m),
    ordered('window across tenants', `SELECT tenant_id, order_id, dense_rank() OVER (ORDER BY amount DESC, tenant_id, order_id) AS r FROM app.orders ORDER BY r LIMIT 10`, m),
    s('window across tenants', `SELECT status, order_id, tenant_id, lag(amount) OVER (PARTITION BY status ORDER BY tenant_id, order_id) FROM app.orders`, m),
    s('recursive cte across shards', `WITH RECURSIVE r(t, depth) AS (SELECT tenant_id, 1 FROM app.tenants WHERE tenant_id <= 3 UNION ALL SELECT t + 3, depth + 1 FROM r WHERE depth < 3) SELECT r.t, r.depth, count(u.user_id) FROM r LEFT JOIN app.users u ON u.tenant_id = r.t GROUP BY r.t, r.depth`, m),
    s('correlated across shards', `SELECT t.tenant_id, (SELECT max(o.amount) FROM app.orders o WHERE o.tenant_id = t.tenant_id AND o.currency = 'EUR') FROM app.tenants t`, m),
    s('correlated across shards', `SELECT p.name, (SELECT count(*) FROM app.tenants t WHERE t.plan_id = p.plan_id) FROM plans p`, m),
    s('not in with nulls', `SELECT tenant_id, user_id FROM app.users WHERE score NOT IN (SELECT score FROM app.users WHERE tenant_id = 2)`, m),
    s('not in with nulls', `SELECT tenant_id, user_id FROM app.users WHERE user_id NOT IN (SELECT user_id FROM app.orders WHERE tenant_id = 2 AND weight > 50)`, m),
    s('in subquery across shards', `SELECT tenant_id, name FROM app.tenants WHERE tenant_id IN (SELECT tenant_id FROM app.orders WHERE amount > 1500)`, m),
    s('lateral across shards', `SELECT t.tenant_id, x.order_id FROM app.tenants t CROSS JOIN LATERAL (SELECT order_id FROM app.orders o WHERE o.tenant_id = t.tenant_id ORDER BY amount DESC, order_id LIMIT 1) x`, m),
    s('having across shards', `SELECT currency, sum(amount) AS s FROM app.orders GROUP BY currency HAVING sum(amount) > 10000 AND count(*) > 3`, m),
    ordered('distinct across shards', `SELECT DISTINCT status, currency FROM app.orders ORDER BY status, currency`, m),
    ordered('union across shards', `SELECT tenant_id FROM app.users WHERE score > 100 UNION SELECT tenant_id FROM app.orders WHERE amount > 1000 ORDER BY 1`, m),
    s('grouping by expression', `SELECT date_trunc('month', placed_at) AS month, count(*), sum(qty) FROM app.orders GROUP BY 1`, m),
    s('full join across shards', `SELECT u.tenant_id, u.user_id, o.order_id FROM app.users u FULL JOIN app.orders o ON o.tenant_id = u.tenant_id AND o.user_id = u.user_id AND o.amount > 1000`, m),
    s('non-co-located join', `SELECT u.tenant_id, o.tenant_id FROM app.users u JOIN app.orders o ON o.user_id = u.user_id AND o.tenant_id <> u.tenant_id WHERE u.tenant_id = 1 AND o.tenant_id = 2`, m),
    // a named prepared statement whose table the search_path picks (PostgreSQL plans it again after a change)
    s('search_path', `SET search_path = app, public`),
    s('prepared across search_path', `SELECT count(*) FROM orders WHERE tenant_id = $1`, { params: [1], name: 'edge_sp_count' }),
    s('prepared across search_path', `SELECT count(*) FROM users WHERE tenant_id = $1`, { params: [2] }),
    s('search_path', `RESET search_path`),
    s('prepared across search_path', `SELECT count(*) FROM orders WHERE tenant_id = $1`, { params: [1], name: 'edge_sp_count' }),
    s('prepared across search_path', `SELECT count(*) FROM users WHERE tenant_id = $1`, { params: [2] }),
    s('search_path', `BEGIN`),
    s('search_path', `SET LOCAL search_path = app`),
    s('prepared across search_path', `SELECT count(*) FROM users WHERE tenant_id = $1`, { params: [2] }),
    s('search_path', `COMMIT`),
    s('prepared across search_path', `SELECT count(*) FROM users WHERE tenant_id = $1`, { params: [2] }),
  ];
}

/** Writes to reference tables (every placement, one answer) and reads right after. */
export function EDGE_REFERENCE(): EdgeStatement[] {
  return [
    ordered('reference insert', `INSERT INTO plans (plan_id, name, price) VALUES (10, 'trial', 0.99), (11, 'edu', 5) RETURNING *, price * 2 AS twice`),
    s('reference on conflict', `INSERT INTO plans AS p (plan_id, name, price) VALUES (10, 'trial', 1.49) ON CONFLICT (plan_id) DO UPDATE SET price = EXCLUDED.price, features = p.features || '{x}' WHERE p.price < EXCLUDED.price RETURNING plan_id, price, features`),
    s('reference on conflict', `INSERT INTO plans VALUES (11, 'edu', 5) ON CONFLICT DO NOTHING RETURNING *`),
    s('reference update', `UPDATE "Currencies" c SET "Rate" = c."Rate" * 1.01 FROM plans p WHERE p.plan_id = 2 AND c."Code" <> 'EUR' RETURNING c."Code", c."Rate"`),
    s('reference update param', `UPDATE plans SET name = $2 WHERE plan_id = $1 RETURNING plan_id, name`, { params: [11, 'education'] }),
    s('reference writable cte', `WITH d AS (DELETE FROM plans WHERE plan_id = 11 RETURNING *) SELECT count(*), max(name) FROM d`),
    s('reference insert select', `INSERT INTO plans (plan_id, name, price) SELECT plan_id + 100, name || ' (old)', price FROM plans WHERE plan_id < 5 RETURNING plan_id, name`),
    s('reference delete', `DELETE FROM plans WHERE plan_id > 100 RETURNING plan_id`),
    s('reference error', `INSERT INTO plans (plan_id, name, price) VALUES (1, 'dup', 0)`),
    s('reference error', `UPDATE "Currencies" SET "Rate" = 1e10 WHERE "Code" = 'USD'`),
    s('reference read', `SELECT * FROM plans`),
    ...perTenant((t) => s('reference join after writes', `SELECT t.tenant_id, p.name, p.price FROM app.tenants t JOIN plans p USING (plan_id) WHERE t.tenant_id = ${t}`), [1, 2, 5, 8]),
    s('reference join after writes', `SELECT p.name, count(*) FROM app.tenants t JOIN plans p USING (plan_id) GROUP BY p.name`, { multi: true }),
    s('reference in block', `BEGIN`),
    s('reference in block', `UPDATE plans SET price = price + 1 WHERE plan_id = 10 RETURNING price`),
    s('reference in block', `SELECT price FROM plans WHERE plan_id = 10`),
    ...perTenant((t) => s('reference in block', `SELECT t.tenant_id, p.price FROM app.tenants t JOIN plans p ON p.plan_id = 10 WHERE t.tenant_id = ${t}`), [1, 2]),
    s('reference in block', `ROLLBACK`),
    s('reference in block', `SELECT price FROM plans WHERE plan_id = 10`),
  ];
}

/**
 * The router reads again through the extended protocol: each literal
 * tenant key (`tenant_id = 5`) becomes `$1`, so the shard is picked at Bind;
 * every other statement is named (prepared once, bound per tenant).
 */
export function EDGE_READS_EXTENDED(): EdgeStatement[] {
  return extended(EDGE_READS());
}

/** The router writes again through the extended protocol, as EDGE_READS_EXTENDED. */
export function EDGE_WRITES_EXTENDED(): EdgeStatement[] {
  return extended(EDGE_WRITES());
}

function extended(statements: EdgeStatement[]): EdgeStatement[] {
  const out: EdgeStatement[] = [];
  let n = 0;
  for (const st of statements) {
    if (st.params || st.sql.includes('$')) continue;
    const keys = [...st.sql.matchAll(/tenant_id = (\d+)/g)].map((m) => m[1]);
    if (keys.length === 0 || keys.some((k) => k !== keys[0])) continue;
    const sql = st.sql.replace(/tenant_id = \d+/g, 'tenant_id = $1');
    out.push({ ...st, kind: `${st.kind} (extended)`, sql, params: [Number(keys[0])], ...(n++ % 2 === 0 ? { name: `edge_x_${hashOf(sql)}` } : {}) });
  }
  return out;
}

function hashOf(text: string): string {
  let h = 0;
  for (let i = 0; i < text.length; i++) h = (Math.imul(h, 31) + text.charCodeAt(i)) | 0;
  return (h >>> 0).toString(36);
}

/** Transaction blocks over both workers: the corners above inside a block, reading their own writes. */
export function EDGE_BLOCKS(): EdgeStatement[] {
  const m = { multi: true };
  return [
    s('block', `BEGIN`),
    ordered('block', `INSERT INTO app.orders (tenant_id, user_id, amount, placed_at) VALUES (3, 1, 11, '2025-01-01 00:00:00+00'), (8, 1, 12, '2025-01-01 00:00:00+00'), (3, 2, 13, '2025-01-01 00:00:00+00'), (1, 1, 14, '2025-01-01 00:00:00+00') RETURNING tenant_id, order_id, gross`, m),
    ordered('block', `INSERT INTO app."AuditLog" ("TenantId", "Action", "At") VALUES (8, 'blk', '2025-01-01 00:00:00+00'), (3, 'blk', '2025-01-01 00:00:00+00') RETURNING "TenantId", "Id"`, m),
    s('block', `SELECT tenant_id, count(*), sum(gross) FROM app.orders WHERE placed_at >= '2025-01-01' GROUP BY tenant_id`, m),
    s('block', `WITH ins AS (INSERT INTO app.orders (tenant_id, order_id, user_id, amount, placed_at) VALUES ($1, 99100, 1, 5, '2025-01-02 00:00:00+00') RETURNING *) SELECT ins.order_id, (SELECT count(*) FROM app.orders WHERE tenant_id = $1) FROM ins`, { params: [8] }),
    s('block', `SAVEPOINT s1`),
    s('block', `UPDATE app.orders SET amount = amount * 10 WHERE placed_at >= '2025-01-01' RETURNING tenant_id, order_id, amount, gross`, m),
    s('block', `SET search_path = app, public`),
    s('block', `SELECT count(*) FROM orders WHERE tenant_id = $1 AND amount > 100`, { params: [3], name: 'edge_blk_count' }),
    s('block', `ROLLBACK TO SAVEPOINT s1`),
    s('block', `SELECT count(*) FROM app.orders WHERE tenant_id = $1 AND amount > 100`, { params: [3] }),
    s('block', `SELECT count(*) FROM orders WHERE tenant_id = $1 AND amount > 100`, { params: [3], name: 'edge_blk_count' }),
    s('block', `ROLLBACK`),
    s('block', `SELECT count(*) FROM app.orders WHERE placed_at >= '2025-01-01'`, m),
    s('block', `BEGIN`),
    s('block', `INSERT INTO app.users (tenant_id, user_id, email) VALUES (2, 700, 'blk@x'), (9, 700, 'blk@x') RETURNING tenant_id`, { ordered: true, multi: true }),
    s('block', `DELETE FROM app.users WHERE user_id = 700 AND tenant_id IN (2, 9) RETURNING tenant_id, email`, m),
    s('block', `COMMIT`),
    s('block', `SELECT count(*) FROM app.users WHERE user_id = 700`, m),
  ];
}

/** Statements that move rows through the coordinator (merge, pull) under output-changing settings. */
export function EDGE_PULL_SETTINGS(): EdgeStatement[] {
  const m = { multi: true };
  const probes = (kind: string): EdgeStatement[] => [
    ordered(kind, `SELECT tenant_id, order_id, weight / 3 AS w, placed_at, born FROM app.orders JOIN app.users USING (tenant_id, user_id) ORDER BY tenant_id, order_id LIMIT 8`, m),
    ordered(kind, `SELECT DISTINCT born FROM app.users WHERE born IS NOT NULL ORDER BY born LIMIT 6`, m),
    s(kind, `SELECT born, count(*) FROM app.users GROUP BY born HAVING count(*) >= 1`, m),
    s(kind, `SELECT tenant_id, max(placed_at) - min(placed_at) AS span, avg(weight)::numeric(20,6) FROM app.orders GROUP BY tenant_id`, m),
    ordered(kind, `SELECT t.tenant_id, (SELECT max(born) FROM app.users u WHERE u.tenant_id = t.tenant_id) FROM app.tenants t ORDER BY 1`, m),
    s(kind, `WITH x AS (SELECT tenant_id, placed_at, weight FROM app.orders WHERE qty > 2) SELECT count(*), min(placed_at), max(weight) FROM x`, m),
  ];
  return [
    s('set', `SET DateStyle = 'German, DMY'`),
    ...probes('pull under DateStyle German'),
    s('set', `SET DateStyle = 'SQL, MDY'`),
    ...probes('pull under DateStyle SQL MDY'),
    s('set', `RESET DateStyle`),
    s('set', `SET extra_float_digits = -2`),
    ...probes('pull under extra_float_digits -2'),
    s('set', `RESET extra_float_digits`),
    s('set', `SET IntervalStyle = 'postgres_verbose'`),
    ...probes('pull under IntervalStyle'),
    s('set', `RESET IntervalStyle`),
    s('set', `SET TimeZone = 'America/St_Johns'`),
    ...probes('pull under TimeZone'),
    s('set', `RESET TimeZone`),
  ];
}

/** Key conditions the router must read exactly: arrays, rows, subqueries, contradictions, outer joins. */
export function EDGE_KEY_CONDITIONS(): EdgeStatement[] {
  const m = { multi: true };
  return [
    s('key array literal', `SELECT count(*) FROM app.orders WHERE tenant_id = ANY ('{3}')`),
    s('key array literal', `SELECT tenant_id, count(*) FROM app.orders WHERE tenant_id = ANY ('{1,2}'::bigint[]) GROUP BY tenant_id`, m),
    s('key array literal', `SELECT count(*) FROM app.orders WHERE tenant_id = ANY (ARRAY[5])`),
    s('key row in', `SELECT tenant_id, user_id FROM app.users WHERE (tenant_id, user_id) IN ((1, 1), (2, 2))`, m),
    s('key row in', `SELECT tenant_id, user_id FROM app.users WHERE (tenant_id, user_id) = (3, 1)`),
    s('key subquery', `SELECT count(*) FROM app.orders WHERE tenant_id = (SELECT 3)`, m),
    s('key subquery', `SELECT count(*) FROM app.orders WHERE tenant_id IN (SELECT plan_id FROM plans WHERE price > 50)`, m),
    s('key contradiction', `SELECT count(*) FROM app.orders WHERE tenant_id = 3 AND false`),
    s('key contradiction', `SELECT count(*) FROM app.orders WHERE tenant_id = 3 OR false`),
    s('key contradiction', `SELECT count(*) FROM app.orders WHERE tenant_id = 3 OR tenant_id = 3`),
    s('key contradiction', `SELECT count(*) FROM app.orders WHERE NOT (tenant_id <> 3)`, m),
    s('key contradiction', `SELECT count(*) FROM app.orders WHERE tenant_id IS NULL`, m),
    s('key contradiction', `SELECT count(*) FROM app.orders WHERE tenant_id = 3 OR qty > 4`, m),
    s('key through join', `SELECT u.email, o.order_id FROM app.users u JOIN app.orders o USING (tenant_id, user_id) WHERE o.tenant_id = 3`),
    s('key through join', `SELECT u.email, o.order_id FROM app.users u, app.orders o WHERE u.tenant_id = o.tenant_id AND u.user_id = o.user_id AND o.tenant_id = 4`),
    s('key in outer join', `SELECT t.tenant_id, o.order_id FROM app.tenants t LEFT JOIN app.orders o ON o.tenant_id = t.tenant_id AND o.tenant_id = 3`, m),
    s('key in outer join', `SELECT t.tenant_id, o.order_id FROM app.tenants t LEFT JOIN app.orders o ON o.tenant_id = t.tenant_id WHERE o.tenant_id = 3`),
    s('key in outer join', `SELECT t.tenant_id, o.order_id FROM app.orders o RIGHT JOIN app.tenants t ON o.tenant_id = t.tenant_id AND t.tenant_id = 5`, m),
    s('key in outer join', `SELECT t.tenant_id, count(o.order_id) FROM app.tenants t LEFT JOIN app.orders o ON o.tenant_id = t.tenant_id AND o.tenant_id = 3 AND o.qty > 1 GROUP BY t.tenant_id`, m),
    s('key in outer join', `SELECT t.tenant_id, u.user_id FROM app.tenants t FULL JOIN app.users u ON u.tenant_id = t.tenant_id AND u.tenant_id = 2 WHERE t.tenant_id = 2`),
    s('key in outer join', `SELECT t.tenant_id, u.user_id FROM app.tenants t LEFT JOIN app.users u ON u.tenant_id = 6 WHERE t.tenant_id = 6`),
    s('key in subquery only', `SELECT count(*) FROM app.tenants t WHERE EXISTS (SELECT 1 FROM app.orders o WHERE o.tenant_id = 7 AND o.tenant_id = t.tenant_id)`, m),
    s('key in subquery only', `SELECT count(*) FROM app.tenants t WHERE t.tenant_id IN (SELECT o.tenant_id FROM app.orders o WHERE o.tenant_id = 7)`, m),
    s('key in subquery only', `SELECT count(*) FROM app.tenants t WHERE NOT EXISTS (SELECT 1 FROM app.orders o WHERE o.tenant_id = 7 AND o.tenant_id = t.tenant_id)`, m),
    s('key in cte only', `WITH o AS (SELECT * FROM app.orders WHERE tenant_id = 7) SELECT t.tenant_id, count(o.order_id) FROM app.tenants t LEFT JOIN o USING (tenant_id) GROUP BY t.tenant_id`, m),
    s('key in lateral', `SELECT t.tenant_id, x.n FROM app.tenants t LEFT JOIN LATERAL (SELECT count(*) AS n FROM app.orders o WHERE o.tenant_id = t.tenant_id AND o.tenant_id = 2) x ON true`, m),
  ];
}

/** Tables distributed by text and by uuid: keys of every spelling, as constants and parameters. */
export function EDGE_KEY_TYPES(): EdgeStatement[] {
  const domains = ['example.com', 'Example.COM', 'bücher.de', '日本.jp', 'a', 'trailing ', 'trailing', '', 'missing.org'];
  const devices = ['00000000-0000-0000-0000-000000000000', 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF', '{123e4567-e89b-12d3-a456-426614174000}', 'a0eebc999c0b4ef8bb6d6bb9bd380a11', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'];
  const lit = (x: string) => `'${x.replace(/'/g, "''")}'`;
  return [
    ...domains.map((d) => s('text key', `SELECT domain, tenant_id, verified, note FROM app.domains WHERE domain = ${lit(d)}`)),
    ...domains.map((d) => s('text key param', `SELECT domain, tenant_id FROM app.domains WHERE domain = $1`, { params: [d] })),
    ...domains.slice(0, 4).map((d) => s('text key varchar param', `SELECT domain FROM app.domains WHERE domain = $1::varchar`, { params: [d] })),
    s('text key', `SELECT domain FROM app.domains WHERE domain = 'EXAMPLE.COM' COLLATE "C"`),
    s('text key', `SELECT domain FROM app.domains WHERE lower(domain) = 'example.com'`, { multi: true }),
    s('text key', `SELECT domain FROM app.domains WHERE domain IN ('a', 'bücher.de')`, { multi: true }),
    s('text key', `SELECT domain FROM app.domains WHERE domain LIKE 'ex%'`, { multi: true }),
    ordered('text key', `SELECT domain FROM app.domains ORDER BY domain COLLATE "C"`, { multi: true }),
    s('text key write', `UPDATE app.domains SET verified = NOT verified WHERE domain = $1 RETURNING *`, { params: ['日本.jp'] }),
    s('text key write', `INSERT INTO app.domains (domain, tenant_id) VALUES ('new.example', 8), ('ñ.es', 9) RETURNING domain, verified`, { ordered: true, multi: true }),
    s('text key write', `INSERT INTO app.domains (domain, tenant_id, note) VALUES ($1, 10, $2) ON CONFLICT (domain) DO UPDATE SET note = EXCLUDED.note RETURNING domain, note`, { params: ['a', 'x'.repeat(20)] }),
    s('text key error', `INSERT INTO app.domains (domain, tenant_id, note) VALUES ('long.example', 1, $1)`, { params: ['y'.repeat(21)] }),
    s('text key error', `INSERT INTO app.domains (domain, tenant_id) VALUES (NULL, 1)`),
    ...devices.map((d) => s('uuid key', `SELECT device, tenant_id, seen, level FROM app.devices WHERE device = ${lit(d)}`)),
    ...devices.map((d) => s('uuid key param', `SELECT device, seen FROM app.devices WHERE device = $1`, { params: [d] })),
    s('uuid key error', `SELECT device FROM app.devices WHERE device = 'not-a-uuid'`),
    s('uuid key error', `SELECT device FROM app.devices WHERE device = $1`, { params: ['zzzz'] }),
    s('uuid key', `SELECT device, level, level + 1, seen + interval '1 day' FROM app.devices WHERE device = ANY ($1::uuid[])`, { params: [devices], multi: true }),
    s('uuid key write', `UPDATE app.devices SET level = level * 2, seen = $2 WHERE device = $1 RETURNING *`, { params: [devices[3], 'infinity'] }),
    s('special values', `SELECT device, level, level = 'NaN', seen, isfinite(seen) FROM app.devices`, { multi: true }),
    s('special values', `SELECT max(level), min(level), sum(level), avg(level), min(seen), max(seen) FROM app.devices`, { multi: true }),
    s('special values', `SELECT count(*) FROM app.devices WHERE level > $1`, { params: ['NaN'], multi: true }),
  ];
}
