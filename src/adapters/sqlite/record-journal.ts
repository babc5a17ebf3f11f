/**
 * The invocation record journal: an append-only file beside the SQLite database from which records are
 * acknowledged before they reach the database.
 *
 * A warm invocation must not answer before its record is safe (architecture §2), but a SQLite commit costs
 * 30-60 µs of event-loop time (four B-tree pages into the WAL) and a trip to the worker thread 0.15-0.2 ms of
 * latency. One `write(2)` of a JSON line costs a few microseconds and survives a crash of the process just as a
 * `synchronous=NORMAL` commit does (both sit in the OS page cache), so records are appended here, acknowledged,
 * and committed to the database in batches by the worker shortly after. On open, segments left by a process that
 * died are read back and committed (`insert ... on conflict do nothing`: a record committed before the crash is not
 * written twice), then deleted.
 *
 * Layout: `<database>-records.<pid>.<tag>.<n>`, one line of JSON per record. The writer rolls over to a new segment
 * after `segmentBytes` and deletes a segment once every record in it has been committed. The pid names the owner:
 * another process (or another store in this one) leaves a live owner's segments alone.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, readdirSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

type Row = Record<string, unknown>;

const defaultSegmentBytes = 8 * 1024 * 1024;

interface Segment {
  n: number;
  path: string;
  fd: number | null;
  bytes: number;
  /** Records appended to it and not yet committed. */
  outstanding: number;
}

/** Segments of dead owners, read back: commit `rows`, then `discard()` the files. */
export interface RecoveredRecords {
  rows: Row[];
  /** Lines that could not be parsed (a torn last line after a crash mid-write is expected: at most one per file). */
  unreadableLines: number;
  files: string[];
  discard(): void;
}

export class RecordJournal {
  readonly #prefix: string;
  readonly #orphanPrefix: string;
  readonly #segmentBytes: number;
  readonly #segments = new Map<number, Segment>();
  #current: Segment;

  private constructor(base: string, tag: string, segmentBytes: number) {
    this.#prefix = `${base}.${process.pid}.${tag}`;
    this.#orphanPrefix = `${base}.0.${tag}`;
    this.#segmentBytes = segmentBytes;
    this.#current = this.#openSegment(0);
  }

  /** Starts a journal for `databasePath` owned by this process. */
  static open(databasePath: string, options: { segmentBytes?: number } = {}): RecordJournal {
    const tag = randomBytes(4).toString('hex');
    return new RecordJournal(journalBase(databasePath), tag, options.segmentBytes ?? defaultSegmentBytes);
  }

  /** Reads the segments of `databasePath` whose owner process is gone. */
  static recover(databasePath: string): RecoveredRecords {
    const base = basename(journalBase(databasePath));
    const dir = dirname(databasePath);
    const files: string[] = [];
    for (const name of readdirSync(dir)) {
      const match = /^(.*)\.(\d+)\.[0-9a-f]+\.(\d+)$/.exec(name);
      if (match === null || match[1] !== base || isAlive(Number(match[2]))) continue;
      files.push(join(dir, name));
    }
    const rows: Row[] = [];
    let unreadableLines = 0;
    for (const file of files) {
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        if (line === '') continue;
        try {
          const row: unknown = JSON.parse(line);
          if (typeof row === 'object' && row !== null && !Array.isArray(row)) rows.push(row as Row);
          else unreadableLines += 1;
        } catch {
          unreadableLines += 1;
        }
      }
    }
    return {
      rows,
      unreadableLines,
      files,
      discard: () => {
        for (const file of files) unlinkSync(file);
      },
    };
  }

  /**
   * Appends `rows` in one write; once it returns they survive a crash of this process. Returns the segment to
   * `release` them from once committed. Throws (nothing acknowledged) when the write fails: disk full, I/O error.
   */
  append(rows: readonly Row[]): number {
    let text = '';
    for (const row of rows) text += `${JSON.stringify(row)}\n`;
    const segment = this.#current;
    if (segment.fd === null) throw new Error('the record journal is closed');
    const bytes = Buffer.from(text, 'utf8');
    let written = 0;
    while (written < bytes.length) written += writeSync(segment.fd, bytes, written);
    segment.bytes += bytes.length;
    segment.outstanding += rows.length;
    if (segment.bytes >= this.#segmentBytes) this.#rollOver();
    return segment.n;
  }

  /** `count` records of segment `n` are committed to the database. */
  release(n: number, count: number): void {
    const segment = this.#segments.get(n);
    if (segment === undefined) return;
    segment.outstanding -= count;
    if (segment.outstanding <= 0 && segment !== this.#current) this.#remove(segment);
  }

  /**
   * Closes the files. Segments with uncommitted records are handed to the next open: renamed to owner pid 0,
   * which no live process has.
   */
  close(): void {
    for (const segment of [...this.#segments.values()]) {
      if (segment.outstanding <= 0) {
        this.#remove(segment);
        continue;
      }
      if (segment.fd !== null) closeSync(segment.fd);
      segment.fd = null;
      this.#segments.delete(segment.n);
      renameSync(segment.path, `${this.#orphanPrefix}.${segment.n}`);
    }
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
    if (previous.outstanding <= 0) this.#remove(previous);
  }

  #remove(segment: Segment): void {
    if (segment.fd !== null) closeSync(segment.fd);
    segment.fd = null;
    this.#segments.delete(segment.n);
    try {
      unlinkSync(segment.path);
    } catch {
      // Already gone.
    }
  }
}

function journalBase(databasePath: string): string {
  return `${databasePath}-records`;
}

/** Whether a process with this pid exists (EPERM: it exists, as someone else's). */
function isAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
