import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  FrameDecoder,
  ProtocolError,
  encodeMessage,
  parseGuestMessage,
  parseHostMessage,
  type GuestMessage,
  type HostMessage,
} from './protocol.js';

const init: HostMessage = {
  type: 'init',
  id: 'r1',
  handler: 'index.handler',
  codeDir: '/code',
  env: { A: '1' },
  functionName: 'fn',
  functionVersion: 3,
  memoryMB: 128,
  timeoutMs: 3000,
  offline: true,
};
const invoke: HostMessage = { type: 'invoke', id: 'r2', invocationId: 'inv', eventJson: '{"a":"\\n"}', deadline: 1e12 };

const guestMessages: GuestMessage[] = [
  { type: 'hello', id: '', pid: 42, nodeVersion: 'v20.19.0' },
  { type: 'init-ok', id: 'r1', initMs: 12.5 },
  { type: 'init-error', id: 'r1', error: { name: 'SyntaxError', message: 'bad', stack: 'SyntaxError: bad' } },
  { type: 'result', id: 'r2', payloadJson: '{"ok":true}', maxRssBytes: 1024 },
  { type: 'error', id: 'r2', error: { name: 'Error', code: 'E_X', message: 'boom' }, maxRssBytes: 0, fatal: false },
  { type: 'log', id: 'r2', stream: 'stderr', text: 'line one\nline two\n' },
];

function line(message: object): string {
  return JSON.stringify(message);
}

function rejects(parse: (line: string) => unknown, input: string, message: RegExp): void {
  assert.throws(
    () => parse(input),
    (err: unknown) => err instanceof ProtocolError && message.test(err.message),
    `expected ${input} to be rejected with ${String(message)}`,
  );
}

describe('protocol messages', () => {
  it('round-trips every message through encode and parse', () => {
    for (const message of [init, invoke]) {
      const frame = encodeMessage(message);
      assert.ok(frame.endsWith('\n') && frame.indexOf('\n') === frame.length - 1, 'one line per frame');
      assert.deepEqual(parseHostMessage(frame.trimEnd()), message);
    }
    for (const message of guestMessages) assert.deepEqual(parseGuestMessage(encodeMessage(message).trimEnd()), message);
  });

  it('drops unknown fields', () => {
    assert.deepEqual(parseGuestMessage(line({ ...guestMessages[1], extra: 1 })), guestMessages[1]);
    assert.deepEqual(
      parseGuestMessage(
        line({ type: 'error', id: 'x', error: { name: 'E', message: 'm', x: 1 }, maxRssBytes: 0, fatal: true }),
      ),
      {
        type: 'error',
        id: 'x',
        error: { name: 'E', message: 'm' },
        maxRssBytes: 0,
        fatal: true,
      },
    );
  });

  it('rejects lines that are not JSON objects', () => {
    rejects(parseHostMessage, '', /not JSON/);
    rejects(parseHostMessage, '{"type":"init"', /not JSON/);
    rejects(parseHostMessage, '[1,2]', /expected a JSON object/);
    rejects(parseGuestMessage, 'null', /expected a JSON object/);
    rejects(parseGuestMessage, '"hello"', /expected a JSON object/);
  });

  it('rejects unknown or missing types, and messages of the other side', () => {
    rejects(parseHostMessage, line({ id: 'x' }), /"type" must be one of init, invoke, got nothing/);
    rejects(parseHostMessage, line({ type: 'result', id: 'x' }), /"type" must be one of init, invoke, got "result"/);
    rejects(parseGuestMessage, line({ ...init }), /"type" must be one of hello, init-ok/);
    rejects(parseGuestMessage, line({ type: 42 }), /"type" must be one of/);
  });

  it('rejects missing and mistyped fields with the field named', () => {
    rejects(parseHostMessage, line({ ...init, id: '' }), /init message: "id" must be a non-empty string/);
    rejects(
      parseHostMessage,
      line({ ...init, handler: undefined }),
      /"handler" must be a non-empty string, got nothing/,
    );
    rejects(parseHostMessage, line({ ...init, env: { A: 1 } }), /"env\.A" must be a string/);
    rejects(parseHostMessage, line({ ...init, env: ['A'] }), /"env" must be an object of strings/);
    rejects(
      parseHostMessage,
      line({ ...init, functionVersion: 1.5 }),
      /"functionVersion" must be an integer >= 0, got 1.5/,
    );
    rejects(parseHostMessage, line({ ...init, memoryMB: 0 }), /"memoryMB" must be an integer >= 1/);
    rejects(
      parseHostMessage,
      line({ ...init, timeoutMs: '3000' }),
      /"timeoutMs" must be a finite number >= 1, got a string/,
    );
    rejects(parseHostMessage, line({ ...invoke, eventJson: { a: 1 } }), /invoke message: "eventJson" must be a string/);
    rejects(parseHostMessage, line({ ...invoke, deadline: null }), /"deadline" must be a finite number/);
    rejects(
      parseGuestMessage,
      line({ type: 'hello', id: 'x', pid: 1, nodeVersion: 'v' }),
      /"id" must be the empty string/,
    );
    rejects(
      parseGuestMessage,
      line({ type: 'hello', id: '', pid: -1, nodeVersion: 'v' }),
      /"pid" must be an integer >= 1/,
    );
    rejects(parseGuestMessage, line({ type: 'init-ok', id: 'x', initMs: -1 }), /"initMs" must be a number from 0 to/);
    rejects(parseGuestMessage, line({ type: 'init-error', id: 'x', error: 'boom' }), /"error" must be an error object/);
    rejects(
      parseGuestMessage,
      line({ type: 'init-error', id: 'x', error: { name: '', message: 'm' } }),
      /init-error message "error": "name" must be a non-empty string/,
    );
    rejects(
      parseGuestMessage,
      line({ type: 'error', id: 'x', error: { name: 'E', message: 'm', stack: 5 }, maxRssBytes: 0, fatal: false }),
      /"stack" must be a string when present/,
    );
    rejects(
      parseGuestMessage,
      line({ type: 'error', id: 'x', error: { name: 'E', message: 'm' }, maxRssBytes: 0 }),
      /"fatal" must be a boolean/,
    );
    rejects(
      parseGuestMessage,
      line({ type: 'result', id: 'x', payloadJson: 1, maxRssBytes: 0 }),
      /"payloadJson" must be a string/,
    );
    rejects(parseGuestMessage, line({ type: 'result', id: 'x', payloadJson: 'null' }), /"maxRssBytes" must be/);
  });

  it('bounds the numbers a guest reports: a lying guest cannot put 1e300 or a fraction into a record', () => {
    for (const maxRssBytes of [1e300, 2 ** 40 + 1, 1.5, -1, Number.MAX_SAFE_INTEGER + 2]) {
      rejects(
        parseGuestMessage,
        line({ type: 'result', id: 'x', payloadJson: 'null', maxRssBytes }),
        /"maxRssBytes" must be an integer from 0 to 1099511627776/,
      );
      rejects(
        parseGuestMessage,
        line({ type: 'error', id: 'x', error: { name: 'E', message: 'm' }, maxRssBytes, fatal: false }),
        /"maxRssBytes" must be an integer from 0 to/,
      );
    }
    rejects(
      parseGuestMessage,
      line({ type: 'init-ok', id: 'x', initMs: 1e300 }),
      /"initMs" must be a number from 0 to/,
    );
    assert.equal(
      (
        parseGuestMessage(line({ type: 'result', id: 'x', payloadJson: 'null', maxRssBytes: 2 ** 40 })) as {
          maxRssBytes: number;
        }
      ).maxRssBytes,
      2 ** 40,
    );
    rejects(
      parseGuestMessage,
      line({ type: 'log', id: 'x', stream: 'stdin', text: '' }),
      /"stream" must be "stdout" or "stderr"/,
    );
  });
});

describe('FrameDecoder', () => {
  it('splits lines across arbitrary chunk boundaries, including inside multi-byte characters', () => {
    const frames = [encodeMessage(init), encodeMessage({ type: 'log', id: 'r', stream: 'stdout', text: 'héllo ✓ 🎉' })];
    const bytes = Buffer.from(frames.join(''));
    for (const size of [1, 2, 3, 7, 64, bytes.length]) {
      const decoder = new FrameDecoder();
      const lines: string[] = [];
      for (let at = 0; at < bytes.length; at += size) lines.push(...decoder.push(bytes.subarray(at, at + size)));
      assert.deepEqual(
        lines,
        frames.map((frame) => frame.trimEnd()),
        `chunk size ${size}`,
      );
      assert.equal(decoder.bufferedBytes, 0);
    }
  });

  it('returns several lines from one chunk, skips empty lines and keeps an incomplete tail', () => {
    const decoder = new FrameDecoder();
    assert.deepEqual(decoder.push(Buffer.from('a\n\nb\nc')), ['a', 'b']);
    assert.equal(decoder.bufferedBytes, 1);
    assert.deepEqual(decoder.push(Buffer.from('d\n')), ['cd']);
  });

  it('does not keep a reference to the caller buffer', () => {
    const decoder = new FrameDecoder();
    const chunk = Buffer.from('abc');
    decoder.push(chunk);
    chunk.fill(0x7a);
    assert.deepEqual(decoder.push(Buffer.from('\n')), ['abc']);
  });

  it('rejects a frame over the limit, with or without a newline, and stays failed', () => {
    const decoder = new FrameDecoder(10);
    assert.deepEqual(decoder.push(Buffer.from('0123456789\n')), ['0123456789']);
    assert.throws(() => decoder.push(Buffer.from('0123456789A\n')), /frame exceeds the 10-byte limit/);
    assert.throws(() => decoder.push(Buffer.from('ok\n')), ProtocolError);

    const streaming = new FrameDecoder(10);
    streaming.push(Buffer.from('012345'));
    assert.throws(() => streaming.push(Buffer.from('6789AB')), /frame exceeds/);
  });
});
