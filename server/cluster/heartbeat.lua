-- Records that a node is alive and answers how many are.
-- ARGV: 1 node name, 2 the time in ms for tests ('' reads Redis's TIME),
--       3 1 when the node leaves.
-- Answers {live nodes (seen in the last 5 s), now ms}.
local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
if ARGV[3] == '1' then
  redis.call('ZREM', 'gatehouse:nodes', ARGV[1])
else
  redis.call('ZADD', 'gatehouse:nodes', now, ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', 'gatehouse:nodes', '-inf', now - 60000)
return {redis.call('ZCOUNT', 'gatehouse:nodes', now - 5000, '+inf'), now}
