/**
 * Owns the commit path of a transaction block across nodes: given the
 * joined worker links, decides and runs
 *   - one-phase commit when at most one node wrote (the coordinator counts
 *     when its transaction has an xid of a write that stays), read-only
 *     nodes first;
 *   - two-phase commit otherwise (transaction/distributed-commit.ts, through
 *     the commit gate; the plain SessionServices.commitMultiNode when there
 *     is no gate). A coordinator with temporary tables (pulls) cannot be
 *     prepared: it commits one-phase, last.
 * On failure every node still in a transaction rolls back.
 */
import { PgError } from '../protocol/errors.js';
import type { BackendLink } from '../executor/backend-link.js';
import { queryOnLink } from '../executor/link-query.js';
import { quoteLiteral } from '../sql/quote.js';
import { commitDistributed, type CommitNode } from '../transaction/distributed-commit.js';
import type { SessionServices } from './services.js';

/** What the commit needs from the session's transaction (session-transaction.ts). */
export interface CommitContext {
  coordinator: BackendLink;
  services: SessionServices;
  /** Pull queries created temporary tables on the coordinator in this block. */
  pulledInBlock: boolean;
  /** The session wants atomic visibility (the gate's visibility step). */
  atomicVisibility: boolean;
  /** Whether the coordinator PostgreSQL's transaction wrote (insert-evaluation.ts). */
  coordinatorWrote(): Promise<boolean>;
  /** An error as the client must see it (a deadlock victim's cancellation becomes 40P01). */
  translated(err: PgError | null): PgError | null;
}

/** The node group of a worker link (0: unknown, as the coordinator's). */
export function groupOf(services: SessionServices, link: BackendLink): number {
  const catalog = services.catalog();
  return catalog?.nodes.find((n) => n.nodeId === link.nodeId)?.groupId ?? 0;
}

/** A link as a participant of transaction/distributed-commit.ts. */
export function commitNode(ctx: CommitContext, link: BackendLink, groupId = groupOf(ctx.services, link)): CommitNode {
  return {
    label: `${link.conn.host}:${link.conn.port}`,
    groupId,
    get lost() {
      return link.lost;
    },
    run: async (sql: string) => {
      const r = await queryOnLink(link, sql);
      if (r.error) throw ctx.translated(r.error);
      return r.tag;
    },
  };
}

/** Commits links that all wrote (a multi-shard write's own block): two-phase. */
export async function commitWritten(ctx: CommitContext, links: BackendLink[]): Promise<void> {
  const gate = ctx.services.commitGate;
  if (!gate) return ctx.services.commitMultiNode(links, []);
  await commitDistributed(gate, {
    written: links.map((l) => commitNode(ctx, l)),
    readOnly: [],
    lastAgent: null,
    atomicVisibility: ctx.atomicVisibility,
  });
}

/** Commits the block on every joined worker and the coordinator; returns the tag or the error. */
export async function commitNodes(ctx: CommitContext, workers: BackendLink[]): Promise<string | PgError> {
  const coordinator = ctx.coordinator;
  const written = workers.filter((w) => w.wroteInTransaction);
  const readOnly = workers.filter((w) => !w.wroteInTransaction);
  try {
    const gate = ctx.services.commitGate;
    if (written.length >= 2 && gate && !ctx.pulledInBlock) {
      // Two-phase for sure: the coordinator is asked whether it wrote while the workers prepare;
      // it then prepares too, or commits as a read-only node.
      const wrote = ctx.coordinatorWrote();
      wrote.catch(() => {});
      const coordinatorNode: CommitNode = Object.assign(commitNode(ctx, coordinator, 0), {
        prepare: async (gid: string): Promise<'prepared' | 'committed'> => {
          if (!(await wrote)) {
            const r = await queryOnLink(coordinator, 'COMMIT');
            if (r.error) throw r.error;
            return 'committed';
          }
          const r = await queryOnLink(coordinator, `PREPARE TRANSACTION ${quoteLiteral(gid)}`);
          if (r.error) throw r.error;
          if (r.tag !== 'PREPARE TRANSACTION') throw new PgError({ code: '40000', message: 'the transaction on the coordinator was rolled back before it could be prepared' });
          return 'prepared';
        },
      });
      await commitDistributed(gate, {
        written: [...written.map((w) => commitNode(ctx, w)), coordinatorNode],
        readOnly: readOnly.map((w) => commitNode(ctx, w)),
        lastAgent: null,
        atomicVisibility: ctx.atomicVisibility,
      });
      return 'COMMIT';
    }
    // Likely one-phase: read-only workers commit while the coordinator is asked whether it wrote.
    const readOnlyFirst = written.length <= 1;
    const [coordinatorWrote, readOnlyResults] = await Promise.all([
      ctx.coordinatorWrote(),
      readOnlyFirst ? Promise.all(readOnly.map((w) => queryOnLink(w, 'COMMIT'))) : Promise.resolve([]),
    ]);
    const failedReadOnly = readOnlyResults.find((r) => r.error);
    if (failedReadOnly) throw failedReadOnly.error;
    if (written.length + (coordinatorWrote ? 1 : 0) <= 1) {
      // One-phase: the one written node decides; a coordinator without writes commits alongside.
      const [w, c] = await Promise.all([
        written[0] ? queryOnLink(written[0], 'COMMIT') : Promise.resolve(null),
        written[0] ? queryOnLink(coordinator, 'COMMIT') : Promise.resolve(null),
      ]);
      if (w?.error) return ctx.translated(w.error)!;
      if (w && w.tag !== 'COMMIT') return w.tag;
      const r = c ?? (await queryOnLink(coordinator, 'COMMIT'));
      return r.error ?? r.tag;
    }
    if (!gate) {
      // No gate service (embedding without one): the plain two-phase commit.
      const all = coordinatorWrote ? [...written, coordinator] : written;
      const ro = [...(readOnlyFirst ? [] : readOnly), ...(coordinatorWrote ? [] : [coordinator])];
      await ctx.services.commitMultiNode(all, ro);
      return 'COMMIT';
    }
    const coordinatorNode = commitNode(ctx, coordinator, 0);
    // Temporary tables (pulls) make the coordinator's transaction impossible to prepare: it commits one-phase, last.
    const lastAgent = coordinatorWrote && ctx.pulledInBlock ? coordinatorNode : null;
    await commitDistributed(gate, {
      written: [...written.map((w) => commitNode(ctx, w)), ...(coordinatorWrote && !lastAgent ? [coordinatorNode] : [])],
      readOnly: [...(readOnlyFirst ? [] : readOnly).map((w) => commitNode(ctx, w)), ...(coordinatorWrote ? [] : [coordinatorNode])],
      lastAgent,
      atomicVisibility: ctx.atomicVisibility,
    });
    return 'COMMIT';
  } catch (err) {
    for (const w of [...workers, coordinator]) if (w.status !== 0x49 && !w.lost) await queryOnLink(w, 'ROLLBACK');
    return err instanceof PgError ? err : new PgError({ code: 'XX000', message: String(err) });
  }
}
