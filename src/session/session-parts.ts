/**
 * What the session's parts share: the expectation objects (shared, so the
 * forward path allocates none per message), the shapes of planned
 * statements and portals, and small helpers for parameters.
 */
import { Backend, Frontend } from '../protocol/constants.js';
import { PgError } from '../protocol/errors.js';
import { type BindMessage } from '../protocol/frontend/bind.js';
import { BackendLink, Completes, type Expectation } from '../executor/backend-link.js';
import { type CollectedResult } from '../executor/link-query.js';
import { scanWords } from '../sql/lexer.js';
import { type StatementPlan } from '../planner/plan-statement.js';
import type { Route } from '../planner/route.js';
import { NO_DATA, type CommandOutput } from './replies.js';
import type { SessionServices } from './services.js';
import type { ParamTypes } from './pushdown-param-values.js';


export interface SessionOptions {
  maxMessageSize: number;
}

/** Frontend message types a client may send once the session has started. */
export const KNOWN_FRONTEND = new Uint8Array(256);
for (const t of [
  Frontend.Bind, Frontend.Close, Frontend.CopyData, Frontend.CopyDone, Frontend.CopyFail, Frontend.Describe,
  Frontend.Execute, Frontend.Flush, Frontend.FunctionCall, Frontend.Parse, Frontend.Query, Frontend.Sync,
  Frontend.Terminate,
]) KNOWN_FRONTEND[t] = 1;

/** Extended-protocol messages: their links wait for the cycle's Sync (session-base.ts `cycleExtended`). */
export const EXTENDED_MESSAGE = new Uint8Array(256);
for (const t of [Frontend.Parse, Frontend.Bind, Frontend.Describe, Frontend.Execute, Frontend.Close, Frontend.Flush]) EXTENDED_MESSAGE[t] = 1;

// Shared expectation objects: the forward path allocates none per message.
export const E_READY: Expectation = { completes: Completes.Ready, forward: true };
export const E_READY_KEEP: Expectation = { completes: Completes.Ready, forward: true, keepReady: true };
export const E_READY_SWALLOW: Expectation = { completes: Completes.Ready, forward: false };
export const E_PARSE: Expectation = { completes: Completes.ParseComplete, forward: true };
export const E_BIND: Expectation = { completes: Completes.BindComplete, forward: true };
export const E_CLOSE: Expectation = { completes: Completes.CloseComplete, forward: true };
export const E_CLOSE_SWALLOW: Expectation = { completes: Completes.CloseComplete, forward: false };
export const E_DESCRIBE: Expectation = { completes: Completes.Describe, forward: true };
/** A Describe of the session's own (binary rows of a request without one: see `Portal.binaryUndescribed`). */
export const E_DESCRIBE_SWALLOW: Expectation = { completes: Completes.Describe, forward: false, collect: false };
export const E_EXECUTE: Expectation = { completes: Completes.Execute, forward: true };
/** CopyDone/CopyFail forwarded: where the COPY's data ends (Syncs before it get no ReadyForQuery). */
export const E_COPY_END: Expectation = { completes: Completes.CopyEnd, forward: true };

export function expectationFor(type: number): Expectation | null {
  switch (type) {
    case Frontend.Query:
    case Frontend.Sync:
    case Frontend.FunctionCall:
      return E_READY;
    case Frontend.Parse:
      return E_PARSE;
    case Frontend.Bind:
      return E_BIND;
    case Frontend.Close:
      return E_CLOSE;
    case Frontend.Describe:
      return E_DESCRIBE;
    case Frontend.Execute:
      return E_EXECUTE;
    case Frontend.CopyDone:
    case Frontend.CopyFail:
      return E_COPY_END;
    default:
      return null; // Flush, CopyData: no reply of their own
  }
}

/** A statement prepared by the client and planned by the coordinator. */
export interface PlannedStatement {
  id: number;
  query: string;
  plan: StatementPlan;
  paramTypes: number[];
  /** Names of the worker-side prepared statements it used (worker-statements.ts), closed when it is dropped. */
  workerNames?: Set<string>;
  /** The parameter types PostgreSQL inferred for `plan` (pushdown-param-values.ts), once a pushdown needed them. */
  inferredTypes?: { plan: StatementPlan; types: ParamTypes };
}

export type Portal =
  | {
      kind: 'link';
      link: BackendLink;
      /**
       * Bound for binary rows on a worker's link and not described yet: each
       * Execute goes with a Describe of the portal whose answer is not
       * forwarded, so the link sees the RowDescription it needs to map the
       * type OIDs that binary arrays and composites embed (executor/type-oids.ts).
       */
      binaryUndescribed?: boolean;
    }
  | { kind: 'deferred'; route: Route; bind: BindMessage; bindBytes: Buffer; result: CollectedResult | CommandOutput | null; described: boolean; noParams?: boolean; release?: () => void; statement?: { query: string; paramTypes: readonly number[] } };

export const LOCAL_STATEMENT = null;
export const CATALOG_VIEW_WORDS = ['citus_shards', 'citus_tables'];


/**
 * A parameter value as PostgreSQL's text form, for hashing a distribution
 * key: text format as is; binary format for the types clients send binary
 * (integers, uuid, text). Undefined when unknown (routing then declines).
 */
export function paramAsText(p: Buffer | null, format: number, typeOid: number): string | null | undefined {
  if (p === null) return null;
  if (format === 0) return p.toString('utf8');
  switch (typeOid) {
    case 21:
      return p.length === 2 ? String(p.readInt16BE(0)) : undefined;
    case 23:
      return p.length === 4 ? String(p.readInt32BE(0)) : undefined;
    case 20:
      return p.length === 8 ? p.readBigInt64BE(0).toString() : undefined;
    case 25:
    case 1043:
      return p.toString('utf8');
    case 2950:
      if (p.length !== 16) return undefined;
      {
        const h = p.toString('hex');
        return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
      }
    default:
      return undefined;
  }
}

export function planCacheKey(query: string, paramTypes: readonly number[]): string {
  return paramTypes.length === 0 ? query : paramTypes.join(',') + '\u0000' + query;
}

export function abortedError(): PgError {
  return new PgError({ code: '25P02', message: 'current transaction is aborted, commands ignored until end of transaction block' });
}

export function paramText(bind: BindMessage | null, i: number): string | null {
  const p = bind?.params[i];
  if (p === undefined || p === null) return null;
  return p.toString('utf8');
}

/** Cuts the RowDescription ('T') message off the front of an encoded reply. */
export function rowDescriptionOnly(bytes: Buffer): Buffer {
  if (bytes[0] !== Backend.RowDescription) return NO_DATA;
  return bytes.subarray(0, 1 + bytes.readInt32BE(1));
}

/** Whether a statement names any coordinator function (so it must be planned). */
export function mentionsCommand(sql: string, services: SessionServices): boolean {
  let found = false;
  scanWords(sql, (w) => {
    if (!found && services.isCommand(w)) found = true;
  });
  return found;
}
