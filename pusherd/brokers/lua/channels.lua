-- List an app's occupied channels starting with a prefix.
-- KEYS: app's channel index
-- ARGV: app_id, prefix, key prefix (e.g. 'pusherd')
-- Returns a flat list: channel, subscription count, presence user count, ...
local out = {}
local prefix = ARGV[2]
for _, channel in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if string.sub(channel, 1, #prefix) == prefix then
    local tail = ARGV[1] .. ':' .. channel
    local count = redis.call('HLEN', ARGV[3] .. ':s:' .. tail)
    if count > 0 then
      out[#out + 1] = channel
      out[#out + 1] = count
      out[#out + 1] = redis.call('HLEN', ARGV[3] .. ':pu:' .. tail)
    end
  end
end
return out
