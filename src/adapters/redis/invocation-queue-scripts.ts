// Lua scripts of RedisInvocationQueue, kept as TypeScript strings because the build is plain tsc (no asset copying).
// Each runs atomically on the server; `docs/redis-keys.md` describes the keys they use.
//
// Every script takes the key prefix as ARGV[1] and the queue's clock (epoch ms) as ARGV[2], and builds key names
// from the prefix: a receive reaches the keys of every function and cannot list them in advance. KEYS[1] is always
// `{prefix}iq:functions`, which only tells a Redis Cluster client where to route (the prefix needs a hash tag there).
import type { LuaSource } from './scripts.js';

/** Helpers shared by the scripts: key names, moving due events into their function's stream. */
const prelude = `
local prefix = ARGV[1]
local now = tonumber(ARGV[2])
local GROUP = 'dispatchers'

local function k(kind, name)
  if name then return prefix .. 'iq:' .. kind .. ':' .. name end
  return prefix .. 'iq:' .. kind
end

-- Moves the function's waiting events that are due into its stream, in due-time order: they become ready entries
-- for XREADGROUP. Called before anything is read from or added to the stream, so the stream stays in due order.
local function promote(fn)
  local waiting = k('waiting', fn)
  local ids = redis.call('ZRANGEBYSCORE', waiting, '-inf', now)
  if #ids == 0 then return end
  local stream = k('stream', fn)
  if redis.call('EXISTS', stream) == 0 then redis.call('XGROUP', 'CREATE', stream, GROUP, '0', 'MKSTREAM') end
  for _, id in ipairs(ids) do
    local sid = redis.call('XADD', stream, '*', 'id', id)
    redis.call('HSET', k('event', id), 'sid', sid)
  end
  redis.call('ZREMRANGEBYSCORE', waiting, '-inf', now)
end

-- Queues an event (already in live:{fn}) again, due at 'due'.
local function requeue(id, fn, due)
  redis.call('HSET', k('event', id), 'state', 'queued', 'due', due)
  redis.call('HDEL', k('event', id), 'receipt', 'sid')
  redis.call('ZADD', k('waiting', fn), due, id)
  redis.call('SADD', k('functions'), fn)
  promote(fn)
end
`;

function script(name: string, body: string): LuaSource {
  return { name: `invocation-queue ${name}`, lua: `${prelude}\n${body}` };
}

/** The scripts; ARGV[1] and ARGV[2] are always the prefix and the clock, the comment of each names the others. */
export const invocationQueueScripts = {
  /**
   * ARGV: function, payload, due time, idempotency key ('' for none), new id, capacity, idempotency window ms.
   * Returns {id, 0} when queued, {earlier id, 1} for a duplicate, {'', 2} when the function's queue is full.
   */
  enqueue: script(
    'enqueue',
    `
local fn, payload, due, ikey, id = ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7]
local capacity, window = tonumber(ARGV[8]), tonumber(ARGV[9])
local keyName = nil
if ikey ~= '' then
  keyName = k('key', #fn .. ':' .. fn .. ':' .. ikey)
  local known = redis.call('GET', keyName)
  if known then
    local enq = redis.call('HGET', k('event', known), 'enq')
    if enq and tonumber(enq) > now - window then return {known, 1} end
  end
end
if redis.call('ZCARD', k('live', fn)) >= capacity then return {'', 2} end
local fields = {'fn', fn, 'payload', payload, 'state', 'queued', 'enq', now, 'due', due, 'dc', 0, 'attempts', '[]'}
if keyName then
  fields[#fields + 1] = 'ikey'
  fields[#fields + 1] = ikey
end
redis.call('HSET', k('event', id), unpack(fields))
redis.call('ZADD', k('live', fn), now, id)
redis.call('SADD', k('functions'), fn)
redis.call('ZADD', k('waiting', fn), due, id)
promote(fn)
if keyName then redis.call('SET', keyName, id, 'PX', window) end
return {id, 0}
`,
  ),

  /**
   * ARGV: max, visibility ms, function ('' for every function), consumer name, receipt nonce.
   * Returns {id, function, payload, enqueuedAt, receipt, deliveryCount, attempts JSON} per delivery, flattened.
   *
   * Candidates are the ready stream entries no consumer has read yet and the delivered entries whose visibility
   * expiry (stored in the event's hash, by the queue's clock) has passed; the earliest due are taken. Ready entries
   * are read with XREADGROUP; an expired one moves to this consumer with XAUTOCLAIM (min-idle 0, starting at its
   * entry: the expiry, not Redis's idle time, says it is due).
   */
  receive: script(
    'receive',
    `
local max, visibility, only, consumer, nonce = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7]
local fns
if only ~= '' then fns = {only} else fns = redis.call('SMEMBERS', k('functions')) end

local function lastDelivered(stream)
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local fields = {}
    for i = 1, #group, 2 do fields[group[i]] = group[i + 1] end
    if fields['name'] == GROUP then return fields['last-delivered-id'] end
  end
  return nil
end

local candidates = {}
local order = 0
for _, fn in ipairs(fns) do
  if redis.call('EXISTS', k('live', fn)) == 0 then
    if only == '' then redis.call('SREM', k('functions'), fn) end
  else
    promote(fn)
    local stream = k('stream', fn)
    local last = redis.call('EXISTS', stream) == 1 and lastDelivered(stream)
    if last then
      -- Ready entries are taken in stream order (a prefix, as XREADGROUP reads them): an entry whose due time is
      -- earlier than the one before it (queued with a past not-before time) counts as due with that one.
      local floor = 0
      for _, entry in ipairs(redis.call('XRANGE', stream, '(' .. last, '+', 'COUNT', max)) do
        local id = entry[2][2]
        local due = tonumber(redis.call('HGET', k('event', id), 'due') or now)
        if due < floor then due = floor end
        floor = due
        order = order + 1
        candidates[#candidates + 1] = {due = due, order = order, fn = fn, id = id, ready = true}
      end
    end
    local expired = redis.call('ZRANGEBYSCORE', k('running', fn), '-inf', now, 'WITHSCORES', 'LIMIT', 0, max)
    for i = 1, #expired, 2 do
      order = order + 1
      candidates[#candidates + 1] = {due = tonumber(expired[i + 1]), order = order, fn = fn, id = expired[i]}
    end
  end
end
table.sort(candidates, function(a, b)
  if a.due ~= b.due then return a.due < b.due end
  return a.order < b.order
end)

local chosen, readyCount = {}, {}
for i = 1, math.min(max, #candidates) do
  local c = candidates[i]
  chosen[#chosen + 1] = c
  if c.ready then readyCount[c.fn] = (readyCount[c.fn] or 0) + 1 end
end
for fn, count in pairs(readyCount) do
  redis.call('XREADGROUP', 'GROUP', GROUP, consumer, 'COUNT', count, 'STREAMS', k('stream', fn), '>')
end

local expiry = now + visibility
local out = {}
for _, c in ipairs(chosen) do
  local h = k('event', c.id)
  local taken = true
  if not c.ready then
    redis.call('ZREM', k('running', c.fn), c.id)
    local sid = redis.call('HGET', h, 'sid')
    local claimed = sid and redis.call('XAUTOCLAIM', k('stream', c.fn), GROUP, consumer, 0, sid, 'COUNT', 1, 'JUSTID')
    if not (claimed and claimed[2][1] == sid) then
      -- Its entry is gone from the stream: queue the event again rather than lose it.
      requeue(c.id, c.fn, now)
      taken = false
    end
  end
  if taken then
    local dc = redis.call('HINCRBY', h, 'dc', 1)
    local receipt = c.id .. '.' .. dc .. '.' .. nonce
    redis.call('HSET', h, 'state', 'running', 'due', expiry, 'receipt', receipt)
    redis.call('ZADD', k('running', c.fn), expiry, c.id)
    local f = redis.call('HMGET', h, 'payload', 'enq', 'attempts', 'rda')
    for _, v in ipairs({c.id, c.fn, f[1], f[2], receipt, dc, f[3], f[4] or ''}) do out[#out + 1] = v end
  end
end
return out
`,
  ),

  /**
   * ARGV: receipt, outcome ('succeeded', 'failed', 'retry' or 'dead_lettered'), attempt JSON ('' for none), the
   * retry's due time or the dead-letter reason, retention ms of an ended event. Returns 1 when settled, 0 when the
   * receipt is not current (unknown, settled, redelivered, or its visibility expired).
   */
  settle: script(
    'settle',
    `
local receipt, outcome, attempt, extra, retention = ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
local id = string.match(receipt, '^([^.]+)%.')
if not id then return 0 end
local h = k('event', id)
local f = redis.call('HMGET', h, 'state', 'receipt', 'due', 'fn', 'sid', 'attempts')
if f[1] ~= 'running' or f[2] ~= receipt or tonumber(f[3]) <= now then return 0 end
local fn, sid, attempts = f[4], f[5], f[6]
redis.call('XACK', k('stream', fn), GROUP, sid)
redis.call('XDEL', k('stream', fn), sid)
redis.call('ZREM', k('running', fn), id)
if attempt ~= '' then
  if attempts == '[]' then attempts = '[' .. attempt .. ']'
  else attempts = string.sub(attempts, 1, -2) .. ',' .. attempt .. ']' end
  redis.call('HSET', h, 'attempts', attempts)
end
if outcome == 'retry' then
  requeue(id, fn, tonumber(extra))
  return 1
end
redis.call('HDEL', h, 'receipt', 'sid', 'due')
redis.call('ZREM', k('live', fn), id)
if outcome == 'dead_lettered' then
  redis.call('HSET', h, 'state', outcome, 'dlr', extra, 'dla', now)
  redis.call('ZADD', k('dead', fn), now, id)
else
  redis.call('HSET', h, 'state', outcome)
  redis.call('PEXPIRE', h, retention)
end
return 1
`,
  ),

  /** ARGV: function, id. Queues a dead letter of the function again, due now; returns 1, or 0 when it is not one. */
  redrive: script(
    'redrive',
    `
local fn, id = ARGV[3], ARGV[4]
if not redis.call('ZSCORE', k('dead', fn), id) then return 0 end
local h = k('event', id)
if redis.call('HGET', h, 'state') ~= 'dead_lettered' then return 0 end
redis.call('ZREM', k('dead', fn), id)
redis.call('HDEL', h, 'dlr', 'dla')
redis.call('HSET', h, 'rda', now)
redis.call('ZADD', k('live', fn), redis.call('HGET', h, 'enq'), id)
requeue(id, fn, now)
return 1
`,
  ),

  /** ARGV: function, limit. The newest dead letters' hashes (HGETALL replies), most recently dead-lettered first. */
  listDeadLetters: script(
    'listDeadLetters',
    `
local out = {}
for _, id in ipairs(redis.call('ZREVRANGE', k('dead', ARGV[3]), 0, tonumber(ARGV[4]) - 1)) do
  local fields = redis.call('HGETALL', k('event', id))
  fields[#fields + 1] = 'id'
  fields[#fields + 1] = id
  out[#out + 1] = fields
end
return out
`,
  ),

  /** ARGV: function. Deletes its dead letters; returns how many. */
  purgeDeadLetters: script(
    'purgeDeadLetters',
    `
local dead = k('dead', ARGV[3])
local ids = redis.call('ZRANGE', dead, 0, -1)
for _, id in ipairs(ids) do redis.call('DEL', k('event', id)) end
redis.call('DEL', dead)
return #ids
`,
  ),

  /** ARGV: function. Returns {live, running and visible, dead-lettered, oldest live enqueue time or ''}. */
  stats: script(
    'stats',
    `
local fn = ARGV[3]
local oldest = redis.call('ZRANGE', k('live', fn), 0, 0, 'WITHSCORES')[2] or ''
return {
  redis.call('ZCARD', k('live', fn)),
  redis.call('ZCOUNT', k('running', fn), '(' .. now, '+inf'),
  redis.call('ZCARD', k('dead', fn)),
  oldest,
}
`,
  ),

  /** ARGV: consumer, then function names. Removes the consumer from those streams' group where it holds nothing. */
  leave: script(
    'leave',
    `
local consumer = ARGV[3]
for i = 4, #ARGV do
  local stream = k('stream', ARGV[i])
  if redis.call('EXISTS', stream) == 1 then
    for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', stream, GROUP)) do
      local fields = {}
      for j = 1, #c, 2 do fields[c[j]] = c[j + 1] end
      if fields['name'] == consumer and fields['pending'] == 0 then
        redis.call('XGROUP', 'DELCONSUMER', stream, GROUP, consumer)
      end
    end
  end
end
return 0
`,
  ),
} satisfies Record<string, LuaSource>;
