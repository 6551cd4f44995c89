-- set_value.lua: SET a value and revoke the compute lease of its key when written.
-- KEYS[1]  value key  KEYS[2] its lease (lock) key, same slot
-- ARGV[1]  the value  ARGV[2..] the SET options after it: [PX ms] [NX|XX]
-- Returns  "OK" when written, nil when NX/XX prevented it
-- Example  redis-cli --eval lua/set_value.lua cache:{u:1} cache:{u:1}:lock , hello PX 60000
-- A computation that started before this write cannot store over it.
if #ARGV < 1 or #ARGV > 8 then
  return redis.error_reply('ERR set_value: expected value and up to 7 SET options')
end
local reply = redis.call('SET', KEYS[1], unpack(ARGV))
if reply then
  local prefix = 'ra:lease:'
  local held = redis.pcall('GET', KEYS[2])
  if type(held) == 'string' and held:sub(1, #prefix) == prefix then
    redis.call('DEL', KEYS[2])
  end
end
return reply
