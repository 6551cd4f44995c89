-- mset_expire.lua: set N keys to their values with one TTL, all or nothing.
-- KEYS[1..N]  the keys (one hash slot)
-- ARGV[1]  ttl ms (integer > 0)  ARGV[2..N+1] the values, in KEYS order
-- Returns  number of keys written (N)
-- Example  redis-cli --eval lua/mset_expire.lua cache:{user:1}:a cache:{user:1}:b , 60000 v1 v2

-- Everything is checked before the first write; SET cannot fail after that,
-- so no partial write is possible. One SET PX per key: Redis has no multi-key
-- expire, so MSET (in unpack chunks) + N PEXPIRE is more calls, measured no
-- faster, and replicates more; a plain loop also needs no unpack at all.
local ttl = ARGV[1]
if not (ttl and #ttl <= 15 and ttl:match('^[1-9]%d*$')) then
  return redis.error_reply('ERR mset_expire: ttl must be an integer of ms > 0')
end
if #ARGV - 1 ~= #KEYS then
  return redis.error_reply('ERR mset_expire: expected one value per key')
end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i + 1], 'PX', ttl)
end
return #KEYS
