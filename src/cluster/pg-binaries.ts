/**
 * Finds the PostgreSQL server binaries (initdb, pg_ctl, postgres) installed on
 * this machine.
 *
 * pgweave runs vanilla PostgreSQL, so a local cluster needs those binaries. They
 * live in different places per platform: on PATH (Homebrew, source builds, or
 * the symlinks some images add), wherever `pg_config --bindir` says, or in
 * Debian/Ubuntu's versioned `/usr/lib/postgresql/<major>/bin`, which is not on
 * PATH by default. The first directory holding all three binaries of a supported
 * major version wins; PGWEAVE_PG_BINDIR overrides the search.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync, realpathSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';

export interface PgBinaries {
  /** Directory holding initdb, pg_ctl and postgres. */
  bindir: string;
  /** PostgreSQL major version of those binaries, e.g. 15. */
  majorVersion: number;
}

/** The oldest PostgreSQL pgweave supports (see DESIGN.md: workers are vanilla PostgreSQL 15+). */
export const MIN_PG_MAJOR_VERSION = 15;

const REQUIRED_BINARIES = ['initdb', 'pg_ctl', 'postgres'];

let cached: PgBinaries | undefined;

/**
 * Finds initdb/pg_ctl/postgres: PGWEAVE_PG_BINDIR, then PATH, then
 * `pg_config --bindir`, then /usr/lib/postgresql/<major>/bin (highest major first).
 * Throws an Error that says how to install PostgreSQL when none is found.
 */
export function findPgBinaries(): PgBinaries {
  if (cached) return cached;
  const tooOld: string[] = [];
  for (const bindir of candidateBindirs()) {
    if (!hasServerBinaries(bindir)) continue;
    const majorVersion = readMajorVersion(bindir);
    if (majorVersion === null) continue;
    if (majorVersion < MIN_PG_MAJOR_VERSION) {
      tooOld.push(`${bindir} (PostgreSQL ${majorVersion})`);
      continue;
    }
    cached = { bindir, majorVersion };
    return cached;
  }
  const found = tooOld.length > 0 ? ` Found only older versions: ${tooOld.join(', ')}.` : '';
  throw new Error(
    `pgweave needs the PostgreSQL ${MIN_PG_MAJOR_VERSION}+ server binaries (initdb, pg_ctl, postgres), ` +
      `searched PATH, \`pg_config --bindir\` and /usr/lib/postgresql/*/bin.${found} ` +
      'Install them: Debian/Ubuntu `apt-get install postgresql`, Fedora/RHEL `dnf install postgresql-server`, ' +
      'macOS `brew install postgresql@16`; or set PGWEAVE_PG_BINDIR to the directory holding initdb.',
  );
}

/** Path of one PostgreSQL binary, e.g. pgBinary('pg_ctl'). */
export function pgBinary(name: string): string {
  return join(findPgBinaries().bindir, name);
}

/** Candidate bindirs in search order, duplicates removed, symlinks resolved. */
function candidateBindirs(): string[] {
  const candidates: string[] = [];
  const add = (dir: string | undefined) => {
    if (!dir) return;
    const resolved = resolveBindir(dir);
    if (resolved && !candidates.includes(resolved)) candidates.push(resolved);
  };
  add(process.env.PGWEAVE_PG_BINDIR);
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir) add(dir);
  }
  add(pgConfigBindir());
  for (const dir of debianBindirs()) add(dir);
  return candidates;
}

/**
 * A PATH entry such as /usr/local/bin may only hold symlinks to the real
 * binaries; the real directory is the one next to share/ and lib/, so it is the
 * one to use.
 */
function resolveBindir(dir: string): string | null {
  const initdb = join(dir, 'initdb');
  if (!existsSync(initdb)) return null;
  try {
    return dirname(realpathSync(initdb));
  } catch {
    return null;
  }
}

function hasServerBinaries(bindir: string): boolean {
  return REQUIRED_BINARIES.every((name) => {
    try {
      accessSync(join(bindir, name), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function pgConfigBindir(): string | undefined {
  try {
    return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

/** Debian/Ubuntu install each major version under /usr/lib/postgresql/<major>/bin. */
function debianBindirs(): string[] {
  const root = '/usr/lib/postgresql';
  let versions: string[];
  try {
    versions = readdirSync(root);
  } catch {
    return [];
  }
  return versions
    .filter((v) => /^\d+(\.\d+)?$/.test(v))
    .sort((a, b) => parseFloat(b) - parseFloat(a))
    .map((v) => join(root, v, 'bin'));
}

/** Parses `postgres --version` ("postgres (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)"). */
function readMajorVersion(bindir: string): number | null {
  try {
    const out = execFileSync(join(bindir, 'postgres'), ['--version'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const match = /\(PostgreSQL\)\s+(\d+)/.exec(out);
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}
