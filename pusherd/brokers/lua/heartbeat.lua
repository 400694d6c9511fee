-- Refresh a node's heartbeat; return 1 if the node was not registered (first beat,
-- reaped while alive, or Redis restarted empty), so it must re-register its state.
-- KEYS: node's heartbeat key, node registry
-- ARGV: node_id, ttl in milliseconds
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
return redis.call('SADD', KEYS[2], ARGV[1])
