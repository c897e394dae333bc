/**
 * Reading a PostgreSQL server's reply stream before any expectation sees
 * it: whole messages out of socket chunks (a stream that cannot be framed
 * ends the connection), and whether an ErrorResponse is FATAL — the server
 * closes the connection next, so the link or channel counts as lost. Used
 * by a session's own links (backend-link.ts) and the shared pipelined
 * channels (pipelined-channel.ts) alike.
 */
import type { MessageFramer } from '../protocol/framer.js';

/** Whether an ErrorResponse's severity is FATAL or PANIC (the 'S' field comes first, as PostgreSQL sends it). */
export function isFatal(buf: Buffer, start: number, end: number): boolean {
  // 'V' (never localized) decides; 'S' only when a server sends no 'V' (before 9.6).
  let severity = '';
  for (let pos = start + 5; pos < end && buf[pos] !== 0; ) {
    const field = buf[pos];
    const zero = buf.indexOf(0, pos + 1);
    if (zero < 0 || zero >= end) break;
    if (field === 0x56 /* V */) return isFatalSeverity(buf.toString('latin1', pos + 1, zero));
    if (field === 0x53 /* S */) severity = buf.toString('latin1', pos + 1, zero);
    pos = zero + 1;
  }
  return isFatalSeverity(severity);
}

function isFatalSeverity(s: string): boolean {
  return s === 'FATAL' || s === 'PANIC';
}

/**
 * The whole messages a backend socket's chunk completes (null: none yet).
 * Bytes that cannot be framed mean the server is not speaking the protocol:
 * the socket is destroyed, and its close fails what waits on it.
 */
export function takeWholeMessages(framer: MessageFramer, socket: { destroy(): void }, chunk: Buffer): Buffer | null {
  try {
    return framer.take(chunk);
  } catch {
    socket.destroy();
    return null;
  }
}
