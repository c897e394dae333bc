/**
 * The settings a client gives in its StartupMessage, as worker connections
 * must get them.
 *
 * PostgreSQL treats every StartupMessage key other than user, database,
 * options and replication as a setting made by the client (PGC_S_CLIENT),
 * after the `-c name=value` / `--name=value` switches of `options` (libpq's
 * PGOPTIONS; PGTZ, PGDATESTYLE and pgJDBC's TimeZone, DateStyle and
 * extra_float_digits arrive as keys). The coordinator PostgreSQL gets them
 * all (and rejects a bad value during the handshake); workers answer router
 * statements, so their connections for the session get the same settings as
 * startup parameters — a RESET there then goes back to the client's value,
 * as on a plain PostgreSQL. application_name stays pgweave's own on workers
 * (it names the coordinator's connections there).
 *
 * Connections that carry settings are shared only between sessions with the
 * same ones: `signature` (empty for a client that gives none) becomes part
 * of the idle-pool and pipelined-channel keys.
 */

/** Keys that are no settings (PostgreSQL's ProcessStartupPacket), or stay pgweave's own on workers. */
const NOT_FOR_WORKERS = new Set(['user', 'database', 'options', 'replication', 'application_name']);

export interface StartupSettings {
  /** Setting name (lower case, as PostgreSQL compares them) → the value it ends with. */
  settings: Map<string, string>;
  /** The startup parameters of the session's worker connections besides application_name. */
  workerParams: Array<[string, string]>;
  /** Canonical text of workerParams; '' when there are none. */
  signature: string;
}

/** Splits `options` as PostgreSQL's pg_split_opts does: on unescaped whitespace, a backslash escaping the next character. */
export function splitOptions(options: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < options.length) {
    while (i < options.length && /\s/.test(options[i]!)) i++;
    if (i >= options.length) break;
    let word = '';
    while (i < options.length && !/\s/.test(options[i]!)) {
      if (options[i] === '\\' && i + 1 < options.length) i++;
      word += options[i]!;
      i++;
    }
    out.push(word);
  }
  return out;
}

/**
 * The `-c name=value`, `-cname=value` and `--name=value` switches of
 * `options` (dashes in the name read as underscores, as ParseLongOption
 * does); `complete` is false when other switches are there too.
 */
export function optionSettings(options: string): { pairs: Array<[string, string]>; complete: boolean } {
  const pairs: Array<[string, string]> = [];
  let complete = true;
  const words = splitOptions(options);
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    let arg: string | undefined;
    if (w === '-c') arg = words[++i];
    else if (w.startsWith('-c')) arg = w.slice(2);
    else if (w.startsWith('--') && w.length > 2) arg = w.slice(2);
    const eq = arg === undefined ? -1 : arg.indexOf('=');
    if (arg === undefined || eq <= 0) {
      complete = false;
      continue;
    }
    pairs.push([arg.slice(0, eq).replace(/-/g, '_'), arg.slice(eq + 1)]);
  }
  return { pairs, complete };
}

/** The client's startup settings: `options` switches first, then the other keys in the order they came. */
export function startupSettings(params: ReadonlyMap<string, string>): StartupSettings {
  const settings = new Map<string, string>();
  const options = params.get('options');
  const parsed = options === undefined ? null : optionSettings(options);
  for (const [name, value] of parsed?.pairs ?? []) settings.set(name.toLowerCase(), value);
  for (const [key, value] of params) {
    if (NOT_FOR_WORKERS.has(key) || key.startsWith('_pq_.')) continue;
    settings.set(key.toLowerCase(), value); // after the switches: a key wins over a switch of the same setting
  }
  const workerParams: Array<[string, string]> = [];
  // Switches other than settings go to the workers as the client wrote them; the settings after them still win.
  if (parsed && !parsed.complete && options!.trim() !== '') workerParams.push(['options', options!]);
  for (const name of [...settings.keys()].sort()) workerParams.push([name, settings.get(name)!]);
  const signature = workerParams.map(([k, v]) => `${k}=${v}`).join('\u0000');
  return { settings, workerParams, signature };
}
