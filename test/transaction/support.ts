/**
 * The bank workload of the transaction tests, and what they need around it.
 *
 * Accounts (4 shards over 3 workers: two shards share a node) and a
 * co-located `legs` table (one row per side of every transfer). Writers move
 * money between accounts on different nodes — half of the transfers as
 * explicit blocks (several round trips), half as one multi-statement query
 * (an implicit transaction) — locking the two accounts in id order so the
 * transfers never deadlock each other. Readers check, concurrently, that the
 * total never changes: one multi-node statement, a READ COMMITTED block, and
 * multi-statement REPEATABLE READ blocks (two partial sums plus the sum of
 * all legs, which must be 0). A read that sees part of a transfer is a wrong
 * read. Clients survive faults: errors are counted, lost connections
 * reopened, and every transfer the client saw commit is remembered so the
 * test can check it is there afterwards.
 *
 * Every wait of a client is bounded (`bounded`): a statement the coordinator
 * never answers, or a connection it never completes, fails the run at once
 * with what was awaited (a product bug: a client must get an answer or an
 * error), instead of hanging the test until its timeout.
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { nodeServerOptions, postgresPid, startPostgres, stopPostgres, type ClusterNode, type ClusterState } from '../../src/cluster/index.js';

export const INITIAL_BALANCE = 1000;

/** Every value stays PostgreSQL's text. */
const TEXT_TYPES = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

export async function connect(url: string, name = 'pgweave-bank'): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, types: TEXT_TYPES, application_name: name, connectionTimeoutMillis: 20_000 });
  c.on('error', () => {});
  await c.connect();
  return c;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How long a bank client waits for any one answer (recovery waits and lock waits take seconds, not minutes). */
export const ANSWER_BOUND_MS = 120_000;

/** A wait that did not end within its bound: never tolerated as a fault's error. */
export class StuckError extends Error {}

/** `p`, or a StuckError naming `what` when it has not settled within `ms`. */
export function bounded<T>(p: Promise<T>, what: string, ms = ANSWER_BOUND_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StuckError(`${what}: no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, stuck]).finally(() => clearTimeout(timer));
}

/** Ends a client; only a StuckError (the coordinator never closed the connection) escapes. */
export async function closeClient(c: pg.Client, who: string): Promise<void> {
  await bounded(c.end(), `${who}: closing the connection`).catch((err) => {
    if (err instanceof StuckError) throw err;
  });
}

/** ROLLBACK after a tolerated error; only a StuckError escapes. */
async function rollback(c: pg.Client, who: string): Promise<void> {
  await bounded(c.query('ROLLBACK'), `${who}: ROLLBACK`).catch((err) => {
    if (err instanceof StuckError) throw err;
  });
}

/** Creates the bank tables through the coordinator and fills the accounts. */
export async function createBank(c: pg.Client, accounts: number): Promise<void> {
  await c.query('CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL)');
  await c.query("SELECT create_distributed_table('accounts', 'id', shard_count => 4)");
  await c.query('CREATE TABLE legs (account_id int NOT NULL, transfer_id bigint NOT NULL, amount bigint NOT NULL, PRIMARY KEY (account_id, transfer_id))');
  await c.query("SELECT create_distributed_table('legs', 'account_id', colocate_with => 'accounts')");
  const values: string[] = [];
  for (let i = 1; i <= accounts; i++) values.push(`(${i}, ${INITIAL_BALANCE})`);
  await c.query(`INSERT INTO accounts VALUES ${values.join(', ')}`);
}

/** The worker port of each account (its shard's placement). */
export async function nodesOfAccounts(c: pg.Client, accounts: number): Promise<Map<number, number>> {
  const r = await c.query<{ k: string; port: string }>(
    `SELECT k.k, n.nodeport AS port
       FROM generate_series(1, $1::int) AS k(k)
       JOIN pg_dist_shard s ON s.logicalrelid = 'accounts'::regclass
        AND hashint4(k.k) BETWEEN s.shardminvalue::int AND s.shardmaxvalue::int
       JOIN pg_dist_placement p ON p.shardid = s.shardid
       JOIN pg_dist_node n ON n.groupid = p.groupid`,
    [accounts],
  );
  return new Map(r.rows.map((row) => [Number(row.k), Number(row.port)]));
}

/** Deterministic pseudo-random numbers (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface BankOptions {
  url: string;
  accounts: number;
  nodeOf: Map<number, number>;
  /** Transfers to attempt in total (writers share the count). */
  transfers: number;
  writers: number;
  readers: number;
  /** SET pgweave.atomic_visibility on every client. */
  atomicVisibility: boolean;
  /** Stop once this many wrong reads were seen (the off run only needs to show some). */
  stopAfterWrong?: number;
  /** Faults expected: errors are counted and connections reopened instead of failing the run. */
  tolerateErrors?: boolean;
  /** First transfer id (distinct per run). */
  firstTransferId: number;
  seed: number;
  /** Called after each transfer attempt (fault tests inject faults from here). */
  onTransfer?: (n: number) => void | Promise<void>;
}

export interface BankCounts {
  transfersCommitted: number;
  transfersFailed: number;
  /** Reads by kind, and how many saw a wrong total. */
  statementReads: number;
  statementWrong: number;
  readCommittedReads: number;
  readCommittedWrong: number;
  repeatableReads: number;
  repeatableWrong: number;
  readErrors: number;
  errorCodes: Record<string, number>;
  /** Transfer ids the client saw commit, and those whose outcome it could not know. */
  committed: Set<number>;
  uncertain: Set<number>;
  firstWrong: string | null;
}

function countError(counts: BankCounts, err: unknown): void {
  const code = (err as { code?: string })?.code ?? 'connection';
  counts.errorCodes[code] = (counts.errorCodes[code] ?? 0) + 1;
}

/** Runs the workload; resolves with the counts once the transfers are done (readers stop then). */
export async function runBank(o: BankOptions): Promise<BankCounts> {
  const counts: BankCounts = {
    transfersCommitted: 0,
    transfersFailed: 0,
    statementReads: 0,
    statementWrong: 0,
    readCommittedReads: 0,
    readCommittedWrong: 0,
    repeatableReads: 0,
    repeatableWrong: 0,
    readErrors: 0,
    errorCodes: {},
    committed: new Set(),
    uncertain: new Set(),
    firstWrong: null,
  };
  const total = o.accounts * INITIAL_BALANCE;
  const half = Math.floor(o.accounts / 2);
  const setting = `SET pgweave.atomic_visibility = ${o.atomicVisibility ? 'on' : 'off'}`;
  let started = 0;
  let writersDone = false;
  const wrongEnough = () => o.stopAfterWrong !== undefined && counts.statementWrong + counts.readCommittedWrong + counts.repeatableWrong >= o.stopAfterWrong;

  /** A new client; while faults are expected, retried until the coordinator takes connections again (bounded). */
  async function client(name: string): Promise<pg.Client> {
    const deadline = Date.now() + ANSWER_BOUND_MS;
    for (;;) {
      let c: pg.Client | null = null;
      try {
        c = await bounded(connect(o.url, name), `${name}: connecting`);
        await bounded(c.query(setting), `${name}: ${setting}`);
        return c;
      } catch (err) {
        if (c) await closeClient(c, name);
        if (err instanceof StuckError) throw err;
        if (!o.tolerateErrors) throw err;
        if (Date.now() > deadline) throw new StuckError(`${name}: no connection to the coordinator within ${ANSWER_BOUND_MS / 1000} s (last error: ${(err as Error).message})`);
        await sleep(200);
      }
    }
  }

  const nodes = [...new Set(o.nodeOf.values())];
  const byNode = new Map<number, number[]>();
  for (const [acc, port] of o.nodeOf) byNode.set(port, [...(byNode.get(port) ?? []), acc]);

  async function writer(w: number): Promise<void> {
    const rnd = prng(o.seed * 1000 + w);
    const who = `bank-writer-${w}`;
    let c = await client(who);
    const ask = (sql: string) => bounded(c.query(sql), `${who}: ${sql}`);
    try {
      while (!wrongEnough()) {
        const n = started++;
        if (n >= o.transfers) break;
        const tid = o.firstTransferId + n;
        // Two accounts on different nodes; locked in id order.
        const na = nodes[Math.floor(rnd() * nodes.length)]!;
        let nb = nodes[Math.floor(rnd() * nodes.length)]!;
        if (nb === na) nb = nodes[(nodes.indexOf(na) + 1) % nodes.length]!;
        const la = byNode.get(na)!;
        const lb = byNode.get(nb)!;
        const from = la[Math.floor(rnd() * la.length)]!;
        const to = lb[Math.floor(rnd() * lb.length)]!;
        const amount = 1 + Math.floor(rnd() * 10);
        const [first, second] = from < to ? [[from, -amount], [to, amount]] : [[to, amount], [from, -amount]];
        const statements = [
          `UPDATE accounts SET balance = balance + ${first![1]} WHERE id = ${first![0]}`,
          `UPDATE accounts SET balance = balance + ${second![1]} WHERE id = ${second![0]}`,
          `INSERT INTO legs VALUES (${from}, ${tid}, ${-amount}), (${to}, ${tid}, ${amount})`,
        ];
        let inCommit = false;
        try {
          if (n % 2 === 0) {
            await ask('BEGIN');
            for (const s of statements) await ask(s);
            inCommit = true;
            const r = await ask('COMMIT');
            if (r.command !== 'COMMIT') throw Object.assign(new Error(`COMMIT answered ${r.command}`), { code: 'rollback' });
          } else {
            inCommit = true;
            await ask(statements.join('; '));
          }
          counts.transfersCommitted++;
          counts.committed.add(tid);
        } catch (err) {
          if (!o.tolerateErrors || err instanceof StuckError) throw err;
          counts.transfersFailed++;
          countError(counts, err);
          const code = (err as { code?: string }).code;
          // The commit may have happened: a lost connection, an unknown outcome.
          if (inCommit && (!code || code === '40003' || code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03')) counts.uncertain.add(tid);
          await rollback(c, who);
          if (!code || code.startsWith('08') || code.startsWith('57P') || /terminated|not queryable|ECONNRESET/i.test(String((err as Error).message))) {
            await closeClient(c, who);
            c = await client(who);
          }
        }
        await o.onTransfer?.(n);
      }
    } finally {
      await closeClient(c, who);
    }
  }

  function wrong(kind: string, got: string): void {
    counts.firstWrong ??= `${kind}: ${got}`;
  }

  async function reader(r: number): Promise<void> {
    const who = `bank-reader-${r}`;
    let c = await client(who);
    const ask = (sql: string) => bounded(c.query(sql), `${who}: ${sql}`);
    let i = r;
    try {
      // Aggregates run as pulls (rows copied to the coordinator), plain SELECTs as multi-shard tasks: both are read.
      const rowsSum = (r: pg.QueryResult) => r.rows.reduce((acc: number, row: { balance: string }) => acc + Number(row.balance), 0);
      while (!writersDone && !wrongEnough()) {
        const kind = i++ % 4;
        try {
          if (kind === 0 || kind === 1) {
            const sum =
              kind === 0
                ? Number((await ask('SELECT sum(balance) AS s FROM accounts')).rows[0].s)
                : rowsSum(await ask('SELECT balance FROM accounts'));
            counts.statementReads++;
            if (sum !== total) {
              counts.statementWrong++;
              wrong(kind === 0 ? 'statement (pull)' : 'statement (multi-shard)', String(sum));
            }
          } else if (kind === 2) {
            await ask('BEGIN');
            const a = Number((await ask('SELECT sum(balance) AS s FROM accounts')).rows[0].s);
            const b = rowsSum(await ask('SELECT balance FROM accounts'));
            await ask('COMMIT');
            counts.readCommittedReads++;
            if (a !== total || b !== total) {
              counts.readCommittedWrong++;
              wrong('read committed block', `${a}, ${b}`);
            }
          } else {
            await ask('BEGIN ISOLATION LEVEL REPEATABLE READ');
            const a = rowsSum(await ask(`SELECT balance FROM accounts WHERE id <= ${half}`));
            const b = Number((await ask(`SELECT coalesce(sum(balance), 0) AS s FROM accounts WHERE id > ${half}`)).rows[0].s);
            const l = await ask('SELECT coalesce(sum(amount), 0) AS s FROM legs');
            await ask('COMMIT');
            counts.repeatableReads++;
            if (a + b !== total || Number(l.rows[0].s) !== 0) {
              counts.repeatableWrong++;
              wrong('repeatable read block', `${a} + ${b}, legs ${l.rows[0].s}`);
            }
          }
        } catch (err) {
          if (!o.tolerateErrors || err instanceof StuckError) throw err;
          counts.readErrors++;
          countError(counts, err);
          await rollback(c, who);
          const code = (err as { code?: string }).code;
          if (!code || code.startsWith('08') || code.startsWith('57P') || /terminated|not queryable|ECONNRESET/i.test(String((err as Error).message))) {
            await closeClient(c, who);
            c = await client(who);
          }
        }
      }
    } finally {
      await closeClient(c, who);
    }
  }

  const readers = Array.from({ length: o.readers }, (_, r) => reader(r));
  try {
    await Promise.all(Array.from({ length: o.writers }, (_, w) => writer(w)));
  } finally {
    writersDone = true;
    await Promise.allSettled(readers);
  }
  await Promise.all(readers);
  return counts;
}

export interface Invariants {
  total: number;
  accountsMatchingLegs: boolean;
  halfTransfers: number;
  missingCommitted: number[];
  presentUncertain: number;
  prepared: number;
  records: number;
}

/**
 * What must hold after a run (and after recovery): the total, every
 * account's balance = initial + its legs, every transfer complete (both
 * legs) or absent, every transfer the client saw commit present, no prepared
 * transaction on any node and no commit record.
 */
export async function checkInvariants(
  c: pg.Client,
  nodeUrls: string[],
  accounts: number,
  committed: Iterable<number>,
  uncertain: Iterable<number>,
): Promise<Invariants> {
  const ask = (sql: string) => bounded(c.query(sql), `checking the invariants: ${sql}`);
  const total = Number((await ask('SELECT sum(balance) AS s FROM accounts')).rows[0].s);
  const balances = new Map((await ask('SELECT id, balance FROM accounts')).rows.map((r) => [Number(r.id), Number(r.balance)]));
  const legs = (await ask('SELECT account_id, transfer_id, amount FROM legs')).rows.map((r) => ({ a: Number(r.account_id), t: Number(r.transfer_id), x: Number(r.amount) }));
  const perAccount = new Map<number, number>();
  const perTransfer = new Map<number, number>();
  for (const l of legs) {
    perAccount.set(l.a, (perAccount.get(l.a) ?? 0) + l.x);
    perTransfer.set(l.t, (perTransfer.get(l.t) ?? 0) + 1);
  }
  let matching = balances.size === accounts;
  for (const [id, b] of balances) if (b !== INITIAL_BALANCE + (perAccount.get(id) ?? 0)) matching = false;
  const missing = [...committed].filter((t) => perTransfer.get(t) !== 2);
  let presentUncertain = 0;
  for (const t of uncertain) if (perTransfer.has(t)) presentUncertain++;
  let prepared = 0;
  for (const url of nodeUrls) {
    const d = await bounded(connect(url, 'bank-check'), `checking the invariants: connecting to ${url.replace(/:[^:@/]*@/, '@')}`);
    try {
      prepared += Number((await bounded(d.query("SELECT count(*) AS n FROM pg_prepared_xacts WHERE gid LIKE 'pgweave%'"), 'checking the invariants: pg_prepared_xacts')).rows[0].n);
    } finally {
      await closeClient(d, 'checking the invariants');
    }
  }
  const records = Number((await ask('SELECT count(*) AS n FROM pgweave.transaction')).rows[0].n);
  return {
    total,
    accountsMatchingLegs: matching,
    halfTransfers: [...perTransfer.values()].filter((n) => n !== 2).length,
    missingCommitted: missing.slice(0, 10),
    presentUncertain,
    prepared,
    records,
  };
}

/** kill -9 a PostgreSQL server and all its processes (a crash: no shutdown, no checkpoint). */
export function killPostgres(dataDir: string): void {
  const pid = postgresPid(dataDir);
  if (pid === null) return;
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  for (const p of [pid, ...children]) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/**
 * Waits for a killed server's processes to be gone, then starts it again.
 * A killed postmaster can stay a zombie (an init that does not reap): its
 * pid still answers kill(0), so PostgreSQL would refuse the old lock file.
 */
export async function restartPostgres(state: ClusterState, node: ClusterNode): Promise<void> {
  for (let i = 0; i < 100 && postgresPid(node.dataDir) !== null; i++) await sleep(50);
  if (postgresPid(node.dataDir) === null) rmSync(join(node.dataDir, 'postmaster.pid'), { force: true });
  await startPostgres(nodeServerOptions(state, node), node.logFile);
}

/** A clean restart with an immediate stop (the coordinator PostgreSQL "restarting at a random moment"). */
export async function restartImmediate(state: ClusterState, node: ClusterNode): Promise<void> {
  await stopPostgres(node.dataDir, 'immediate');
  await startPostgres(nodeServerOptions(state, node), node.logFile);
}

/** Human-readable counts for the test's output. */
export function describeCounts(label: string, k: BankCounts): string {
  const reads = k.statementReads + k.readCommittedReads + k.repeatableReads;
  const wrong = k.statementWrong + k.readCommittedWrong + k.repeatableWrong;
  return (
    `${label}: ${k.transfersCommitted} transfers committed (${k.transfersFailed} failed), ` +
    `${reads} reads (${k.statementReads} statement, ${k.readCommittedReads} read-committed block, ${k.repeatableReads} repeatable-read block), ` +
    `${wrong} wrong (${k.statementWrong}/${k.readCommittedWrong}/${k.repeatableWrong})` +
    (Object.keys(k.errorCodes).length ? `, errors ${JSON.stringify(k.errorCodes)}` : '') +
    (k.firstWrong ? `, first wrong read: ${k.firstWrong}` : '')
  );
}
