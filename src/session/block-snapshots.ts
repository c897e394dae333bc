/**
 * Owns the snapshots of a REPEATABLE READ / SERIALIZABLE transaction block
 * (atomic visibility, transaction/commit-gate.ts): when the block first
 * touches a worker, every data node joins it at once with its snapshot
 * taken under the commit gate (the coordinator's too, unless it is busy
 * answering the client), so the block sees every multi-node commit
 * everywhere or nowhere; and each node's block snapshot as exported
 * (pg_export_snapshot) for the block's extra connections to import.
 *
 * State: `taking` is null until the first worker is touched, then the
 * promise of all joins (rejected: the block is broken — it cannot be read
 * consistently any more); `exported` per node id (null: could not be
 * exported). `reset` at the end of every block.
 */
import type { PgError } from '../protocol/errors.js';
import type { BackendLink } from '../executor/backend-link.js';
import { queryOnLink, decodeDataRow } from '../executor/link-query.js';
import type { Catalog, WorkerNode } from '../metadata/types.js';
import type { CommitGate } from '../transaction/commit-gate.js';
import type { SessionServices } from './services.js';
import { sendSwallowed } from './txn-wire.js';

/** What taking the snapshots needs from the session's transaction (session-transaction.ts). */
export interface SnapshotHost {
  coordinator: BackendLink;
  services: SessionServices;
  /** Opens (or reuses) the session's link to a node without joining it to the block. */
  openLink(node: WorkerNode): Promise<BackendLink>;
  /** Sends the block's opening to a link; resolves when the link has answered it. */
  joinLink(link: BackendLink): Promise<PgError | null>;
  markBroken(): void;
}

/** Nodes of the catalog that hold data (active primaries), one per node id. */
function dataNodes(catalog: Catalog): WorkerNode[] {
  const seen = new Map<number, WorkerNode>();
  for (const n of catalog.nodes) if (n.isActive && !seen.has(n.nodeId)) seen.set(n.nodeId, n);
  return [...seen.values()];
}

export class BlockSnapshots {
  private taking: Promise<void> | null = null;
  private readonly exported = new Map<number, string | null>();

  /** The joins under way or done (null: not started in this block). */
  get started(): Promise<void> | null {
    return this.taking;
  }

  /** Joins every data node at once, the snapshots taken under `gate`. */
  takeAll(host: SnapshotHost, gate: CommitGate): Promise<void> {
    this.taking ??= (async () => {
      const catalog = host.services.catalog() ?? (await host.services.loadCatalog());
      const nodes = dataNodes(catalog);
      const links = await Promise.all(nodes.map((n) => host.openLink(n)));
      const batch = await gate.enterRead(new Set(nodes.map((n) => n.groupId)));
      try {
        const joins = links.filter((l) => !l.inTransaction).map((l) => host.joinLink(l));
        // The coordinator's own snapshot too (local tables), unless it is busy answering the client.
        if (host.coordinator.pending === 0) joins.push(sendSwallowed(host.coordinator, 'SELECT 1'));
        const failure = (await Promise.all(joins)).find((e) => e);
        if (failure) throw failure;
      } finally {
        gate.leaveRead(batch);
      }
    })().catch((err: unknown) => {
      // Without every node's snapshot the block cannot be read consistently any more: it is aborted.
      host.markBroken();
      throw err;
    });
    return this.taking;
  }

  /** The node's block snapshot as exported from `first` (its block connection), once per block. */
  async exportFor(node: WorkerNode, first: BackendLink): Promise<string | null> {
    const known = this.exported.get(node.nodeId);
    if (known !== undefined) return known;
    const r = await queryOnLink(first, 'SELECT pg_catalog.pg_export_snapshot()');
    const id = r.error || r.rows.length === 0 ? null : (decodeDataRow(r.rows[0]!)[0] ?? null);
    this.exported.set(node.nodeId, id);
    return id;
  }

  reset(): void {
    this.taking = null;
    this.exported.clear();
  }
}
