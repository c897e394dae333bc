/**
 * Resolves prepared transactions a failure left behind (DESIGN.md decision 6):
 * a prepared transaction whose commit record exists on the coordinator
 * PostgreSQL is committed, one without a record is rolled back.
 *
 * Never touched: gids this process has in flight, and gids of coordinator
 * processes that are alive (they hold their liveness advisory lock; their
 * own recovery resolves their leftovers). Order matters: the prepared lists
 * are read first, then the in-flight set and the live owners, then the
 * commit records. A gid that is not in flight when checked has finished its
 * protocol, so any commit record it wrote is visible to the records read.
 *
 * The jobs/ recovery loop calls this periodically for every database;
 * commands call it nowhere (they finish their own transactions).
 */
import type { NodePools } from '../pool/node-pools.js';
import type { NodeAddress } from '../metadata/types.js';
import { quoteLiteral } from '../sql/quote.js';
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

export async function recoverPreparedTransactions(pools: NodePools, config: { coordinator: NodeAddress }, database: string): Promise<RecoveryResult> {
  const coordinator = pools.get(config.coordinator.host, config.coordinator.port, database);
  const result: RecoveryResult = { committed: 0, rolledBack: 0, unreachable: [] };
  const hasCatalog = await coordinator.query(`SELECT pg_catalog.to_regclass('pgweave.transaction') IS NOT NULL`);
  if (hasCatalog.rows[0]?.[0] !== 't') return result;

  const nodes: NodeRow[] = (
    await coordinator.query(`SELECT groupid, nodename, nodeport FROM pgweave.node WHERE noderole = 'primary' ORDER BY groupid`)
  ).rows.map((r) => ({ groupId: Number(r[0]), host: r[1]!, port: Number(r[2]) }));

  // 1. What is prepared on each node, in this database.
  const preparedByNode = new Map<NodeRow, string[]>();
  await Promise.all(
    nodes.map(async (node) => {
      try {
        const r = await pools
          .get(node.host, node.port, database)
          .query(`SELECT gid FROM pg_catalog.pg_prepared_xacts WHERE database = pg_catalog.current_database() AND gid LIKE 'pgweave\\_%'`);
        preparedByNode.set(node, r.rows.map((row) => row[0]!));
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
  const records = new Set((await coordinator.query('SELECT gid FROM pgweave.transaction')).rows.map((r) => r[0]!));

  const stillPrepared = new Set<string>();
  for (const [node, gids] of candidates) {
    const pool = pools.get(node.host, node.port, database);
    for (const gid of gids) {
      const commit = records.has(gid);
      try {
        await pool.query(`${commit ? 'COMMIT' : 'ROLLBACK'} PREPARED ${quoteLiteral(gid)}`);
        if (commit) result.committed++;
        else result.rolledBack++;
      } catch {
        stillPrepared.add(gid);
      }
    }
  }

  // 4. Records no node still needs: their transactions are resolved everywhere.
  if (result.unreachable.length === 0) {
    const deletable = [...records].filter((gid) => orphaned(gid) && !stillPrepared.has(gid));
    if (deletable.length > 0) {
      await coordinator.query('DELETE FROM pgweave.transaction WHERE gid = ANY($1::text[])', ['{' + deletable.join(',') + '}']);
    }
  }
  return result;
}
