/**
 * The session's extra connections to a worker for slow start
 * (multi-shard-run.ts, block-extras.ts): opened as the client's role with the
 * session's SETs replayed, and given back once their last reply is in — to
 * the pool when idle outside a transaction, else closed.
 */
import { PgError } from '../protocol/errors.js';
import type { BackendConnection } from '../pool/backend-connection.js';
import type { BackendLink } from '../executor/backend-link.js';
import type { WorkerNode } from '../metadata/types.js';
import type { SessionServices } from './services.js';
import type { ExtraConnections } from './block-extras.js';

/** What the extra connections need of the session. */
export interface ExtraLinksHost {
  makeLink(conn: BackendConnection, nodeId: number, prepared?: Set<string>, node?: WorkerNode): BackendLink;
  state(): 'created' | 'running' | 'closed';
  /** Replays the session-level SETs on a new link. */
  replaySets(link: BackendLink): void;
}

export class ExtraLinks implements ExtraConnections {
  private readonly released = new WeakSet<BackendLink>();

  constructor(
    private readonly services: SessionServices,
    private readonly host: ExtraLinksHost,
  ) {}

  /** One more connection to a worker for slow start: as the client's role, the session's SETs replayed. */
  async open(node: WorkerNode): Promise<BackendLink> {
    const { conn, prepared } = await this.services.connectNode(node);
    const link = this.host.makeLink(conn, node.nodeId, prepared, node);
    link.onIdle = null;
    if (this.host.state() === 'closed') {
      link.close();
      throw new PgError({ code: '08006', message: 'the session ended' });
    }
    this.host.replaySets(link);
    return link;
  }

  /**
   * Gives an extra connection back once its last reply is in (a COMMIT
   * PREPARED may still be on its way): to the pool when it is idle outside a
   * transaction, else it is closed.
   */
  release(node: WorkerNode, link: BackendLink, poolable: boolean): void {
    // Once only: a connection given to the pool twice would serve two sessions at once.
    if (this.released.has(link)) return;
    this.released.add(link);
    void link.settled().then(() => {
      if (poolable && this.host.state() === 'running' && link.reusable) {
        this.services.releaseNode(node, link.detach(), link.prepared);
      } else {
        link.close();
      }
    });
  }
}
