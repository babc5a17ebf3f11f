import assert from 'node:assert/strict';
import { test } from 'node:test';
import { humanLine } from './server-log.js';

test('a pino JSON line reads as time, level, message and fields', () => {
  const time = new Date(2026, 11, 6, 12, 4, 5).getTime();
  const line = humanLine(
    JSON.stringify({
      level: 40,
      time,
      pid: 1,
      hostname: 'h',
      msg: 'could not start a stem cell',
      kind: 'nodejs20/256MB/nonet',
      failures: 2,
      err: { type: 'PlatformError', message: '[UNAVAILABLE] agent local is closed', stack: 'PlatformError: …' },
    }),
  );
  assert.equal(
    line,
    '12:04:05 WARN  could not start a stem cell kind=nodejs20/256MB/nonet failures=2 err="[UNAVAILABLE] agent local is closed"',
  );
});

test('a line that is not JSON is kept as it is', () => {
  assert.equal(humanLine('plain text'), 'plain text');
});
