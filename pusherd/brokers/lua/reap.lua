-- Remove every entry a node added, atomically.
-- KEYS[1]: the node registry (declared so Redis Cluster routes the call; every key
-- this script touches shares its hash slot)
-- ARGV[1]: the node to drop unconditionally (graceful close), or '' to drop every
-- registered node whose heartbeat key has expired.
-- ARGV[2]: the key prefix ('pusherd', or '{pusherd}' on Redis Cluster)
-- Returns a flat list of events: app_id, kind, channel, user_id ('' if none), ...
-- Node items are newline-separated fields:
--   s app channel socket | p app channel socket | c app socket | u app socket user
-- A user id may contain anything, newlines included: it is last, and the fourth field
-- takes the rest of the item.
local events = {}
local P = ARGV[2] .. ':'

local function split(item)
  local fields, start = {}, 1
  while true do
    local i = #fields < 3 and string.find(item, '\n', start, true)
    if not i then
      fields[#fields + 1] = string.sub(item, start)
      return fields
    end
    fields[#fields + 1] = string.sub(item, start, i - 1)
    start = i + 1
  end
end

local function drop_presence(app, channel, socket)
  local tail = app .. ':' .. channel
  local user = redis.call('HGET', P .. 'ps:' .. tail, socket)
  if not user then
    return
  end
  redis.call('HDEL', P .. 'ps:' .. tail, socket)
  if redis.call('HINCRBY', P .. 'pc:' .. tail, user, -1) <= 0 then
    redis.call('HDEL', P .. 'pc:' .. tail, user)
    redis.call('HDEL', P .. 'pu:' .. tail, user)
    for _, v in ipairs({app, 'member_removed', channel, user}) do
      events[#events + 1] = v
    end
  end
end

local function drop_subscriber(app, channel, socket)
  local key = P .. 's:' .. app .. ':' .. channel
  if redis.call('HDEL', key, socket) == 1 and redis.call('HLEN', key) == 0 then
    redis.call('SREM', P .. 'chs:' .. app, channel)
    for _, v in ipairs({app, 'channel_vacated', channel, ''}) do
      events[#events + 1] = v
    end
  end
end

local function drop(node)
  local items_key = P .. 'items:' .. node
  local subscribers = {}
  for _, item in ipairs(redis.call('SMEMBERS', items_key)) do
    local f = split(item)
    if f[1] == 'p' then
      drop_presence(f[2], f[3], f[4])
    elseif f[1] == 's' then
      subscribers[#subscribers + 1] = f
    elseif f[1] == 'c' then
      redis.call('HDEL', P .. 'c:' .. f[2], f[3])
    elseif f[1] == 'u' then
      redis.call('HDEL', P .. 'u:' .. f[2] .. ':' .. f[4], f[3])
    end
  end
  -- members leave before their channel is reported vacated
  for _, f in ipairs(subscribers) do
    drop_subscriber(f[2], f[3], f[4])
  end
  redis.call('DEL', items_key)
  redis.call('DEL', P .. 'node:' .. node)
  redis.call('DEL', P .. 'listen:' .. node)
  redis.call('SREM', KEYS[1], node)
end

if ARGV[1] ~= '' then
  drop(ARGV[1])
else
  for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    if redis.call('EXISTS', P .. 'node:' .. node) == 0 then
      drop(node)
    end
  end
end
return events
