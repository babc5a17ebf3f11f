import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PlatformError } from '../core/errors.js';
import { silentLogger } from '../core/logger.js';
import { StemCells, type StemCellOptions } from './stem-cells.js';

interface Cell {
  instanceId: string;
  kind: string;
}

/** A pool whose launches are plain objects resolved on the next tick, recording what it started and discarded. */
function pool(options: Partial<StemCellOptions> = {}, failKinds: string[] = []) {
  let next = 0;
  const launched: string[] = [];
  const discarded: string[] = [];
  const cells = new StemCells<Cell>(
    { maxPerKind: 2, maxTotal: 3, idleMs: 60_000, baseKinds: [], replaceAfterMs: 1000, ...options },
    (kind) => {
      launched.push(kind);
      if (failKinds.includes(kind)) return Promise.reject(new Error(`cannot start ${kind}`));
      next += 1;
      return Promise.resolve({ instanceId: `cell-${next}`, kind });
    },
    (cell) => {
      discarded.push(cell.instanceId);
      return Promise.resolve();
    },
    silentLogger,
  );
  return { cells, launched, discarded };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('StemCells', () => {
  it('keeps base kinds warm from the start and refills after a take', async () => {
    const { cells, launched } = pool({ baseKinds: ['nodejs20/256MB/nonet'] });
    await settle();
    assert.deepEqual(cells.stats().byKind['nodejs20/256MB/nonet'], { idle: 2, starting: 0, target: 2 });
    const cell = cells.take('nodejs20/256MB/nonet');
    assert.equal(cell?.kind, 'nodejs20/256MB/nonet');
    await settle();
    assert.equal(cells.stats().idle, 2, 'refilled');
    assert.equal(launched.length, 3);
    await cells.close();
  });

  it('starts the replacement of a taken cell once its caller says so, and after a miss at once', async () => {
    const { cells, launched } = pool({ baseKinds: ['k'], maxPerKind: 1 });
    await settle();
    assert.equal(launched.length, 1);
    let answered = (): void => {};
    const cell = cells.take('k', new Promise<void>((resolve) => (answered = resolve)));
    assert.ok(cell !== null);
    await settle();
    assert.equal(launched.length, 1, 'no replacement while the cold start that took the cell runs');
    assert.deepEqual(cells.stats().byKind['k'], { idle: 0, starting: 0, target: 1 });
    answered();
    await settle();
    assert.equal(launched.length, 2, 'replaced once its first answer is out');
    assert.equal(cells.stats().idle, 1);
    // A caller whose creation failed says so by rejecting: the cell is replaced all the same.
    const failed = cells.take('k', Promise.reject(new Error('init failed')));
    assert.ok(failed !== null);
    await settle();
    assert.equal(launched.length, 3);
    // A miss starts a cell at once, whatever the caller would say.
    assert.ok(cells.take('k', new Promise<void>(() => {})) !== null);
    assert.equal(cells.take('k', new Promise<void>(() => {})), null);
    assert.equal(launched.length, 4);
    await settle();
    assert.equal(cells.stats().idle, 1);
    await cells.close();
  });

  it('grows a kind on misses up to maxPerKind', async () => {
    const { cells } = pool();
    assert.equal(cells.take('a'), null, 'nothing yet: a miss');
    await settle();
    assert.equal(cells.stats().byKind['a']?.idle, 1);
    assert.ok(cells.take('a') !== null);
    assert.equal(cells.take('a'), null, 'a second miss while the refill starts');
    await settle();
    assert.deepEqual(cells.stats().byKind['a'], { idle: 2, starting: 0, target: 2 });
    assert.equal(cells.take('a') === null, false);
    cells.take('a');
    cells.take('a');
    await settle();
    assert.equal(cells.stats().byKind['a']?.target, 2, 'never above maxPerKind');
    await cells.close();
  });

  it('never holds more than maxTotal cells, evicting the least recently wanted kind', async () => {
    const { cells, discarded } = pool({ maxTotal: 2 });
    cells.take('a');
    await settle();
    cells.take('b');
    await settle();
    assert.equal(cells.stats().idle, 2);
    cells.take('c');
    await settle();
    const stats = cells.stats();
    assert.equal(stats.idle + stats.starting, 2);
    assert.equal(stats.byKind['a']?.idle, 0, 'a was wanted longest ago');
    assert.equal(stats.byKind['c']?.idle, 1);
    assert.equal(discarded.length, 1);
    await cells.close();
  });

  it('stops refilling a kind that cannot start until it is wanted again', async () => {
    const { cells, launched } = pool({}, ['nodejs99/256MB/nonet']);
    cells.take('nodejs99/256MB/nonet');
    await settle();
    await settle();
    assert.equal(cells.stats().byKind['nodejs99/256MB/nonet']?.target, 0);
    assert.equal(launched.length, 1, 'no retry loop');
    await cells.close();
  });

  it('replaces a cell that died while idle, and discards everything on close', async () => {
    const { cells, discarded } = pool({ baseKinds: ['k'], maxPerKind: 1 });
    await settle();
    const [cell] = cells.cells();
    assert.ok(cell !== undefined);
    cells.forget(cell);
    await settle();
    assert.equal(cells.stats().idle, 1);
    assert.notEqual(cells.cells()[0]?.instanceId, cell.instanceId);
    await cells.close();
    assert.equal(cells.stats().idle, 0);
    assert.equal(discarded.length, 1);
    assert.equal(cells.take('k'), null, 'closed');
  });

  it('keeps the cells it has when the node is full, and gives up the least wanted idle cell to make room', async () => {
    let launches = 0;
    const cells = new StemCells<Cell>(
      { maxPerKind: 2, maxTotal: 3, idleMs: 60_000, baseKinds: ['a'], replaceAfterMs: 1000 },
      (kind) => {
        launches += 1;
        if (launches > 1) return Promise.reject(new PlatformError('TOO_MANY_REQUESTS', 'node is full'));
        return Promise.resolve({ instanceId: `cell-${launches}`, kind });
      },
      () => Promise.resolve(),
      silentLogger,
    );
    await settle();
    assert.deepEqual(cells.stats().byKind['a'], { idle: 1, starting: 0, target: 1 });
    assert.equal(cells.hasIdle('a'), true);
    assert.equal(cells.evictOne()?.instanceId, 'cell-1');
    assert.equal(cells.hasIdle('a'), false);
    assert.equal(cells.evictOne(), null);
    assert.deepEqual(cells.stats().byKind['a'], { idle: 0, starting: 0, target: 0 }, 'not started again at once');
    await cells.close();
  });
});
