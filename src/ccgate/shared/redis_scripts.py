"""The Lua scripts the Redis backend runs server-side (shared/redis.py), kept apart from the
I/O so they can be read next to ``routing/ratelimit.py``, whose windowing they repeat.

ADMIT: check and count one request against a key's rpm/tpm in one atomic step. The window is
``routing.ratelimit``'s: 60 s sliding, as a log of 1-second buckets; an event counts from
its moment until the end of its bucket plus 60 s. Buckets are fields of a hash per key and
family (field = bucket index, value = amount); expired ones are deleted as they are read,
and the hash expires by itself 62 s after its last write, so an idle key leaves nothing.
``now`` is Redis' own clock (``TIME``), so replicas with skewed clocks count in one window;
ARGV[3] overrides it (tests compare with the local limiter on the same clock).

Floats leave Lua as strings: Redis turns a Lua number into an integer reply.
"""

from __future__ import annotations

WINDOW = 60  # routing.ratelimit.WINDOW
EXPIRE_MS = (WINDOW + 2) * 1000  # the newest bucket's lifetime (61 s) plus a margin

_COMMON = """
local window, res = 60, 1
local function clock()
  if ARGV[3] ~= nil and ARGV[3] ~= '' then return tonumber(ARGV[3]) end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""

ADMIT = _COMMON + """
-- KEYS[1]: request buckets, KEYS[2]: token buckets; ARGV[1] rpm, ARGV[2] tpm (0: no limit).
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = clock()
local function load(key)
  local flat = redis.call('HGETALL', key)
  local idx, amt, total, dead = {}, {}, 0, {}
  for i = 1, #flat, 2 do
    local b, a = tonumber(flat[i]), tonumber(flat[i + 1])
    if (b + 1) * res + window <= now then
      dead[#dead + 1] = flat[i]
    else
      idx[#idx + 1] = b; amt[b] = a; total = total + a
    end
  end
  if #dead > 0 then redis.call('HDEL', key, unpack(dead)) end
  table.sort(idx)
  return {idx = idx, amt = amt, total = total}
end
local function free_at(log, limit)
  local total = log.total
  if total < limit then return now end
  for _, b in ipairs(log.idx) do
    total = total - log.amt[b]
    if total < limit then return (b + 1) * res + window end
  end
  return now
end
local function drained_at(log, extra)
  local last = log.idx[#log.idx]
  if extra ~= nil and (last == nil or extra > last) then last = extra end
  if last == nil then return now end
  return (last + 1) * res + window
end
local reqs = {idx = {}, amt = {}, total = 0}
local toks = {idx = {}, amt = {}, total = 0}
if rpm > 0 then reqs = load(KEYS[1]) end
if tpm > 0 then toks = load(KEYS[2]) end
local wait, by = -1, ''
if rpm > 0 and reqs.total >= rpm then wait = free_at(reqs, rpm) - now; by = 'requests' end
if tpm > 0 and toks.total >= tpm then
  local w = free_at(toks, tpm) - now
  if w >= wait then wait = w; by = 'tokens' end  -- a tie goes to tokens, as max() of tuples does
end
local allowed = by == ''
local added = nil
if allowed and rpm > 0 then
  added = math.floor(now / res)
  redis.call('HINCRBY', KEYS[1], added, 1)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  reqs.total = reqs.total + 1
end
local function f(x) return string.format('%.6f', x) end
return {allowed and 1 or 0, f(wait), by, reqs.total, f(drained_at(reqs, added)), toks.total,
        f(drained_at(toks, nil))}
"""

RECORD_TOKENS = _COMMON + """
-- KEYS[1]: token buckets; ARGV[1] tokens, ARGV[2] unused, ARGV[4] expiry (ms).
local now = clock()
redis.call('HINCRBY', KEYS[1], math.floor(now / res), tonumber(ARGV[1]))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""

# kv_incr: add and, on the first increment, start the time to live; one atomic step.
INCR = """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if value == tonumber(ARGV[1]) or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
"""
