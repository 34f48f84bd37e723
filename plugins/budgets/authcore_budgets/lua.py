"""The Redis scripts. Each runs atomically, so no replica ever sees half a reservation.

Layout of one counter (key `C`): hash `C` with `i` (present once loaded from
the ledger), `spent`, `reserved`, `h:<request id>` (a hold's amount) and
`l:<request id>` (a charge settled before the counter was loaded); sorted set
`C:h` of held request ids scored by their expiry in ms (server clock).
Amounts travel as decimal strings and change only through HINCRBY, so Lua's
floating-point numbers never round them.

A rate limit (key `R`) is a GCRA theoretical arrival time in microseconds
(string `R`, rpm and tpm) or a sorted set of in-flight request ids scored by
their expiry in microseconds (parallel). rpm and tpm states lost with Redis's
data are rebuilt from the ledger (INIT_RATE); parallel slots are not. RESERVE and SETTLE cover both the
counters and the rate limits of a request, so each is one round trip; the
arguments that depend only on the request's plan come first and its request
id and amounts last, so the client can keep the plan's part pre-encoded.
"""

from __future__ import annotations

RESERVE = """
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = math.floor(now_us / 1000)
local n, hold = tonumber(ARGV[1]), tonumber(ARGV[2])
local rid, amount = ARGV[#ARGV - 1], ARGV[#ARGV]
local need = tonumber(amount)
local base = 2 + 2 * n
local window = 60000000
local out = {0}
local tats = {}
local rates_end = #KEYS - 1
local rebuilding = nil
local lost = {}
-- Rate limits first: a request over its rate is refused before any budget is read, as before.
for j = n + 1, rates_end do
  local key, a = KEYS[j], base + 3 * (j - n - 1)
  local kind, limit, step = ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  if limit <= 0 then return {3, j - n, 60000} end
  local remaining, reset = 0, 0
  if kind == 'parallel' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now_us)
    local used = redis.call('ZCARD', key)
    if used >= limit then
      local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      return {3, j - n, math.floor((tonumber(first[2]) - now_us) / 1000) + 1}
    end
    remaining = limit - used - 1
  else
    local stored = redis.call('GET', key)
    if not stored then
      -- No state: expired after a quiet window, or lost with the data. Lost is possible until a window
      -- after the rebuild started (KEYS[#KEYS], set by INIT_RATE; absent after a loss).
      if rebuilding == nil then
        local until_ms = redis.call('GET', KEYS[#KEYS])
        rebuilding = not until_ms or now < tonumber(until_ms)
      end
      if rebuilding then lost[#lost + 1] = j - n end
    end
    local tat = tonumber(stored or '0')
    if tat < now_us then tat = now_us end
    if kind == 'rpm' then
      tat = tat + step
      if tat - now_us > window then return {3, j - n, math.max(1, math.ceil((tat - now_us - window) / 1000))} end
      tats[j] = tat
    elseif tat - now_us >= window then
      return {3, j - n, math.max(1, math.ceil((tat - now_us - window) / 1000))}
    end
    remaining = math.floor((window - (tat - now_us)) / step)
    reset = math.ceil((tat - now_us) / 1000)
  end
  out[#out + 1] = remaining
  out[#out + 1] = reset
end
if #lost > 0 then return {4, lost} end
local states = {}
local missing = {}
for i = 1, n do
  local state = redis.call('HMGET', KEYS[i], 'i', 'spent', 'reserved')
  if not state[1] then missing[#missing + 1] = i end
  states[i] = state
end
if #missing > 0 then return {2, missing} end
for i = 1, n do
  local key = KEYS[i]
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
  local limit = tonumber(ARGV[1 + 2 * i])
  if limit >= 0 and tonumber(states[i][2] or '0') + reserved + need > limit then return {1, i} end
end
for i = 1, n do
  local key = KEYS[i]
  redis.call('HINCRBY', key, 'reserved', amount)
  redis.call('HSET', key, 'h:' .. rid, amount)
  redis.call('ZADD', key .. ':h', now + hold, rid)
  local expire = ARGV[2 + 2 * i]
  if expire ~= '0' then
    redis.call('PEXPIREAT', key, expire)
    redis.call('PEXPIREAT', key .. ':h', expire)
  end
end
for j = n + 1, rates_end do
  local key, kind = KEYS[j], ARGV[base + 3 * (j - n - 1) + 1]
  if kind == 'parallel' then
    redis.call('ZADD', key, now_us + hold * 1000, rid)
    redis.call('PEXPIRE', key, hold + 1000)
  elseif kind == 'rpm' then
    redis.call('SET', key, string.format('%.0f', tats[j]), 'PX', 61000)
  end
end
return out
"""
"""Holds `amount` on every counter and takes every rate limit, or changes nothing.

KEYS: the counters, one key per rate limit, then the rebuild key (see INIT_RATE). ARGV: number of
counters, hold ms; per counter its limit (-1: none) and expiry ms (0: none); per rate limit its kind,
limit and interval in us; then the request id and the amount.

Replies {0, then per rate limit what is left (requests or tokens) and ms until it is full again},
{1, index of the exhausted counter}, {2, indexes of counters to load}, {3, index of the exhausted
rate limit, ms until it has room} or {4, indexes of rpm/tpm limits to load} (1-based indexes).
"""

SETTLE = """
local n = tonumber(ARGV[1])
-- Only budgeted settlements leave a marker (rate limits alone keep no per-request state).
if n > 0 and not redis.call('SET', KEYS[#KEYS], '1', 'NX', 'PX', ARGV[2]) then return {-2} end
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rid, actual, tokens = ARGV[#ARGV - 2], ARGV[#ARGV - 1], tonumber(ARGV[#ARGV])
local charge = actual ~= '-1'
local out = {}
for i = 1, n do
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
local rebuilding = nil
for j = n + 1, #KEYS - 2 do
  local key, a = KEYS[j], 2 + n + 2 * (j - n - 1)
  local kind, step = ARGV[a + 1], tonumber(ARGV[a + 2])
  if kind == 'parallel' then
    redis.call('ZREM', key, rid)
  elseif kind == 'tpm' and tokens > 0 then
    local stored = redis.call('GET', key)
    if not stored and rebuilding == nil then
      local until_ms = redis.call('GET', KEYS[#KEYS - 1])
      rebuilding = not until_ms or math.floor(now_us / 1000) < tonumber(until_ms)
    end
    -- A lost state is left for the rebuild, which counts these tokens from the ledger: a state started
    -- here would stop the rebuild and forget the rest of the window.
    if stored or not rebuilding then
      local tat = tonumber(stored or '0')
      if tat < now_us then tat = now_us end
      tat = tat + tokens * step
      redis.call('SET', key, string.format('%.0f', tat), 'PX', math.floor((tat - now_us) / 1000) + 61000)
    end
  end
end
return out
"""
"""Drops the request's holds, charges `actual` to its counters and `tokens` to its tpm limits, once.

KEYS: the counters, one key per rate limit, the rebuild key, then the request's settled marker. ARGV: number of
counters, marker ms; per counter its expiry ms; per rate limit its kind and interval in us; then the
request id, actual (-1: release) and tokens used. Replies per counter its new spend (-1: kept as a
late charge), or {-2} when the request was already settled (known only when it has counters).
"""

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

INIT_RATE = """
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
if not redis.call('GET', KEYS[2]) then
  redis.call('SET', KEYS[2], string.format('%.0f', math.floor(now_us / 1000) + tonumber(ARGV[3])))
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  local tat = now_us + tonumber(ARGV[1]) * tonumber(ARGV[2])
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.floor((tat - now_us) / 1000) + 61000)
end
return 1
"""
"""Starts a lost rpm/tpm state from what the ledger recorded, and the rebuild if it is not running.

The rebuild key holds when the rebuild ends (ms, server clock): one window after it started, when no
state older than the loss still matters. Until then RESERVE reports rate keys it lacks ({4}); after, a
missing key only means a quiet window. Data loss takes the rebuild key too, which starts it again.
KEYS: the rate key, the rebuild key. ARGV: requests or tokens used, interval in us, window ms.
"""
