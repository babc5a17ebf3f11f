import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { timeOrderedUuid } from './ids.js';

const uuidV7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('timeOrderedUuid', () => {
  it('is a version-7 UUID whose first 48 bits are the time in milliseconds', () => {
    const at = Date.UTC(2026, 10, 23, 4, 30, 0, 123);
    const id = timeOrderedUuid(at);
    assert.match(id, uuidV7);
    assert.equal(parseInt(id.slice(0, 8) + id.slice(9, 13), 16), at);
    assert.ok(timeOrderedUuid(0).startsWith('00000000-0000-7'));
    assert.ok(timeOrderedUuid(2 ** 48 - 1).startsWith('ffffffff-ffff-7'));
    assert.ok(timeOrderedUuid(0x123456789abc + 0.9).startsWith('12345678-9abc-7'));
  });

  it('sorts by creation time, as text, across milliseconds', () => {
    const start = Date.now();
    const ids = Array.from({ length: 2000 }, (_, i) => timeOrderedUuid(start + Math.floor(i / 7)));
    assert.deepEqual(
      [...ids].sort((a, b) => a.slice(0, 13).localeCompare(b.slice(0, 13))),
      ids,
    );
    for (let i = 1; i < ids.length; i++) {
      if (Math.floor(i / 7) !== Math.floor((i - 1) / 7)) assert.ok(ids[i - 1]! < ids[i]!, `${ids[i - 1]} < ${ids[i]}`);
    }
  });

  it('never repeats, also within one millisecond and across refills of its random bytes', () => {
    const now = Date.now();
    const ids = Array.from({ length: 10_000 }, () => timeOrderedUuid(now));
    assert.equal(new Set(ids).size, ids.length);
    for (const id of ids) assert.match(id, uuidV7);
  });
});
