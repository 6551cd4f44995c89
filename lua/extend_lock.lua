-- extend_lock.lua: reset a lock's TTL only if it still holds our token (compare-and-extend).
-- KEYS[1]  lock key
-- ARGV[1]  lock token  ARGV[2] ttl ms (integer > 0)
-- Returns  1 if extended, 0 if the lock is lost (absent or another token)
-- Example  redis-cli --eval lua/extend_lock.lua cache:{user:1}:lock , ra:lease:0f1e 5000
local ttl = ARGV[2]
if not (ttl and #ttl <= 15 and ttl:match('^[1-9]%d*$')) then
  return redis.error_reply('ERR extend_lock: ttl must be an integer of ms > 0')
end
if redis.pcall('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ttl)
end
return 0
