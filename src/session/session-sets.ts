/**
 * Owns the session-level SETs a session made (search_path, timezone,
 * statement_timeout…): sent to every worker link the session holds when
 * made, replayed on each link it opens later. A session with such SETs
 * keeps its worker connections (they carry the settings) instead of giving
 * them back to the shared pool. SET LOCAL / SET TRANSACTION belong to the
 * open block instead (block-opening.ts). A SET that a rollback undoes is
 * reset on the links (setting-scopes.ts).
 */
import type { BackendLink } from '../executor/backend-link.js';
import { encodeQuery } from '../pool/frontend-encoders.js';
import { quoteIdent } from '../sql/quote.js';
import { E_READY_UNREAD } from './txn-wire.js';

export class SessionSets {
  private readonly texts: string[] = [];

  /** Whether session-level SETs were made. */
  get any(): boolean {
    return this.texts.length > 0;
  }

  /** A session-level SET: remembered (the last 100) and sent to the session's live links now. */
  remember(text: string, links: Iterable<BackendLink>): void {
    this.texts.push(text);
    if (this.texts.length > 100) this.texts.shift();
    for (const w of links) if (!w.lost) w.send(encodeQuery(text), [E_READY_UNREAD]);
  }

  /** The SETs replayed on new links, oldest first. */
  get list(): string[] {
    return [...this.texts];
  }

  /**
   * Makes `texts` the session's SETs (a rolled-back block's are undone):
   * each live link resets `resetNames` (`*`: RESET ALL) and replays them.
   */
  restore(texts: string[], resetNames: string[], links: Iterable<BackendLink>): void {
    this.texts.splice(0, this.texts.length, ...texts);
    const resets = resetNames.map((n) => (n === '*' ? 'RESET ALL' : `RESET ${n.split('.').map(quoteIdent).join('.')}`));
    const sql = [...resets, ...texts].join('\n;');
    if (sql === '') return;
    for (const w of links) if (!w.lost) w.send(encodeQuery(sql), [E_READY_UNREAD]);
  }

  /** Replays the SETs on a new worker link. */
  replay(link: BackendLink): void {
    if (this.texts.length === 0) return;
    link.send(encodeQuery(this.texts.join('\n;')), [E_READY_UNREAD]);
  }
}
