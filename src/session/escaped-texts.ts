/**
 * The client's statement texts that the escape of statement names changed
 * (client-statement-names.ts: `PREPARE pgwsx` → `PREPARE "pgws_x"`), so an
 * error the coordinator reports in the escaped text gets its position in
 * the client's (error-positions.ts). A Query's text maps through its own
 * escape; in the extended protocol, PREPARE, EXECUTE and DEALLOCATE are
 * analysed when they run, so the escape of a Parse's text is kept for its
 * statement name, passed to the portals bound to it, and used for their
 * Execute. Only texts that were escaped are kept (a client that never names
 * a statement `pgws…` costs one null check per forwarded message).
 */
import { Frontend } from '../protocol/constants.js';
import type { SplicedText } from '../sql/text-splice.js';

export class EscapedTexts {
  /** The current client chunk's escaped texts, by the offset of their message (Query or Parse). */
  private chunk: Map<number, SplicedText> | null = null;
  /** Escaped texts of the client's statements (forwarded Parse), by statement name. */
  private statements: Map<string, SplicedText> | null = null;
  /** Escaped texts of the portals bound to those statements, by portal name. */
  private portals: Map<string, SplicedText> | null = null;

  private readonly note = (messageAt: number, text: SplicedText): void => {
    (this.chunk ??= new Map()).set(messageAt, text);
  };

  /** A new client chunk is escaped: the function that records its escaped texts. */
  newChunk(): (messageAt: number, text: SplicedText) => void {
    this.chunk = null;
    return this.note;
  }

  /**
   * The escape of the text a message forwarded to the coordinator runs
   * (the message `buf[start, end)` of the current chunk); null when its text
   * is the client's as sent.
   */
  forwarded(type: number, buf: Buffer, start: number, end: number): SplicedText | null {
    if (this.chunk === null && this.statements === null) return null;
    switch (type) {
      case Frontend.Query:
        return this.chunk?.get(start) ?? null;
      case Frontend.Parse: {
        const text = this.chunk?.get(start) ?? null;
        const name = buf.toString('utf8', start + 5, buf.indexOf(0, start + 5));
        if (text) (this.statements ??= new Map()).set(name, text);
        else if (this.statements?.delete(name) && this.statements.size === 0) this.statements = this.portals = null;
        return text;
      }
      case Frontend.Bind: {
        const portalEnd = buf.indexOf(0, start + 5);
        const portal = buf.toString('utf8', start + 5, portalEnd);
        const text = this.statements?.get(buf.toString('utf8', portalEnd + 1, buf.indexOf(0, portalEnd + 1))) ?? null;
        if (text) (this.portals ??= new Map()).set(portal, text);
        else this.portals?.delete(portal);
        return null;
      }
      case Frontend.Execute:
        return this.portals?.get(buf.toString('utf8', start + 5, Math.min(end, buf.indexOf(0, start + 5)))) ?? null;
      default:
        return null;
    }
  }
}
