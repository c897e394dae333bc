/**
 * Transaction scoping of the session's settings, as PostgreSQL nests them:
 * a SET inside a block is undone when the block — or the savepoint it was
 * made after — rolls back, a SET LOCAL ends with its block, and a committed
 * SET stays. The session keeps its own view of the settings (search_path for
 * planning, the settings map, the SETs replayed on new worker links); this
 * keeps a snapshot of that view as it was at BEGIN and at each SAVEPOINT and
 * puts it back where PostgreSQL would. The snapshot is taken at the first SET
 * after them (the view changes only through a SET), so a block without SETs
 * copies nothing. Putting back a rolled-back SET also resets
 * it on the worker links the session holds (one that was not in the block
 * kept it) and replays the SETs that remain (`SettingsHost.restore`).
 */
import { PgError } from '../protocol/errors.js';
import type { Node } from '../sql/parse.js';

/** The session's view of its settings. */
export interface SettingsView {
  searchPath: string[];
  settings: Map<string, string>;
  /** The session-level SETs replayed on new worker links. */
  setTexts: string[];
}

export interface SettingsHost {
  view(): SettingsView;
  /** Makes `view` the session's; `resetNames` (`*`: all) changed since and are reset on the worker links first. */
  restore(view: SettingsView, resetNames: string[]): void;
}

interface Scope {
  /** The SAVEPOINT's name; null for the block itself. */
  savepoint: string | null;
  /** The view when the scope began; null until the first SET after it (the view is unchanged until then). */
  view: SettingsView | null;
  /** Settings SET (session-level) since the scope began; `*` for RESET ALL. */
  changed: Set<string>;
  /** Settings SET LOCAL since the scope began. */
  local: Set<string>;
}

export class SettingScopes {
  private scopes: Scope[] = [];

  constructor(private readonly host: SettingsHost) {}

  /** A SET (RESET, SET LOCAL, RESET ALL) the session saw, as its VariableSetStmt. */
  noteSet(set: Node): void {
    const name = (set.name as string | undefined) ?? null;
    // Every SET changes the view (roles too): the scopes that have no snapshot yet take it now, before the change.
    for (let i = this.scopes.length - 1; i >= 0 && this.scopes[i]!.view === null; i--) this.scopes[i]!.view = copy(this.host.view());
    // SET TRANSACTION belongs to the block; roles are watched elsewhere (commands/roles/watch.ts).
    if (set.kind === 'VAR_SET_MULTI' || name === 'role' || name === 'session_authorization') return;
    const top = this.scopes[this.scopes.length - 1];
    if (top) (set.is_local ? top.local : top.changed).add(name ?? '*');
  }

  /** Transaction control `verb` ran with outcome `out` (its tag, or its error). */
  control(verb: string, text: string, out: string | PgError): void {
    if (verb === 'begin') {
      if (!(out instanceof PgError) && this.scopes.length === 0) this.scopes.push(this.scope(null));
      return;
    }
    if (this.scopes.length === 0) return;
    if (verb === 'commit' || verb === 'rollback' || verb === 'prepare') {
      const changed = this.union('changed', 0);
      const local = this.union('local', 0);
      const block = this.scopes[0]!;
      this.scopes = [];
      const committed = verb !== 'rollback' && !(out instanceof PgError) && out !== 'ROLLBACK';
      if (!committed) {
        if (changed.size + local.size > 0) this.host.restore(this.viewOf(block), [...changed]);
        return;
      }
      // SET LOCAL ends with the block: those settings go back to their value before it, unless SET in it too.
      const ended = [...local].filter((n) => !changed.has(n) && !changed.has('*'));
      if (ended.length > 0) this.host.restore(withValuesOf(this.host.view(), this.viewOf(block), ended), []);
      return;
    }
    if (out instanceof PgError) return;
    const name = /\s(\S+)\s*;?\s*$/.exec(text)?.[1] ?? '';
    if (verb === 'savepoint') {
      this.scopes.push(this.scope(name));
      return;
    }
    let at = -1;
    for (let i = this.scopes.length - 1; i > 0 && at < 0; i--) if (this.scopes[i]!.savepoint === name) at = i;
    if (at < 0) return;
    if (verb === 'release') {
      const into = this.scopes[at - 1]!;
      for (const n of this.union('changed', at)) into.changed.add(n);
      for (const n of this.union('local', at)) into.local.add(n);
      this.scopes.length = at;
    } else if (verb === 'rollback_to') {
      const changed = this.union('changed', at);
      const local = this.union('local', at);
      const scope = this.scopes[at]!;
      this.scopes.length = at + 1;
      scope.changed = new Set();
      scope.local = new Set();
      if (changed.size + local.size > 0) this.host.restore(copy(this.viewOf(scope)), [...changed]);
    }
  }

  private scope(savepoint: string | null): Scope {
    return { savepoint, view: null, changed: new Set(), local: new Set() };
  }

  /** The scope's snapshot; one never taken is the view now (no SET came since the scope began). */
  private viewOf(scope: Scope): SettingsView {
    return (scope.view ??= copy(this.host.view()));
  }

  private union(key: 'changed' | 'local', from: number): Set<string> {
    const out = new Set<string>();
    for (const s of this.scopes.slice(from)) for (const n of s[key]) out.add(n);
    return out;
  }
}

function copy(v: SettingsView): SettingsView {
  return { searchPath: [...v.searchPath], settings: new Map(v.settings), setTexts: [...v.setTexts] };
}

/** `now` with the settings `names` as they were in `before`. */
function withValuesOf(now: SettingsView, before: SettingsView, names: string[]): SettingsView {
  const out = copy(now);
  for (const n of names) {
    if (n === 'search_path') out.searchPath = [...before.searchPath];
    const v = before.settings.get(n);
    if (v === undefined) out.settings.delete(n);
    else out.settings.set(n, v);
  }
  return out;
}

/**
 * Applies a SET, RESET or RESET ALL (its VariableSetStmt) to the session's
 * settings map; returns the search_path after it. RESET goes back to the
 * client's startup value (`defaults.startup`), as in PostgreSQL.
 */
export function applySet(
  set: Node,
  settings: Map<string, string>,
  searchPath: string[],
  defaults: { searchPath: string[]; user: string; startup: ReadonlyMap<string, string> | undefined },
): string[] {
  const name = set.name as string | undefined;
  if (set.kind === 'VAR_RESET_ALL' || !name) {
    settings.clear();
    for (const [k, v] of defaults.startup ?? []) settings.set(k, v);
    return defaults.searchPath;
  }
  // The parse tree leaves out an integer constant's value when it is 0.
  const values = ((set.args ?? []) as Node[]).map((a) => String(a.A_Const?.sval?.sval ?? (a.A_Const?.ival ? a.A_Const.ival.ival ?? 0 : undefined) ?? a.String?.sval ?? ''));
  if (set.kind === 'VAR_SET_VALUE') settings.set(name, values.join(', '));
  else if (set.kind === 'VAR_RESET' || set.kind === 'VAR_SET_DEFAULT') {
    const initial = defaults.startup?.get(name);
    if (initial === undefined) settings.delete(name);
    else settings.set(name, initial);
  }
  if (name !== 'search_path') return searchPath;
  return set.kind === 'VAR_SET_VALUE' ? values.map((s) => (s === '$user' ? defaults.user : s)) : defaults.searchPath;
}
