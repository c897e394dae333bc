/**
 * Owns a block's identity for the distributed deadlock detector
 * (jobs/deadlock-detector.ts, transaction/deadlock-detection.ts): the tag
 * every joining worker backend is marked with (`sql`), registered while the
 * block lives, and whether the detector chose the block as its victim —
 * whose cancellation (57014) the client must see as 40P01 naming the
 * distributed deadlock.
 */
import { PgError } from '../protocol/errors.js';
import { DEADLOCK_MESSAGE, newTransactionTag, registerTransaction, unregisterTransaction } from '../transaction/deadlock-detection.js';

export class BlockDeadlockTag {
  /** The distributed transaction's tag (0: none yet). */
  private tag = 0;
  /** Set when the deadlock detector chose this transaction as its victim. */
  private victim: string | null = null;

  /** The tag, registered with the detector on first use. */
  ensure(): number {
    if (this.tag === 0) {
      this.tag = newTransactionTag();
      registerTransaction(this.tag, { markVictim: (detail) => (this.victim = detail) });
    }
    return this.tag;
  }

  /** The error the client sees for `err` when it is the victim's cancellation, else null. */
  victimError(err: PgError): PgError | null {
    if (this.victim === null || err.fields.code !== '57014') return null;
    return new PgError({ severity: 'ERROR', code: '40P01', message: DEADLOCK_MESSAGE, detail: this.victim });
  }

  /** The transaction ended: unregistered, no victim. */
  end(): void {
    if (this.tag !== 0) unregisterTransaction(this.tag);
    this.tag = 0;
    this.victim = null;
  }
}
