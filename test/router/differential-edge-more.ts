/**
 * More statements of differential-edge.test.ts (see differential-edge-statements.ts):
 * key forms, parameters, settings in blocks, merge shapes, reference tables,
 * the extended-protocol rerun, blocks, pulls under settings, key conditions
 * and text/uuid keys.
 */
import { EDGE_READS, EDGE_WRITES, ordered, perTenant, s, uuidOf, type EdgeStatement } from './differential-edge-statements.js';

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
    // multi-row INSERT across shards with ON CONFLICT DO NOTHING skipping rows: the others still in VALUES order.
    ordered('on conflict do nothing across shards', `INSERT INTO app.users (tenant_id, user_id, email) VALUES (5, 1, 'x1@x'), (1, 80, 'x80@x'), (11, 1, 'x2@x'), (2, 80, 'x81@x'), (12, 80, 'x82@x') ON CONFLICT DO NOTHING RETURNING tenant_id, user_id`, { multi: true }),
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
