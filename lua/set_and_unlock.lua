-- set_and_unlock.lua: store a computed value if the caller's lease is still valid, and release it.
-- KEYS[1]  value key  KEYS[2] lease (lock) key, same slot  KEYS[3] optional: compute-time key, same slot
-- ARGV[1]  lease token  ARGV[2] value  ARGV[3] ttl ms (0 or "" = no expiry, else ≤ 15 digits)  ARGV[4] compute ms (with KEYS[3])
-- Returns  {stored 1|0}: 0 when the lease expired, was revoked (invalidated) or taken over
-- Example  redis-cli --eval lua/set_and_unlock.lua cache:{user:1} cache:{user:1}:lock , ra:lease:0f1e hello 60000

-- The fence: a holder whose lease is gone never stores, so a value
-- computed before an invalidation, or by a holder whose lease expired
-- while a newer holder stored, never overwrites what came after it.
-- KEYS[3] keeps the measured compute time next to the value, with the same
-- TTL, for early refresh (XFetch).
local token, value, ttl = ARGV[1], ARGV[2], ARGV[3] or ''
if not value then
  return redis.error_reply('ERR set_and_unlock: missing value')
end
if not (ttl == '' or ttl == '0' or (#ttl <= 15 and ttl:match('^[1-9]%d*$'))) then
  return redis.error_reply('ERR set_and_unlock: ttl must be an integer of ms from 0 to 999999999999999, got ' .. ttl)
end
local delta = ARGV[4]
if KEYS[3] and not (delta and #delta <= 15 and delta:match('^%d+$')) then
  return redis.error_reply('ERR set_and_unlock: compute ms must be an integer >= 0')
end
if redis.pcall('GET', KEYS[2]) ~= token then
  return {0}
end
if ttl == '' or ttl == '0' then
  redis.call('SET', KEYS[1], value)
  if KEYS[3] then redis.call('SET', KEYS[3], delta) end
else
  redis.call('SET', KEYS[1], value, 'PX', ttl)
  if KEYS[3] then redis.call('SET', KEYS[3], delta, 'PX', ttl) end
end
redis.call('DEL', KEYS[2])
return {1}
