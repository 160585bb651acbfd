-- Records that a node is alive and answers how many are.
-- ARGV: 1 node name, 2 the time in ms for tests ('' reads Redis's TIME),
--       3 1 when the node leaves.
-- Answers {live nodes (seen in the last 5 s), now ms}.
local now = now_ms(ARGV[2])
if ARGV[3] == '1' then
  redis.call('ZREM', 'gatehouse:nodes', ARGV[1])
else
  redis.call('ZADD', 'gatehouse:nodes', now, ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', 'gatehouse:nodes', '-inf', now - 60000)
return {redis.call('ZCOUNT', 'gatehouse:nodes', now - 5000, '+inf'), now}
