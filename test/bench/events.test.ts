// The events section's reading of a rate schedule's ticks: which ticks fired, and each tick's time from the
// idempotency key the control-plane leader queued it with.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { rateTicks, tickKey, tickOfKey } from '../../bench/events.js';

it('lists the ticks one period apart from the creation up to the last fired, the first one period after it', () => {
  const ticks = rateTicks('2026-12-06T15:00:00.250Z', '2026-12-06T15:00:03.250Z', 1000);
  assert.deepEqual(
    ticks.map((tick) => tick.toISOString()),
    ['2026-12-06T15:00:01.250Z', '2026-12-06T15:00:02.250Z', '2026-12-06T15:00:03.250Z'],
  );
  assert.deepEqual(rateTicks('2026-12-06T15:00:00.250Z', null, 1000), [], 'never fired');
});

it("reads a tick's time back from its key, and nothing from another schedule's key or none", () => {
  const tick = new Date('2026-12-06T15:00:01.250Z');
  assert.equal(tickKey('beat', tick), 'schedule:beat:2026-12-06T15:00:01.250Z');
  assert.deepEqual(tickOfKey('beat', tickKey('beat', tick)), tick);
  assert.equal(tickOfKey('beat', tickKey('beat-2', tick)), null);
  assert.equal(tickOfKey('beat', 'order-42'), null);
  assert.equal(tickOfKey('beat', 'schedule:beat:soon'), null);
  assert.equal(tickOfKey('beat', null), null);
});
