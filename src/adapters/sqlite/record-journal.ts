/**
 * The invocation record journal: an append-only file beside the SQLite database from which records are
 * acknowledged before they reach the database.
 *
 * A warm invocation must not answer before its record is safe (architecture §2), but a SQLite commit costs
 * 30-60 µs of event-loop time (four B-tree pages into the WAL) and a trip to the worker thread 0.15-0.2 ms of
 * latency. One `write(2)` of a JSON line costs a few microseconds and survives a crash of the process just as a
 * `synchronous=NORMAL` commit does (both sit in the OS page cache), so records are appended here, acknowledged,
 * and committed to the database in batches by the worker shortly after. On open, the segments of a journal whose
 * owner is gone are read back and committed (`insert ... on conflict do nothing`: a record committed before the
 * crash is not written twice), then deleted.
 *
 * Layout: `<database>-records.<tag>.<n>`, one line of JSON per record, and `<database>-records.<tag>.lock`. The
 * writer rolls over to a new segment after `segmentBytes` and deletes a segment once every record in it has been
 * committed. Ownership is a lock, not a pid: the owner holds an exclusive SQLite lock on its `.lock` file for as long
 * as it lives (the kernel drops it when the process dies, whatever its pid or PID namespace), and recovery takes a
 * journal only when it can take that lock itself. A journal closed with records still uncommitted gives its lock up
 * and is recovered by the next open.
 *
 * A function's delete appends a marker line (`{"$deleted": name}`): recovery drops the rows of that function written
 * before it, so a crash cannot bring back the records of a deleted function.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, ftruncateSync, openSync, readFileSync, readdirSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { PlatformError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';

type Row = Record<string, unknown>;

const defaultSegmentBytes = 8 * 1024 * 1024;
const deletedKey = '$deleted';

interface Segment {
  n: number;
  path: string;
  fd: number | null;
  bytes: number;
  /** Records appended to it and not yet committed. */
  outstanding: number;
}

/** Journals of owners that are gone, read back: commit `rows`, then `discard()` the files. */
export interface RecoveredRecords {
  rows: Row[];
  /** Lines that could not be parsed (a torn last line after a crash mid-write is expected: at most one per file). */
  unreadableLines: number;
  /** Rows left out because their function was deleted after they were written. */
  deletedRows: number;
  files: string[];
  /** Deletes the files read (their rows are committed) and gives their locks up. */
  discard(): void;
  /** Gives the locks up and leaves the files for a later open (the rows could not be committed). */
  abandon(): void;
}

export class RecordJournal {
  readonly #prefix: string;
  readonly #segmentBytes: number;
  readonly #segments = new Map<number, Segment>();
  readonly #lock: BetterSqlite3.Database;
  #current: Segment;
  #closed = false;

  private constructor(prefix: string, lock: BetterSqlite3.Database, segmentBytes: number) {
    this.#prefix = prefix;
    this.#lock = lock;
    this.#segmentBytes = segmentBytes;
    this.#current = this.#openSegment(0);
  }

  /** Starts a journal for `databasePath`, owned (locked) by this store until `close()`. */
  static open(databasePath: string, options: { segmentBytes?: number } = {}): RecordJournal {
    for (let attempt = 1; ; attempt++) {
      const prefix = `${journalBase(databasePath)}.${randomBytes(6).toString('hex')}`;
      const lock = takeLock(`${prefix}.lock`);
      // Another open's recovery saw the new lock file before it was locked, and took it: try another name.
      if (lock === null) {
        if (attempt < 3) continue;
        throw new Error(`could not take a journal lock next to ${databasePath}`);
      }
      try {
        return new RecordJournal(prefix, lock, options.segmentBytes ?? defaultSegmentBytes);
      } catch (err) {
        releaseLock(lock, `${prefix}.lock`);
        throw err;
      }
    }
  }

  /** Reads the journals of `databasePath` that nobody owns any more (their lock can be taken). */
  static recover(databasePath: string): RecoveredRecords {
    const base = basename(journalBase(databasePath));
    const dir = dirname(databasePath);
    const byTag = new Map<string, { segments: { n: number; file: string }[]; lock: string | null }>();
    for (const name of readdirSync(dir)) {
      const match = /^(.*)\.([0-9a-f]+)\.(\d+|lock)$/.exec(name);
      if (match === null || match[1] !== base) continue;
      const tag = match[2]!;
      const journal = byTag.get(tag) ?? { segments: [], lock: null };
      byTag.set(tag, journal);
      if (match[3] === 'lock') journal.lock = join(dir, name);
      else journal.segments.push({ n: Number(match[3]), file: join(dir, name) });
    }
    const rows: Row[] = [];
    const files: string[] = [];
    const locks: { db: BetterSqlite3.Database; path: string }[] = [];
    let unreadableLines = 0;
    let deletedRows = 0;
    try {
      for (const journal of byTag.values()) {
        if (journal.lock !== null) {
          const db = takeLock(journal.lock, { mustExist: true });
          if (db === null) continue; // its owner is alive
          // Recovered and removed by another open since the listing: nothing left to read.
          if (db === 'gone') continue;
          locks.push({ db, path: journal.lock });
        }
        const own: Row[] = [];
        for (const { file } of journal.segments.sort((a, b) => a.n - b.n)) {
          let text: string;
          try {
            text = readFileSync(file, 'utf8');
          } catch (err) {
            // Deleted by another open that recovered this journal first.
            if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
            throw err;
          }
          files.push(file);
          for (const line of text.split('\n')) {
            if (line === '') continue;
            let row: unknown;
            try {
              row = JSON.parse(line);
            } catch {
              unreadableLines += 1;
              continue;
            }
            if (typeof row !== 'object' || row === null || Array.isArray(row)) {
              unreadableLines += 1;
              continue;
            }
            const deleted = (row as Row)[deletedKey];
            if (typeof deleted === 'string') {
              const before = own.length;
              own.splice(0, own.length, ...own.filter((kept) => kept['function_name'] !== deleted));
              deletedRows += before - own.length;
            } else {
              own.push(row as Row);
            }
          }
        }
        rows.push(...own);
      }
    } catch (err) {
      for (const lock of locks) lock.db.close();
      throw err;
    }
    return {
      rows,
      unreadableLines,
      deletedRows,
      files,
      discard: () => {
        for (const file of files) unlinkQuietly(file);
        for (const lock of locks) releaseLock(lock.db, lock.path);
      },
      abandon: () => {
        for (const lock of locks) lock.db.close();
      },
    };
  }

  /**
   * Appends `rows` in one write; once it returns they survive a crash of this process. Returns the segment to
   * `release` them from once committed. Throws when the write fails (disk full, I/O error), having cut the file
   * back to where it was: nothing of these rows stays, and the next append starts on a clean line.
   */
  append(rows: readonly Row[]): number {
    let text = '';
    for (const row of rows) text += `${JSON.stringify(row)}\n`;
    const segment = this.#write(text);
    segment.outstanding += rows.length;
    return segment.n;
  }

  /** Notes that `functionName` was deleted: recovery drops its rows written before this point. */
  markDeleted(functionName: string): void {
    this.#write(`${JSON.stringify({ [deletedKey]: functionName })}\n`);
  }

  /** `count` records of segment `n` are committed to the database. */
  release(n: number, count: number): void {
    const segment = this.#segments.get(n);
    if (segment === undefined) return;
    segment.outstanding -= count;
    this.#removeSettled();
  }

  /** Closes the files and gives the lock up; segments with uncommitted records stay for the next open to recover. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#removeSettled({ current: true });
      for (const segment of this.#segments.values()) {
        if (segment.fd !== null) closeSync(segment.fd);
        segment.fd = null;
      }
    } finally {
      releaseLock(this.#lock, `${this.#prefix}.lock`);
    }
  }

  #write(text: string): Segment {
    if (this.#closed) throw new Error('the record journal is closed');
    // Roll over before writing, so a failure to open the next segment fails this append and nothing else.
    if (this.#current.bytes >= this.#segmentBytes) this.#rollOver();
    const segment = this.#current;
    const fd = segment.fd;
    if (fd === null) throw new Error('the record journal segment is closed');
    const bytes = Buffer.from(text, 'utf8');
    let written = 0;
    try {
      while (written < bytes.length) written += writeSync(fd, bytes, written);
    } catch (err) {
      // A partial line would run into the next append's first line: cut it off.
      if (written > 0) ftruncateSync(fd, segment.bytes);
      throw err;
    }
    segment.bytes += bytes.length;
    return segment;
  }

  #openSegment(n: number): Segment {
    const path = `${this.#prefix}.${n}`;
    const segment: Segment = { n, path, fd: openSync(path, 'a', 0o600), bytes: 0, outstanding: 0 };
    this.#segments.set(n, segment);
    return segment;
  }

  #rollOver(): void {
    const previous = this.#current;
    this.#current = this.#openSegment(previous.n + 1);
    if (previous.fd !== null) closeSync(previous.fd);
    previous.fd = null;
    this.#removeSettled();
  }

  /**
   * Removes settled segments (nothing outstanding) from the oldest on, stopping at the first one still holding
   * uncommitted records: a later segment may hold the delete marker that those records must meet at recovery.
   * The current segment stays unless `current` (at close).
   */
  #removeSettled(options: { current?: boolean } = {}): void {
    const ordered = [...this.#segments.values()].sort((a, b) => a.n - b.n);
    for (const segment of ordered) {
      if (segment.outstanding > 0) return;
      if (segment === this.#current && options.current !== true) return;
      this.#remove(segment);
    }
  }

  #remove(segment: Segment): void {
    if (segment.fd !== null) closeSync(segment.fd);
    segment.fd = null;
    this.#segments.delete(segment.n);
    unlinkQuietly(segment.path);
  }
}

function journalBase(databasePath: string): string {
  return `${databasePath}-records`;
}

/**
 * An exclusive lock on `path` (a small SQLite file) that lasts until `releaseLock` or this process's end; null when
 * someone else holds it; 'gone' when `mustExist` and the file is no longer there (it is not created again). SQLite's locks are POSIX advisory locks, which SQLite also honours between connections
 * of one process.
 */
function takeLock(path: string): BetterSqlite3.Database | null;
function takeLock(path: string, options: { mustExist: true }): BetterSqlite3.Database | null | 'gone';
function takeLock(path: string, options: { mustExist?: boolean } = {}): BetterSqlite3.Database | null | 'gone' {
  let db: BetterSqlite3.Database;
  try {
    // Created readable by the platform's user only, as the journal's segments are.
    if (options.mustExist !== true) closeSync(openSync(path, 'a', 0o600));
    db = new BetterSqlite3(path, { fileMustExist: options.mustExist === true });
  } catch (err) {
    if (options.mustExist === true && (err as { code?: unknown }).code === 'SQLITE_CANTOPEN') return 'gone';
    throw err;
  }
  try {
    db.pragma('busy_timeout = 0');
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('begin exclusive');
    return db;
  } catch (err) {
    db.close();
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('SQLITE_BUSY')) return null;
    throw err;
  }
}

function releaseLock(db: BetterSqlite3.Database, path: string): void {
  // Delete the file first, while it is still locked, so nobody takes a lock on a file about to vanish.
  unlinkQuietly(path);
  unlinkQuietly(`${path}-journal`);
  db.close();
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** Where recovered rows go: `SqlMetadataStore.importInvocationRows`. */
export interface RecoveredRowsImporter {
  /** Commits the rows; resolves with how many were skipped (stored already, invalid or refused). */
  importInvocationRows(rows: readonly Row[]): Promise<number>;
}

/**
 * Commits the records that processes which stopped had journalled (and acknowledged) for `databasePath`, then
 * deletes their journal files. When the commit fails the files stay for the next open, and this throws UNAVAILABLE.
 */
export async function recoverJournal(
  store: RecoveredRowsImporter,
  databasePath: string,
  logger: Logger,
): Promise<void> {
  let recovered;
  try {
    recovered = RecordJournal.recover(databasePath);
  } catch (err) {
    throw new PlatformError(
      'UNAVAILABLE',
      `cannot read the invocation record journal of ${databasePath}: ${errorText(err)}`,
      { cause: err },
    );
  }
  if (recovered.files.length === 0) {
    recovered.discard();
    return;
  }
  let skipped: number;
  try {
    skipped = await store.importInvocationRows(recovered.rows);
  } catch (err) {
    // The rows are acknowledged records: keep the files for the next open rather than lose them.
    recovered.abandon();
    throw new PlatformError(
      'UNAVAILABLE',
      `cannot commit the ${recovered.rows.length} invocation records journalled by a process that stopped; the journal is kept: ${errorText(err)}`,
      { cause: err },
    );
  }
  recovered.discard();
  logger.info(
    {
      records: recovered.rows.length - skipped,
      skipped,
      unreadableLines: recovered.unreadableLines,
      ofDeletedFunctions: recovered.deletedRows,
    },
    'committed the invocation records a stopped process had journalled',
  );
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
