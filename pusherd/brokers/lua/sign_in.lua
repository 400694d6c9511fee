-- Record a signed-in socket; return 1 if the user just came online.
-- KEYS: user's sockets hash, node's item set
-- ARGV: socket_id, node_id, node item
local was_offline = redis.call('HLEN', KEYS[1]) == 0
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
if was_offline then
  return 1
end
return 0
