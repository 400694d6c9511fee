-- Retain one event of a history channel and publish it, numbered, in one step: the
-- number, the stored copy and the pub/sub message can never disagree or reorder.
-- KEYS: the channel's stream, its sequence counter
-- ARGV: max_events, max_age in ms, pub/sub channel, envelope head byte, envelope rest
--       (except-socket-id length, id, payload), payload, except socket id, "1" to
--       publish here ("0" on Redis Cluster: the shard channel lives in another slot, and
--       the caller SPUBLISHes the numbered envelope itself)
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local max_age = tonumber(ARGV[2])
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
  's', seq, 't', ms, 'p', ARGV[6], 'x', ARGV[7])
redis.call('XTRIM', KEYS[1], 'MINID', '~', tostring(ms - max_age) .. '-0')
redis.call('PEXPIRE', KEYS[1], max_age)
-- the counter outlives the stream, so an idle channel never reuses a number that a
-- subscriber may still hold
redis.call('PEXPIRE', KEYS[2], max_age + 600000)
if ARGV[8] == '1' then
  local digits = tostring(seq)
  redis.call('PUBLISH', ARGV[3], ARGV[4] .. string.char(#digits) .. digits .. ARGV[5])
end
return seq
