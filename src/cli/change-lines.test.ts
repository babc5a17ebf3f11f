import assert from 'node:assert/strict';
import { it } from 'node:test';
import { changeLines } from './change-lines.js';

it('prints one line per changed field, with units and keys of env only', () => {
  assert.deepEqual(
    changeLines([
      { field: 'code', from: 'a'.repeat(64), to: 'b'.repeat(64) },
      { field: 'env', added: ['API_URL'], removed: ['DEBUG'], changed: ['TOKEN'] },
      { field: 'timeoutSeconds', from: 30, to: 10 },
      { field: 'memoryMB', from: 256, to: 512 },
      { field: 'network', from: false, to: true },
      { field: 'allowNet', from: [], to: ['10.0.0.0/8', '192.168.1.0/24'] },
      { field: 'later', from: { a: 1 }, to: null },
    ]),
    [
      `code ${'a'.repeat(12)} → ${'b'.repeat(12)}`,
      'env: +API_URL, -DEBUG, ~TOKEN',
      'timeout 30 → 10 s',
      'memory 256 → 512 MB',
      'network off → on',
      'allow-net none → 10.0.0.0/8, 192.168.1.0/24',
      'later {"a":1} → null',
    ],
  );
  assert.deepEqual(changeLines([]), []);
});
