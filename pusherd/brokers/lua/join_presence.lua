-- Add a socket to a presence channel; the first socket's member info wins.
-- KEYS: members hash (user -> member json), counts hash (user -> sockets),
--       sockets hash (socket -> user), node's item set
-- ARGV: socket_id, user_id, member json, max_members (0 = no limit), node item
-- Returns {is_new_user, stored member json, flat members, refused}.
local stored = redis.call('HGET', KEYS[1], ARGV[2])
if not stored then
  local max = tonumber(ARGV[4])
  if max > 0 and redis.call('HLEN', KEYS[1]) >= max then
    return {0, ARGV[3], redis.call('HGETALL', KEYS[1]), 1}
  end
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
  stored = ARGV[3]
end
local previous = redis.call('HGET', KEYS[3], ARGV[1])
if previous and previous ~= ARGV[2] then
  -- the socket joined before as another user: that membership ends silently
  if redis.call('HINCRBY', KEYS[2], previous, -1) <= 0 then
    redis.call('HDEL', KEYS[2], previous)
    redis.call('HDEL', KEYS[1], previous)
  end
end
local count = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
if previous ~= ARGV[2] then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
  redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
  redis.call('SADD', KEYS[4], ARGV[5])
end
local is_new = 0
if count == 0 then
  is_new = 1
end
return {is_new, stored, redis.call('HGETALL', KEYS[1]), 0}
