"""The Redis scripts. Each runs atomically, so no replica ever sees half a reservation.

Layout of one counter (key `C`): hash `C` with `i` (present once loaded from
the ledger), `spent`, `reserved`, `h:<request id>` (a hold's amount) and
`l:<request id>` (a charge settled before the counter was loaded); sorted set
`C:h` of held request ids scored by their expiry in ms (server clock).
Amounts travel as decimal strings and change only through HINCRBY, so Lua's
floating-point numbers never round them.
"""

from __future__ import annotations

RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rid, amount, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local need = tonumber(amount)
local missing = {}
local states = {}
for i, key in ipairs(KEYS) do
  local state = redis.call('HMGET', key, 'i', 'spent', 'reserved')
  if not state[1] then missing[#missing + 1] = i end
  states[i] = state
end
if #missing > 0 then return {2, missing} end
for i, key in ipairs(KEYS) do
  local holds = key .. ':h'
  local reserved = tonumber(states[i][3] or '0')
  local expired = redis.call('ZRANGEBYSCORE', holds, '-inf', now)
  if #expired > 0 then
    for _, old in ipairs(expired) do
      local held = redis.call('HGET', key, 'h:' .. old)
      if held then
        reserved = redis.call('HINCRBY', key, 'reserved', '-' .. held)
        redis.call('HDEL', key, 'h:' .. old)
      end
    end
    redis.call('ZREMRANGEBYSCORE', holds, '-inf', now)
  end
  local limit = tonumber(ARGV[2 + 2 * i])
  if limit >= 0 and tonumber(states[i][2] or '0') + reserved + need > limit then return {1, i} end
end
for i, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 'reserved', amount)
  redis.call('HSET', key, 'h:' .. rid, amount)
  redis.call('ZADD', key .. ':h', now + ttl, rid)
  local expire = ARGV[3 + 2 * i]
  if expire ~= '0' then
    redis.call('PEXPIREAT', key, expire)
    redis.call('PEXPIREAT', key .. ':h', expire)
  end
end
return {0}
"""
"""KEYS: counters. ARGV: request id, amount, hold ms, then per counter its limit (-1: none) and expiry ms (0: none)."""

SETTLE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[3]) then return {-2} end
local rid, actual = ARGV[1], ARGV[2]
local charge = actual ~= '-1'
local out = {}
for i = 2, #KEYS do
  local key = KEYS[i]
  local held = redis.call('HGET', key, 'h:' .. rid)
  if held then
    redis.call('HINCRBY', key, 'reserved', '-' .. held)
    redis.call('HDEL', key, 'h:' .. rid)
    redis.call('ZREM', key .. ':h', rid)
  end
  if not charge then
    out[#out + 1] = 0
  elseif redis.call('HEXISTS', key, 'i') == 1 then
    out[#out + 1] = redis.call('HINCRBY', key, 'spent', actual)
  else
    redis.call('HSET', key, 'l:' .. rid, actual)
    local expire = ARGV[2 + i]
    if expire ~= '0' then redis.call('PEXPIREAT', key, expire) end
    out[#out + 1] = -1
  end
end
return out
"""
"""KEYS: the request's settled marker, then counters. ARGV: request id, actual (-1: release), marker ms, expiries."""

INITIALISE = """
local key = KEYS[1]
if redis.call('HEXISTS', key, 'i') == 1 then return 1 end
local fields = redis.call('HGETALL', key)
local late = {}
local count = 0
for j = 1, #fields, 2 do
  if string.sub(fields[j], 1, 2) == 'l:' then
    late[string.sub(fields[j], 3)] = true
    count = count + 1
  end
end
local seen = tonumber(ARGV[3])
if seen ~= count then return 0 end
for k = 1, seen do
  if not late[ARGV[3 + k]] then return 0 end
end
redis.call('DEL', key)
redis.call('HSET', key, 'i', '1', 'spent', ARGV[1], 'reserved', '0')
if ARGV[2] ~= '0' then redis.call('PEXPIREAT', key, ARGV[2]) end
return 1
"""
"""KEYS: one counter. ARGV: spent to load, expiry ms (0: none), number of late charges seen, their request ids."""

RATE_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rid, hold = ARGV[1], tonumber(ARGV[2])
local window = 60000000
local tats = {}
for i, key in ipairs(KEYS) do
  local kind, limit, step = ARGV[3 * i], tonumber(ARGV[3 * i + 1]), tonumber(ARGV[3 * i + 2])
  if limit <= 0 then return {1, i, 60000} end
  if kind == 'parallel' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    if redis.call('ZCARD', key) >= limit then
      local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      return {1, i, math.floor((tonumber(first[2]) - now) / 1000) + 1}
    end
  else
    local tat = tonumber(redis.call('GET', key) or '0')
    if tat < now then tat = now end
    if kind == 'rpm' then
      if tat + step - now > window then return {1, i, math.max(1, math.ceil((tat + step - now - window) / 1000))} end
      tats[i] = tat + step
    elseif tat - now >= window then
      return {1, i, math.max(1, math.ceil((tat - now - window) / 1000))}
    end
  end
end
for i, key in ipairs(KEYS) do
  local kind = ARGV[3 * i]
  if kind == 'parallel' then
    redis.call('ZADD', key, now + hold, rid)
    redis.call('PEXPIRE', key, math.floor(hold / 1000) + 1000)
  elseif kind == 'rpm' then
    redis.call('SET', key, string.format('%.0f', tats[i]), 'PX', 61000)
  end
end
return {0}
"""
"""KEYS: one per limit. ARGV: request id, hold in us, then per limit its kind, limit and interval in us.

Replies {0}, or {1, index of the exhausted limit (1-based), ms until it has room}.
"""

RATE_SETTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rid, tokens = ARGV[1], tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  local kind, step = ARGV[1 + 2 * i], tonumber(ARGV[2 + 2 * i])
  if kind == 'parallel' then
    redis.call('ZREM', key, rid)
  elseif kind == 'tpm' and tokens > 0 then
    local tat = tonumber(redis.call('GET', key) or '0')
    if tat < now then tat = now end
    tat = tat + tokens * step
    redis.call('SET', key, string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 61000)
  end
end
return 1
"""
"""KEYS: one per limit. ARGV: request id, tokens used (0: none), then per limit its kind and interval in us."""
