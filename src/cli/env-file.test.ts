import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseEnvFile } from './env-file.js';

describe('parseEnvFile', () => {
  it('reads KEY=VALUE lines, comments, export and quotes', () => {
    const text = [
      '# a comment',
      '',
      'export API_URL=https://api.example.com/?a=b',
      'TOKEN="s3cr\\"et\\nline"',
      "RAW='$HOME \\n'",
      'EMPTY=',
      '  SPACED = value  ',
    ].join('\n');
    assert.deepEqual(parseEnvFile(text, '.env'), {
      API_URL: 'https://api.example.com/?a=b',
      TOKEN: 's3cr"et\nline',
      RAW: '$HOME \\n',
      EMPTY: '',
      SPACED: 'value',
    });
  });

  it('names the file and line of a malformed entry', () => {
    assert.throws(() => parseEnvFile('OK=1\nnot a pair\n', 'prod.env'), /prod\.env:2: expected KEY=VALUE/);
    assert.throws(() => parseEnvFile('K="open\n', 'prod.env'), /prod\.env:1: unterminated "/);
  });
});
