-- try_lock.lua: take a compute lease if it is free (early refresh of a value that exists).
-- KEYS[1]  lease (lock) key
-- ARGV[1]  lease token ("ra:lease:" + random hex)  ARGV[2] lease ttl ms (integer > 0, ≤ 15 digits)
-- Returns  1 taken (or already ours: an idempotent retry) | 0 held by another holder | -1 a foreign value
-- Example  redis-cli --eval lua/try_lock.lua cache:{user:1}:lock , ra:lease:0f1e 5000
local token, ttl = ARGV[1], ARGV[2]
local prefix = 'ra:lease:'
if not (token and token:sub(1, #prefix) == prefix and #token > #prefix) then
  return redis.error_reply('ERR try_lock: token must start with ' .. prefix)
end
if not (ttl and #ttl <= 15 and ttl:match('^[1-9]%d*$')) then
  return redis.error_reply('ERR try_lock: ttl must be an integer of ms from 1 to 999999999999999')
end
if redis.call('SET', KEYS[1], token, 'NX', 'PX', ttl) then
  return 1
end
local held = redis.pcall('GET', KEYS[1])
if held == token then
  return 1
end
if type(held) ~= 'string' or held:sub(1, #prefix) ~= prefix then
  return -1
end
return 0
