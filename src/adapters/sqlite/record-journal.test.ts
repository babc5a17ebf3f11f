import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { RecordJournal } from './record-journal.js';

describe('RecordJournal', () => {
  let dir: string;
  let database: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'savassan-journal-'));
    database = join(dir, 'metadata.db');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const row = (i: number, fn = 'alpha') => ({ id: `inv-${i}`, function_name: fn, duration_ms: i / 10, error: null });
  const segments = async () => (await readdir(dir)).filter((name) => /\.\d+$/.test(name)).sort();

  it('appends one line per row, rolls over, and deletes a segment once all its rows are released', async () => {
    const journal = RecordJournal.open(database, { segmentBytes: 200 });
    const first = journal.append([row(1), row(2), row(3)]);
    const second = journal.append([row(4)]);
    assert.notEqual(first, second, 'the first append filled its segment, so the second went to a new one');
    let files = await segments();
    assert.equal(files.length, 2);
    const lines = (await readFile(join(dir, files[0]!), 'utf8')).trimEnd().split('\n');
    assert.deepEqual(
      lines.map((line) => JSON.parse(line) as unknown),
      [row(1), row(2), row(3)],
    );

    journal.release(first, 2);
    assert.equal((await segments()).length, 2, 'one row of the first segment is still uncommitted');
    journal.release(first, 1);
    files = await segments();
    assert.equal(files.length, 1, 'the committed segment is gone');
    journal.release(second, 1);
    journal.close();
    assert.deepEqual(await readdir(dir), [], 'a closed journal with nothing outstanding leaves no file, lock included');
  });

  it('leaves a live owner alone, in this process too, and hands rows left uncommitted at close to the next open', async () => {
    const live = RecordJournal.open(database);
    live.append([row(1)]);
    const whileLive = RecordJournal.recover(database);
    assert.deepEqual(whileLive.rows, [], 'its owner holds the lock');
    whileLive.discard();
    assert.equal((await segments()).length, 1, 'nothing of a live journal is deleted');

    live.close();
    const recovered = RecordJournal.recover(database);
    assert.deepEqual(recovered.rows, [row(1)], 'closed with a row outstanding: it goes to whoever opens next');
    recovered.discard();
    assert.deepEqual(await readdir(dir), []);
  });

  it('keeps the files when the recovered rows could not be committed (abandon)', () => {
    const journal = RecordJournal.open(database);
    journal.append([row(1)]);
    journal.close();
    RecordJournal.recover(database).abandon();
    assert.deepEqual(RecordJournal.recover(database).rows, [row(1)], 'still there for a later open');
  });

  it("drops a deleted function's rows written before the delete, not those written after", () => {
    const journal = RecordJournal.open(database);
    journal.append([row(1), row(2, 'beta')]);
    journal.markDeleted('alpha');
    journal.append([row(3)]);
    journal.close();
    const recovered = RecordJournal.recover(database);
    assert.deepEqual(recovered.rows, [row(2, 'beta'), row(3)]);
    assert.equal(recovered.deletedRows, 1);
  });

  it('keeps a settled segment while an older one has uncommitted rows: it may hold their delete marker', () => {
    const journal = RecordJournal.open(database, { segmentBytes: 10 });
    journal.append([row(1)]); // segment 0, left uncommitted
    journal.markDeleted('alpha'); // rolls over: segment 1 holds only the marker
    journal.append([row(2, 'beta')]); // segment 2
    journal.release(2, 1);
    journal.close();
    const recovered = RecordJournal.recover(database);
    // alpha's row meets its delete marker; beta's, committed but kept behind segment 0, is replayed harmlessly
    // (recovery inserts with on conflict do nothing).
    assert.deepEqual(recovered.rows, [row(2, 'beta')]);
    assert.equal(recovered.deletedRows, 1);
  });

  it('reads back a segment torn mid-line, skipping only the torn line', async () => {
    // A journal whose owner died (no lock file) in the middle of writing its third line.
    const lines = `${JSON.stringify(row(1))}\n${JSON.stringify(row(2))}\n{"id":"inv-3","func`;
    await writeFile(join(dir, 'metadata.db-records.abcd1234.0'), lines);
    await writeFile(join(dir, 'other.db-records.abcd1234.0'), `${JSON.stringify(row(9))}\n`);
    const recovered = RecordJournal.recover(database);
    assert.deepEqual(recovered.rows, [row(1), row(2)]);
    assert.equal(recovered.unreadableLines, 1);
    assert.equal(recovered.files.length, 1, "another database's journal is not read");
  });
});
