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
 * One `TypeOidMap` per worker server and database, shared by every session
 * and role (pg_type is the same for all). It fills itself by loading all of
 * the worker's user types at once when a message names an OID it does not
 * know (BackendLink holds that link's replies back meanwhile, in order), and
 * forgets everything when the catalog version changes (DDL, shard moves), so
 * a type dropped and made again is looked up afresh. An OID that the load
 * cannot map (a type the coordinator lacks, a worker's temporary table)
 * stays as the worker sent it, remembered so it never triggers a load again
 * within that catalog version.
 */
import { Backend } from '../protocol/constants.js';

/** FirstNormalObjectId: OIDs below it are built into every PostgreSQL server alike. */
export const FIRST_NORMAL_OID = 16384;

/** What a load learns of one worker database's user types. */
export interface WorkerTypes {
  /** Worker OID → coordinator OID. */
  pairs: Array<[number, number]>;
  /** Worker OIDs of array types and of composite (row) types: binary values of them embed type OIDs. */
  arrays: number[];
  composites: number[];
}

export type TypeOidLoader = () => Promise<WorkerTypes>;

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
  /**
   * Set by a successful `mapInPlace` of a RowDescription: the binary-format
   * columns whose values embed type OIDs, as (column index, worker type)
   * pairs, or null (the common case: no allocation).
   */
  binaryColumns: number[] | null = null;
  private loading: Promise<void> | null = null;
  private version: number;

  constructor(
    private readonly load: TypeOidLoader,
    /** The current catalog version (null while none is loaded): a new one empties the map. */
    private readonly catalogVersion: () => number | null,
  ) {
    this.version = catalogVersion() ?? -1;
  }

  /**
   * Rewrites the user type OIDs of the RowDescription or ParameterDescription
   * at buf[start, end) in place; false (and nothing written) when one is
   * unknown: `fill` first, then call again.
   */
  mapInPlace(buf: Buffer, start: number, end: number): boolean {
    const row = buf[start] === Backend.RowDescription;
    const count = buf.readUInt16BE(start + 5);
    this.binaryColumns = null;
    // First pass: find user OIDs and whether all are known (nothing is written on a miss).
    let users = 0;
    let records = false;
    let pos = start + 7;
    for (let i = 0; i < count && pos < end; i++) {
      const at = row ? typeOidAt(buf, pos, end) : pos;
      if (at + 4 > end) break;
      const oid = readOid(buf, at);
      if (oid >= FIRST_NORMAL_OID) {
        if (users++ === 0) this.checkVersion();
        if (!this.oids.has(oid)) return false;
      } else if (oid === RECORD || oid === RECORD_ARRAY) records = true;
      pos = row ? at + 12 : at + 4;
    }
    if (users === 0 && !records) return true;
    pos = start + 7;
    for (let i = 0; i < count && pos < end; i++) {
      const at = row ? typeOidAt(buf, pos, end) : pos;
      if (at + 4 > end) break;
      const oid = readOid(buf, at);
      // Format code 1 (binary) of a container: its DataRow values name types too (`mapDataRowInPlace`).
      if (row && buf.readUInt16BE(at + 10) === 1 && (this.arrays.has(oid) || this.composites.has(oid))) (this.binaryColumns ??= []).push(i, oid);
      if (oid >= FIRST_NORMAL_OID) buf.writeUInt32BE(this.oids.get(oid)!, at);
      pos = row ? at + 12 : at + 4;
    }
    return true;
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
   * Loads the worker's user types (one load at a time, shared by every
   * caller); afterwards each OID of `unknown` is known, mapped to itself when
   * the load did not map it (or failed).
   */
  async fill(unknown: readonly number[]): Promise<void> {
    // A load already under way may have read pg_type before these types were made: then one more.
    for (let attempt = 0; attempt < 2; attempt++) {
      const joined = this.loading !== null;
      if (!(await this.loaded())) break;
      if (!joined || unknown.every((oid) => this.oids.has(oid))) break;
    }
    for (const oid of unknown) if (!this.oids.has(oid)) this.oids.set(oid, oid);
  }

  /**
   * Waits for a load (the one under way, or a new one); false when it takes
   * longer than LOAD_WAIT_MS (a worker not answering): replies waiting for
   * it go on with the worker's OIDs.
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
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), LOAD_WAIT_MS)));
    const done = await Promise.race([this.loading.then(() => true), timedOut]);
    clearTimeout(timer);
    return done;
  }

  /** The user OIDs of a RowDescription or ParameterDescription that the map does not know yet. */
  unknownIn(buf: Buffer, start: number, end: number): number[] {
    const row = buf[start] === Backend.RowDescription;
    const out: number[] = [];
    let pos = start + 7;
    for (let i = buf.readUInt16BE(start + 5); i > 0 && pos < end; i--) {
      const at = row ? typeOidAt(buf, pos, end) : pos;
      if (at + 4 > end) break;
      const oid = readOid(buf, at);
      if (oid >= FIRST_NORMAL_OID && !this.oids.has(oid)) out.push(oid);
      pos = row ? at + 12 : at + 4;
    }
    return out;
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
    await this.fill([]);
    for (const t of wanted) if (!this.workerOids.has(t)) this.notOnWorker.add(t);
  }

  private checkVersion(): void {
    const v = this.catalogVersion();
    if (v === null || v === this.version) return;
    this.version = v;
    this.oids.clear();
    this.workerOids.clear();
    this.notOnWorker.clear();
    this.arrays.clear();
    this.composites.clear();
    this.arrays.add(RECORD_ARRAY);
    this.composites.add(RECORD);
  }
}

/**
 * Where the type OID of the RowDescription field at `pos` is: after its
 * name, table OID and column number. Byte reads, as in `readOid`: cheaper
 * than Buffer#indexOf's and readUInt32BE's calls on this path.
 */
function typeOidAt(buf: Buffer, pos: number, end: number): number {
  while (pos < end && buf[pos] !== 0) pos++;
  return pos + 7;
}

function readOid(buf: Buffer, at: number): number {
  return ((buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!) >>> 0;
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
