-- rl_sliding_window.lua: sliding-window counter rate limit (two weighted windows, O(1)), N limits, all-or-nothing.
-- KEYS[1..N]  one hash per limit {s = window start us, c = its count, p = previous count}  KEYS[N+1] dedupe zset
-- ARGV[1] now_us ("" or 0 = server TIME)  ARGV[2] cost  ARGV[3] request id ("" = none)  ARGV[4] check|peek
-- ARGV[5..]   per limit: limit, window_ms
-- Returns  {allowed 0|1, never 0|1, denied_by, then per limit i: remaining_i, retry_after_ms_i, reset_after_ms_i}
-- Example  redis-cli --eval lua/rl_sliding_window.lua rl:{user:1}:sw:0 rl:{user:1}:sw:1 rl:{user:1}:req , 0 1 "" check 10 1000 1000 3600000
--
-- Windows are aligned to multiples of window_ms since the epoch. At offset e into the current
-- window the estimate is prev * w + curr, with the weight w = (window - e) / window kept as an
-- integer in parts per million, rounded UP (never below the exact weighted estimate). Integer
-- math throughout. Bound: at most limit per aligned window, but fewer than 2 * limit in a sliding
-- interval of one window (the estimate assumes the previous window was evenly spread).
-- Allowed iff estimate + cost <= limit for EVERY limit; only then is it counted (in all).
-- Denied, peek and cost-0 calls write nothing. remaining: largest cost that would fit, AFTER this
-- request if allowed, NOW if denied. retry_after_ms: 0 if that limit fits, else ms until the cost
-- fits (rounded up; exact inverse of the rule above), -1 if cost > limit ("never").
-- reset_after_ms: until the estimate reaches 0 (end of next window while curr > 0).
-- denied_by: the first "never" limit, else the denying limit with the longest exact wait (whole
-- us, before rounding to ms), the lowest index on an exact tie.
-- peek returns exactly what check would. Request id: a repeat of an ALLOWED request id within the
-- longest window returns allowed with the current numbers and consumes nothing (denials are not
-- stored, so a retry with the same id is evaluated afresh).
local NAME, PER = 'rl_sliding_window', 2
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

local U = 1000000 -- weights are in parts per million
local function idiv(a, b) return (a - math.fmod(a, b)) / b end -- floor(a / b), exact for a >= 0
-- Offset in a window from which prev * weight <= room * U holds (room >= 0); >= w means never in it.
local function opens(prev, room, w, wms)
  if prev == 0 then return 0 end
  local wmax = idiv(room * U, prev)
  if wmax >= U then return 0 end
  return w - idiv(wmax * wms, 1000)
end

-- Phase 1: evaluate every limit, read-only.
local out, st, cur, prv, free, nev, deny, worst = {}, {}, {}, {}, {}, 0, 0, 0
for i = 1, n do
  local l, w = lim[i], win[i]
  local start = now - math.fmod(now, w)
  local h = redis.call('HMGET', KEYS[i], 's', 'c', 'p')
  local s, c, p = tonumber(h[1]), tonumber(h[2]) or 0, tonumber(h[3]) or 0
  if not s or s < start - w then c, p = 0, 0 -- both windows are over
  elseif s < start then c, p = 0, c          -- the stored window is now the previous one
  elseif s > start then start = s end        -- server clock stepped back: keep the later window
  local e = now - start                      -- < 0 only after such a step back
  local weight = math.min(U, cdiv((w - e) * 1000, w / 1000))
  local f = math.floor((l * U - p * weight) / U) - c
  local r = 0
  if cost > l then
    r = -1
    if nev == 0 then nev = i end
  elseif cost > f then
    local at = l - c - cost >= 0 and opens(p, l - c - cost, w, w / 1000) or w
    if at >= w then at = w + opens(c, l - cost, w, w / 1000) end -- in the next window, prev = c
    r = cdiv(at - e, 1000) -- at - e: the exact wait
    if at - e > worst then deny, worst = i, at - e end
  end
  st[i], cur[i], prv[i], free[i], out[3 * i + 2] = start, c, p, f, r
end
local by = nev > 0 and nev or deny
if replay then by = 0 end
local allowed = by == 0
local used = allowed and cost or 0

-- Phase 2: report, and count only if everything allowed.
for i = 1, n do
  local w, c, p = win[i], cur[i] + used, prv[i]
  out[3 * i + 1] = math.max(0, free[i] - used)
  if allowed then out[3 * i + 2] = 0 end
  local ends = c > 0 and st[i] + 2 * w or (p > 0 and st[i] + w or now)
  out[3 * i + 3] = cdiv(ends - now, 1000)
  if write and allowed then
    redis.call('HSET', KEYS[i], 's', fmt(st[i]), 'c', fmt(c), 'p', fmt(p))
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
