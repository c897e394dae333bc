/**
 * Worker type OIDs → the coordinator's, for the RowDescription and
 * ParameterDescription messages forwarded from workers to clients.
 *
 * A worker PostgreSQL gives the user-defined types it holds (enums,
 * domains, composites, ranges, their arrays, every table's row type) OIDs of
 * its own, and a shard's row type is `t_102008`, not `t`. Drivers look up
 * an OID they do not know in the pg_type of the server they talk to — the
 * coordinator — so every OID at or above FirstNormalObjectId (16384) a
 * worker sends is replaced by the coordinator's OID of the type with the
 * same qualified name (a shard's row type: its distributed table's; an
 * array type: the array of the mapped element type). Built-in OIDs are the
 * same everywhere: a message with none other is left untouched after one
 * pass over its OIDs, and a message with user OIDs is rewritten in place
 * (an OID is four bytes either way), so the hot path allocates nothing.
 *
 * A RowDescription field also names its column's table and column number,
 * which drivers look up in the coordinator's pg_class and pg_attribute:
 * a shard's become its distributed table's coordinator OID and the
 * coordinator number of the column with the same name; any other worker
 * relation's (temporary and staging tables) 0/0 (relation-oids.ts). Every
 * router reply carries a shard's OID, so this runs per reply: one pass
 * reads the fields, looking each type and table up once (the last table
 * found is kept, so a one-table result costs one lookup), and a second
 * writes the values found, in place.
 *
 * One `TypeOidMap` per worker server and database, shared by every session
 * and role (pg_type is the same for all). It fills itself by loading all of
 * the worker's user types at once when a message names an OID it does not
 * know (BackendLink holds that link's replies back meanwhile, in order) —
 * and its relations at the first unknown table OID: all of them at the
 * first of a catalog version, then just the new ones (a worker's staging
 * tables are new at every statement) — and
 * forgets everything when the catalog version changes (DDL, shard moves), so
 * a type dropped and made again is looked up afresh. A type OID that the
 * load cannot map (a type the coordinator lacks, a worker's temporary
 * table's row type) stays as the worker sent it, a relation it cannot map
 * becomes 0/0; either is remembered so it never triggers a load again
 * within that catalog version.
 */
import { Backend } from '../protocol/constants.js';
import { FIRST_NORMAL_OID, NO_RELATION, coordinatorColumn, type RelationColumns } from './relation-oids.js';

export { FIRST_NORMAL_OID };

/** What a load learns of one worker database's user types. */
export interface WorkerTypes {
  /** Worker OID → coordinator OID. */
  pairs: Array<[number, number]>;
  /** Worker OIDs of array types and of composite (row) types: binary values of them embed type OIDs. */
  arrays: number[];
  composites: number[];
}

export type TypeOidLoader = () => Promise<WorkerTypes>;

/** Loads worker relations (all when `oids` is null, else those) as their coordinator tables (relation-oids.ts). */
export type RelationLoader = (oids: readonly number[] | null) => Promise<Array<[number, RelationColumns]>>;

/** What a RowDescription or ParameterDescription names that the map does not know yet. */
export interface UnknownOids {
  types: number[];
  relations: number[];
}

/** How many relations that map to nothing a map remembers at most (then forgets them all). */
const MAX_UNMAPPED = 10_000;

/** How long replies wait for a load of the worker's types at most. */
const LOAD_WAIT_MS = 10_000;

/** record and record[]: built-in containers whose binary values name their fields' (any) types. */
const RECORD = 2249;
const RECORD_ARRAY = 2287;

export class TypeOidMap {
  private readonly oids = new Map<number, number>();
  /** Coordinator OID → the worker's (0: several worker types map to it, shard row types). */
  private readonly workerOids = new Map<number, number>();
  /** Coordinator OIDs a load of this catalog version did not find on the worker. */
  private readonly notOnWorker = new Set<number>();
  /** Worker OIDs of user array and composite types (binary values embed OIDs). */
  private readonly arrays = new Set<number>([RECORD_ARRAY]);
  private readonly composites = new Set<number>([RECORD]);
  /** Worker relation OID → its coordinator table and column numbers (NO_RELATION: 0/0). */
  private readonly relations = new Map<number, RelationColumns>();
  /** Whether this catalog version's first relation load (all of the worker's relations) is done. */
  private allRelations = false;
  /** How many of `relations` are NO_RELATION: a worker's staging tables are new at every statement that makes them. */
  private unmapped = 0;
  /**
   * Set by a successful `mapInPlace` of a RowDescription: the binary-format
   * columns whose values embed type OIDs, as (column index, worker type)
   * pairs, or null (the common case: no allocation).
   */
  binaryColumns: number[] | null = null;
  /**
   * What `walk` found per field of the message, for the write after it
   * (stride 4: where the type OID is, the type, table and column number to
   * write). Reused: it grows only for a message with more fields than any before.
   */
  private found = new Uint32Array(64);
  private loading: Promise<void> | null = null;
  private relationLoading: Promise<void> | null = null;
  private version: number;

  constructor(
    private readonly load: TypeOidLoader,
    /** The current catalog version (null while none is loaded): a new one empties the map. */
    private readonly catalogVersion: () => number | null,
    private readonly loadRelations: RelationLoader = async () => [],
  ) {
    this.version = catalogVersion() ?? -1;
  }

  /**
   * Rewrites the user type OIDs of the RowDescription or ParameterDescription
   * at buf[start, end) in place, and a RowDescription's table OIDs and
   * column numbers (a shard's → its table's on the coordinator); false (and
   * nothing written) when one is unknown: `fill` first, then call again.
   * One pass reads the fields and looks each up once (`walk`); a second
   * writes only when something maps to another value, from `found`.
   */
  mapInPlace(buf: Buffer, start: number, end: number): boolean {
    const n = this.walk(buf, start, end, null);
    if (n <= 0) {
      if (n < 0) this.binaryColumns = null;
      return n === 0;
    }
    const f = this.found;
    const row = buf[start] === Backend.RowDescription;
    for (let k = 0; k < n * 4; k += 4) {
      const at = f[k]!;
      writeOid(buf, at, f[k + 1]!);
      if (!row) continue;
      writeOid(buf, at - 6, f[k + 2]!);
      buf[at - 2] = f[k + 3]! >>> 8;
      buf[at - 1] = f[k + 3]! & 0xff;
    }
    return true;
  }

  /**
   * Reads the fields of a RowDescription or ParameterDescription: each user
   * type OID through `oids`, each user table OID through `relations` (the
   * last one found is kept, as a message's fields mostly come from one
   * table), the results into `found`. Returns the number of fields to
   * write, 0 when nothing changes, -1 at the first unknown OID — or, given
   * `unknown`, collects every unknown OID there and goes on.
   */
  private walk(buf: Buffer, start: number, end: number, unknown: UnknownOids | null): number {
    const row = buf[start] === Backend.RowDescription;
    const count = buf.readUInt16BE(start + 5);
    if (this.found.length < count * 4) this.found = new Uint32Array(count * 4);
    const f = this.found;
    this.binaryColumns = null;
    let changes = false;
    let checked = false;
    let lastTable = 0;
    let last: RelationColumns | undefined;
    let n = 0;
    let pos = start + 7;
    for (let i = 0; i < count && pos < end; i++) {
      let at = pos;
      let table = 0;
      let column = 0;
      if (row) {
        while (pos < end && buf[pos] !== 0) pos++;
        at = pos + 7;
        if (at + 12 > end) break;
        table = readOid(buf, pos + 1);
        column = (buf[pos + 5]! << 8) | buf[pos + 6]!;
      } else if (at + 4 > end) break;
      const workerType = readOid(buf, at);
      let type = workerType;
      if ((type >= FIRST_NORMAL_OID || table >= FIRST_NORMAL_OID) && !checked) {
        checked = true;
        this.checkVersion();
      }
      if (type >= FIRST_NORMAL_OID) {
        const mapped = this.oids.get(type);
        if (mapped !== undefined) {
          type = mapped;
          changes = true;
        } else if (unknown === null) return -1;
        else unknown.types.push(type);
      }
      if (table >= FIRST_NORMAL_OID) {
        if (table !== lastTable) {
          last = this.relations.get(table);
          lastTable = table;
          if (last === undefined) {
            if (unknown === null) return -1;
            unknown.relations.push(table);
          }
        }
        if (last !== undefined) {
          changes = true;
          column = coordinatorColumn(last, column);
          table = column === 0 ? 0 : last.table;
        }
      }
      // Format code 1 (binary) of a container: its DataRow values name types too (`mapDataRowInPlace`).
      if (row && buf[at + 11] === 1 && buf[at + 10] === 0 && (this.arrays.has(workerType) || this.composites.has(workerType))) (this.binaryColumns ??= []).push(i, workerType);
      f[n * 4] = at;
      f[n * 4 + 1] = type;
      f[n * 4 + 2] = table;
      f[n * 4 + 3] = column;
      n++;
      pos = row ? at + 12 : at + 4;
    }
    if (unknown !== null && (unknown.types.length > 0 || unknown.relations.length > 0)) return -1;
    return changes ? n : 0;
  }

  /**
   * Rewrites the type OIDs embedded in the binary values of a DataRow at
   * buf[start, end) in place: `columns` are a RowDescription's
   * `binaryColumns`. An array names its element type, a composite each
   * field's; arrays of composites and composites of arrays are walked.
   */
  mapDataRowInPlace(buf: Buffer, start: number, end: number, columns: readonly number[]): void {
    let pos = start + 7;
    let k = 0;
    for (let i = 0, n = buf.readUInt16BE(start + 5); i < n && k < columns.length && pos < end; i++) {
      const len = buf.readInt32BE(pos);
      pos += 4;
      if (i === columns[k]) {
        if (len >= 0) this.mapValue(buf, pos, pos + len, columns[k + 1]!, 0);
        k += 2;
      }
      if (len > 0) pos += len;
    }
  }

  private mapValue(buf: Buffer, start: number, end: number, workerType: number, depth: number): void {
    if (depth > 16 || end - start < 4) return;
    if (this.arrays.has(workerType)) {
      if (end - start < 12) return;
      const ndim = buf.readInt32BE(start);
      const element = buf.readUInt32BE(start + 8);
      if (element >= FIRST_NORMAL_OID) buf.writeUInt32BE(this.oids.get(element) ?? element, start + 8);
      if (!this.arrays.has(element) && !this.composites.has(element)) return;
      for (let pos = start + 12 + 8 * ndim; pos + 4 <= end; ) {
        const len = buf.readInt32BE(pos);
        pos += 4;
        if (len < 0) continue;
        this.mapValue(buf, pos, pos + len, element, depth + 1);
        pos += len;
      }
    } else if (this.composites.has(workerType)) {
      let pos = start + 4;
      for (let i = buf.readInt32BE(start); i > 0 && pos + 8 <= end; i--) {
        const field = buf.readUInt32BE(pos);
        if (field >= FIRST_NORMAL_OID) buf.writeUInt32BE(this.oids.get(field) ?? field, pos);
        const len = buf.readInt32BE(pos + 4);
        pos += 8;
        if (len < 0) continue;
        if (this.arrays.has(field) || this.composites.has(field)) this.mapValue(buf, pos, pos + len, field, depth + 1);
        pos += len;
      }
    }
  }

  /**
   * Loads what `unknown` names: the worker's user types (one load at a
   * time, shared by every caller) when a type is unknown, its relations
   * when a table is; afterwards each is known, a type mapped to itself and a
   * relation to NO_RELATION when the load did not map it (or failed).
   */
  async fill(unknown: UnknownOids): Promise<void> {
    await Promise.all([unknown.types.length > 0 ? this.fillTypes(unknown.types) : null, unknown.relations.length > 0 ? this.fillRelations(unknown.relations) : null]);
  }

  private async fillTypes(unknown: readonly number[]): Promise<void> {
    // A load already under way may have read pg_type before these types were made: then one more.
    for (let attempt = 0; attempt < 2; attempt++) {
      const joined = this.loading !== null;
      if (!(await this.loaded())) break;
      if (!joined || unknown.every((oid) => this.oids.has(oid))) break;
    }
    for (const oid of unknown) if (!this.oids.has(oid)) this.oids.set(oid, oid);
  }

  /**
   * Loads every relation of the worker at this catalog version's first
   * miss (a cluster's shards show up together), later ones only those
   * asked for (a worker's staging tables are new at every statement that
   * makes them; loading everything each time would not do).
   */
  private async fillRelations(unknown: readonly number[]): Promise<void> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const joined = this.relationLoading !== null;
      this.relationLoading ??= (async () => {
        const all = !this.allRelations;
        try {
          for (const [oid, columns] of await this.loadRelations(all ? null : unknown)) this.setRelation(oid, columns);
          if (all) this.allRelations = true;
        } catch {
          // The unknown relations map to 0/0 below; the next miss tries again.
        }
      })().finally(() => (this.relationLoading = null));
      if (!(await withinLoadWait(this.relationLoading))) break;
      if (!joined || unknown.every((oid) => this.relations.has(oid))) break;
    }
    for (const oid of unknown) if (!this.relations.has(oid)) this.setRelation(oid, NO_RELATION);
  }

  /** Remembers a relation; the unmapped ones are forgotten past MAX_UNMAPPED (gone with their statements, mostly), not to grow without end. */
  private setRelation(oid: number, columns: RelationColumns): void {
    if (columns === NO_RELATION && ++this.unmapped > MAX_UNMAPPED) {
      for (const [k, v] of this.relations) if (v === NO_RELATION) this.relations.delete(k);
      this.unmapped = 1;
    }
    this.relations.set(oid, columns);
  }

  /**
   * Waits for a load of the types (the one under way, or a new one); false
   * when it takes longer than LOAD_WAIT_MS (a worker not answering):
   * replies waiting for it go on with the worker's OIDs.
   */
  private async loaded(): Promise<boolean> {
    this.loading ??= (async () => {
      try {
        const loaded = await this.load();
        for (const a of loaded.arrays) this.arrays.add(a);
        for (const c of loaded.composites) this.composites.add(c);
        for (const [worker, coordinator] of loaded.pairs) {
          this.oids.set(worker, coordinator);
          const known = this.workerOids.get(coordinator);
          this.workerOids.set(coordinator, known === undefined || known === worker ? worker : 0);
        }
      } catch {
        // The message goes on with the worker's OIDs; the next catalog version tries again.
      }
    })().finally(() => (this.loading = null));
    return withinLoadWait(this.loading);
  }

  /** The user type and table OIDs of a RowDescription or ParameterDescription that the map does not know yet. */
  unknownIn(buf: Buffer, start: number, end: number): UnknownOids {
    const unknown: UnknownOids = { types: [], relations: [] };
    this.walk(buf, start, end, unknown);
    return unknown;
  }

  /**
   * Parameter types a client declared (the coordinator's OIDs) as the
   * worker's, for the worker's Parse: `types` itself when none is a user
   * type; one the map cannot tell becomes 0, unspecified, so the worker
   * infers it as it would have without the declaration (a coordinator OID
   * means nothing there: "cache lookup failed for type").
   */
  workerTypes(types: readonly number[]): readonly number[] {
    let out: number[] | null = null;
    for (let i = 0; i < types.length; i++) {
      if (types[i]! < FIRST_NORMAL_OID) continue;
      if (out === null) {
        this.checkVersion();
        out = types.slice();
      }
      out[i] = this.workerOids.get(types[i]!) ?? 0;
    }
    return out ?? types;
  }

  /** Loads the worker's types unless every user OID of `coordinatorTypes` is known or was missing in this catalog version's load. */
  async fillFor(coordinatorTypes: readonly number[]): Promise<void> {
    this.checkVersion();
    const wanted = coordinatorTypes.filter((t) => t >= FIRST_NORMAL_OID && !this.workerOids.has(t) && !this.notOnWorker.has(t));
    if (wanted.length === 0) return;
    await this.fillTypes([]);
    for (const t of wanted) if (!this.workerOids.has(t)) this.notOnWorker.add(t);
  }

  private checkVersion(): void {
    const v = this.catalogVersion();
    if (v === null || v === this.version) return;
    this.version = v;
    this.oids.clear();
    this.workerOids.clear();
    this.notOnWorker.clear();
    this.relations.clear();
    this.allRelations = false;
    this.unmapped = 0;
    this.arrays.clear();
    this.composites.clear();
    this.arrays.add(RECORD_ARRAY);
    this.composites.add(RECORD);
  }
}

/** Waits for `load` at most LOAD_WAIT_MS; whether it ended. */
async function withinLoadWait(load: Promise<void>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), LOAD_WAIT_MS)));
  const done = await Promise.race([load.then(() => true), timedOut]);
  clearTimeout(timer);
  return done;
}

/** Byte reads and writes: cheaper than Buffer#readUInt32BE's and writeUInt32BE's calls on this path. */
function readOid(buf: Buffer, at: number): number {
  return ((buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!) >>> 0;
}

function writeOid(buf: Buffer, at: number, oid: number): void {
  buf[at] = oid >>> 24;
  buf[at + 1] = (oid >>> 16) & 0xff;
  buf[at + 2] = (oid >>> 8) & 0xff;
  buf[at + 3] = oid & 0xff;
}

/** One row of `USER_TYPES_SQL`. */
export interface UserType {
  oid: number;
  schema: string;
  name: string;
  /** The element type of an array type, else 0. */
  element: number;
  /** The array type of this type, else 0. */
  array: number;
  /** A relation's row type. */
  relation: boolean;
}

/** Every user type of a database (run on the worker and on the coordinator, as the internal role). */
export const USER_TYPES_SQL = `SELECT t.oid, n.nspname, t.typname,
    CASE WHEN t.typsubscript = 'pg_catalog.array_subscript_handler'::pg_catalog.regproc THEN t.typelem ELSE 0 END,
    t.typarray, t.typrelid <> 0
  FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
  WHERE t.oid >= ${FIRST_NORMAL_OID}`;

/** Rows of `USER_TYPES_SQL` as text. */
export function userTypesOf(rows: ReadonlyArray<ReadonlyArray<string | null>>): UserType[] {
  return rows.map((r) => ({ oid: Number(r[0]), schema: r[1]!, name: r[2]!, element: Number(r[3]), array: Number(r[4]), relation: r[5] === 't' }));
}

/**
 * Pairs a worker's user types with the coordinator's by qualified name.
 * `tableOfShard(schema, name)`: the distributed table whose shard table
 * that is (its row type maps to the table's), else null.
 */
export function matchWorkerTypes(
  worker: readonly UserType[],
  coordinator: readonly UserType[],
  tableOfShard: (schema: string, name: string) => string | null,
): WorkerTypes {
  const byName = new Map<string, UserType>();
  for (const t of coordinator) byName.set(t.schema + '\0' + t.name, t);
  const mapped = new Map<number, UserType>();
  for (const t of worker) {
    if (t.element !== 0) continue;
    const name = (t.relation ? tableOfShard(t.schema, t.name) : null) ?? t.name;
    const c = byName.get(t.schema + '\0' + name);
    if (c) mapped.set(t.oid, c);
  }
  const pairs: Array<[number, number]> = [];
  for (const [oid, c] of mapped) pairs.push([oid, c.oid]);
  // Arrays follow their element: the array of the mapped element type (array names may differ).
  for (const t of worker) {
    if (t.element === 0) continue;
    const elem = mapped.get(t.element);
    if (elem && elem.array !== 0) pairs.push([t.oid, elem.array]);
  }
  return { pairs, arrays: worker.filter((t) => t.element !== 0).map((t) => t.oid), composites: worker.filter((t) => t.relation).map((t) => t.oid) };
}
