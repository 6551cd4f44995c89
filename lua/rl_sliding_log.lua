-- rl_sliding_log.lua: exact sliding-window-log rate limit, N limits at once, all-or-nothing.
-- KEYS[1..N]  one sorted set per limit (score = us, member "us-seq")  KEYS[N+1] dedupe sorted set
-- ARGV[1] now_us ("" or 0 = server TIME)  ARGV[2] cost  ARGV[3] request id ("" = none)  ARGV[4] check|peek
-- ARGV[5..]   per limit: limit, window_ms
-- Returns  {allowed 0|1, never 0|1, denied_by, then per limit i: remaining_i, retry_after_ms_i, reset_after_ms_i}
-- Example  redis-cli --eval lua/rl_sliding_log.lua rl:{user:1}:sl:0 rl:{user:1}:sl:1 rl:{user:1}:req , 0 1 "" check 10 1000 1000 3600000
--
-- A request counts in a limit while now - t < window. The log holds one entry per counted unit,
-- so a limit is at most 1e5 (bounding memory and the ZADDs of one call). Allowed iff
-- count + cost <= limit for EVERY limit; only then is it recorded (in all of them). Denied, peek and cost-0 calls write nothing.
-- remaining: left AFTER this request if allowed, left NOW if denied. retry_after_ms: 0 if that
-- limit fits, else ms until it does (rounded up), -1 if cost > limit ("never"). reset_after_ms:
-- until that limit's log is empty (as if the cost were recorded, when allowed).
-- denied_by: the first "never" limit, else the denying limit with the longest exact wait (whole
-- us, before rounding to ms), the lowest index on an exact tie.
-- peek returns exactly what check would. Request id: a repeat of an ALLOWED request id within the
-- longest window returns allowed with the current numbers and consumes nothing (denials are not
-- stored, so a retry with the same id is evaluated afresh). Members need no id to be unique: the
-- entries at score t are always exactly t-1..t-m (expiry removes a whole score at once).
local NAME, PER = 'rl_sliding_log', 2
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
  lim[i], win[i] = int(ARGV[3 + PER * i], 1, 1e5), int(ARGV[4 + PER * i], 1, 9e9)
  if not lim[i] or not win[i] then return fail('limit ' .. i .. ': limit must be 1..1e5, window_ms 1..9e9') end
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
local out, cnt, last, nev, deny, worst = {}, {}, {}, 0, 0, 0
for i = 1, n do
  local k, l, w = KEYS[i], lim[i], win[i]
  local lo = '(' .. fmt(now - w)
  local c = redis.call('ZCOUNT', k, lo, '+inf')
  local r = 0
  if cost > l then
    r = -1
    if nev == 0 then nev = i end
  elseif c + cost > l then
    -- the (c + cost - l)-th oldest live entry must leave the window first
    local e = redis.call('ZRANGEBYSCORE', k, lo, '+inf', 'WITHSCORES', 'LIMIT', c + cost - l - 1, 1)
    local us = tonumber(e[2]) + w - now -- the exact wait
    r = cdiv(us, 1000)
    if us > worst then deny, worst = i, us end
  end
  local top = redis.call('ZRANGE', k, -1, -1, 'WITHSCORES')
  cnt[i], last[i], out[3 * i + 2] = c, tonumber(top[2]) or -math.huge, r
end
local by = nev > 0 and nev or deny
if replay then by = 0 end
local allowed = by == 0
local used = allowed and cost or 0

-- Phase 2: report, and record only if everything allowed.
for i = 1, n do
  local k, l, w = KEYS[i], lim[i], win[i]
  local newest = used > 0 and math.max(last[i], now) or last[i]
  out[3 * i + 1] = math.max(0, l - cnt[i] - used)
  if allowed then out[3 * i + 2] = 0 end
  out[3 * i + 3] = newest + w > now and cdiv(newest + w - now, 1000) or 0
  if write and allowed then
    redis.call('ZREMRANGEBYSCORE', k, '-inf', fmt(now - w))
    local ts = fmt(now)
    local m, args = redis.call('ZCOUNT', k, ts, ts), {}
    for j = 1, cost do
      args[#args + 1] = ts
      args[#args + 1] = ts .. '-' .. fmt(m + j)
      if #args >= 2000 or j == cost then
        redis.call('ZADD', k, unpack(args))
        args = {}
      end
    end
    redis.call('PEXPIRE', k, out[3 * i + 3])
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
