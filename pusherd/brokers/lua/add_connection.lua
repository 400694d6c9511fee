-- Count a connection unless the app's cluster-wide limit is reached; return 1 or 0.
-- KEYS: app's connections hash, node's item set
-- ARGV: socket_id, node_id, limit (0 = none), node item
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  return 1
end
local limit = tonumber(ARGV[3])
if limit > 0 and redis.call('HLEN', KEYS[1]) >= limit then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[4])
return 1
