-- rl_gcra.lua: GCRA rate limit (smooth, with burst, O(1) memory), N limits at once, all-or-nothing.
-- KEYS[1..N]  one hash per limit {t = TAT us, f = TAT fraction in 1/limit us}  KEYS[N+1] dedupe sorted set
-- ARGV[1] now_us ("" or 0 = server TIME)  ARGV[2] cost  ARGV[3] request id ("" = none)  ARGV[4] check|peek
-- ARGV[5..]   per limit: limit, window_ms, burst
-- Returns  {allowed 0|1, never 0|1, denied_by, then per limit i: remaining_i, retry_after_ms_i, reset_after_ms_i}
-- Example  redis-cli --eval lua/rl_gcra.lua rl:{user:1}:gc:0 rl:{user:1}:gc:1 rl:{user:1}:req , 0 1 "" check 10 1000 5 1000 3600000 100
--
-- Emission interval T = window / limit, tolerance = burst * T: from a full state `burst` units
-- pass at once, then one per T. TAT is kept exactly (us plus a remainder over `limit`), so
-- e.g. 7 per second is exactly 7 per second. The math runs in units of 1/L us, L = limit / g,
-- g = gcd(limit, window_us), and needs burst * window_us / g <= 4e15 (50,000 per day: 8.6e10).
-- With D = max(TAT, now) - now, a cost is allowed iff D + cost * T <= tolerance for EVERY limit; only then is TAT advanced (in all). Denied, peek and
-- cost-0 calls write nothing. remaining: units that would fit, AFTER this request if allowed, NOW
-- if denied. retry_after_ms: 0 if that limit fits, else ms until it does (rounded up), -1 if
-- cost > burst ("never"). reset_after_ms: until TAT <= now (full burst again); the key's PTTL.
-- denied_by: the first "never" limit, else the denying limit with the longest exact wait (whole
-- us, before rounding to ms), the lowest index on an exact tie.
-- peek returns exactly what check would. Request id: a repeat of an ALLOWED request id within the
-- longest window (or tolerance) returns allowed with the current numbers and consumes nothing
-- (denials are not stored, so a retry with the same id is evaluated afresh).
local NAME, PER = 'rl_gcra', 3
-- shared:begin prologue (the same in every rl_*.lua; tests/scripts.rs checks it)
local function int(s, lo, hi)
  local x = tonumber(s)
  if x and x == math.floor(x) and x >= lo and x <= hi then return x end
end
local function cdiv(a, b) -- ceil(a / b), exact for 0 <= a < 2^53
  local r = math.fmod(a, b)
  return (a - r) / b + (r > 0 and 1 or 0)
end
local function fmt(x) return string.format('%.0f', x) end
local function fail(msg) return redis.error_reply('ERR ' .. NAME .. ': ' .. msg) end

local n = #KEYS - 1
if n < 1 or #ARGV ~= 4 + PER * n then
  return fail('need N >= 1 limit keys + 1 dedupe key and 4 + ' .. PER .. '*N args')
end
local now, cost, rid, mode = int(ARGV[1] == '' and 0 or ARGV[1], 0, 2^52), int(ARGV[2], 0, 1e9), ARGV[3], ARGV[4]
if not now then return fail('now_us must be "" or an integer >= 0') end
if not cost then return fail('cost must be an integer in 0..1e9') end
if mode ~= 'check' and mode ~= 'peek' then return fail('mode must be check or peek') end
if now == 0 then
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
-- shared:end prologue
local function gcd(a, b) -- exact for integers < 2^53
  while b > 0 do a, b = b, math.fmod(a, b) end
  return a
end
-- Per limit: L = limit / g and T = window_us / g (the emission interval is T / L us), g their gcd.
local lim, win, bur, scale, span = {}, {}, {}, {}, 0
for i = 1, n do
  local l, wms, b = int(ARGV[2 + PER * i], 1, 1e9), int(ARGV[3 + PER * i], 1, 9e9), int(ARGV[4 + PER * i], 1, 1e9)
  local g = l and wms and gcd(wms * 1000, l)
  local T = g and wms * 1000 / g
  if not b or not T or b * T > 4e15 then
    return fail('limit ' .. i .. ': limit 1..1e9, window_ms 1..9e9, burst 1..1e9, burst * window_us / gcd(limit, window_us) <= 4e15')
  end
  lim[i], win[i], bur[i], scale[i] = l / g, T, b, g
  span = math.max(span, wms, cdiv(b * win[i], lim[i] * 1000))
end

-- shared:begin replay
local replay = false
if rid ~= '' then
  local s = tonumber(redis.call('ZSCORE', KEYS[n + 1], rid))
  replay = s ~= nil and s > now - span * 1000
end
local write = mode == 'check' and cost > 0 and not replay
if replay then cost = 0 end
-- shared:end replay

-- Durations below are in units of 1/L us: the emission interval is T and the tolerance
-- burst * T, exactly, with no rounding. The stored fraction f is in 1/limit us (= f_L * g).
-- Phase 1: evaluate every limit, read-only.
local out, dd, nev, deny, worst = {}, {}, 0, 0, 0
for i = 1, n do
  local l, T = lim[i], win[i]
  local h = redis.call('HMGET', KEYS[i], 't', 'f')
  local d = 0
  if h[1] then
    d = math.max(0, (tonumber(h[1]) - now) * l + math.floor((tonumber(h[2]) or 0) / scale[i]))
  end
  local r, over = 0, d + cost * T - bur[i] * T
  if cost > bur[i] then
    r = -1
    if nev == 0 then nev = i end
  elseif over > 0 then
    local us = cdiv(over, l) -- the exact wait: the first whole us at which it fits
    r = cdiv(us, 1000)
    if us > worst then deny, worst = i, us end
  end
  dd[i], out[3 * i + 2] = d, r
end
local by = nev > 0 and nev or deny
if replay then by = 0 end
local allowed = by == 0
local used = allowed and cost or 0

-- Phase 2: report, and advance TAT only if everything allowed.
for i = 1, n do
  local l, T = lim[i], win[i]
  local d = dd[i] + used * T
  local room = bur[i] * T - d
  out[3 * i + 1] = room > 0 and (room - math.fmod(room, T)) / T or 0
  if allowed then out[3 * i + 2] = 0 end
  out[3 * i + 3] = cdiv(d, l * 1000)
  if write and allowed then
    local f = math.fmod(d, l)
    redis.call('HSET', KEYS[i], 't', fmt(now + (d - f) / l), 'f', fmt(f * scale[i]))
    redis.call('PEXPIRE', KEYS[i], out[3 * i + 3])
  end
end
-- shared:begin epilogue
if write and allowed and rid ~= '' then
  local dk = KEYS[n + 1]
  redis.call('ZREMRANGEBYSCORE', dk, '-inf', fmt(now - span * 1000))
  redis.call('ZADD', dk, fmt(now), rid)
  redis.call('PEXPIRE', dk, span)
end
out[1], out[2], out[3] = allowed and 1 or 0, (nev > 0 and not replay) and 1 or 0, by
return out
-- shared:end epilogue
