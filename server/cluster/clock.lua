-- Prepended to every script: now_ms is Redis's clock in epoch ms, which every
-- node shares, or the time a test injects (a non-empty argument).
local function now_ms(injected)
  if injected ~= '' then
    return tonumber(injected)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
