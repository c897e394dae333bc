/**
 * The in-memory catalog of each database, as every coordinator process holds
 * it for routing, kept fresh through LISTEN/NOTIFY.
 *
 * Per database the cache keeps one dedicated LISTEN connection (internal role,
 * coordinator PostgreSQL) on channel `pgweave_catalog`, and at most one loaded
 * Catalog. States of a database entry:
 *
 *   no listener ──get()──▶ listening ──load──▶ cached ──NOTIFY──▶ listening (stale, reload on next get)
 *        ▲                                                         │
 *        └──────────── listener connection lost (cache dropped) ◀──┘
 *
 * The listener is up before a catalog is loaded, so any change committed
 * after the load's snapshot produces a notification that drops the cache. A
 * load that overlaps a notification is retried rather than cached. Without a
 * working listener nothing is cached.
 *
 * Commands that change the catalog call beginChange() first: it registers a
 * waiter for a unique token, and they run `notifySql` inside their catalog
 * transaction. After commit they invalidate locally and await wait(). Every
 * listener (of every coordinator process) answers a catalog notification,
 * once it has dropped its cache, with `pgweave_catalog_ack` carrying the
 * same token; NotificationResponse names the sending backend, so wait()
 * resolves when every catalog listener of the database that
 * pg_stat_activity lists has acknowledged. A table distributed through one
 * coordinator is then routed correctly by any other at once, however loaded
 * the machine is. A listener that never answers (a hung process) only
 * delays the command by the timeout.
 */
import { randomBytes } from 'node:crypto';
import { connectBackend } from '../pool/backend-connection.js';
import { InternalClient, type Row } from '../pool/internal-client.js';
import type { NodePools } from '../pool/node-pools.js';
import { quoteLiteral } from '../sql/quote.js';
import { ensureCatalog } from './catalog-schema.js';
import { shardName } from './shard-name.js';
import { tableKey, type Catalog, type DistributedTable, type NodeAddress, type Shard, type WorkerNode } from './types.js';

export const CATALOG_CHANNEL = 'pgweave_catalog';
const CATALOG_ACK_CHANNEL = 'pgweave_catalog_ack';
const LISTENER_NAME = 'pgweave catalog listener';
const TEMPLATE_DATABASES = new Set(['template0', 'template1']);
const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

export interface CatalogChange {
  /** Run inside the catalog-changing transaction. */
  readonly notifySql: string;
  /** After commit: resolves when this process's listener has seen the change (or after timeoutMs). */
  wait(timeoutMs?: number): Promise<void>;
  /** The change was rolled back: stop waiting for it. */
  cancel(): void;
}

interface DatabaseEntry {
  listener: InternalClient | null;
  listening: Promise<InternalClient> | null;
  catalog: Promise<Catalog> | null;
  /** The loaded value of `catalog`, for synchronous readers (peek). */
  loaded: Catalog | null;
  /** Bumped by every notification and invalidation. */
  generation: number;
  waiters: Map<string, ChangeWaiter>;
}

/** A change awaiting acknowledgements: the backend pids of the listeners that answered its token. */
interface ChangeWaiter {
  readonly acked: Set<number>;
  /** Called on every acknowledgement, and with done = true on cancel and close: lets a waiting wait() return. */
  wake(done: boolean): void;
}

let catalogVersion = 0;

/** Forgets a database's cached catalog (a change was notified, or may have been missed). */
function drop(entry: DatabaseEntry): void {
  entry.generation++;
  entry.catalog = null;
  entry.loaded = null;
}

export class MetadataCache {
  private readonly entries = new Map<string, DatabaseEntry>();
  private closed = false;

  constructor(
    private readonly pools: NodePools,
    private readonly coordinator: NodeAddress,
  ) {}

  /** The catalog of `database`, loaded once and reused until a change is notified. */
  async get(database: string): Promise<Catalog> {
    // Template databases never get a catalog: every database created from them would inherit it.
    if (TEMPLATE_DATABASES.has(database)) return { version: 0, nodes: [], tables: new Map(), tablesById: new Map() };
    await ensureCatalog(this.pools, this.coordinator, database);
    const entry = this.entry(database);
    for (let attempt = 0; ; attempt++) {
      await this.listen(database, entry);
      const generation = entry.generation;
      if (entry.catalog) {
        // Another caller's load: its result is stale if a change was notified while it ran.
        const shared = await entry.catalog;
        if (entry.generation === generation || attempt >= 3) return shared;
        continue;
      }
      const loading = this.load(database);
      entry.catalog = loading;
      let catalog: Catalog;
      try {
        catalog = await loading;
      } catch (err) {
        if (entry.catalog === loading) entry.catalog = null;
        throw err;
      }
      if (entry.generation === generation && entry.listener) {
        if (entry.catalog === loading) entry.loaded = catalog;
        return catalog;
      }
      if (entry.catalog === loading) entry.catalog = null;
      if (attempt >= 3) return catalog; // a stream of changes: this snapshot is as good as any
    }
  }

  /** The cached catalog of `database` if it is loaded and current, else null (call get()). */
  peek(database: string): Catalog | null {
    const entry = this.entries.get(database);
    return entry?.listener && !entry.listener.closed ? entry.loaded : null;
  }

  /** Drops the cached catalog of `database`; the next get() reloads it. */
  invalidate(database: string): void {
    const entry = this.entries.get(database);
    if (entry) drop(entry);
  }

  lookup(catalog: Catalog, schema: string, name: string): DistributedTable | undefined {
    return catalog.tables.get(tableKey(schema, name));
  }

  /**
   * Prepares a catalog change: makes sure the listener runs and registers a
   * waiter for a fresh token (see the module comment).
   */
  async beginChange(database: string): Promise<CatalogChange> {
    const entry = this.entry(database);
    await this.listen(database, entry);
    const token = randomBytes(12).toString('hex');
    const waiter: ChangeWaiter = { acked: new Set(), wake: () => {} };
    entry.waiters.set(token, waiter);
    return {
      notifySql: `SELECT pg_catalog.pg_notify(${quoteLiteral(CATALOG_CHANNEL)}, ${quoteLiteral(token)})`,
      wait: async (timeoutMs = 5000) => {
        if (!entry.waiters.has(token)) return; // cancelled, or the cache closed
        let timer: NodeJS.Timeout | undefined;
        try {
          const listeners = await this.listenerPids(entry);
          await new Promise<void>((resolve) => {
            timer = setTimeout(resolve, timeoutMs);
            waiter.wake = (done) => {
              if (done || [...listeners].every((pid) => waiter.acked.has(pid))) resolve();
            };
            waiter.wake(false);
          });
        } finally {
          clearTimeout(timer);
          entry.waiters.delete(token);
        }
      },
      cancel: () => {
        entry.waiters.delete(token);
        waiter.wake(true);
      },
    };
  }

  /** The backend pids of every catalog listener of the database (all coordinator processes); empty without a listener. */
  private async listenerPids(entry: DatabaseEntry): Promise<Set<number>> {
    const listener = entry.listener;
    if (!listener || listener.closed) return new Set();
    const r = await listener.query(
      `SELECT pid FROM pg_catalog.pg_stat_activity
        WHERE datname = pg_catalog.current_database() AND usename = CURRENT_USER AND application_name = ${quoteLiteral(LISTENER_NAME)}`,
    );
    return new Set(r.rows.map((row) => Number(row[0])));
  }

  close(): void {
    this.closed = true;
    for (const entry of this.entries.values()) {
      entry.listener?.close();
      entry.listener = null;
      drop(entry);
      for (const w of entry.waiters.values()) w.wake(true);
      entry.waiters.clear();
    }
  }

  private entry(database: string): DatabaseEntry {
    let entry = this.entries.get(database);
    if (!entry) {
      entry = { listener: null, listening: null, catalog: null, loaded: null, generation: 0, waiters: new Map() };
      this.entries.set(database, entry);
    }
    return entry;
  }

  /** Starts the LISTEN connection of a database if it is not running. */
  private listen(database: string, entry: DatabaseEntry): Promise<InternalClient> {
    if (this.closed) return Promise.reject(new Error('metadata cache is closed'));
    if (entry.listener && !entry.listener.closed) return Promise.resolve(entry.listener);
    entry.listening ??= (async () => {
      const { user, password } = this.pools.internal;
      const conn = await connectBackend({
        host: this.coordinator.host,
        port: this.coordinator.port,
        database,
        user,
        credentials: { password },
        params: [['application_name', LISTENER_NAME]],
      });
      conn.socket.setKeepAlive(true, 10000);
      const client = new InternalClient(conn);
      client.onNotification = (channel, payload, senderPid) => {
        if (channel === CATALOG_ACK_CHANNEL) {
          const waiter = entry.waiters.get(payload);
          if (waiter) {
            waiter.acked.add(senderPid);
            waiter.wake(false);
          }
          return;
        }
        if (channel !== CATALOG_CHANNEL) return;
        drop(entry);
        // Answered once the cache is dropped: the changing coordinator waits for every listener's answer.
        client
          .query(
            `BEGIN; SET LOCAL synchronous_commit TO off; SELECT pg_catalog.pg_notify(${quoteLiteral(CATALOG_ACK_CHANNEL)}, ${quoteLiteral(payload)}); COMMIT`,
          )
          .catch(() => {});
      };
      conn.socket.on('close', () => {
        if (entry.listener === client) entry.listener = null;
        drop(entry);
      });
      await client.query(`LISTEN ${CATALOG_CHANNEL}; LISTEN ${CATALOG_ACK_CHANNEL}`);
      // Anything cached before this listener existed may have missed a notification.
      drop(entry);
      entry.listener = client;
      return client;
    })().finally(() => {
      entry.listening = null;
    });
    return entry.listening;
  }

  private async load(database: string): Promise<Catalog> {
    const pool = this.pools.get(this.coordinator.host, this.coordinator.port, database);
    return pool.withClient(async (client) => {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      try {
        const nodes = await client.query(
          `SELECT nodeid, groupid, nodename, nodeport, isactive, shouldhaveshards
           FROM pgweave.node WHERE noderole = 'primary' AND groupid <> 0 ORDER BY nodeid`,
        );
        const tables = await client.query(LOAD_TABLES_SQL);
        const shards = await client.query(
          `SELECT s.shardid, s.logicalrelid, s.shardminvalue, s.shardmaxvalue, pl.placementid, pl.groupid
           FROM pgweave.shard s JOIN pgweave.placement pl ON pl.shardid = s.shardid AND pl.shardstate = 1
           ORDER BY s.logicalrelid, s.shardid, pl.placementid`,
        );
        await client.query('COMMIT');
        return buildCatalog(nodes.rows, tables.rows, shards.rows);
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      }
    });
  }
}

const LOAD_TABLES_SQL = `
SELECT p.logicalrelid, n.nspname, c.relname, p.partmethod, a.attname, bt.typname,
       pg_catalog.format_type(bt.oid, CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END),
       pgweave.hash_function(a.atttypid), p.colocationid,
       (SELECT pg_catalog.array_to_json(pg_catalog.array_agg(ca.attname ORDER BY ca.attnum))::text
          FROM pg_catalog.pg_attribute ca
         WHERE ca.attrelid = p.logicalrelid AND ca.attnum > 0 AND NOT ca.attisdropped),
       (SELECT pg_catalog.array_to_json(pg_catalog.array_agg(da.attname))::text
          FROM pg_catalog.pg_attribute da
          LEFT JOIN pg_catalog.pg_attrdef dd ON dd.adrelid = da.attrelid AND dd.adnum = da.attnum
         WHERE da.attrelid = p.logicalrelid AND da.attnum > 0 AND NOT da.attisdropped
           AND (da.attidentity <> ''
                OR (da.attgenerated = '' AND pg_catalog.pg_get_expr(dd.adbin, dd.adrelid) LIKE '%(%'))),
       (SELECT pg_catalog.array_to_json(pg_catalog.array_agg(ga.attname))::text
          FROM pg_catalog.pg_attribute ga
         WHERE ga.attrelid = p.logicalrelid AND ga.attnum > 0 AND NOT ga.attisdropped AND ga.attgenerated <> '')
FROM pgweave.partition p
JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = p.logicalrelid AND a.attnum = p.distattnum
LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_type bt ON bt.oid = pgweave.base_type(a.atttypid)
ORDER BY p.logicalrelid`;

function buildCatalog(nodeRows: Row[], tableRows: Row[], shardRows: Row[]): Catalog {
  const nodes: WorkerNode[] = nodeRows.map((r) => ({
    nodeId: Number(r[0]),
    groupId: Number(r[1]),
    host: r[2]!,
    port: Number(r[3]),
    isActive: r[4] === 't',
    shouldHaveShards: r[5] === 't',
  }));
  const byGroup = new Map(nodes.map((n) => [n.groupId, n]));
  const tables = new Map<string, DistributedTable>();
  const tablesById = new Map<number, DistributedTable>();
  for (const r of tableRows) {
    const reference = r[3] === 'n';
    const table: DistributedTable = {
      relationId: Number(r[0]),
      schema: r[1]!,
      name: r[2]!,
      method: reference ? 'reference' : 'hash',
      distributionColumn: reference ? null : r[4],
      distributionColumnType: reference ? null : r[5],
      distributionColumnSqlType: reference ? null : r[6],
      hashFunction: reference ? null : r[7],
      colocationId: Number(r[8]),
      columns: r[9] ? (JSON.parse(r[9]) as string[]) : null,
      evaluatedDefaults: r[10] ? (JSON.parse(r[10]) as string[]) : [],
      generatedColumns: r[11] ? (JSON.parse(r[11]) as string[]) : [],
      shards: [],
    };
    tables.set(tableKey(table.schema, table.name), table);
    tablesById.set(table.relationId, table);
  }
  let current: Shard | null = null;
  for (const r of shardRows) {
    const table = tablesById.get(Number(r[1]));
    if (!table) continue;
    const shardId = Number(r[0]);
    if (!current || current.shardId !== shardId) {
      current = {
        shardId,
        minValue: r[2] === null ? INT32_MIN : Number(r[2]),
        maxValue: r[3] === null ? INT32_MAX : Number(r[3]),
        shardName: shardName(table.name, shardId),
        placements: [],
      };
      table.shards.push(current);
    }
    const node = byGroup.get(Number(r[5]));
    if (node) current.placements.push({ placementId: Number(r[4]), shardId, groupId: node.groupId, node });
  }
  for (const table of tables.values()) table.shards.sort((a, b) => a.minValue - b.minValue || a.shardId - b.shardId);
  return { version: ++catalogVersion, nodes, tables, tablesById };
}
