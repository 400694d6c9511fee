-- Return the newest retained events of a channel that are at most max_age old and
-- numbered above since, newest first, as flat (seq, ms, payload, except) quadruples.
-- KEYS: the channel's stream
-- ARGV: limit, max_age in ms, since
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local cutoff = ms - tonumber(ARGV[2])
local since = tonumber(ARGV[3])
local limit = tonumber(ARGV[1])
local out = {}
if limit <= 0 then
  return out
end
local entries = redis.call('XREVRANGE', KEYS[1], '+', tostring(cutoff) .. '-0', 'COUNT', limit)
for _, entry in ipairs(entries) do
  local fields = entry[2]
  local values = {}
  for i = 1, #fields, 2 do
    values[fields[i]] = fields[i + 1]
  end
  local seq = tonumber(values['s'])
  if seq <= since then
    break
  end
  out[#out + 1] = values['s']
  out[#out + 1] = values['t']
  out[#out + 1] = values['p']
  out[#out + 1] = values['x'] or ''
end
return out
