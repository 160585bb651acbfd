-- One key's throttling bucket (GCRA), for a key whose throttling quota is
-- less than the live nodes: a share per node would be under one call, and
-- every node admitting its one call would pass more than the quota at once.
-- KEYS[1]: the key's prefix, gatehouse:q:{<clientId>}
-- ARGV: 1 the quota (calls per second, at least 1), 2 the time in ms for
--       tests ('' reads Redis's TIME).
-- Answers {1 admitted or 0, ms until the next call may pass, whole calls left}.
local now = now_ms(ARGV[2])
local k = KEYS[1] .. ':tat'
local e = math.ceil(1000 / tonumber(ARGV[1]))
local burst = math.max(1000, e)
local tat = math.max(tonumber(redis.call('GET', k) or '0'), now)
local nxt = tat + e
if nxt - now > burst then
  return {0, nxt - now - burst, 0}
end
redis.call('SET', k, nxt, 'PX', nxt - now + 1000)
return {1, 0, math.floor((burst - (nxt - now)) / e)}
