import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { maxEventBytes } from '../core/function-config.js';
import {
  FRAME_PREFIX_BYTES,
  MAX_HEADER_BYTES,
  FrameDecoder,
  MAX_FRAME_BYTES,
  MAX_PAYLOAD_BYTES,
  ProtocolError,
  encodeMessage,
  frameTypes,
  guestFrameLimits,
  hostFrameLimits,
  parseGuestMessage,
  parseHostMessage,
  type Frame,
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
const invoke: HostMessage = {
  type: 'invoke',
  id: 'r2',
  invocationId: 'inv',
  event: Buffer.from('{"a":"\\n", "é": "✓"}'),
  deadline: 1e12,
  clientContext: '{"custom":{"cart":3}}',
  traceparent: '00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01',
};

const guestMessages: GuestMessage[] = [
  { type: 'hello', id: '', pid: 42, nodeVersion: 'v20.19.0' },
  { type: 'init-ok', id: 'r1', initMs: 12.5 },
  { type: 'init-error', id: 'r1', error: { name: 'SyntaxError', message: 'bad', stack: 'SyntaxError: bad' } },
  { type: 'result', id: 'r2', payload: Buffer.from('{"ok":true}'), maxRssBytes: 1024 },
  { type: 'error', id: 'r2', error: { name: 'Error', code: 'E_X', message: 'boom' }, maxRssBytes: 0, fatal: false },
  { type: 'log', id: 'r2', stream: 'stderr', text: 'line one\nline two héllo ✓ 🎉\n' },
];

/** One message's frame as a single buffer. */
function bytesOf(message: HostMessage | GuestMessage): Buffer {
  return Buffer.concat(encodeMessage(message));
}

/** A frame with the given type and header fields (written as JSON, or as given when a string) and body. */
function frame(type: number, header: object | string, body = ''): Frame {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  return { type, header: Buffer.from(text), body: Buffer.from(body) };
}

/** Raw frame bytes with a prefix that may lie. */
function rawFrame(frameBytes: number, headerBytes: number, type: number, rest = Buffer.alloc(0)): Buffer {
  const prefix = Buffer.alloc(FRAME_PREFIX_BYTES);
  prefix.writeUInt32BE(frameBytes, 0);
  prefix.writeUInt32BE(headerBytes, 4);
  prefix[8] = type;
  return Buffer.concat([prefix, rest]);
}

function decodeAll(bytes: Buffer, limits = guestFrameLimits): Frame[] {
  const decoder = new FrameDecoder(limits);
  const frames = decoder.push(bytes);
  decoder.end();
  return frames;
}

function rejects(parse: (frame: Frame) => unknown, input: Frame, message: RegExp): void {
  assert.throws(
    () => parse(input),
    (err: unknown) => err instanceof ProtocolError && message.test(err.message),
    `expected ${input.header.toString()} to be rejected with ${String(message)}`,
  );
}

describe('protocol messages', () => {
  it('round-trips every message through encode, decode and parse', () => {
    for (const message of [init, invoke]) {
      const frames = decodeAll(bytesOf(message), hostFrameLimits);
      assert.equal(frames.length, 1);
      assert.deepEqual(parseHostMessage(frames[0]!), message);
    }
    for (const message of guestMessages) {
      const frames = decodeAll(bytesOf(message));
      assert.equal(frames.length, 1);
      assert.deepEqual(parseGuestMessage(frames[0]!), message);
    }
  });

  it('carries events and results as raw bytes: a body is never escaped, and a large one never copied', () => {
    const event = Buffer.from(JSON.stringify({ text: 'a "quoted" line\n'.repeat(2000) }));
    const [head, body] = encodeMessage({ type: 'invoke', id: 'r', invocationId: 'i', event, deadline: 1 });
    assert.equal(body, event, 'a large body is the very buffer given');
    assert.equal(head.readUInt32BE(0), head.length - FRAME_PREFIX_BYTES + event.length);
    assert.equal(head.readUInt32BE(4), head.length - FRAME_PREFIX_BYTES);
    assert.equal(head[8], frameTypes.invoke);
    assert.deepEqual(JSON.parse(head.subarray(FRAME_PREFIX_BYTES).toString()), {
      id: 'r',
      invocationId: 'i',
      deadline: 1,
    });
    const small = Buffer.from('{"a":"\\n"}');
    const [whole, ...rest] = encodeMessage({ type: 'result', id: 'r', payload: small, maxRssBytes: 1 });
    assert.deepEqual(rest, [], 'a small body is copied behind the header: one piece');
    assert.deepEqual(whole.subarray(whole.length - small.length), small);
    assert.equal(encodeMessage(init).length, 1, 'a message without a body is one piece');
  });

  it('keeps the payload limit equal to the event and result limit the platform documents', () => {
    assert.equal(MAX_PAYLOAD_BYTES, maxEventBytes);
    assert.ok(MAX_FRAME_BYTES > MAX_PAYLOAD_BYTES);
  });

  it('drops unknown header fields', () => {
    assert.deepEqual(
      parseGuestMessage(frame(frameTypes['init-ok'], { id: 'r1', initMs: 12.5, extra: 1 })),
      guestMessages[1],
    );
    assert.deepEqual(
      parseGuestMessage(
        frame(frameTypes.error, { id: 'x', error: { name: 'E', message: 'm', x: 1 }, maxRssBytes: 0, fatal: true }),
      ),
      { type: 'error', id: 'x', error: { name: 'E', message: 'm' }, maxRssBytes: 0, fatal: true },
    );
  });

  it('rejects headers that are not JSON objects', () => {
    rejects(parseHostMessage, frame(frameTypes.init, ''), /invalid init message: header not JSON/);
    rejects(parseHostMessage, frame(frameTypes.invoke, '{"id":"x"'), /invalid invoke message: header not JSON/);
    rejects(parseHostMessage, frame(frameTypes.init, '[1,2]'), /header must be a JSON object/);
    rejects(parseGuestMessage, frame(frameTypes.result, 'null'), /header must be a JSON object/);
    rejects(parseGuestMessage, frame(frameTypes.log, '"hello"'), /header must be a JSON object/);
    rejects(parseGuestMessage, frame(frameTypes.log, Buffer.from([0xff, 0xfe]).toString('latin1')), /header/);
  });

  it('rejects unknown types and messages of the other side', () => {
    rejects(parseHostMessage, frame(0, { id: 'x' }), /invalid host message: unexpected frame type 0/);
    rejects(parseHostMessage, frame(frameTypes.result, { id: 'x' }), /unexpected frame type 6/);
    rejects(parseGuestMessage, frame(frameTypes.init, init), /invalid guest message: unexpected frame type 2/);
    rejects(parseGuestMessage, frame(200, {}), /unexpected frame type 200/);
  });

  it('rejects a body on a message that has none', () => {
    const { type: _init, ...initFields } = init;
    rejects(parseHostMessage, frame(frameTypes.init, initFields, 'x'), /init message: it has no body, got 1 bytes/);
    rejects(
      parseGuestMessage,
      frame(frameTypes['init-ok'], { id: 'r', initMs: 1 }, 'xy'),
      /init-ok message: it has no body, got 2 bytes/,
    );
  });

  it('rejects missing and mistyped header fields with the field named', () => {
    const { type: _init, ...i } = init;
    const inv = { id: 'r2', invocationId: 'inv', deadline: 1e12 };
    const host = (type: number, header: object) => frame(type, header);
    rejects(parseHostMessage, host(frameTypes.init, { ...i, id: '' }), /init message: "id" must be a non-empty string/);
    rejects(
      parseHostMessage,
      host(frameTypes.init, { ...i, handler: undefined }),
      /"handler" must be a non-empty string, got nothing/,
    );
    rejects(parseHostMessage, host(frameTypes.init, { ...i, env: { A: 1 } }), /"env\.A" must be a string/);
    rejects(parseHostMessage, host(frameTypes.init, { ...i, env: ['A'] }), /"env" must be an object of strings/);
    rejects(
      parseHostMessage,
      host(frameTypes.init, { ...i, functionVersion: 1.5 }),
      /"functionVersion" must be an integer >= 0, got 1.5/,
    );
    rejects(parseHostMessage, host(frameTypes.init, { ...i, memoryMB: 0 }), /"memoryMB" must be an integer >= 1/);
    rejects(
      parseHostMessage,
      host(frameTypes.init, { ...i, timeoutMs: '3000' }),
      /"timeoutMs" must be a finite number >= 1, got a string/,
    );
    rejects(parseHostMessage, host(frameTypes.invoke, { ...inv, invocationId: 1 }), /"invocationId" must be/);
    rejects(
      parseHostMessage,
      host(frameTypes.invoke, { ...inv, deadline: null }),
      /"deadline" must be a finite number/,
    );
    rejects(
      parseGuestMessage,
      frame(frameTypes.hello, { id: 'x', pid: 1, nodeVersion: 'v' }),
      /"id" must be the empty string/,
    );
    rejects(
      parseGuestMessage,
      frame(frameTypes.hello, { id: '', pid: -1, nodeVersion: 'v' }),
      /"pid" must be an integer >= 1/,
    );
    rejects(parseGuestMessage, frame(frameTypes['init-ok'], { id: 'x', initMs: -1 }), /"initMs" must be a number/);
    rejects(
      parseGuestMessage,
      frame(frameTypes['init-error'], { id: 'x', error: 'boom' }),
      /"error" must be an error object/,
    );
    rejects(
      parseGuestMessage,
      frame(frameTypes['init-error'], { id: 'x', error: { name: '', message: 'm' } }),
      /init-error message "error": "name" must be a non-empty string/,
    );
    rejects(
      parseGuestMessage,
      frame(frameTypes.error, { id: 'x', error: { name: 'E', message: 'm', stack: 5 }, maxRssBytes: 0, fatal: false }),
      /"stack" must be a string when present/,
    );
    rejects(
      parseGuestMessage,
      frame(frameTypes.error, { id: 'x', error: { name: 'E', message: 'm' }, maxRssBytes: 0 }),
      /"fatal" must be a boolean/,
    );
    rejects(parseGuestMessage, frame(frameTypes.result, { id: 5, maxRssBytes: 0 }, '1'), /"id" must be a non-empty/);
    rejects(parseGuestMessage, frame(frameTypes.result, { id: 'x' }, 'null'), /"maxRssBytes" must be/);
    rejects(
      parseGuestMessage,
      frame(frameTypes.log, { id: 'x', stream: 'stdin' }, 'text'),
      /"stream" must be "stdout" or "stderr"/,
    );
  });

  it('bounds the numbers a guest reports: a lying guest cannot put 1e300 or a fraction into a record', () => {
    for (const maxRssBytes of [1e300, 2 ** 40 + 1, 1.5, -1, Number.MAX_SAFE_INTEGER + 2]) {
      rejects(
        parseGuestMessage,
        frame(frameTypes.result, { id: 'x', maxRssBytes }, 'null'),
        /"maxRssBytes" must be an integer from 0 to 1099511627776/,
      );
      rejects(
        parseGuestMessage,
        frame(frameTypes.error, { id: 'x', error: { name: 'E', message: 'm' }, maxRssBytes, fatal: false }),
        /"maxRssBytes" must be an integer from 0 to/,
      );
    }
    rejects(parseGuestMessage, frame(frameTypes['init-ok'], { id: 'x', initMs: 1e300 }), /"initMs" must be a number/);
    const top = parseGuestMessage(frame(frameTypes.result, { id: 'x', maxRssBytes: 2 ** 40 }, 'null'));
    assert.equal((top as { maxRssBytes: number }).maxRssBytes, 2 ** 40);
  });
});

describe('FrameDecoder', () => {
  const stream = Buffer.concat([
    bytesOf(guestMessages[0]!),
    bytesOf({ type: 'log', id: 'r', stream: 'stdout', text: 'héllo ✓ 🎉' }),
    bytesOf({ type: 'result', id: 'r', payload: Buffer.from('{"s":"✓🎉"}'), maxRssBytes: 1 }),
    bytesOf(guestMessages[1]!),
  ]);
  const expected = decodeAll(stream).map((f) => parseGuestMessage(f));

  it('decodes frames split at every offset, inside prefixes, headers and multi-byte characters', () => {
    assert.equal(expected.length, 4);
    for (let cut = 0; cut <= stream.length; cut++) {
      const decoder = new FrameDecoder(guestFrameLimits);
      const frames = [...decoder.push(stream.subarray(0, cut)), ...decoder.push(stream.subarray(cut))];
      decoder.end();
      assert.deepEqual(
        frames.map((f) => parseGuestMessage(f)),
        expected,
        `cut at ${cut}`,
      );
    }
    for (let cut = 1; cut < stream.length - 1; cut++) {
      const decoder = new FrameDecoder(guestFrameLimits);
      const parts = [stream.subarray(0, cut), stream.subarray(cut, cut + 1), stream.subarray(cut + 1)];
      const frames = parts.flatMap((part) => decoder.push(part));
      assert.deepEqual(
        frames.map((f) => parseGuestMessage(f)),
        expected,
        `cut around ${cut}`,
      );
      assert.equal(decoder.bufferedBytes, 0);
    }
  });

  it('decodes a stream fed one byte at a time, and many frames from one chunk', () => {
    const decoder = new FrameDecoder(guestFrameLimits);
    const frames: Frame[] = [];
    for (let at = 0; at < stream.length; at++) {
      frames.push(...decoder.push(stream.subarray(at, at + 1)));
      if (at < stream.length - 1) assert.ok(decoder.bufferedBytes > 0 || frames.length > 0);
    }
    assert.deepEqual(
      frames.map((f) => parseGuestMessage(f)),
      expected,
    );
    const many = Buffer.concat(Array.from({ length: 50 }, () => stream));
    assert.equal(decodeAll(many).length, 200);
  });

  it('copies an incomplete frame, so that the pusher may reuse its buffer', () => {
    const decoder = new FrameDecoder(guestFrameLimits);
    const bytes = bytesOf(guestMessages[1]!);
    const chunk = Buffer.from(bytes.subarray(0, 12));
    assert.deepEqual(decoder.push(chunk), []);
    chunk.fill(0x7a);
    const [decoded] = decoder.push(bytes.subarray(12));
    assert.deepEqual(parseGuestMessage(decoded!), guestMessages[1]);
  });

  it('refuses a stream that ends inside a frame, at any point of it', () => {
    const one = bytesOf(guestMessages[3]!);
    for (let cut = 1; cut < one.length; cut++) {
      const decoder = new FrameDecoder(guestFrameLimits);
      decoder.push(one.subarray(0, cut));
      assert.throws(
        () => decoder.end(),
        (err: unknown) => err instanceof ProtocolError && /the stream ended inside a frame/.test(err.message),
        `cut at ${cut}`,
      );
    }
    const whole = new FrameDecoder(guestFrameLimits);
    whole.push(one);
    whole.end();
  });

  function refused(bytes: Buffer, message: RegExp, limits = guestFrameLimits, maxFrameBytes?: number): void {
    const decoder = new FrameDecoder(limits, maxFrameBytes);
    assert.throws(
      () => decoder.push(bytes),
      (err: unknown) => err instanceof ProtocolError && message.test(err.message),
      String(message),
    );
    // The stream cannot be resynchronised: the decoder stays failed.
    assert.throws(() => decoder.push(bytesOf(guestMessages[1]!)), ProtocolError);
    assert.throws(() => decoder.end(), ProtocolError);
  }

  it('refuses lengths over the limits from the prefix alone, before buffering the frame', () => {
    refused(rawFrame(MAX_FRAME_BYTES + 1, 2, frameTypes.log), /a frame of 16777217 bytes exceeds the 16777216-byte/);
    refused(rawFrame(0xffffffff, 0, frameTypes.log), /exceeds the 16777216-byte limit/);
    refused(rawFrame(101, 2, frameTypes.log), /a frame of 101 bytes exceeds the 100-byte limit/, guestFrameLimits, 100);
    refused(
      rawFrame(MAX_PAYLOAD_BYTES + 3, 2, frameTypes.result),
      /a frame of type 6 has a 6291457-byte body \(at most 6291456 allowed\)/,
    );
    refused(rawFrame(MAX_PAYLOAD_BYTES + 3, 2, frameTypes.invoke), /at most 6291456 allowed/, hostFrameLimits);
    refused(rawFrame(20, 10, frameTypes.hello), /a frame of type 1 has a 10-byte body \(none allowed\)/);
    // A frame that fits gets buffered; one byte more does not.
    const decoder = new FrameDecoder(guestFrameLimits);
    assert.deepEqual(decoder.push(rawFrame(MAX_FRAME_BYTES, 2, frameTypes.log)), []);
    assert.equal(decoder.bufferedBytes, FRAME_PREFIX_BYTES);
  });

  it('refuses a header longer than its frame, an unknown type and garbage', () => {
    refused(rawFrame(10, 11, frameTypes.result), /header length \(11\) exceeds its frame length \(10\)/);
    // A log's header is its typed fields only: one over the header limit is refused before it is buffered.
    refused(
      rawFrame(MAX_HEADER_BYTES + 1, MAX_HEADER_BYTES + 1, frameTypes.log),
      /header of 1048577 bytes exceeds the 1048576-byte limit/,
    );
    refused(rawFrame(10, 2, 0), /unexpected frame type 0/);
    refused(rawFrame(10, 2, 99), /unexpected frame type 99/);
    refused(rawFrame(10, 2, frameTypes.invoke), /unexpected frame type 5/, guestFrameLimits);
    refused(rawFrame(10, 2, frameTypes.result), /unexpected frame type 6/, hostFrameLimits);
    refused(Buffer.from('{"type":"result","id":"x"}\n'), /exceeds the 16777216-byte limit/);
    refused(Buffer.from([0, 0, 0, 2, 0, 0, 0, 2, 0xee]), /unexpected frame type 238/);
  });

  it('refuses each bad prefix even when it arrives one byte at a time', () => {
    const bad = rawFrame(10, 11, frameTypes.result);
    const decoder = new FrameDecoder(guestFrameLimits);
    for (let at = 0; at < FRAME_PREFIX_BYTES - 1; at++) assert.deepEqual(decoder.push(bad.subarray(at, at + 1)), []);
    assert.throws(() => decoder.push(bad.subarray(FRAME_PREFIX_BYTES - 1)), /header length \(11\) exceeds/);
  });

  it('decodes an empty frame (no header, no body) for the parser to refuse', () => {
    const [empty] = decodeAll(rawFrame(0, 0, frameTypes.result));
    assert.ok(empty !== undefined);
    assert.equal(empty.header.length + empty.body.length, 0);
    rejects(parseGuestMessage, empty, /invalid result message: header not JSON/);
  });
});
