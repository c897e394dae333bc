/**
 * The BackendKeyData the coordinator hands to clients, and what a matching
 * CancelRequest cancels. Keys are the coordinator's own: a client never learns
 * a node's backend pid, and one client key can cancel work on several nodes.
 */
import { randomInt } from 'node:crypto';
import type { BackendKey } from '../protocol/backend/backend-key-data.js';

export interface Cancellable {
  cancel(): void;
}

export class CancelRegistry {
  private readonly entries = new Map<number, { secretKey: number; target: Cancellable }>();
  private nextPid = randomInt(1 << 20, 1 << 30);

  register(target: Cancellable): BackendKey {
    const processId = this.nextPid++;
    if (this.nextPid >= 0x7fffffff) this.nextPid = 1 << 20;
    const secretKey = randomInt(-0x80000000, 0x7fffffff);
    this.entries.set(processId, { secretKey, target });
    return { processId, secretKey };
  }

  unregister(key: BackendKey): void {
    this.entries.delete(key.processId);
  }

  /** Cancels the matching session; a wrong key is ignored, as PostgreSQL does. */
  cancel(processId: number, secretKey: number): boolean {
    const e = this.entries.get(processId);
    if (!e || e.secretKey !== secretKey) return false;
    e.target.cancel();
    return true;
  }

  get size(): number {
    return this.entries.size;
  }
}
