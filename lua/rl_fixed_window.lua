-- rl_fixed_window.lua: fixed-window counter rate limit, N limits at once, all-or-nothing.
-- KEYS[1..N]  one hash per limit {s = window start us, n = count}  KEYS[N+1] dedupe sorted set
-- ARGV[1] now_us ("" or 0 = server TIME)  ARGV[2] cost  ARGV[3] request id ("" = none)  ARGV[4] check|peek
-- ARGV[5..]   per limit: limit, window_ms
-- Returns  {allowed 0|1, never 0|1, denied_by, then per limit i: remaining_i, retry_after_ms_i, reset_after_ms_i}
-- Example  redis-cli --eval lua/rl_fixed_window.lua rl:{user:1}:fw:0 rl:{user:1}:fw:1 rl:{user:1}:req , 0 1 "" check 10 1000 1000 3600000
--
-- A window opens at the first allowed request after the previous one ended and lasts window_ms
-- (per key, not aligned to the clock: blocked clients do not all retry at the same instant).
-- The start is stored, not inferred from PTTL, so the now_us override works. Allowed iff
-- count + cost <= limit for EVERY limit; only then is it counted (in all). Denied, peek and
-- cost-0 calls write nothing. remaining: left AFTER this request if allowed, left NOW if denied.
-- retry_after_ms: 0 if that limit fits, else ms until its window ends (rounded up), -1 if
-- cost > limit ("never"). reset_after_ms: until the window ends, 0 if nothing is counted.
-- denied_by: the first "never" limit, else the denying limit with the longest exact wait (whole
-- us, before rounding to ms), the lowest index on an exact tie.
-- peek returns exactly what check would. Request id: a repeat of an ALLOWED request id within the
-- longest window returns allowed with the current numbers and consumes nothing (denials are not
-- stored, so a retry with the same id is evaluated afresh).
local NAME, PER = 'rl_fixed_window', 2
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
local lim, win, span = {}, {}, 0
for i = 1, n do
  lim[i], win[i] = int(ARGV[3 + PER * i], 1, 1e9), int(ARGV[4 + PER * i], 1, 9e9)
  if not lim[i] or not win[i] then return fail('limit ' .. i .. ': limit must be 1..1e9, window_ms 1..9e9') end
  span = math.max(span, win[i])
  win[i] = win[i] * 1000
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

-- Phase 1: evaluate every limit, read-only.
local out, st, cnt, nev, deny, worst = {}, {}, {}, 0, 0, 0
for i = 1, n do
  local h = redis.call('HMGET', KEYS[i], 's', 'n')
  local s, c = tonumber(h[1]), tonumber(h[2]) or 0
  if not s or now >= s + win[i] then s, c = now, 0 end -- no live window: one would open now
  local r = 0
  if cost > lim[i] then
    r = -1
    if nev == 0 then nev = i end
  elseif c + cost > lim[i] then
    local us = s + win[i] - now -- the exact wait
    r = cdiv(us, 1000)
    if us > worst then deny, worst = i, us end
  end
  st[i], cnt[i], out[3 * i + 2] = s, c, r
end
local by = nev > 0 and nev or deny
if replay then by = 0 end
local allowed = by == 0
local used = allowed and cost or 0

-- Phase 2: report, and count only if everything allowed.
for i = 1, n do
  local c = cnt[i] + used
  out[3 * i + 1] = math.max(0, lim[i] - c)
  if allowed then out[3 * i + 2] = 0 end
  out[3 * i + 3] = c > 0 and cdiv(st[i] + win[i] - now, 1000) or 0
  if write and allowed then
    redis.call('HSET', KEYS[i], 's', fmt(st[i]), 'n', fmt(c))
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
