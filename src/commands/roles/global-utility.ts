/**
 * Cluster-wide objects — roles, role memberships, role settings, schemas,
 * default privileges — changed by a client statement are changed on every
 * worker too (issue 10, DESIGN.md decision 9). The session hands over the
 * planner's `global-utility` route (CREATE/ALTER/DROP ROLE, GRANT/REVOKE
 * role, ALTER ROLE … SET, ALTER ROLE/SCHEMA … RENAME, CREATE SCHEMA, ALTER
 * SCHEMA … OWNER, ALTER DEFAULT PRIVILEGES, GRANT … ON SCHEMA, GRANT … ON
 * FUNCTION / PROCEDURE / ROUTINE, DROP OWNED BY, REASSIGN OWNED BY):
 *
 *   rewrite PASSWORD 'text' → PASSWORD '<SCRAM verifier>' (scram-verifier.ts)
 *   client BEGIN; the statement, in the client's own session, AS THE CLIENT
 *        │            ── PostgreSQL decides whether the client may do it
 *   read the resulting state in that session (role-state.ts, schema-state.ts)
 *   per worker: internal role, BEGIN, make the worker hold that state
 *   commitTwoPhase(internal, [client session, worker 1, …])
 *
 * So the coordinator and the workers change together or not at all. Inside
 * a client's transaction block the workers' part commits at once, as Citus
 * propagates roles: a later ROLLBACK undoes it on the coordinator only (the
 * next change of the same object repairs the workers; docs/security.md).
 *
 * The client's password text reaches no PostgreSQL server at all, and the
 * internal role runs only statements the coordinator generated from state
 * PostgreSQL computed — never the client's text with its CURRENT_USER
 * (ALTER ROLE … SET and ALTER DEFAULT PRIVILEGES are replayed with those
 * names substituted, checked by re-parsing). Statements naming the internal
 * role are refused: it is the coordinator's, not the clients'.
 */
import type { InternalClient } from '../../pool/internal-client.js';
import type { InternalPool } from '../../pool/internal-pool.js';
import { PgError } from '../../protocol/errors.js';
import { initParser, parseSql, type Node } from '../../sql/parse.js';
import { quoteIdent } from '../../sql/quote.js';
import type { WorkerNode } from '../../metadata/types.js';
import { abortAll, commitTwoPhase, ensureLiveness, type Participant } from '../../transaction/two-phase-commit.js';
import type { CommandContext } from '../context.js';
import { beginCatalogTransaction, coordinatorPool } from '../common.js';
import { clientQuery, internalQuery, roleTarget, type Plan, type WorkerChange } from './global-plan.js';
import { ownedObjectsPlan } from './owned-objects.js';
import { applyRoleTarget, emptyTarget, readVerifiers, type Query } from './role-state.js';
import { applyRoutineStates, routineGrantPlan } from './routine-state.js';
import { applySchemaTarget, readSchemas, type SchemaState } from './schema-state.js';
import { storedPasswordFor } from './scram-verifier.js';
import { rewritePasswords, roleName, roleSpecs, substituteRoleSpecs, type SessionRoles } from './statement-text.js';

export interface GlobalUtilityContext extends CommandContext {
  /** Whether the client is inside a transaction block. */
  inTransactionBlock: boolean;
}

function reserved(role: string): PgError {
  return new PgError({ code: '42501', message: `role "${role}" is reserved for the coordinator's internal use` });
}

/** Workers of the current database that are other servers than the coordinator PostgreSQL. */
function propagationNodes(ctx: CommandContext, nodes: WorkerNode[]): WorkerNode[] {
  const { host, port } = ctx.config.coordinator;
  return nodes.filter((n) => n.isActive && n.groupId !== 0 && !(n.host === host && n.port === port));
}

async function sessionRoles(ctx: CommandContext): Promise<SessionRoles> {
  const r = await ctx.runAsClient('SELECT current_user, session_user');
  return { currentUser: r.rows[0]![0]!, sessionUser: r.rows[0]![1]! };
}

/** Roles a schema's state names (owner, grantees), made to exist on the workers first. */
function schemaRoles(states: Map<string, SchemaState>): string[] {
  const roles = new Set<string>();
  for (const s of states.values()) {
    roles.add(s.owner);
    for (const g of s.grants) if (g.grantee) roles.add(g.grantee);
  }
  return [...roles];
}

async function schemaChange(ctx: CommandContext, names: string[], renames: Array<{ from: string; to: string }> = [], extraRoles: string[] = []): Promise<WorkerChange> {
  const desired = await readSchemas(clientQuery(ctx), names);
  const roles = await roleTarget(ctx, [...schemaRoles(desired), ...extraRoles], { memberships: false });
  return { roles, schemas: { desired, renames } };
}

const ROUTINE_OBJECTS = new Set(['OBJECT_FUNCTION', 'OBJECT_PROCEDURE', 'OBJECT_ROUTINE']);

function planStatement(ctx: GlobalUtilityContext, statement: string, stmt: Node, who: () => Promise<SessionRoles>): Plan | Promise<Plan> {
  const kind = Object.keys(stmt)[0]!;
  const s = stmt[kind];
  switch (kind) {
    case 'CreateRoleStmt':
    case 'AlterRoleStmt':
      return (async (): Promise<Plan> => {
        const rewritten = rewritePasswords(statement, stmt, storedPasswordFor);
        const name: string = kind === 'CreateRoleStmt' ? s.role : roleName(s.role, await who())!;
        const members = ((s.options ?? []) as Node[]).flatMap((o) => roleSpecs(o));
        const roles = await who();
        return {
          text: rewritten.text,
          names: [name, ...members.map((m) => roleName(m, roles)).filter((n): n is string => n !== null)],
          async workers() {
            const target = await roleTarget(ctx, [name]);
            // PASSWORD '' clears the password, as PostgreSQL does.
            if (rewritten.stored !== undefined) target.passwords.set(name, rewritten.stored === '' ? null : rewritten.stored);
            return { roles: target };
          },
        };
      })();
    case 'AlterRoleSetStmt':
      return (async (): Promise<Plan> => {
        const roles = await who();
        const name = s.role ? roleName(s.role, roles) : null;
        const database: string | undefined = s.database;
        const sql = substituteRoleSpecs(statement, stmt, roles);
        return {
          text: statement,
          names: name ? [name] : [],
          async workers() {
            const applies = database
              ? async (q: Query) => (await q('SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1', [database])).rows.length > 0
              : undefined;
            return { roles: name ? await roleTarget(ctx, [name], { memberships: false }) : undefined, replay: { sql, applies } };
          },
        };
      })();
    case 'DropRoleStmt': {
      const names = (s.roles as Node[]).map((r) => r.RoleSpec?.rolename as string).filter(Boolean);
      return {
        text: statement,
        names,
        async workers() {
          const target = emptyTarget({ roles: new Map(), memberships: [] });
          for (const n of names) target.drop.add(n);
          return { roles: target };
        },
      };
    }
    case 'GrantRoleStmt':
      return (async (): Promise<Plan> => {
        const roles = await who();
        const granted = ((s.granted_roles ?? []) as Node[]).map((r) => r.AccessPriv?.priv_name as string).filter(Boolean);
        const grantees = ((s.grantee_roles ?? []) as Node[]).map((r) => roleName(r.RoleSpec, roles)).filter((n): n is string => n !== null);
        const names = [...new Set([...granted, ...grantees])];
        return { text: statement, names, workers: async () => ({ roles: await roleTarget(ctx, names) }) };
      })();
    case 'RenameStmt': {
      const from: string = s.subname;
      const to: string = s.newname;
      if (s.renameType === 'OBJECT_ROLE') {
        return {
          text: statement,
          names: [from, to],
          async workers() {
            const target = await roleTarget(ctx, [to]);
            target.renames.push({ from, to });
            // A worker without either name gets the role with the verifier it had under its old name.
            const committed = await readVerifiers(internalQuery(coordinatorPool(ctx)), [from]);
            if (committed.has(from) && !target.committedVerifiers.has(to)) target.committedVerifiers.set(to, committed.get(from)!);
            return { roles: target };
          },
        };
      }
      const schemaName: string = s.subname;
      return { text: statement, names: [], notify: true, workers: () => schemaChange(ctx, [to], [{ from: schemaName, to }]) };
    }
    case 'AlterOwnerStmt':
      return (async (): Promise<Plan> => {
        const name: string = s.object?.String?.sval;
        return { text: statement, names: [], workers: () => schemaChange(ctx, [name]) };
      })();
    case 'CreateSchemaStmt':
      return (async (): Promise<Plan> => {
        const name: string = s.schemaname ?? roleName(s.authrole, await who());
        return { text: statement, names: [], workers: () => schemaChange(ctx, [name]) };
      })();
    case 'DropOwnedStmt':
    case 'ReassignOwnedStmt':
      return ownedObjectsPlan(ctx, statement, stmt, who, ctx.inTransactionBlock);
    case 'GrantStmt':
      if (ROUTINE_OBJECTS.has(s.objtype)) return routineGrantPlan(ctx, statement, stmt, who);
      return (async (): Promise<Plan> => {
        if (s.objtype !== 'OBJECT_SCHEMA') throw new PgError({ code: 'XX000', message: 'unexpected GRANT for cluster-wide propagation' });
        const names = ((s.objects ?? []) as Node[]).map((o) => o.String?.sval as string).filter(Boolean);
        return { text: statement, names: [], workers: () => schemaChange(ctx, names) };
      })();
    case 'AlterDefaultPrivilegesStmt':
      return (async (): Promise<Plan> => {
        const roles = await who();
        const options = (s.options ?? []) as Node[];
        const forRoles = options.find((o) => o.DefElem?.defname === 'roles');
        const schemas = (options.find((o) => o.DefElem?.defname === 'schemas')?.DefElem.arg.List.items ?? []) as Node[];
        // Without FOR ROLE the defaults are the current user's: say so, the worker runs it as the internal role.
        const insert = forRoles
          ? undefined
          : {
              afterWords: 3,
              clause: `FOR ROLE ${quoteIdent(roles.currentUser)}`,
              tree: (expected: Node) => {
                const e = expected.AlterDefaultPrivilegesStmt;
                e.options = [
                  { DefElem: { defname: 'roles', arg: { List: { items: [{ RoleSpec: { roletype: 'ROLESPEC_CSTRING', rolename: roles.currentUser } }] } }, defaction: 'DEFELEM_UNSPEC' } },
                  ...(e.options ?? []),
                ];
              },
            };
        const sql = substituteRoleSpecs(statement, stmt, roles, insert);
        const named = roleSpecs(stmt).map((r) => roleName(r, roles)).filter((n): n is string => n !== null);
        if (!forRoles) named.push(roles.currentUser);
        return {
          text: statement,
          names: named,
          async workers() {
            const change = await schemaChange(ctx, schemas.map((n) => n.String.sval as string), [], named);
            return { ...change, replay: { sql } };
          },
        };
      })();
  }
  throw new PgError({ code: 'XX000', message: `${kind} is not a cluster-wide statement` });
}

/** Puts the client's transaction block into the failed state, as the error would in PostgreSQL (it must not commit the coordinator's half). */
async function abortClientBlock(ctx: CommandContext): Promise<void> {
  await ctx.runAsClient('SELECT pg_catalog.int4div(1, 0)').catch(() => {});
}

/** Applies a cluster-wide statement on the coordinator (as the client) and every worker; returns the command tag. */
export async function runGlobalUtility(ctx: GlobalUtilityContext, statement: string, stmt: unknown): Promise<string> {
  try {
    return await propagate(ctx, statement, stmt);
  } catch (err) {
    // Inside a block, an error leaves the block failed, as in PostgreSQL (and its coordinator half can never commit).
    if (ctx.inTransactionBlock) await abortClientBlock(ctx);
    throw err;
  }
}

async function propagate(ctx: GlobalUtilityContext, statement: string, _stmt: unknown): Promise<string> {
  await initParser();
  const parsed = parseSql(statement).stmts;
  if (parsed.length !== 1) throw new PgError({ code: 'XX000', message: 'expected one statement' });
  // The planner's tree may carry locations relative to a longer query string: locations here are the statement's own.
  const stmt = parsed[0]!.stmt as Node;
  let roles: SessionRoles | null = null;
  const who = async () => (roles ??= await sessionRoles(ctx));
  const plan = await planStatement(ctx, statement, stmt, who);
  const internalRole = ctx.config.internal.user;
  if (plan.names.includes(internalRole)) throw reserved(internalRole);

  const nodes = propagationNodes(ctx, (await ctx.metadata.get(ctx.database)).nodes);
  // Nothing to propagate to (a schema rename still tells other coordinators: cached table names change).
  if (nodes.length === 0 && !plan.notify) return (await ctx.runAsClient(plan.text)).command;

  await ensureLiveness(ctx.pools, ctx.config.coordinator, ctx.config.internalDatabase ?? 'postgres');
  const change = plan.notify ? await ctx.metadata.beginChange(ctx.database) : null;
  const pool = coordinatorPool(ctx);
  const internal = await pool.acquire();
  const participants: Participant[] = [];
  const held: Array<{ pool: InternalPool; client: InternalClient }> = [];
  const wrapped = !ctx.inTransactionBlock;
  let committed = false;
  let tag: string;
  try {
    if (plan.catalogLock) await beginCatalogTransaction(internal);
    else await internal.query('BEGIN');
    if (wrapped) {
      await ctx.runAsClient('BEGIN');
      participants.push(clientParticipant(ctx));
    }
    await plan.before?.();
    tag = (await ctx.runAsClient(plan.text)).command;
    const work = await plan.workers();
    await plan.catalog?.(internal);
    await allOrFirstError(
      nodes.map(async (node) => {
        await ctx.pools.ensureDatabase(node.host, node.port, ctx.database);
        const workerPool = ctx.pools.get(node.host, node.port, ctx.database);
        const client = await workerPool.acquire();
        held.push({ pool: workerPool, client });
        await client.query("BEGIN; SET LOCAL search_path = pg_catalog, pg_temp; SET LOCAL lock_timeout = '30s'");
        participants.push({ client, groupId: node.groupId, label: `${node.host}:${node.port}` });
        await applyOnWorker(internalQuery(client), work, internalRole);
      }),
    );
    if (change) await internal.query(change.notifySql);
    await commitTwoPhase(internal, participants);
    committed = true;
  } catch (err) {
    if (!committed) {
      await abortAll(internal, participants);
      change?.cancel();
    }
    throw err;
  } finally {
    for (const h of held) h.pool.release(h.client);
    pool.release(internal);
    if (change) ctx.metadata.invalidate(ctx.database);
  }
  await change?.wait();
  return tag;
}

async function applyOnWorker(query: Query, work: WorkerChange, internalRole: string): Promise<void> {
  if (work.roles) await applyRoleTarget(query, work.roles, internalRole);
  if (work.schemas) await applySchemaTarget(query, work.schemas.desired, work.schemas.renames);
  if (work.routines) await applyRoutineStates(query, work.routines);
  if (work.replay && (!work.replay.applies || (await work.replay.applies(query)))) await query(work.replay.sql);
}

/** The client's session on the coordinator as a two-phase commit participant. */
function clientParticipant(ctx: CommandContext): Participant {
  const client = {
    get closed() {
      return false;
    },
    query: (sql: string) => ctx.runAsClient(sql),
  } as unknown as InternalClient;
  return { client, groupId: 0, label: 'the coordinator' };
}

async function allOrFirstError(work: Promise<unknown>[]): Promise<void> {
  const settled = await Promise.allSettled(work);
  const failed = settled.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
  if (failed) throw failed.reason;
}
