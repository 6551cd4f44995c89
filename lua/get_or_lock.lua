-- get_or_lock.lua: read a cached value, or take its compute lease, or say who holds it.
-- KEYS[1]  value key  KEYS[2] lease (lock) key, same slot  KEYS[3] optional: compute-time key, same slot
-- ARGV[1]  lease token ("ra:lease:" + random hex)  ARGV[2] lease ttl ms (integer > 0, ≤ 15 digits)
-- Returns  {"hit", value, value_pttl_ms | -1, delta_ms | 0} | {"compute", "", lease_pttl_ms} | {"wait", "", lease_pttl_ms} | {"foreign", "", pttl}
-- Example  redis-cli --eval lua/get_or_lock.lua cache:{user:1} cache:{user:1}:lock , ra:lease:0f1e 5000

-- "compute": the caller now holds the lease (or already held it: an
-- idempotent retry). Only a holder whose lease is still valid may store
-- (set_and_unlock.lua); invalidation deletes the lease, which revokes it.
-- "wait": another holder computes. "foreign": the lease key holds a value
-- the library did not write (a user key of that name); it is never changed.
-- "hit" carries the value's PTTL and, with KEYS[3], the last measured
-- compute time (ms), so the client can refresh early (XFetch).
local token, ttl = ARGV[1], ARGV[2]
local prefix = 'ra:lease:'
if not (token and token:sub(1, #prefix) == prefix and #token > #prefix) then
  return redis.error_reply('ERR get_or_lock: token must start with ' .. prefix)
end
if not (ttl and #ttl <= 15 and ttl:match('^[1-9]%d*$')) then
  return redis.error_reply('ERR get_or_lock: ttl must be an integer of ms from 1 to 999999999999999, got ' .. tostring(ttl))
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
local held = redis.pcall('GET', KEYS[2])
local pttl = redis.call('PTTL', KEYS[2])
if held == token then
  return {'compute', '', pttl}
end
if type(held) ~= 'string' or held:sub(1, #prefix) ~= prefix then
  return {'foreign', '', pttl}
end
return {'wait', '', pttl}
