/**
 * Role changes made inside functions: `DO $$ BEGIN CREATE ROLE … END $$`,
 * `CALL p()` whose body runs ALTER ROLE. The coordinator never sees these as
 * role statements, so the session watches the statements that can run them
 * (the planner marks DO, CALL and calls of functions whose source mentions
 * roles, RoleFunctionNames below) and, when the statement changed roles, makes
 * every worker hold the coordinator's roles before the statement's
 * transaction commits (docs/security.md, "Role changes inside functions"):
 *
 *   outside a block   the session opens a transaction on the coordinator
 *                     (`watchRoles`), the statement runs in it, and
 *                     `settleRoles` commits it: alone when nothing changed,
 *                     else in one two-phase commit with every worker's
 *                     internal-role transaction that applies the new roles
 *   inside a block    the new roles are applied on the block's own worker
 *                     connections (as the client), so they commit or roll
 *                     back with the block
 *
 * Detection is cheap and exact for the client's own transaction: PostgreSQL's
 * per-transaction tuple counters of pg_authid and pg_auth_members
 * (pg_stat_get_xact_tuples_*), read before and after. Only when they moved is
 * the whole role state read — in the client's transaction, so uncommitted
 * changes are seen. That needs pg_authid (the SCRAM verifiers), which only a
 * superuser may read: a non-superuser whose function changed roles gets 0A000
 * and the statement's effects are rolled back, rather than roles diverging.
 * A change to the internal role is refused (42501) the same way.
 *
 * A DO block or procedure that may COMMIT or ROLLBACK by itself cannot run
 * inside a transaction the session opened (PostgreSQL: "invalid transaction
 * termination"). Those run as they are, and the watch compares the committed
 * roles (read as the internal role, verifiers included) before and after: a
 * change reaches the workers right after the statement, in one two-phase
 * commit across the workers — not atomic with the coordinator's own commits,
 * which the procedure made itself.
 */
import { PgError } from '../../protocol/errors.js';
import { quoteLiteral } from '../../sql/quote.js';
import { initParser, parseSql, type Node } from '../../sql/parse.js';
import type { WorkerNode } from '../../metadata/types.js';
import { coordinatorPool } from '../common.js';
import type { CommandContext } from '../context.js';
import { commitAcrossNodes, propagationNodes } from './global-utility.js';
import { internalQuery } from './global-plan.js';
import { onLink, type BlockLinks } from './in-block.js';
import { applyRoleTarget, emptyTarget, isBuiltinRole, readRoles, readVerifiers, type Query, type RoleTarget } from './role-state.js';

/** What the watch saw before the statement. */
export interface RoleWatch {
  /**
   * `transaction`: the statement runs in the client's transaction (the block,
   * or one the watch opened: `wrapped`); `committed`: it commits by itself.
   */
  mode: 'transaction' | 'committed';
  wrapped: boolean;
  /** `transaction`: tuples of pg_authid / pg_auth_members written so far; `committed`: a digest of the committed roles. */
  writes: string;
  /** oid → name of every role before the statement. */
  names: Map<string, string>;
}

export interface WatchContext extends CommandContext {
  /** Whether the statement ran inside the client's own block (else in the watch's transaction). */
  inTransactionBlock: boolean;
  linkFor?: BlockLinks['linkFor'];
}

const P = 'OPERATOR(pg_catalog.+)';
const WRITES = `SELECT (SELECT pg_catalog.sum(pg_catalog.pg_stat_get_xact_tuples_inserted(c) ${P} pg_catalog.pg_stat_get_xact_tuples_updated(c) ${P} pg_catalog.pg_stat_get_xact_tuples_deleted(c))
  FROM pg_catalog.unnest(ARRAY['pg_catalog.pg_authid'::pg_catalog.regclass, 'pg_catalog.pg_auth_members'::pg_catalog.regclass]) c)::pg_catalog.text`;
const NAMES = 'SELECT r.oid::pg_catalog.text, r.rolname::pg_catalog.text FROM pg_catalog.pg_roles r';
/** The committed roles, memberships and verifiers, as one digest (read as the internal role). */
const DIGEST = `SELECT pg_catalog.md5(pg_catalog.concat(
  (SELECT pg_catalog.string_agg(a::pg_catalog.text, ',' ORDER BY a.oid) FROM pg_catalog.pg_authid a),
  (SELECT pg_catalog.string_agg(m::pg_catalog.text, ',' ORDER BY m.roleid, m.member) FROM pg_catalog.pg_auth_members m)))`;

const internal = (ctx: CommandContext): Query => internalQuery(coordinatorPool(ctx));
const asClient = (ctx: CommandContext): Query => (sql, params) => ctx.runAsClient(sql, params);

const namesOf = async (q: Query) => new Map((await q(NAMES)).rows.map((r) => [r[0]!, r[1]!]));

/** Whether a DO block or a called procedure may COMMIT / ROLLBACK by itself (a word in its source: conservative). */
async function mayEndTransactions(ctx: CommandContext, statement: string): Promise<boolean> {
  await initParser();
  const stmt = parseSql(statement).stmts[0]?.stmt as Node;
  const words = /\b(commit|rollback)\b/i;
  if (stmt?.DoStmt) {
    const body = ((stmt.DoStmt.args ?? []) as Node[]).find((a) => a.DefElem?.defname === 'as')?.DefElem.arg?.String?.sval;
    return typeof body === 'string' && words.test(body);
  }
  const names = ((stmt?.CallStmt?.funccall?.funcname ?? []) as Node[]).map((n) => n.String?.sval as string);
  const name = names[names.length - 1];
  if (!name) return false;
  const r = await ctx.runAsClient(
    `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.proname OPERATOR(pg_catalog.=) $1 AND p.prokind OPERATOR(pg_catalog.=) 'p'
       AND p.prosrc OPERATOR(pg_catalog.~*) '\\m(commit|rollback)\\M')::pg_catalog.text`,
    [name],
  );
  return r.rows[0]?.[0] === 'true';
}

/**
 * Before a watched statement: outside a block, opens the transaction it runs
 * in (unless it may end transactions itself); notes what settleRoles compares.
 */
export async function watchRoles(ctx: WatchContext, statement: string): Promise<RoleWatch> {
  if (!ctx.inTransactionBlock && (await mayEndTransactions(ctx, statement))) {
    const digest = (await internal(ctx)(DIGEST)).rows[0]![0]!;
    return { mode: 'committed', wrapped: false, writes: digest, names: await namesOf(internal(ctx)) };
  }
  if (!ctx.inTransactionBlock) await ctx.runAsClient('BEGIN');
  const r = await ctx.runAsClient(`${WRITES}, (SELECT pg_catalog.json_object_agg(r.oid, r.rolname) FROM pg_catalog.pg_roles r)::pg_catalog.text`);
  const names = new Map<string, string>(Object.entries(JSON.parse(r.rows[0]![1] ?? '{}') as Record<string, string>));
  return { mode: 'transaction', wrapped: !ctx.inTransactionBlock, writes: r.rows[0]![0] ?? '0', names };
}

function reserved(role: string): PgError {
  return new PgError({ code: '42501', message: `role "${role}" is reserved for the coordinator's internal use` });
}

/**
 * After a watched statement (it succeeded): when it changed roles, every worker
 * is made to hold the coordinator's roles. A wrapped statement's transaction is
 * committed here too; on error the caller rolls it back (or fails the block).
 */
export async function settleRoles(ctx: WatchContext, before: RoleWatch): Promise<void> {
  const nodes = propagationNodes(ctx, (await ctx.metadata.get(ctx.database)).nodes);
  if (before.mode === 'committed') {
    const digest = (await internal(ctx)(DIGEST)).rows[0]![0]!;
    if (digest === before.writes || nodes.length === 0) return;
    const target = await roleTargetAfter(ctx, before, internal(ctx));
    await commitAcrossNodes(ctx, nodes, { client: 'outside', run: async () => ({ tag: '', work: { roles: target } }) });
    return;
  }
  const writes = (await ctx.runAsClient(WRITES)).rows[0]![0] ?? '0';
  if (writes === before.writes || nodes.length === 0) {
    if (before.wrapped) await ctx.runAsClient('COMMIT');
    return;
  }
  const target = await roleTargetAfter(ctx, before, asClient(ctx));
  if (before.wrapped) {
    await commitAcrossNodes(ctx, nodes, { client: 'open', run: async () => ({ tag: '', work: { roles: target } }) });
    return;
  }
  if (!ctx.linkFor) throw new PgError({ code: 'XX000', message: 'no worker connections for the transaction block' });
  for (const node of nodes) await applyInBlock(ctx, ctx.linkFor, node, target);
}

/** Every role as `read` now sees it, as a target for the workers (renames and drops against `before`). */
async function roleTargetAfter(ctx: CommandContext, before: RoleWatch, read: Query): Promise<RoleTarget> {
  const internalRole = ctx.config.internal.user;
  let verifiers: Map<string, string | null>;
  try {
    verifiers = new Map((await read('SELECT rolname::pg_catalog.text, rolpassword FROM pg_catalog.pg_authid')).rows.map((r) => [r[0]!, r[1]]));
  } catch (err) {
    if (err instanceof PgError && err.fields.code === '42501') {
      throw new PgError({
        code: '0A000',
        message: 'role changes inside functions or DO blocks are propagated to the workers only for superusers',
        detail: 'The new roles and their password verifiers must be read in your transaction, from pg_authid.',
        hint: 'Run the role statements themselves (CREATE ROLE, ALTER ROLE, GRANT role), not inside a function.',
      });
    }
    throw err;
  }
  const after = await namesOf(read);
  const names = [...after.values()].filter((n) => !isBuiltinRole(n) && n !== internalRole);

  // The internal role is the coordinator's: a function may not change it either.
  const internalOid = [...before.names].find(([, n]) => n === internalRole)?.[0];
  const committed = await readVerifiers(internal(ctx), [internalRole]);
  const internalNow = (await readRoles(read, [internalRole])).roles.get(internalRole);
  const internalThen = (await readRoles(internal(ctx), [internalRole], false)).roles.get(internalRole);
  if (
    internalOid === undefined ||
    after.get(internalOid) !== internalRole ||
    verifiers.get(internalRole) !== committed.get(internalRole) ||
    JSON.stringify(internalNow) !== JSON.stringify(internalThen)
  ) {
    throw reserved(internalRole);
  }

  const desired = await readRoles(read, names);
  desired.memberships = desired.memberships.filter((m) => m.role !== internalRole && m.member !== internalRole);
  const target = emptyTarget(desired);
  for (const n of names) {
    target.sync.add(n);
    target.membershipsOf.add(n);
    const v = verifiers.get(n);
    // A password is set where the coordinator has one; a worker's own is never cleared by a sync.
    if (v) target.passwords.set(n, v);
  }
  for (const [oid, name] of before.names) {
    if (isBuiltinRole(name) || name === internalRole) continue;
    const now = after.get(oid);
    if (now === undefined) target.drop.add(name);
    else if (now !== name) target.renames.push({ from: name, to: now });
  }
  return target;
}

/** Applies the roles on the block's own connection to `node` (as the client, a superuser here), with a pinned search_path. */
async function applyInBlock(ctx: CommandContext, linkFor: BlockLinks['linkFor'], node: WorkerNode, target: RoleTarget): Promise<void> {
  await ctx.pools.ensureDatabase(node.host, node.port, ctx.database);
  const query = onLink(await linkFor(node, true));
  const path = (await query("SELECT pg_catalog.current_setting('search_path'), pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true)")).rows[0]![0] ?? '';
  await applyRoleTarget(query, target, ctx.config.internal.user);
  await query(`SELECT pg_catalog.set_config('search_path', ${quoteLiteral(path)}, true)`);
}

/**
 * Names of functions whose own source mentions ROLE, USER or GROUP (outside
 * pg_catalog and information_schema): a local statement calling one
 * (`SELECT f()`) is watched like DO and CALL. Read as the internal role once
 * per catalog version — function DDL through the coordinator tells every
 * coordinator to reload (ddl/object-ddl.ts), so a new function counts at once.
 * A function that changes roles only through another function it calls is
 * not found this way.
 */
export class RoleFunctionNames {
  private version = -1;
  private names: ReadonlySet<string> | null = null;
  private loading: { version: number; promise: Promise<ReadonlySet<string>> } | null = null;

  /** The names for this catalog version, or null when not loaded yet. */
  now(version: number): ReadonlySet<string> | null {
    return this.version === version ? this.names : null;
  }

  load(version: number, query: Query): Promise<ReadonlySet<string>> {
    if (this.version === version && this.names) return Promise.resolve(this.names);
    if (this.loading?.version === version) return this.loading.promise;
    const promise = query(
      `SELECT DISTINCT p.proname::pg_catalog.text FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND p.prokind IN ('f', 'p')
         AND p.prosrc ~* '\\m(role|user|group)\\M'`,
    ).then(
      (r) => {
        const names = new Set(r.rows.map((row) => row[0]!));
        if (version >= this.version) {
          this.version = version;
          this.names = names;
        }
        if (this.loading?.version === version) this.loading = null;
        return names;
      },
      (err) => {
        if (this.loading?.version === version) this.loading = null;
        throw err;
      },
    );
    this.loading = { version, promise };
    return promise;
  }
}
