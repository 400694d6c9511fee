-- Forget a signed-in socket; return 1 if the user just went offline.
-- KEYS: user's sockets hash, node's item set
-- ARGV: socket_id, node item
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('SREM', KEYS[2], ARGV[2])
if redis.call('HLEN', KEYS[1]) == 0 then
  return 1
end
return 0
