-- Count a socket on a channel; return the cluster-wide count after.
-- KEYS: subscribers hash, app's channel index, node's item set
-- ARGV: socket_id, node_id, channel, node item
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[4])
return redis.call('HLEN', KEYS[1])
