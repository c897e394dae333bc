/**
 * One PostgreSQL protocol connection to a pgweave coordinator, for the
 * client library: connection strings, SCRAM (or trust) authentication, text
 * parameters, rows as objects of text values. Statements on one connection
 * run one after another, in call order.
 *
 * It reuses pgweave's own protocol code (src/pool): the library talks to a
 * cluster exactly as any PostgreSQL client does and needs no driver.
 */
import { connectBackend, type BackendConnectOptions } from '../pool/backend-connection.js';
import { InternalClient } from '../pool/internal-client.js';
import { PgError } from '../protocol/errors.js';

export { PgError };

export interface ConnectionOptions {
  host?: string;
  port?: number;
  user?: string;
  password?: string;
  database?: string;
  /** application_name reported to the server. */
  applicationName?: string;
  connectTimeoutMs?: number;
}

export interface QueryResult<R = Record<string, string | null>> {
  rows: R[];
  fields: string[];
  /** The command tag, e.g. "INSERT 0 1". */
  command: string;
}

/** Parses `postgres://user:password@host:port/database` (also `postgresql://`). */
export function parseConnectionString(url: string): ConnectionOptions {
  const u = new URL(url);
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw new Error(`not a PostgreSQL connection string: ${url}`);
  const options: ConnectionOptions = {
    host: decodeURIComponent(u.hostname) || '127.0.0.1',
    port: u.port ? Number(u.port) : 5432,
    user: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    database: u.pathname.length > 1 ? decodeURIComponent(u.pathname.slice(1)) : undefined,
  };
  const app = u.searchParams.get('application_name');
  if (app) options.applicationName = app;
  return options;
}

/** How to reach the server: the options or connection string, then PG* environment variables, then defaults. */
export function connectOptions(target: string | ConnectionOptions, applicationName: string): BackendConnectOptions {
  const o = typeof target === 'string' ? parseConnectionString(target) : target;
  const user = o.user ?? process.env.PGUSER ?? 'postgres';
  const password = o.password ?? process.env.PGPASSWORD;
  return {
    host: o.host ?? process.env.PGHOST ?? '127.0.0.1',
    port: o.port ?? Number(process.env.PGPORT ?? 5432),
    user,
    database: o.database ?? process.env.PGDATABASE ?? user,
    credentials: password ? { password } : { trust: true },
    params: [['application_name', o.applicationName ?? applicationName]],
    connectTimeoutMs: o.connectTimeoutMs,
    // The coordinator's node-TLS policy (pool/backend-tls.ts) is not the client's: a coordinator in the same process must not change it.
    tls: null,
  };
}

export class Connection {
  private constructor(private readonly client: InternalClient) {}

  static async open(target: string | ConnectionOptions): Promise<Connection> {
    const conn = await connectBackend(connectOptions(target, 'pgweave client'));
    return new Connection(new InternalClient(conn));
  }

  get closed(): boolean {
    return this.client.closed;
  }

  /** Runs one statement; with params it is sent with the extended protocol (text parameters). */
  async query<R = Record<string, string | null>>(sql: string, params?: ReadonlyArray<unknown>): Promise<QueryResult<R>> {
    const r = await this.client.query(sql, params?.map(toParam));
    const rows = r.rows.map((row) => {
      const o: Record<string, string | null> = {};
      r.fields.forEach((f, i) => (o[f] = row[i] ?? null));
      return o as R;
    });
    return { rows, fields: r.fields, command: r.command };
  }

  close(): void {
    this.client.close();
  }
}

/** A parameter's text form: strings as they are, Buffers as bytea hex, objects as JSON, Dates as ISO. */
export function toParam(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return '\\x' + v.toString('hex');
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}
