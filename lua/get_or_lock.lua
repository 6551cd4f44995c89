-- get_or_lock.lua: read a cached value, or take its compute lock, or say how long to wait.
-- KEYS[1]  value key  KEYS[2] lock key (same slot)  KEYS[3] optional: compute-time key (same slot)
-- ARGV[1]  lock token (random, non-empty)  ARGV[2] lock ttl ms (integer > 0)
-- Returns  {"hit", value, value_pttl_ms | -1, delta_ms | 0} | {"compute", "", lock_pttl_ms} | {"wait", "", lock_pttl_ms}
-- Example  redis-cli --eval lua/get_or_lock.lua cache:{user:1} cache:{user:1}:lock , tok-1 5000

-- "hit" carries the value's PTTL and, when KEYS[3] is given, the last
-- measured compute time (ms), so the client can refresh early (XFetch); to
-- do so it takes the lock with SET lock token NX PX ttl.
-- A lock already held by this token answers "compute" again (idempotent retry).
local token, ttl = ARGV[1], ARGV[2]
if not token or token == '' then
  return redis.error_reply('ERR get_or_lock: token must be non-empty')
end
if not (ttl and #ttl <= 15 and ttl:match('^[1-9]%d*$')) then
  return redis.error_reply('ERR get_or_lock: ttl must be an integer of ms > 0')
end
local value = redis.call('GET', KEYS[1])
if value then
  local delta = 0
  if KEYS[3] then
    delta = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
  end
  return {'hit', value, redis.call('PTTL', KEYS[1]), delta}
end
if redis.call('SET', KEYS[2], token, 'NX', 'PX', ttl) then
  return {'compute', '', tonumber(ttl)}
end
local pttl = redis.call('PTTL', KEYS[2])
if pttl < 0 then -- a lock without TTL would block forever: repair it
  redis.call('PEXPIRE', KEYS[2], ttl)
  pttl = tonumber(ttl)
end
if redis.call('GET', KEYS[2]) == token then
  return {'compute', '', pttl}
end
return {'wait', '', pttl}
