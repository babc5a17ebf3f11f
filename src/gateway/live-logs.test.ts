import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PlatformError } from '../core/errors.js';
import type { SandboxLogLine } from '../core/ports/agent-api.js';
import { LiveLogHub, truncatedMarker } from './live-logs.js';
import type { DroppedNotice, LiveLogLine, LogFeed, LogSink } from './live-logs.js';

/** A feed the test writes chunks into (the embedded Agent's `onLog`, without sandboxes), counting its opens. */
class TestFeed implements LogFeed {
  listener: ((chunk: SandboxLogLine) => void) | null = null;
  opens = 0;
  stops = 0;

  open(onChunk: (chunk: SandboxLogLine) => void): Promise<() => Promise<void>> {
    this.opens += 1;
    this.listener = onChunk;
    return Promise.resolve(() => {
      this.stops += 1;
      this.listener = null;
      return Promise.resolve();
    });
  }

  write(text: string, fields: Partial<SandboxLogLine> = {}): void {
    this.listener?.({
      instanceId: 'i-1',
      functionName: 'fn',
      invocationId: 'inv-1',
      version: 3,
      stream: 'stdout',
      text,
      time: 0,
      ...fields,
    });
  }
}

/** A sink that takes every frame at once, or holds them (a client that stopped reading) while `holding`. */
class TestSink implements LogSink {
  readonly frames: string[] = [];
  readonly pending: Array<() => void> = [];
  dropped: DroppedNotice | null = null;
  ended = false;
  holding = false;

  write(frame: string, written: () => void): void {
    this.frames.push(frame);
    if (this.holding) this.pending.push(written);
    else written();
  }

  drop(notice: DroppedNotice): void {
    this.dropped = notice;
  }

  end(): void {
    this.ended = true;
  }

  lines(): LiveLogLine[] {
    return this.frames.map((frame) => JSON.parse(frame) as LiveLogLine);
  }
}

const subscribe = (hub: LiveLogHub, sink: TestSink, invocationId?: string, functionName = 'fn') =>
  hub.subscribe({ functionName, invocationId, format: (line) => JSON.stringify(line), sink });

describe('LiveLogHub', () => {
  it('splits chunks into lines per sandbox and stream, tagged with function, invocation and version', async () => {
    const feed = new TestFeed();
    const hub = new LiveLogHub({ feed });
    const sink = new TestSink();
    subscribe(hub, sink);
    await hub.ready();
    feed.write('one\ntw');
    feed.write('oops\n', { instanceId: 'i-2', invocationId: 'inv-2', stream: 'stderr' });
    feed.write('o\r\nthree\n');
    assert.deepEqual(
      sink.lines().map((l) => [l.line, l.invocationId, l.version, l.stream]),
      [
        ['one', 'inv-1', 3, 'stdout'],
        ['oops', 'inv-2', 3, 'stderr'],
        ['two', 'inv-1', 3, 'stdout'],
        ['three', 'inv-1', 3, 'stdout'],
      ],
    );
    assert.equal(sink.lines()[0]?.time, new Date(0).toISOString());
    await hub.close();
    assert.equal(sink.ended, true);
  });

  it("sends a partial line when the sandbox's next invocation writes, or after the flush delay", async () => {
    const feed = new TestFeed();
    const hub = new LiveLogHub({ feed, flushDelayMs: 10 });
    const sink = new TestSink();
    subscribe(hub, sink);
    await hub.ready();
    feed.write('no newline');
    feed.write('next\n', { invocationId: 'inv-2' });
    assert.deepEqual(
      sink.lines().map((l) => [l.line, l.invocationId]),
      [
        ['no newline', 'inv-1'],
        ['next', 'inv-2'],
      ],
    );
    feed.write('waits', { invocationId: 'inv-2' });
    assert.equal(sink.frames.length, 2);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(sink.lines()[2]?.line, 'waits');
    await hub.close();
  });

  it('cuts a long line, marks it, and skips the rest of it', async () => {
    const feed = new TestFeed();
    const hub = new LiveLogHub({ feed, maxLineChars: 8 });
    const sink = new TestSink();
    subscribe(hub, sink);
    await hub.ready();
    feed.write('0123456789');
    feed.write('abcdef');
    feed.write('ghi\nshort\n');
    assert.deepEqual(
      sink.lines().map((l) => l.line),
      [`01234567${truncatedMarker}`, 'short'],
    );
    await hub.close();
  });

  it('delivers only the function and invocation asked for, and ignores generic sandboxes', async () => {
    const feed = new TestFeed();
    const hub = new LiveLogHub({ feed });
    const all = new TestSink();
    const one = new TestSink();
    const other = new TestSink();
    subscribe(hub, all);
    subscribe(hub, one, 'inv-2');
    subscribe(hub, other, undefined, 'other');
    await hub.ready();
    feed.write('a\n');
    feed.write('b\n', { instanceId: 'i-2', invocationId: 'inv-2' });
    feed.write('stem\n', { instanceId: 'i-3', functionName: null, invocationId: null, version: null });
    assert.deepEqual(
      all.lines().map((l) => l.line),
      ['a', 'b'],
    );
    assert.deepEqual(
      one.lines().map((l) => l.line),
      ['b'],
    );
    assert.deepEqual(other.frames, []);
    await hub.close();
  });

  it('drops a subscriber whose queue overflows, counting what it missed, without holding the writer', async () => {
    const feed = new TestFeed();
    const hub = new LiveLogHub({ feed, maxQueueBytes: 2000, socketHighWaterBytes: 500 });
    const slow = new TestSink();
    const fast = new TestSink();
    slow.holding = true;
    subscribe(hub, slow);
    subscribe(hub, fast);
    await hub.ready();
    const line = 'x'.repeat(100);
    for (let i = 0; i < 40; i++) feed.write(`${line}\n`);
    assert.equal(fast.frames.length, 40, 'the other subscriber got every line');
    assert.ok(slow.dropped !== null, 'the slow one was dropped');
    assert.ok(slow.dropped.missed > 0);
    const handed = slow.frames.length;
    assert.ok(handed < 40);
    feed.write(`${line}\n`);
    assert.equal(slow.frames.length, handed, 'nothing more reaches a dropped subscriber');
    assert.equal(hub.subscriberCount, 1);
    await hub.close();
  });

  it('refuses a subscriber past its limit until one leaves', async () => {
    const hub = new LiveLogHub({ feed: new TestFeed(), maxSubscribers: 1 });
    hub.assertRoom();
    const first = subscribe(hub, new TestSink());
    assert.throws(
      () => hub.assertRoom(),
      (err: unknown) => err instanceof PlatformError && err.code === 'TOO_MANY_REQUESTS',
    );
    first.close();
    hub.assertRoom();
    await hub.close();
  });

  it('holds no more subscribers than its limit, however many passed assertRoom before subscribing', async () => {
    const hub = new LiveLogHub({ feed: new TestFeed(), maxSubscribers: 1 });
    hub.assertRoom();
    hub.assertRoom();
    const first = new TestSink();
    const second = new TestSink();
    subscribe(hub, first);
    subscribe(hub, second);
    assert.equal(hub.subscriberCount, 1);
    assert.equal(first.dropped, null);
    assert.equal(second.dropped?.missed, 0);
    await hub.close();
  });

  it('cuts a long line that arrives whole within one chunk', async () => {
    const feed = new TestFeed();
    const hub = new LiveLogHub({ feed, maxLineChars: 8 });
    const sink = new TestSink();
    subscribe(hub, sink);
    await hub.ready();
    feed.write('0123456789abcdef\nshort\n');
    assert.deepEqual(
      sink.lines().map((l) => l.line),
      [`01234567${truncatedMarker}`, 'short'],
    );
    await hub.close();
  });

  it("never joins one function's partial line with another function's output of the same instance id", async () => {
    const feed = new TestFeed();
    const hub = new LiveLogHub({ feed });
    const mine = new TestSink();
    subscribe(hub, mine);
    subscribe(hub, new TestSink(), undefined, 'other');
    await hub.ready();
    feed.write('mine, no newline');
    feed.write('secret of another tenant\n', { functionName: 'other' });
    feed.write('\n');
    assert.deepEqual(
      mine.lines().map((l) => [l.functionName, l.line]),
      [['fn', 'mine, no newline']],
    );
    await hub.close();
  });

  it('follows the Agents only while someone listens (and a linger after)', async () => {
    const feed = new TestFeed();
    const hub = new LiveLogHub({ feed, lingerMs: 10 });
    assert.equal(feed.opens, 0, 'nobody listens: the Agents are not followed');
    const sink = new TestSink();
    const subscription = subscribe(hub, sink);
    await hub.ready();
    assert.equal(feed.opens, 1);
    subscription.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(feed.stops, 1, 'the last subscriber left: the feed stopped');
    subscribe(hub, new TestSink());
    await hub.ready();
    assert.equal(feed.opens, 2);
    await hub.close();
    assert.equal(feed.stops, 2);
  });
});
