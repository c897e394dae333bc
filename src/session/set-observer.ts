/**
 * The session's view of its settings, kept current as PostgreSQL changes
 * them: the settings map (seeded with the client's startup settings) and the
 * search_path the planner resolves names with, changed by SET, RESET and
 * RESET ALL (`observe`) and put back by a rollback through the settings'
 * transaction scopes (setting-scopes.ts, told of every transaction control
 * through `SessionTransaction.onControl`).
 */
import type { BackendLink } from '../executor/backend-link.js';
import { type Node } from '../sql/parse.js';
import { splitIdentifierList } from '../sql/quote.js';
import type { Route } from '../planner/route.js';
import type { SessionServices } from './services.js';
import type { SessionTransaction } from './session-transaction.js';
import { applySet, SettingScopes } from './setting-scopes.js';

/** What a change of the settings reaches in the session. */
export interface SetObserverHost {
  /** Takes the session's worker links back from the idle pool: session-level SETs live on them. */
  unparkAll(): void;
  /** Every worker link the session holds (a rollback resets what changed there). */
  workerLinks(): BackendLink[];
  /** The search_path changed: plans that resolved names with the old one must be made again. */
  searchPathChanged(): void;
}

export class SetObserver {
  searchPath: string[];
  /** What RESET search_path goes back to: the client's startup value, else the default. */
  private readonly resetSearchPath: string[];
  /** What a rollback or the end of a block undoes of the session's SETs. */
  private readonly scopes: SettingScopes;

  constructor(
    readonly settings: Map<string, string>,
    private readonly services: SessionServices,
    private readonly txn: SessionTransaction,
    private readonly host: SetObserverHost,
  ) {
    // The client's startup settings hold from the start, as if SET (workers' connections get them at connect).
    for (const [name, value] of services.startupSettings ?? []) this.settings.set(name, value);
    const startupPath = services.startupSettings?.get('search_path');
    const path = startupPath === undefined ? null : splitIdentifierList(startupPath);
    this.resetSearchPath = path ? path.map((s) => (s === '$user' ? services.user : s)) : [services.user, 'public'];
    this.searchPath = this.resetSearchPath;
    this.scopes = new SettingScopes({
      view: () => ({ searchPath: this.searchPath, settings: this.settings, setTexts: this.txn.sets.list }),
      restore: (view, resetNames) => {
        this.useSearchPath(view.searchPath);
        this.settings.clear();
        for (const [k, v] of view.settings) this.settings.set(k, v);
        if (resetNames.length > 0) this.host.unparkAll();
        this.txn.sets.restore(view.setTexts, resetNames, this.host.workerLinks());
      },
    });
    this.txn.onControl = (verb, text, out) => this.scopes.control(verb, text, out);
  }

  /** Keeps the session's view of SET search_path and custom settings current. */
  observe(stmt: Node, text: string, route: Route): void {
    const set = stmt.VariableSetStmt;
    if (!set || route.kind !== 'local' || (!set.name && set.kind !== 'VAR_RESET_ALL')) return;
    this.scopes.noteSet(set);
    const defaults = { searchPath: this.resetSearchPath, user: this.services.user, startup: this.services.startupSettings };
    this.useSearchPath(applySet(set, this.settings, this.searchPath, defaults));
    // A session-level SET reaches every link the session holds: none of them may go to another session.
    if (!set.is_local) this.host.unparkAll();
    this.txn.rememberSet(text, !!set.is_local);
  }

  /**
   * Makes `path` the session's search_path. When it differs, plans resolved
   * names with the old one: the host drops them (`searchPathChanged`), as
   * PostgreSQL plans them again.
   */
  private useSearchPath(path: string[]): void {
    if (path !== this.searchPath && path.join('\0') !== this.searchPath.join('\0')) this.host.searchPathChanged();
    this.searchPath = path;
  }
}
