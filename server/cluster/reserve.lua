-- Reserves a slice of one key's remaining daily and monthly quota for a
-- node, sets the node's outage budget, and takes the node's report of what
-- it did with what it held.
--
-- Per key, generation and period, a hash holds: taken (calls reserved or
-- admitted), calls (calls admitted), h:<node> (what the node holds unused),
-- b:<node> and B (each node's outage budget and their sum). Invariant:
-- taken + B <= limit, so that the slices and the budgets together never
-- admit more than the limit, even while Redis is unreachable.
--
-- KEYS[1]: the key's prefix, gatehouse:q:{<clientId>}
-- ARGV:
--  1 node name              2 generation the node's report belongs to
--  3 day boundary (ms)      4 day code before it     5 day code from it
--  6 month boundary (ms)    7 month code before it   8 month code from it
--  9 daily limit           10 monthly limit         11 calls wanted
-- 12 day code of the report  13 used from holdings  14 admitted from the budget
-- 15 month code of the report
-- 16 give back all holdings and the budget (1) or not (0)
-- 17 the time in ms, for tests ('' reads Redis's TIME)
-- 18 live nodes            19 client id (usage history)
-- 20 the report's sequence number: a report is applied once, however often
--    a node that lost an answer sends it
-- 21 this run of the node (its sequence numbers start anew each run)
-- 22 what the node may still admit from its budget while this call is on
--    its way (-1: leave the budget as it is)
-- Answers {generation, now ms, day, month, granted, day taken, month taken,
--          day calls, month calls, budget, day budgets, month budgets,
--          the budget the node should keep to}.
local p = KEYS[1]
local now = now_ms(ARGV[17])
local gen = tonumber(redis.call('GET', p .. ':gen') or '0')
local day = ARGV[5]
if now < tonumber(ARGV[3]) then day = ARGV[4] end
local mon = ARGV[8]
if now < tonumber(ARGV[6]) then mon = ARGV[7] end
local h = 'h:' .. ARGV[1]
local b = 'b:' .. ARGV[1]
local dk = p .. ':' .. gen .. ':d:' .. day
local mk = p .. ':' .. gen .. ':m:' .. mon

local function num(k, f)
  return tonumber(redis.call('HGET', k, f) or '0')
end
-- setBudget sets the node's budget in hash k, keeping B the sum.
local function setBudget(k, v)
  local old = num(k, b)
  if v ~= old then
    redis.call('HINCRBY', k, 'B', v - old)
    if v == 0 then redis.call('HDEL', k, b) else redis.call('HSET', k, b, v) end
  end
end

local used, owed = tonumber(ARGV[13]), tonumber(ARGV[14])
local rday, rmon = ARGV[12], ARGV[15]
local seq = tonumber(ARGV[20])
if seq > 0 then
  local run = ARGV[1] .. '#' .. ARGV[21]
  local last = tonumber(redis.call('HGET', p .. ':seq', run) or '0')
  if seq <= last then
    used, owed = 0, 0
  else
    redis.call('HSET', p .. ':seq', run, seq)
    redis.call('PEXPIRE', p .. ':seq', 33 * 86400000)
  end
end
if rday ~= '' and used + owed > 0 then
  -- The usage history counts every admitted call, across resets.
  redis.call('HINCRBY', 'gatehouse:usage', ARGV[19] .. '|' .. rday, used + owed)
end
if tonumber(ARGV[2]) == gen and rday ~= '' then
  local rdk = p .. ':' .. gen .. ':d:' .. rday
  local rmk = p .. ':' .. gen .. ':m:' .. rmon
  for _, k in ipairs({rdk, rmk}) do
    if used + owed > 0 then
      redis.call('HINCRBY', k, 'calls', used + owed)
      redis.call('HINCRBY', k, 'taken', owed)
      redis.call('HSET', k, h, math.max(num(k, h) - used, 0))
      setBudget(k, math.max(num(k, b) - owed, 0))
    end
  end
  if rday ~= day then
    -- The day turned: what the node held for the old day is void, and
    -- its month share goes back to the month it was taken from.
    local held = num(rdk, h)
    if held > 0 then
      redis.call('HDEL', rdk, h)
      redis.call('HINCRBY', rmk, 'taken', -held)
      redis.call('HINCRBY', rmk, h, -held)
    end
    setBudget(rdk, 0)
    setBudget(rmk, 0)
  end
end
if ARGV[16] == '1' then
  local held = num(dk, h)
  if held > 0 then
    redis.call('HINCRBY', dk, 'taken', -held)
    redis.call('HINCRBY', mk, 'taken', -held)
  end
  redis.call('HDEL', dk, h)
  redis.call('HDEL', mk, h)
end

-- What is free once every other node's budget is set aside (this node's
-- own is set again below).
local live = math.max(tonumber(ARGV[18]), 1)
local td, tm = num(dk, 'taken'), num(mk, 'taken')
local free = math.min(tonumber(ARGV[9]) - td - (num(dk, 'B') - num(dk, b)),
                      tonumber(ARGV[10]) - tm - (num(mk, 'B') - num(mk, b)))
local want = tonumber(ARGV[11])
local grant = 0
if want > 0 and free > 0 then
  -- Never more than half of what is free divided by the live nodes, so
  -- that no node is starved near the limit.
  grant = math.min(want, math.max(1, math.floor(free / (2 * live))), free)
  redis.call('HINCRBY', dk, 'taken', grant)
  redis.call('HINCRBY', mk, 'taken', grant)
  redis.call('HINCRBY', dk, h, grant)
  redis.call('HINCRBY', mk, h, grant)
  td, tm, free = td + grant, tm + grant, free - grant
end
-- The outage budget: a share of what is free, divided by the live nodes
-- (none near the limit, where every call asks), and never less than what
-- the node may be admitting from its last one while this call is on its
-- way. The node keeps to the target; the budget follows at its next call.
local cap = tonumber(ARGV[22])
local target = 0
if free >= 4 * live then target = math.floor(free / (2 * live)) end
local budget = num(dk, b)
if ARGV[16] == '1' then
  budget, target = 0, 0
elseif cap >= 0 then
  budget = math.min(math.max(free, 0), math.max(cap, target))
end
setBudget(dk, budget)
setBudget(mk, budget)
redis.call('PEXPIRE', dk, 3 * 86400000)
redis.call('PEXPIRE', mk, 33 * 86400000)
return {gen, now, day, mon, grant, td, tm, num(dk, 'calls'), num(mk, 'calls'), budget, num(dk, 'B'), num(mk, 'B'), math.min(budget, target)}
