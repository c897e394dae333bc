/**
 * Property test: our PostgreSQL hash functions against a real PostgreSQL.
 *
 * For each distribution column type we send thousands of random and edge-case
 * values in their text form (one batched query per type) and compare
 * hashDistributionValue with the function the type's default hash opclass
 * uses (looked up in pg_amproc, so the test checks that we picked the right
 * one). Then we mutate the values (drop, insert, duplicate characters) and
 * check the contract for input we do not fully parse: either our hash equals
 * PostgreSQL's, or we throw UnsupportedHashInputError — and we always throw
 * when PostgreSQL rejects the input. Set PGWEAVE_TEST_SEED to replay a run.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.js';
import {
  dateToPgDays, dateToPgTimestamp, hashBool, hashBpchar, hashDate, hashDistributionValue, hashInt2, hashInt4, hashInt8, hashNumeric, hashOid,
  hashText, hashTimestamp, hashUint32, hashUuid, parseUuid, resolveHashableType, UnsupportedHashInputError,
  type HashInputOptions,
} from '../../src/sql/hash.js';
import { makeGenerators, mutate } from './hash-test-values.js';

const seed = Number(process.env.PGWEAVE_TEST_SEED ?? Date.now() % 1_000_000_007);
const gen = makeGenerators(seed);

let server: TestPostgres;
let client: pg.Client;

before(async () => {
  server = await startTestPostgres();
  client = new pg.Client({ connectionString: server.url });
  await client.connect();
  await client.query(`SET DateStyle = 'ISO, MDY'`);
  await client.query(`SET TimeZone = 'America/New_York'`);
  await client.query(`CREATE SCHEMA hashtest`);
});

after(async () => {
  await client?.end();
  await server?.stop();
});

/** One type under test: its SQL spelling, and the type whose default hash opclass it uses. */
interface TypeCase {
  sqlType: string;
  opclassType: string;
  /** SQL turning text `v` into the type with the type's input function. */
  convert?: string;
}

let wrapperCount = 0;

/**
 * Creates hashtest.try_N(text): the default hash opclass support function 1
 * of the type, called on the text converted by the type's input function;
 * NULL when PostgreSQL rejects the input. Returns the function's name and the
 * name of the opclass function.
 */
async function createTryHash(c: TypeCase): Promise<{ fn: string; amproc: string }> {
  const { rows } = await client.query(
    `SELECT p.amproc::regproc::text AS amproc, pr.prosrc
       FROM pg_opclass opc
       JOIN pg_am am ON am.oid = opc.opcmethod AND am.amname = 'hash'
       JOIN pg_amproc p ON p.amprocfamily = opc.opcfamily AND p.amprocnum = 1
                       AND p.amproclefttype = opc.opcintype AND p.amprocrighttype = opc.opcintype
       JOIN pg_proc pr ON pr.oid = p.amproc
      WHERE opc.opcdefault AND opc.opcintype = $1::regtype`,
    [c.opclassType],
  );
  assert.equal(rows.length, 1, `one default hash opclass for ${c.opclassType}`);
  const n = ++wrapperCount;
  const baseType = c.sqlType.replace(/\(.*?\)/, '');
  await client.query(
    `CREATE FUNCTION hashtest.h_${n}(${baseType}) RETURNS int4 LANGUAGE internal IMMUTABLE STRICT AS '${rows[0].prosrc}'`,
  );
  await client.query(
    `CREATE FUNCTION hashtest.try_${n}(v text) RETURNS int4 LANGUAGE plpgsql AS $$
     BEGIN RETURN hashtest.h_${n}(${c.convert ?? `v::${c.sqlType}`});
     EXCEPTION WHEN others THEN RETURN NULL; END $$`,
  );
  return { fn: `hashtest.try_${n}`, amproc: rows[0].amproc };
}

async function serverHashes(fn: string, values: string[]): Promise<Array<number | null>> {
  const { rows } = await client.query(
    `SELECT ${fn}(v) AS h FROM unnest($1::text[]) WITH ORDINALITY AS u(v, n) ORDER BY n`,
    [values],
  );
  return rows.map((r: { h: number | null }) => r.h);
}

interface Comparison {
  matched: number;
  unsupported: string[];
  rejectedByServer: number;
}

/**
 * Compares every value; fails on any hash that differs from PostgreSQL's, or
 * when PostgreSQL rejects an input we hashed. Inputs we decline are returned.
 */
async function compare(typeName: string, fn: string, values: string[], options?: HashInputOptions): Promise<Comparison> {
  const expected = await serverHashes(fn, values);
  const result: Comparison = { matched: 0, unsupported: [], rejectedByServer: 0 };
  values.forEach((value, i) => {
    let ours: number | undefined;
    try {
      ours = hashDistributionValue(typeName, value, options);
    } catch (err) {
      if (!(err instanceof UnsupportedHashInputError)) throw err;
    }
    const theirs = expected[i];
    if (theirs === null) result.rejectedByServer++;
    const where = `${typeName} ${JSON.stringify(value)} (seed ${seed})`;
    if (ours === undefined) {
      result.unsupported.push(value);
      return;
    }
    assert.notEqual(theirs, null, `${where}: PostgreSQL rejects it but we hashed it to ${ours}`);
    assert.equal(ours, theirs, `${where}: we hash ${ours}, PostgreSQL ${theirs}`);
    result.matched++;
  });
  return result;
}

/** Types with value generators, with the hash function name we expect pg_amproc to give. */
const CASES: Array<TypeCase & { typeName: string; amproc: string; values: () => string[]; options?: HashInputOptions; mayDeclineLong?: boolean }> = [
  { typeName: 'int2', sqlType: 'int2', opclassType: 'int2', amproc: 'hashint2', values: gen.int2 },
  { typeName: 'integer', sqlType: 'int4', opclassType: 'int4', amproc: 'hashint4', values: gen.int4 },
  { typeName: 'bigint', sqlType: 'int8', opclassType: 'int8', amproc: 'hashint8', values: gen.int8 },
  { typeName: 'oid', sqlType: 'oid', opclassType: 'oid', amproc: 'hashoid', values: gen.oid },
  { typeName: 'boolean', sqlType: 'bool', opclassType: 'bool', amproc: 'hashchar', values: gen.bool },
  { typeName: 'char', sqlType: '"char"', opclassType: '"char"', amproc: 'hashchar', values: gen.char, convert: 'charin(v::cstring)' },
  { typeName: 'text', sqlType: 'text', opclassType: 'text', amproc: 'hashtext', values: gen.text },
  { typeName: 'character varying', sqlType: 'varchar', opclassType: 'text', amproc: 'hashtext', values: gen.text },
  { typeName: 'varchar(12)', sqlType: 'varchar(12)', opclassType: 'text', amproc: 'hashtext', values: gen.text, mayDeclineLong: true },
  { typeName: 'bpchar', sqlType: 'bpchar', opclassType: 'bpchar', amproc: 'hashbpchar', values: gen.bpchar },
  { typeName: 'character(12)', sqlType: 'bpchar(12)', opclassType: 'bpchar', amproc: 'hashbpchar', values: gen.bpchar, mayDeclineLong: true },
  { typeName: 'name', sqlType: 'name', opclassType: 'name', amproc: 'hashname', values: gen.name },
  { typeName: 'uuid', sqlType: 'uuid', opclassType: 'uuid', amproc: 'uuid_hash', values: gen.uuid },
  { typeName: 'numeric', sqlType: 'numeric', opclassType: 'numeric', amproc: 'hash_numeric', values: gen.numeric },
  { typeName: 'numeric(12,3)', sqlType: 'numeric(12,3)', opclassType: 'numeric', amproc: 'hash_numeric', values: gen.numeric },
  { typeName: 'decimal(4,-2)', sqlType: 'numeric(4,-2)', opclassType: 'numeric', amproc: 'hash_numeric', values: gen.numeric },
  { typeName: 'numeric(3,5)', sqlType: 'numeric(3,5)', opclassType: 'numeric', amproc: 'hash_numeric', values: gen.smallNumeric },
  { typeName: 'date', sqlType: 'date', opclassType: 'date', amproc: 'hashint4', values: gen.date },
  { typeName: 'timestamp', sqlType: 'timestamp', opclassType: 'timestamp', amproc: 'timestamp_hash', values: gen.timestamp },
  { typeName: 'timestamp(2) without time zone', sqlType: 'timestamp(2)', opclassType: 'timestamp', amproc: 'timestamp_hash', values: gen.timestamp },
  { typeName: 'timestamp with time zone', sqlType: 'timestamptz', opclassType: 'timestamptz', amproc: 'timestamp_hash', values: gen.timestamptz },
  { typeName: 'timestamptz(0)', sqlType: 'timestamptz(0)', opclassType: 'timestamptz', amproc: 'timestamp_hash', values: gen.timestamptz },
];

for (const c of CASES) {
  test(`${c.typeName} hashes like PostgreSQL's ${c.amproc}`, async (t) => {
    const { fn, amproc } = await createTryHash(c);
    assert.equal(amproc, c.amproc, `default hash opclass function of ${c.opclassType}`);
    const values = c.values();
    const valid = await compare(c.typeName, fn, values, c.options);
    // Generated values are in forms we promise to parse: we may decline one
    // only when PostgreSQL rejects it too (numeric overflow under a typmod…),
    // or, for varchar(n)/char(n), when it is longer than n (an explicit cast
    // truncates, an INSERT errors: the caller's context decides).
    const declinedButValid = valid.unsupported.length - valid.rejectedByServer;
    assert.ok(declinedButValid === 0 || c.mayDeclineLong === true,
      `${c.typeName}: declined inputs PostgreSQL accepts, among ${JSON.stringify(valid.unsupported.slice(0, 5))} (seed ${seed})`);
    const mutated = mutate(seed, values, 1);
    const fuzz = await compare(c.typeName, fn, mutated, c.options);
    t.diagnostic(
      `${c.typeName}: ${values.length} values, ${valid.matched} hashes equal (${valid.rejectedByServer} rejected by PostgreSQL and by us); ` +
        `${mutated.length} mutated values: ${fuzz.matched} equal, ${fuzz.rejectedByServer} rejected by PostgreSQL, ` +
        `${fuzz.unsupported.length - fuzz.rejectedByServer} valid but declined by us (asked to PostgreSQL)`,
    );
  });
}

test('timestamptz without a zone: hashed only when the session TimeZone is known to be UTC', async (t) => {
  const c: TypeCase = { sqlType: 'timestamptz', opclassType: 'timestamptz' };
  const { fn } = await createTryHash(c);
  const values = gen.zonelessTimestamp();
  assert.throws(() => hashDistributionValue('timestamptz', values[0]!), UnsupportedHashInputError);
  assert.throws(() => hashDistributionValue('timestamptz', values[0]!, { sessionTimeZone: 'Europe/Paris' }), UnsupportedHashInputError);
  await client.query(`SET TimeZone = 'UTC'`);
  try {
    const result = await compare('timestamptz', fn, values, { sessionTimeZone: 'Etc/UTC' });
    assert.equal(result.unsupported.length, result.rejectedByServer);
    t.diagnostic(`timestamptz (session UTC): ${result.matched} hashes equal`);
  } finally {
    await client.query(`SET TimeZone = 'America/New_York'`);
  }
});

test('typed hash functions agree with PostgreSQL', async () => {
  const { rows } = await client.query(`
    SELECT hashint2(-5::int2) AS i2, hashint4(2147483647) AS i4, hashint8(-9223372036854775808) AS i8,
           hashint8(4294967296) AS i8b, hashoid(4294967295) AS oid, hashtext('Grüße, 世界') AS txt,
           hashbpchar('abc   ') AS bp, uuid_hash('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11') AS uu,
           hash_numeric(123456789012345678901234567890) AS num, hashint4(-1) AS d,
           timestamp_hash('1999-12-31 23:59:59.999999') AS ts, hashchar(true::int::"char") AS b`);
  const r = rows[0];
  assert.equal(hashInt2(-5), r.i2);
  assert.equal(hashInt4(2147483647), r.i4);
  assert.equal(hashInt8(-(2n ** 63n)), r.i8);
  assert.equal(hashInt8(4294967296), r.i8b);
  assert.equal(hashInt8(4294967296n), r.i8b);
  assert.equal(hashOid(4294967295), r.oid);
  assert.equal(hashText('Grüße, 世界'), r.txt);
  assert.equal(hashText(Buffer.from('Grüße, 世界')), r.txt);
  assert.equal(hashBpchar(Buffer.from('abc')), r.bp);
  assert.equal(hashUuid(parseUuid('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11')), r.uu);
  assert.equal(hashNumeric(123456789012345678901234567890n), r.num);
  assert.equal(hashDate(-1), r.d);
  assert.equal(hashTimestamp(-1n), r.ts);
  assert.equal(hashBool(true), r.b);
  assert.equal(hashUint32(1), r.b);
  assert.equal(dateToPgDays(new Date('2000-01-01T12:00:00Z')), 0);
  assert.equal(dateToPgDays(new Date('1999-12-31T23:59:59Z')), -1);
  assert.equal(dateToPgTimestamp(new Date('1999-12-31T23:59:59.999Z')), -1000n);
  assert.throws(() => hashInt4(2 ** 31), RangeError);
  assert.throws(() => hashInt8(2 ** 60), RangeError);
});

test('type names: canonical names, aliases and modifiers', () => {
  const cases: Array<[string, string, number[]]> = [
    ['integer', 'int4', []], ['SERIAL', 'int4', []], ['pg_catalog.int8', 'int8', []], ['bigserial', 'int8', []],
    ['smallint', 'int2', []], ['character varying(20)', 'varchar', [20]], ['char(3)', 'bpchar', [3]],
    ['character', 'bpchar', []], ['char', 'char', []], ['"char"', 'char', []], ['decimal(10, 2)', 'numeric', [10, 2]],
    ['timestamp(3) with time zone', 'timestamptz', [3]], ['timestamp without time zone', 'timestamp', []],
    ['Boolean', 'bool', []], ['uuid', 'uuid', []],
  ];
  for (const [input, name, typmods] of cases) assert.deepEqual(resolveHashableType(input), { name, typmods }, input);
  for (const bad of ['int4[]', 'float8', 'jsonb', 'time with time zone', 'numeric(0)', 'int4(3)']) {
    assert.throws(() => resolveHashableType(bad), UnsupportedHashInputError, bad);
  }
});

test('citext hashes like the extension\'s citext_hash for ASCII values, and declines the rest', async (t) => {
  await client.query('CREATE EXTENSION IF NOT EXISTS citext');
  await client.query(
    `CREATE FUNCTION hashtest.try_citext(v text) RETURNS int4 LANGUAGE plpgsql AS $$
     BEGIN RETURN citext_hash(v::citext); EXCEPTION WHEN others THEN RETURN NULL; END $$`,
  );
  const values = [...gen.text(), 'Alice@Example.COM', 'ABCXYZ', 'MiXeD CaSe 123', 'İstanbul', 'ÀÉÎ', ''];
  const result = await compare('citext', 'hashtest.try_citext', values);
  const ascii = values.filter((v) => !/[^\x00-\x7f]/.test(v));
  assert.equal(result.matched, ascii.length, 'every ASCII value is hashed, equal to citext_hash');
  assert.equal(result.unsupported.length, values.length - ascii.length, 'non-ASCII values are left to PostgreSQL');
  assert.equal(hashDistributionValue('public.citext', 'ABC'), hashDistributionValue('citext', 'abc'));
  t.diagnostic(`${values.length} values: ${result.matched} equal, ${result.unsupported.length} declined`);
});
