/**
 * How a bulk write that opened its own transaction on several worker links
 * commits them: through the commit gate (two-phase commit whose commit point
 * is also atomically visible, transaction/distributed-commit.ts) when the
 * session has one, else the plain two-phase commit of the services — the
 * same choice the session makes for its multi-shard writes.
 */
import type { BackendLink } from '../../executor/backend-link.js';
import { queryOnLink } from '../../executor/link-query.js';
import type { Catalog } from '../../metadata/types.js';
import type { CommitGate } from '../../transaction/commit-gate.js';
import { commitDistributed, type CommitNode } from '../../transaction/distributed-commit.js';
import { lostError } from './link-pipeline.js';

function parseOff(value: string | undefined): boolean {
  return value !== undefined && /^\s*'?(off|false|no|0|f|n)'?\s*$/i.test(value);
}

function commitNode(link: BackendLink, catalog: Catalog | null): CommitNode {
  return {
    label: `${link.conn.host}:${link.conn.port}`,
    groupId: catalog?.nodes.find((n) => n.nodeId === link.nodeId)?.groupId ?? 0,
    get lost() {
      return link.lost;
    },
    async run(sql: string) {
      if (link.lost || link.conn.socket.destroyed) throw lostError(link);
      const r = await queryOnLink(link, sql);
      if (r.error) throw r.error;
      return r.tag;
    },
  };
}

export function linkCommitter(
  gate: CommitGate | null,
  catalog: () => Catalog | null,
  settings: ReadonlyMap<string, string>,
  plain: (written: BackendLink[], readOnly: BackendLink[]) => Promise<void>,
): (written: BackendLink[], readOnly: BackendLink[]) => Promise<void> {
  return async (written, readOnly) => {
    if (!gate) return plain(written, readOnly);
    const c = catalog();
    await commitDistributed(gate, {
      written: written.map((l) => commitNode(l, c)),
      readOnly: readOnly.map((l) => commitNode(l, c)),
      lastAgent: null,
      atomicVisibility: !parseOff(settings.get('pgweave.atomic_visibility')),
    });
  };
}
