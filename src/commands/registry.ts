/**
 * The SQL functions the coordinator intercepts (Citus's names, arguments and
 * defaults, DESIGN.md decision 4), by lower-case name.
 *
 * The session recognizes `SELECT f(...)` / `SELECT * FROM f(...)` for a name
 * in COMMANDS, evaluates the arguments to text, calls resolveCommandArgs
 * (positional and `name => value` arguments, defaults, PostgreSQL's errors
 * for calls that match no signature) and then run(), which returns the rows
 * in text form, described by `returns`.
 *
 * Functions whose parameters are all non-nullable behave like STRICT
 * functions: a NULL argument (where Citus declares no NULL default) makes the
 * call return NULL without doing anything, as Citus's STRICT functions do.
 */
import { PgError } from '../protocol/errors.js';
import type { CommandDefinition } from './command-types.js';
import { NODE_COMMANDS } from './node-commands.js';
import { TABLE_COMMANDS } from './table-commands.js';
import { RUN_COMMANDS } from './run-command.js';
import { SHARD_COMMANDS } from './shard-functions.js';
import { TRANSACTION_COMMANDS } from './transaction-commands.js';
import { STREAM_COMMANDS } from './streams/index.js';
import { OPERATION_COMMANDS } from './operation-commands.js';
import { REBALANCE_COMMANDS } from './rebalance-commands.js';

export type { Rows, CommandParam, CommandDefinition } from './command-types.js';
export { TYPE_OID, voidResult } from './command-types.js';

export const COMMANDS = new Map<string, CommandDefinition>();
for (const def of [...NODE_COMMANDS, ...TABLE_COMMANDS, ...RUN_COMMANDS, ...SHARD_COMMANDS, ...TRANSACTION_COMMANDS, ...STREAM_COMMANDS, ...OPERATION_COMMANDS, ...REBALANCE_COMMANDS]) {
  COMMANDS.set(def.name, withStrictness(def));
}

function withStrictness(def: CommandDefinition): CommandDefinition {
  const nullable = new Set(def.nullable ?? []);
  for (const p of def.params) if (p.default === null) nullable.add(p.name);
  return {
    ...def,
    run(args, ctx) {
      for (const p of def.params) {
        if (args.get(p.name) === null && !nullable.has(p.name)) {
          return Promise.resolve(def.setReturning ? [] : [def.returns.map(() => null)]);
        }
      }
      return def.run(args, ctx);
    },
  };
}

function signatureText(def: CommandDefinition, positional: ReadonlyArray<unknown>, named: ReadonlyMap<string, unknown>): string {
  const parts = positional.map(() => 'unknown');
  for (const name of named.keys()) parts.push(`${name} => unknown`);
  return `${def.name}(${parts.join(', ')})`;
}

function noSuchFunction(def: CommandDefinition, positional: ReadonlyArray<unknown>, named: ReadonlyMap<string, unknown>): PgError {
  return new PgError({
    code: '42883',
    message: `function ${signatureText(def, positional, named)} does not exist`,
    hint: 'No function matches the given name and argument types. You might need to add explicit type casts.',
  });
}

/**
 * Binds a call's arguments to the function's parameters as PostgreSQL does:
 * positional first, then named; every parameter without a default must get a
 * value. Returns text values by parameter name, defaults applied.
 */
export function resolveCommandArgs(
  def: CommandDefinition,
  positional: ReadonlyArray<string | null>,
  named: ReadonlyMap<string, string | null> = new Map(),
): Map<string, string | null> {
  if (positional.length > def.params.length) throw noSuchFunction(def, positional, named);
  const args = new Map<string, string | null>();
  positional.forEach((value, i) => args.set(def.params[i]!.name, value));
  for (const [rawName, value] of named) {
    const name = rawName.toLowerCase();
    const param = def.params.find((p) => p.name === name);
    if (!param || args.has(name)) throw noSuchFunction(def, positional, named);
    args.set(name, value);
  }
  for (const p of def.params) {
    if (args.has(p.name)) continue;
    if (p.default === undefined) throw noSuchFunction(def, positional, named);
    args.set(p.name, p.default);
  }
  return args;
}
