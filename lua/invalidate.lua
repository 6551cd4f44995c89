-- invalidate.lua: delete cached values and revoke their compute leases.
-- KEYS[1]  value key  KEYS[2] its lease (lock) key  KEYS[3] its compute-time key (one slot); more triples may follow
-- ARGV[]   none
-- Returns  how many value keys existed
-- Example  redis-cli --eval lua/invalidate.lua cache:{u:1} cache:{u:1}:lock cache:{u:1}:xf
-- Deleting a lease revokes it: a computation that started before this call
-- can no longer store (set_and_unlock.lua checks its token). A lease key
-- holding a value the library did not write is left alone.
if #KEYS % 3 ~= 0 then
  return redis.error_reply('ERR invalidate: keys come in triples (value, lease, compute time)')
end
local prefix = 'ra:lease:'
local removed = 0
for i = 1, #KEYS, 3 do
  removed = removed + redis.call('DEL', KEYS[i])
  redis.call('DEL', KEYS[i + 2])
  local held = redis.pcall('GET', KEYS[i + 1])
  if type(held) == 'string' and held:sub(1, #prefix) == prefix then
    redis.call('DEL', KEYS[i + 1])
  end
end
return removed
