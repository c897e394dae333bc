/**
 * Resolves prepared transactions a failure left behind (DESIGN.md decision 6):
 * a prepared transaction whose commit record exists on the coordinator
 * PostgreSQL is committed, one without a record is rolled back.
 *
 * Never touched: gids this process has in flight, and gids of coordinator
 * processes that are alive (they hold their liveness advisory lock; their
 * own recovery resolves their leftovers). Order matters: the prepared lists
 * are read first, then the in-flight set and the live owners, then the
 * commit records, then the prepared lists again (as Citus does): only gids
 * prepared in both reads are resolved. A gid that is not in flight when
 * checked has finished its protocol, so any commit record it wrote is
 * visible to the records read; a gid prepared before the records were read
 * and still prepared after cannot be mid-commit by a live owner.
 *
 * "Does not exist" (42704) on COMMIT PREPARED while the record exists means
 * someone (the owner, or a concurrent round) already committed it: it counts
 * as committed and its record goes. Rounds for the same database in this
 * process are coalesced (a caller arriving during a round waits for the next).
 *
 * The jobs/ recovery loop calls this periodically for every database;
 * commands call it nowhere (they finish their own transactions).
 */
import type { NodePools } from '../pool/node-pools.js';
import type { NodeAddress } from '../metadata/types.js';
import { quoteLiteral } from '../sql/quote.js';
import type { PgError } from '../protocol/errors.js';
import { LIVENESS_LOCK_KEY, isInFlight, isOwnGid, parseGid, processIdentity } from './two-phase-commit.js';

export interface RecoveryResult {
  committed: number;
  rolledBack: number;
  /** Nodes that could not be reached (tried again next time). */
  unreachable: string[];
}

interface NodeRow {
  groupId: number;
  host: string;
  port: number;
}

const rounds = new Map<string, { running: Promise<RecoveryResult>; next: Promise<RecoveryResult> | null }>();

export function recoverPreparedTransactions(pools: NodePools, config: { coordinator: NodeAddress }, database: string): Promise<RecoveryResult> {
  const key = `${config.coordinator.host}:${config.coordinator.port}/${database}`;
  const current = rounds.get(key);
  if (current) {
    // A round is running: it may have read its lists before what the caller waits for; run one more after it.
    current.next ??= current.running.catch(() => undefined).then(() => recoverPreparedTransactions(pools, config, database));
    return current.next;
  }
  const entry = { running: recoverOnce(pools, config, database), next: null as Promise<RecoveryResult> | null };
  rounds.set(key, entry);
  const clear = () => {
    if (rounds.get(key) === entry) rounds.delete(key);
  };
  entry.running.then(clear, clear);
  return entry.running;
}

async function preparedGids(pools: NodePools, node: NodeRow, database: string): Promise<string[]> {
  const r = await pools
    .get(node.host, node.port, database)
    .query(`SELECT gid FROM pg_catalog.pg_prepared_xacts WHERE database = pg_catalog.current_database() AND gid LIKE 'pgweave\\_%'`);
  return r.rows.map((row) => row[0]!);
}

async function recoverOnce(pools: NodePools, config: { coordinator: NodeAddress }, database: string): Promise<RecoveryResult> {
  const coordinator = pools.get(config.coordinator.host, config.coordinator.port, database);
  const result: RecoveryResult = { committed: 0, rolledBack: 0, unreachable: [] };
  const hasCatalog = await coordinator.query(`SELECT pg_catalog.to_regclass('pgweave.transaction') IS NOT NULL`);
  if (hasCatalog.rows[0]?.[0] !== 't') return result;

  const nodes: NodeRow[] = (
    await coordinator.query(`SELECT groupid, nodename, nodeport FROM pgweave.node WHERE noderole = 'primary' ORDER BY groupid`)
  ).rows.map((r) => ({ groupId: Number(r[0]), host: r[1]!, port: Number(r[2]) }));
  // The coordinator PostgreSQL takes part in commits too (group 0), registered or not.
  if (!nodes.some((n) => n.host === config.coordinator.host && n.port === config.coordinator.port)) {
    nodes.push({ groupId: 0, host: config.coordinator.host, port: config.coordinator.port });
  }

  // 1. What is prepared on each node, in this database.
  const preparedByNode = new Map<NodeRow, string[]>();
  await Promise.all(
    nodes.map(async (node) => {
      try {
        preparedByNode.set(node, await preparedGids(pools, node, database));
      } catch {
        result.unreachable.push(`${node.host}:${node.port}`);
      }
    }),
  );

  // 2. Which of them belong to nobody alive.
  const liveOwners = new Set(
    (
      await coordinator.query(
        `SELECT objid FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND classid = $1 AND objsubid = 2 AND granted`,
        [String(LIVENESS_LOCK_KEY)],
      )
    ).rows.map((r) => Number(r[0])),
  );
  const orphaned = (gid: string): boolean => {
    const owner = parseGid(gid);
    if (!owner) return false;
    if (isOwnGid(gid)) return !isInFlight(gid);
    if (owner.coordinatorId === processIdentity.coordinatorId) return true; // an earlier life of this id
    return !liveOwners.has(owner.coordinatorId);
  };
  const candidates = new Map<NodeRow, string[]>();
  for (const [node, gids] of preparedByNode) candidates.set(node, gids.filter(orphaned));

  // 3. The commit records, read after the in-flight check.
  const recordRows = (await coordinator.query('SELECT gid, groupid FROM pgweave.transaction')).rows;
  const records = new Set(recordRows.map((r) => r[0]!));
  const recordGroup = new Map(recordRows.map((r) => [r[0]!, Number(r[1])]));

  // 4. The prepared lists again: only what was prepared before the records were read, and still is.
  await Promise.all(
    [...candidates].map(async ([node, gids]) => {
      if (gids.length === 0) return;
      try {
        const now = new Set(await preparedGids(pools, node, database));
        candidates.set(node, gids.filter((g) => now.has(g)));
      } catch {
        candidates.set(node, []);
        if (!result.unreachable.includes(`${node.host}:${node.port}`)) result.unreachable.push(`${node.host}:${node.port}`);
      }
    }),
  );

  const stillPrepared = new Set<string>();
  for (const [node, gids] of candidates) {
    const pool = pools.get(node.host, node.port, database);
    for (const gid of gids) {
      const commit = records.has(gid);
      try {
        await pool.query(`${commit ? 'COMMIT' : 'ROLLBACK'} PREPARED ${quoteLiteral(gid)}`);
        if (commit) result.committed++;
        else result.rolledBack++;
      } catch (err) {
        // 42704: resolved meanwhile by someone else (with a record, that was a commit).
        if ((err as PgError)?.code === '42704') continue;
        stillPrepared.add(gid);
      }
    }
  }

  // 5. Records no node still needs: their transactions are resolved on their node (the record's
  //    group) — known only when that node answered this round.
  const answered = new Set([...preparedByNode.keys()].filter((n) => !result.unreachable.includes(`${n.host}:${n.port}`)).map((n) => n.groupId));
  const deletable = [...records].filter((gid) => orphaned(gid) && !stillPrepared.has(gid) && (result.unreachable.length === 0 || answered.has(recordGroup.get(gid)!)));
  if (deletable.length > 0) {
    await coordinator.query('DELETE FROM pgweave.transaction WHERE gid = ANY($1::text[])', ['{' + deletable.join(',') + '}']);
  }
  return result;
}
