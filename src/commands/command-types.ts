/**
 * The shape of an intercepted SQL function (see registry.ts), in its own
 * module so command modules and the registry can both import it.
 */
import type { CommandContext } from './context.js';

export type Rows = Array<Array<string | null>>;

export interface CommandParam {
  name: string;
  /** PostgreSQL type name, for messages and the session's argument coercion. */
  type: string;
  /** Text value used when the argument is omitted; undefined = required. */
  default?: string | null;
}

export interface CommandDefinition {
  name: string;
  params: CommandParam[];
  returns: Array<{ name: string; typeOid: number }>;
  setReturning: boolean;
  /** Parameters given NULL make the call return NULL (STRICT), unless listed here. */
  nullable?: string[];
  run(args: Map<string, string | null>, ctx: CommandContext): Promise<Rows>;
}

export const TYPE_OID = {
  bool: 16,
  int8: 20,
  int4: 23,
  text: 25,
  oid: 26,
  regclass: 2205,
  void: 2278,
} as const;

/** The row a void function returns. */
export function voidResult(): Rows {
  return [['']];
}

