-- Uncount a socket; return the count after, or -1 if it was not counted.
-- KEYS: subscribers hash, app's channel index, node's item set
-- ARGV: socket_id, node item, channel
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then
  return -1
end
redis.call('SREM', KEYS[3], ARGV[2])
local count = redis.call('HLEN', KEYS[1])
if count == 0 then
  redis.call('SREM', KEYS[2], ARGV[3])
end
return count
