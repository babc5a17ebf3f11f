import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LogBuffer } from './log-buffer.js';

describe('LogBuffer', () => {
  it('keeps text under the cap as written', () => {
    const log = new LogBuffer(100);
    log.append('one\n');
    log.append('');
    log.append('two');
    assert.equal(log.render().toString(), 'one\ntwo');
    assert.equal(log.bytes, 7);
  });

  it('cuts at the cap, counts what was dropped and ends with a marker line', () => {
    const log = new LogBuffer(10);
    log.append('0123456789abc\n');
    log.append('dropped\n');
    assert.equal(log.omitted, 12);
    assert.equal(log.render().toString(), '0123456789\n[savassan] log truncated: 12 bytes omitted\n');
  });

  it('never splits a multi-byte character', () => {
    const log = new LogBuffer(5);
    log.append('ab€cd'); // € is 3 bytes: a b [e2 82 ac] c d
    assert.equal(log.render().toString(), 'ab€\n[savassan] log truncated: 2 bytes omitted\n');
    const tight = new LogBuffer(4);
    tight.append('ab€');
    assert.equal(tight.bytes, 2);
    assert.equal(tight.omitted, 3);
  });

  it('adds notes after the output and the marker, outside the cap', () => {
    const log = new LogBuffer(3);
    log.append('abcdef\n');
    log.note('Task timed out after 1.00 seconds');
    assert.equal(
      log.render().toString(),
      'abc\n[savassan] log truncated: 4 bytes omitted\n[savassan] Task timed out after 1.00 seconds\n',
    );
  });

  it('takes over another buffer, emptying it', () => {
    const pending = new LogBuffer(100);
    pending.append('init\n');
    const log = new LogBuffer(100);
    log.takeFrom(pending);
    log.append('run\n');
    assert.equal(log.render().toString(), 'init\nrun\n');
    assert.equal(pending.render().length, 0);
  });
});
