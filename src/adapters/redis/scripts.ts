// Lua scripts of the Redis adapters, kept as TypeScript strings because the build is plain tsc (no asset copying).
// Each script runs atomically on the server; `docs/redis-keys.md` describes the keys they use.
//
// Every pool script takes the key prefix as ARGV[1] and builds the names of the keys it touches from it, because
// `purgeNode` and `reclaimExpired` reach instances of every pool key and cannot list them in advance. KEYS[1] is
// always `{prefix}pool:keys`, which only tells a Redis Cluster client where to route: on a cluster the prefix must
// carry a hash tag (`{savassan}:`) so that every key of the pool lives in one slot.

/** Helpers shared by the pool scripts: key names, lease bookkeeping, waiter hand-off. */
const poolPrelude = `
local prefix = ARGV[1]
local MAILBOX_TTL_MS = 300000

local function k(kind, id)
  if id then return prefix .. 'pool:' .. kind .. ':' .. id end
  return prefix .. 'pool:' .. kind
end

local function lease(id, poolKey, holder, expiresAt, waiterId)
  redis.call('HSET', k('instance', id), 'state', 'leased', 'holder', holder, 'expiresAt', expiresAt, 'waiter', waiterId)
  redis.call('ZADD', k('leases'), expiresAt, id)
  redis.call('SADD', k('leased', poolKey), id)
end

-- Deletes an instance and every index entry of it; returns its JSON, or nil when it is unknown.
local function forget(id)
  local h = k('instance', id)
  local record = redis.call('HMGET', h, 'json', 'key', 'node', 'state')
  local json, poolKey, node, state = record[1], record[2], record[3], record[4]
  if not json then return nil end
  if state == 'idle' then
    redis.call('ZREM', k('idle', poolKey), id)
  else
    redis.call('ZREM', k('leases'), id)
    redis.call('SREM', k('leased', poolKey), id)
  end
  redis.call('SREM', k('node', node), id)
  if redis.call('HINCRBY', k('keys'), poolKey, -1) <= 0 then redis.call('HDEL', k('keys'), poolKey) end
  redis.call('DEL', h)
  return json
end

local function forgetAll(ids)
  local out = {}
  for _, id in ipairs(ids) do
    local json = forget(id)
    if json then out[#out + 1] = json end
  end
  return out
end

-- Leases the most recently pushed idle instance of poolKey (LIFO, as MemoryPool); returns its JSON or nil.
local function takeIdle(poolKey, holder, expiresAt, waiterId)
  local id = redis.call('ZRANGE', k('idle', poolKey), -1, -1)[1]
  if not id then return nil end
  redis.call('ZREM', k('idle', poolKey), id)
  lease(id, poolKey, holder, expiresAt, waiterId)
  return redis.call('HGET', k('instance', id), 'json')
end

-- Appends an item (JSON; 'null' tells the waiter its registration was dropped) to the waiter's mailbox.
local function deliver(waiter, itemJson)
  redis.call('RPUSH', waiter.mailbox, '{"waiter":' .. cjson.encode(waiter.id) .. ',"item":' .. itemJson .. '}')
  redis.call('PEXPIRE', waiter.mailbox, MAILBOX_TTL_MS)
end

-- Pops the oldest waiter of poolKey whose registration has not expired; nil if none. An expired one (its gateway
-- died, or its clock is far behind) is dropped with a notice, so that whoever removes an entry always tells its
-- owner.
local function nextWaiter(poolKey, now)
  while true do
    local entry = redis.call('LPOP', k('waiters', poolKey))
    if not entry then return nil end
    local waiter = cjson.decode(entry)
    if waiter.deadline >= now then return waiter end
    deliver(waiter, 'null')
  end
end

-- Adds an instance the pool does not hold: to the oldest live waiter (leased to it), else idle.
-- Returns 'waiter' or 'idle'.
local function place(id, poolKey, node, json, now)
  local h = k('instance', id)
  redis.call('HSET', h, 'json', json, 'key', poolKey, 'node', node)
  redis.call('SADD', k('node', node), id)
  redis.call('HINCRBY', k('keys'), poolKey, 1)
  local waiter = nextWaiter(poolKey, now)
  if waiter then
    lease(id, poolKey, waiter.holder, now + waiter.leaseMs, waiter.id)
    deliver(waiter, '{"kind":"instance","instance":' .. json .. '}')
    return 'waiter'
  end
  redis.call('HSET', h, 'state', 'idle')
  redis.call('ZADD', k('idle', poolKey), now, id)
  return 'idle'
end
`;

/** A Lua script: its source and the name used in error messages. */
export interface LuaSource {
  name: string;
  lua: string;
}

function poolScript(name: string, body: string): LuaSource {
  return { name, lua: `${poolPrelude}\n${body}` };
}

/** The pool's scripts. ARGV[1] is always the key prefix; the comment of each names the other arguments. */
export const poolScripts = {
  /** ARGV: now, poolKey, holder, leaseMs. Returns the instance JSON or nil. */
  checkout: poolScript('checkout', `return takeIdle(ARGV[3], ARGV[4], tonumber(ARGV[2]) + tonumber(ARGV[5]), '')`),

  /**
   * ARGV: now, poolKey, holder, leaseMs, waiterId, entry, onlyIfAbsent. Takes an idle instance for the waiter, or
   * queues its entry; returns the instance JSON or nil. With onlyIfAbsent = '1' (re-registration after Redis lost
   * its data) an entry that is still queued is left alone.
   */
  wait: poolScript(
    'wait',
    `
local poolKey, entry = ARGV[3], ARGV[7]
if ARGV[8] == '1' and redis.call('LPOS', k('waiters', poolKey), entry) then return nil end
local json = takeIdle(poolKey, ARGV[4], tonumber(ARGV[2]) + tonumber(ARGV[5]), ARGV[6])
if json then return json end
redis.call('RPUSH', k('waiters', poolKey), entry)
return nil
`,
  ),

  /** ARGV: (poolKey, entry) pairs. Removes waiter entries; returns how many of each pair were still queued. */
  cancel: poolScript(
    'cancel',
    `
local removed = {}
for i = 2, #ARGV, 2 do
  removed[#removed + 1] = redis.call('LREM', k('waiters', ARGV[i]), 1, ARGV[i + 1])
end
return removed
`,
  ),

  /**
   * ARGV: now, instanceId, poolKey, nodeId, json, expectWaiter. Adds or returns an instance: it goes to the oldest
   * live waiter, else idle. With expectWaiter set (an instance given back by a waiter that timed out) nothing
   * happens unless the instance is still leased to that waiter. Returns 'waiter', 'idle', 'duplicate' (already idle:
   * nothing changes), 'stale', or 'retired' (the key is retired: the instance is forgotten, not added).
   */
  push: poolScript(
    'push',
    `
local now, id, poolKey, node, json, expectWaiter = tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local h = k('instance', id)
local record = redis.call('HMGET', h, 'state', 'waiter')
local state, leasedTo = record[1], record[2]
if expectWaiter ~= '' and (state ~= 'leased' or leasedTo ~= expectWaiter) then return 'stale' end
if redis.call('EXISTS', k('retired', poolKey)) == 1 then
  if state == 'leased' then forget(id) end
  return 'retired'
end
if state == 'idle' then return 'duplicate' end
if state then forget(id) end
return place(id, poolKey, node, json, now)
`,
  ),

  /**
   * ARGV: now, then (instanceId, poolKey, nodeId, json) for each instance. Adds every instance the pool holds
   * neither idle nor leased, as push does, unless its key is retired; returns the JSON of those added.
   */
  restore: poolScript(
    'restore',
    `
local now = tonumber(ARGV[2])
local added = {}
for i = 3, #ARGV, 4 do
  local id, json = ARGV[i], ARGV[i + 3]
  if redis.call('EXISTS', k('instance', id)) == 0 and redis.call('EXISTS', k('retired', ARGV[i + 1])) == 0 then
    place(id, ARGV[i + 1], ARGV[i + 2], json, now)
    added[#added + 1] = json
  end
end
return added
`,
  ),

  /** ARGV: now, poolKey, itemJson. Hands a failure to the oldest live waiter; returns 1 if delivered, else 0. */
  pushFailure: poolScript(
    'pushFailure',
    `
local waiter = nextWaiter(ARGV[3], tonumber(ARGV[2]))
if not waiter then return 0 end
deliver(waiter, ARGV[4])
return 1
`,
  ),

  /** ARGV: instanceId. Forgets a checked-out instance; an idle one is left alone. */
  release: poolScript(
    'release',
    `
if redis.call('HGET', k('instance', ARGV[2]), 'state') == 'leased' then forget(ARGV[2]) end
return 0
`,
  ),

  /** ARGV: now, instanceId, leaseMs. Extends the lease of a checked-out instance; no-op otherwise. */
  renew: poolScript(
    'renew',
    `
local id = ARGV[3]
if redis.call('HGET', k('instance', id), 'state') ~= 'leased' then return 0 end
local expiresAt = tonumber(ARGV[2]) + tonumber(ARGV[4])
redis.call('HSET', k('instance', id), 'expiresAt', expiresAt)
redis.call('ZADD', k('leases'), expiresAt, id)
return 1
`,
  ),

  /** ARGV: poolKey, idleBefore, keep. Removes the oldest idle instances idle since before the cutoff. */
  reapIdle: poolScript(
    'reapIdle',
    `
local idleKey = k('idle', ARGV[2])
local removable = redis.call('ZCARD', idleKey) - math.max(0, tonumber(ARGV[4]))
if removable <= 0 then return {} end
return forgetAll(redis.call('ZRANGEBYSCORE', idleKey, '-inf', '(' .. ARGV[3], 'LIMIT', 0, removable))
`,
  ),

  /** ARGV: poolKey. Removes every idle instance of the key, oldest first. */
  drain: poolScript('drain', `return forgetAll(redis.call('ZRANGE', k('idle', ARGV[2]), 0, -1))`),

  /** ARGV: poolKey, ttlMs. Marks the key retired for ttlMs (push and restore refuse it), then drains it. */
  retire: poolScript(
    'retire',
    `
redis.call('SET', k('retired', ARGV[2]), '1', 'PX', ARGV[3])
return forgetAll(redis.call('ZRANGE', k('idle', ARGV[2]), 0, -1))
`,
  ),

  /** ARGV: nodeId. Removes every instance, idle or checked out, of the node. */
  purgeNode: poolScript('purgeNode', `return forgetAll(redis.call('SMEMBERS', k('node', ARGV[2])))`),

  /** ARGV: now. Removes checked-out instances whose lease expired before now. */
  reclaimExpired: poolScript(
    'reclaimExpired',
    `return forgetAll(redis.call('ZRANGEBYSCORE', k('leases'), '-inf', '(' .. ARGV[2]))`,
  ),

  /** ARGV: now, poolKey. Returns {idle, checkedOut, live waiters}. */
  stats: poolScript(
    'stats',
    `
local now, poolKey = tonumber(ARGV[2]), ARGV[3]
local waiters = 0
for _, entry in ipairs(redis.call('LRANGE', k('waiters', poolKey), 0, -1)) do
  if cjson.decode(entry).deadline >= now then waiters = waiters + 1 end
end
return { redis.call('ZCARD', k('idle', poolKey)), redis.call('SCARD', k('leased', poolKey)), waiters }
`,
  ),
  /** ARGV[2]: pool key. Returns { idle, checked out }: `stats` without decoding every waiter. */
  instances: poolScript(
    'instances',
    `
local poolKey = ARGV[2]
return { redis.call('ZCARD', k('idle', poolKey)), redis.call('SCARD', k('leased', poolKey)) }
`,
  ),
} satisfies Record<string, LuaSource>;

/** The provision queue's scripts. */
export const queueScripts = {
  /** KEYS: queue list. ARGV: capacity, request JSON. Appends unless full; returns 1 if added, else 0. */
  push: {
    name: 'push',
    lua: `
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[2])
return 1
`,
  },
} satisfies Record<string, LuaSource>;
