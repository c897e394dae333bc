/**
 * Rewrites of a role statement's own text at the parse tree's locations
 * (byte offsets into the UTF-8 text; DESIGN.md decision 2 — the deparser is
 * not used here, it drops quoting in role names and passwords):
 *
 * - PASSWORD 'text' → PASSWORD '<SCRAM verifier>', before the statement goes
 *   to the coordinator PostgreSQL, so no server ever sees the password;
 * - CURRENT_USER / CURRENT_ROLE / SESSION_USER → the client's role names,
 *   before a statement is replayed on a worker by the internal role (where
 *   those words would name the internal role);
 * - an inserted FOR ROLE clause for ALTER DEFAULT PRIVILEGES, for the same reason.
 *
 * Every rewrite is checked by parsing the result again: the new tree must be
 * the old one with exactly the intended change, else the statement is refused
 * rather than run in a form nobody wrote.
 */
import { isDeepStrictEqual } from 'node:util';
import { PgError } from '../../protocol/errors.js';
import { parseSql, type Node } from '../../sql/parse.js';
import { walkTree } from '../../sql/tree-walk.js';
import { scanWords } from '../../sql/lexer.js';
import { quoteIdent, quoteLiteral } from '../../sql/quote.js';

interface Splice {
  start: number;
  end: number;
  text: string;
}

function applySplices(text: string, splices: Splice[]): string {
  const bytes = Buffer.from(text, 'utf8');
  const parts: Buffer[] = [];
  let at = 0;
  for (const s of [...splices].sort((a, b) => a.start - b.start)) {
    if (s.start < at) throw rewriteFailed();
    parts.push(bytes.subarray(at, s.start), Buffer.from(s.text, 'utf8'));
    at = s.end;
  }
  parts.push(bytes.subarray(at));
  return Buffer.concat(parts).toString('utf8');
}

function rewriteFailed(): PgError {
  return new PgError({
    code: '0A000',
    message: 'pgweave could not rewrite this role statement for propagation to the workers',
    hint: 'Write the statement in its plain form (one option per keyword, no comments inside the PASSWORD clause).',
  });
}

/** The byte range [start, end) of the n-th word (0-based) at or after byte `from`. */
function wordAt(text: string, from: number, n = 0): { word: string; start: number; end: number } | null {
  const bytes = Buffer.from(text, 'utf8');
  const rest = bytes.subarray(from).toString('utf8');
  let found: { word: string; start: number; end: number } | null = null;
  let index = 0;
  scanWords(rest, (word, start, end) => {
    if (found || index++ !== n) return;
    found = { word, start: from + Buffer.byteLength(rest.slice(0, start)), end: from + Buffer.byteLength(rest.slice(0, end)) };
  });
  return found;
}

/** A parse tree without location fields, for comparing trees of different texts. */
function withoutLocations(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutLocations);
  if (node && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) if (k !== 'location' && k !== 'stmt_location' && k !== 'stmt_len') out[k] = withoutLocations(v);
    return out;
  }
  return node;
}

/** Parses `text` and checks that its single statement equals `expected`, locations aside. */
function verify(text: string, expected: Node): void {
  let parsed: Node;
  try {
    const stmts = parseSql(text).stmts;
    if (stmts.length !== 1) throw rewriteFailed();
    parsed = stmts[0]!.stmt;
  } catch {
    throw rewriteFailed();
  }
  if (!isDeepStrictEqual(withoutLocations(parsed), withoutLocations(expected))) throw rewriteFailed();
}

function passwordOptions(stmt: Node): Node[] {
  const inner = stmt.CreateRoleStmt ?? stmt.AlterRoleStmt;
  return ((inner?.options ?? []) as Node[]).filter((o) => o.DefElem?.defname === 'password');
}

/** Whether the statement sets a password (PASSWORD 'x' or PASSWORD NULL). */
export function setsPassword(stmt: Node): boolean {
  return passwordOptions(stmt).length > 0;
}

/**
 * Replaces each PASSWORD 'text' of a CREATE/ALTER ROLE with `replace(text)`.
 * Returns the new statement text, its tree, and the last stored value (null
 * for PASSWORD NULL, undefined when the statement sets no password).
 */
export function rewritePasswords(
  text: string,
  stmt: Node,
  replace: (password: string) => string,
): { text: string; stmt: Node; stored: string | null | undefined } {
  const kind = stmt.CreateRoleStmt ? 'CreateRoleStmt' : 'AlterRoleStmt';
  const options = (stmt[kind]?.options ?? []) as Node[];
  const expected = structuredClone(stmt);
  const expectedOptions = expected[kind].options as Node[];
  const splices: Splice[] = [];
  let stored: string | null | undefined;
  options.forEach((option, i) => {
    const def = option.DefElem;
    if (def?.defname !== 'password') return;
    const value: string | undefined = def.arg?.String?.sval;
    if (value === undefined) {
      stored = null;
      return;
    }
    const replacement = replace(value);
    stored = replacement;
    if (replacement === value) return;
    // The option is [ENCRYPTED] PASSWORD 'literal'; the literal runs up to the next option (or the end).
    let keyword = wordAt(text, def.location);
    if (keyword?.word === 'encrypted') keyword = wordAt(text, def.location, 1);
    if (keyword?.word !== 'password') throw rewriteFailed();
    const next = options[i + 1]?.DefElem?.location as number | undefined;
    const end = next ?? Buffer.byteLength(text, 'utf8');
    splices.push({ start: keyword.end, end, text: ` ${quoteLiteral(replacement).trim()} ` });
    expectedOptions[i]!.DefElem.arg = { String: { sval: replacement } };
  });
  if (splices.length === 0) return { text, stmt, stored };
  const out = applySplices(text, splices);
  verify(out, expected);
  return { text: out, stmt: expected, stored };
}

/** The names CURRENT_USER/CURRENT_ROLE and SESSION_USER stand for in the client's session. */
export interface SessionRoles {
  currentUser: string;
  sessionUser: string;
}

const SPECIAL_ROLES: Record<string, keyof SessionRoles> = {
  ROLESPEC_CURRENT_USER: 'currentUser',
  ROLESPEC_CURRENT_ROLE: 'currentUser',
  ROLESPEC_SESSION_USER: 'sessionUser',
};

/** Every RoleSpec node in a tree. */
export function roleSpecs(node: unknown, out: Node[] = []): Node[] {
  walkTree(node, (n) => {
    if (typeof n.roletype === 'string') out.push(n);
  });
  return out;
}

/** The name a RoleSpec stands for (null for PUBLIC). */
export function roleName(spec: Node, roles: SessionRoles): string | null {
  if (spec.roletype === 'ROLESPEC_CSTRING') return spec.rolename;
  if (spec.roletype === 'ROLESPEC_PUBLIC') return null;
  const which = SPECIAL_ROLES[spec.roletype];
  if (!which) throw new PgError({ code: 'XX000', message: `unexpected role specification ${spec.roletype}` });
  return roles[which];
}

/**
 * The statement text with CURRENT_USER, CURRENT_ROLE and SESSION_USER role
 * specifications replaced by the quoted names, and optionally a clause
 * inserted after the statement's first `afterWords` words.
 */
export function substituteRoleSpecs(text: string, stmt: Node, roles: SessionRoles, insert?: { afterWords: number; clause: string; tree: (expected: Node) => void }): string {
  const expected = structuredClone(stmt);
  const splices: Splice[] = [];
  const original = roleSpecs(stmt);
  const copies = roleSpecs(expected);
  original.forEach((spec, i) => {
    const which = SPECIAL_ROLES[spec.roletype];
    if (!which) return;
    const word = wordAt(text, spec.location);
    if (!word) throw rewriteFailed();
    splices.push({ start: word.start, end: word.end, text: quoteIdent(roles[which]) });
    const copy = copies[i]!;
    copy.roletype = 'ROLESPEC_CSTRING';
    copy.rolename = roles[which];
  });
  if (insert) {
    const word = wordAt(text, 0, insert.afterWords - 1);
    if (!word) throw rewriteFailed();
    splices.push({ start: word.end, end: word.end, text: ' ' + insert.clause });
    insert.tree(expected);
  }
  if (splices.length === 0) return text;
  const out = applySplices(text, splices);
  verify(out, expected);
  return out;
}
