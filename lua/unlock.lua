-- unlock.lua: release a lock only if it still holds our token (compare-and-delete).
-- KEYS[1]  lock key
-- ARGV[1]  lock token
-- Returns  1 if deleted, 0 if absent or held by another token
-- Example  redis-cli --eval lua/unlock.lua cache:{user:1}:lock , ra:lease:0f1e
if redis.pcall('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
