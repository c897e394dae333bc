/**
 * A session's tenant on a shared pipelined channel (pipelined-channel.ts):
 * a BackendLink without socket listeners of its own, whose whole requests
 * go through the channel and whose replies the channel frames and hands it.
 */
import type { Duplex } from 'node:stream';
import type { PgError } from '../protocol/errors.js';
import type { BackendConnection } from '../pool/backend-connection.js';
import { BackendLink, Completes, type Expectation } from './backend-link.js';
import type { PipelinedChannel } from './pipelined-channel.js';

/**
 * One session's view of a shared channel: a BackendLink whose requests go
 * through the channel. Never detached into the idle pool (it owns no connection).
 */
export class ChannelTenant extends BackendLink {
  /** The session asked to cancel; sent when safe (PipelinedChannel.cancel). */
  cancelWanted = false;
  /** Requests on the channel not answered yet. */
  onChannel = 0;
  /** One of them went in a run and is not answered yet: later requests wait (a re-send must not overtake them). */
  memberUnanswered = false;

  constructor(
    readonly channel: PipelinedChannel,
    client: Duplex,
  ) {
    super(channel.conn, client, channel.nodeId, new Set(), false);
  }

  override get reusable(): boolean {
    return false;
  }

  override detach(): BackendConnection {
    throw new Error('a pipelined channel tenant owns no connection to give away');
  }

  /**
   * Sends one whole request (its last message a Sync or Query) in parts.
   * `coalesce`: a Bind … Execute … Sync of one statement that only reads
   * (no Parse, one Execute of all rows), which may share its Sync.
   */
  sendRequest(parts: readonly Buffer[], expect: readonly Expectation[], coalesce = false): void {
    for (const e of expect) this.queuePush(e, false);
    if (this.lost || this.channel.dead) {
      this.lose();
      return;
    }
    this.channel.write(this, parts, coalesce);
  }

  override send(bytes: Buffer, expect: Expectation[]): void {
    if (expect.length === 0 || expect[expect.length - 1].completes !== Completes.Ready) {
      throw new Error('a pipelined channel takes whole requests only (ending with Sync or Query)');
    }
    if (bytes[0] === 0x51 /* Query */) this.runCount++;
    this.sendRequest([bytes], expect);
  }

  override cancel(): void {
    this.channel.cancel(this);
  }

  /** The session ends: replies still on their way are dropped; the channel goes on serving others. */
  override close(): void {
    this.closed = true;
  }

  protected override toClient(bytes: Buffer): void {
    if (!this.closed) super.toClient(bytes);
  }

  /** The channel's connection is gone. */
  transportLost(cause: PgError | null): void {
    this.unsolicitedError = cause;
    this.lose();
  }
}
