-- set_and_unlock.lua: store a computed value, then release the lock if we still hold it.
-- KEYS[1]  value key  KEYS[2] lock key (same slot)  KEYS[3] optional: compute-time key (same slot)
-- ARGV[1]  lock token  ARGV[2] value  ARGV[3] ttl ms (integer >= 0; 0 or "" = no expiry)  ARGV[4] compute ms (with KEYS[3])
-- Returns  {stored 1, unlocked 1|0}
-- Example  redis-cli --eval lua/set_and_unlock.lua cache:{user:1} cache:{user:1}:lock , tok-1 hello 60000

-- The value is stored even if our lock expired or was taken over: it is
-- freshly computed, so last writer wins. Only the lock is token-guarded.
-- KEYS[3] keeps the measured compute time next to the value, with the same
-- TTL, for early refresh (XFetch).
-- No wake-up message: waiters poll with backoff bounded by the lock's PTTL.
local token, value, ttl = ARGV[1], ARGV[2], ARGV[3] or ''
if not value then
  return redis.error_reply('ERR set_and_unlock: missing value')
end
if not (ttl == '' or ttl == '0' or (#ttl <= 15 and ttl:match('^[1-9]%d*$'))) then
  return redis.error_reply('ERR set_and_unlock: ttl must be an integer of ms >= 0')
end
local delta = ARGV[4]
if KEYS[3] and not (delta and #delta <= 15 and delta:match('^%d+$')) then
  return redis.error_reply('ERR set_and_unlock: compute ms must be an integer >= 0')
end
if ttl == '' or ttl == '0' then
  redis.call('SET', KEYS[1], value)
  if KEYS[3] then redis.call('SET', KEYS[3], delta) end
else
  redis.call('SET', KEYS[1], value, 'PX', ttl)
  if KEYS[3] then redis.call('SET', KEYS[3], delta, 'PX', ttl) end
end
local unlocked = 0
if redis.call('GET', KEYS[2]) == token then
  unlocked = redis.call('DEL', KEYS[2])
end
return {1, unlocked}
