/**
 * The shared pipelined channels of each (node, database, role), and their
 * registry (pipelined-channel.ts has the channel itself): a group opens
 * channels in the background up to its size and picks the least busy one
 * that is not stalled.
 */
import type { BackendConnection } from '../pool/backend-connection.js';
import { encodeTerminate } from '../pool/frontend-encoders.js';
import { PipelinedChannel } from './pipelined-channel.js';

/** Channels per (node, database, role) unless configured (docs/benchmarks.md, router: 1 vs 2). */
export const DEFAULT_PIPELINE_CHANNELS = 2;

/**
 * The channels of one (node, database, role): `pick` returns the least
 * busy usable channel that is not stalled, synchronously (null while none is
 * connected yet, or all are stalled: the caller uses a connection of its
 * own), and opens channels up to `size` in the background.
 */
export class ChannelGroup {
  private channels: PipelinedChannel[] = [];
  private opening = 0;
  private failedAt = 0;

  constructor(
    private readonly open: () => Promise<BackendConnection>,
    readonly nodeId: number,
    readonly size: number,
    private readonly stallMs = 20,
  ) {}

  pick(): PipelinedChannel | null {
    let best: PipelinedChannel | null = null;
    let live = 0;
    for (const c of this.channels) {
      if (!c.usable) continue;
      live++;
      if (c.stalled) continue;
      if (best === null || c.inFlight < best.inFlight) best = c;
    }
    if (live !== this.channels.length) this.channels = this.channels.filter((c) => c.usable);
    if (live + this.opening < this.size && (best === null || best.inFlight > 0)) this.grow();
    return best;
  }

  private grow(): void {
    // After a failed connect, wait a second before the next try (the node may be down).
    if (this.closed || Date.now() - this.failedAt < 1000) return;
    this.opening++;
    this.open().then(
      (conn) => {
        this.opening--;
        if (this.closed) conn.socket.end(encodeTerminate());
        else this.channels.push(new PipelinedChannel(conn, this.nodeId, this.stallMs));
      },
      () => {
        this.opening--;
        this.failedAt = Date.now();
      },
    );
  }

  private closed = false;

  close(): void {
    this.closed = true;
    for (const c of this.channels) c.close();
    this.channels = [];
  }
}

/** Channel groups by key (node, database, role), shared by every session of the coordinator. */
export class ChannelRegistry {
  private readonly groups = new Map<string, ChannelGroup>();

  constructor(
    /** Channels per (node, database, role); 0 turns pipelining off. */
    readonly channelsPerNode: number,
    readonly stallMs = 20,
  ) {}

  group(key: string, nodeId: number, open: () => Promise<BackendConnection>): ChannelGroup | null {
    if (this.channelsPerNode <= 0) return null;
    let g = this.groups.get(key);
    if (!g) {
      g = new ChannelGroup(open, nodeId, this.channelsPerNode, this.stallMs);
      this.groups.set(key, g);
    }
    return g;
  }

  close(): void {
    for (const g of this.groups.values()) g.close();
    this.groups.clear();
  }
}
