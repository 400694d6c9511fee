-- Remove a socket from a presence channel; return the member json if that was the
-- user's last socket cluster-wide, else nil.
-- KEYS: members hash, counts hash, sockets hash, node's item set
-- ARGV: socket_id, node item
local user = redis.call('HGET', KEYS[3], ARGV[1])
if not user then
  return false
end
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[2])
if redis.call('HINCRBY', KEYS[2], user, -1) > 0 then
  return false
end
redis.call('HDEL', KEYS[2], user)
local member = redis.call('HGET', KEYS[1], user)
redis.call('HDEL', KEYS[1], user)
return member
