"""The Lua scripts behind RedisKeyLimits: each decision one script, so atomic and one round trip.

Keys of one API key share the hash tag `{name}` (one slot in a Redis Cluster too):
- `mixtral:{name}:buckets`, a hash: `r`, `r_at` (requests bucket level and when it was set), `t`,
  `t_at` (tokens). It expires after two idle minutes: by then both buckets are full anyway.
- `mixtral:{name}:flights`, a sorted set: one member `<admitted at>:<id>` per request in flight,
  scored by when it stops counting if its replica never gives it back.
- `mixtral:{name}:day:<YYYY-MM-DD>`, a hash: `requests`, `prompt_tokens`, `completion_tokens`,
  `tokens` (their sum); `mixtral:{name}:month:<YYYY-MM>`, a hash: `tokens`. Kept `USAGE_TTL_S`.

Numbers go back to Python as strings: Redis turns a Lua number into an integer, cutting fractions.
"""

from __future__ import annotations

USAGE_TTL_S = 400 * 86400
BUCKET_TTL_MS = 120_000

# KEYS: buckets, flights, day, month.
# ARGV: now, rpm, tpm, concurrent, day quota, month quota (0: none), held tokens, member, the time
# it stops counting, and that in seconds from now (the set's time to live: relative, so that it
# holds whatever the replicas' clocks say).
# Returns {"ok"}, {"day"}, {"month"}, {"concurrency", members...}, {"requests"|"tokens", wait}.
TAKE = """
local now = tonumber(ARGV[1])
local rpm, tpm, conc = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local dayq, monthq, held = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
if dayq > 0 and tonumber(redis.call('HGET', KEYS[3], 'tokens') or '0') >= dayq then
  return {'day'}
end
if monthq > 0 and tonumber(redis.call('HGET', KEYS[4], 'tokens') or '0') >= monthq then
  return {'month'}
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if conc > 0 and redis.call('ZCARD', KEYS[2]) >= conc then
  return {'concurrency', unpack(redis.call('ZRANGE', KEYS[2], 0, conc - 1))}
end
local b = redis.call('HMGET', KEYS[1], 'r', 'r_at', 't', 't_at')
local function level(value, at, limit)
  if not value then return limit end
  return math.min(limit, tonumber(value) + math.max(0, now - tonumber(at)) * limit / 60)
end
local r, t
if rpm > 0 then
  r = level(b[1], b[2], rpm)
  if r < 1 then return {'requests', tostring((1 - r) * 60 / rpm)} end
end
if tpm > 0 then
  t = level(b[3], b[4], tpm)
  if t < held then return {'tokens', tostring((held - t) * 60 / tpm)} end
end
if rpm > 0 then redis.call('HSET', KEYS[1], 'r', tostring(r - 1), 'r_at', ARGV[1]) end
if tpm > 0 then redis.call('HSET', KEYS[1], 't', tostring(t - held), 't_at', ARGV[1]) end
if rpm > 0 or tpm > 0 then redis.call('PEXPIRE', KEYS[1], BUCKET_TTL_MS) end
redis.call('ZADD', KEYS[2], ARGV[9], ARGV[8])
redis.call('EXPIRE', KEYS[2], ARGV[10])
return {'ok'}
""".replace("BUCKET_TTL_MS", str(BUCKET_TTL_MS))

# KEYS: buckets, flights, day, month.
# ARGV: member, now, rpm, tpm (0: none), held tokens, unused tokens, served (1/0), prompt tokens,
# completion tokens. A served request's unused tokens come back and its usage is added; one the
# seats refused gives back all it took.
GIVE_BACK = """
redis.call('ZREM', KEYS[2], ARGV[1])
local now = tonumber(ARGV[2])
local function refund(field, at_field, limit, amount)
  if limit <= 0 or amount <= 0 then return end
  local b = redis.call('HMGET', KEYS[1], field, at_field)
  if not b[1] then return end
  local level = tonumber(b[1]) + math.max(0, now - tonumber(b[2])) * limit / 60 + amount
  redis.call('HSET', KEYS[1], field, tostring(math.min(limit, level)), at_field, ARGV[2])
end
local rpm, tpm = tonumber(ARGV[3]), tonumber(ARGV[4])
if ARGV[7] ~= '1' then
  refund('r', 'r_at', rpm, 1)
  refund('t', 't_at', tpm, tonumber(ARGV[5]))
  return 0
end
refund('t', 't_at', tpm, tonumber(ARGV[6]))
local prompt, completion = tonumber(ARGV[8]), tonumber(ARGV[9])
redis.call('HINCRBY', KEYS[3], 'requests', 1)
redis.call('HINCRBY', KEYS[3], 'prompt_tokens', prompt)
redis.call('HINCRBY', KEYS[3], 'completion_tokens', completion)
redis.call('HINCRBY', KEYS[3], 'tokens', prompt + completion)
redis.call('EXPIRE', KEYS[3], USAGE_TTL_S)
redis.call('HINCRBY', KEYS[4], 'tokens', prompt + completion)
redis.call('EXPIRE', KEYS[4], USAGE_TTL_S)
return 1
""".replace("USAGE_TTL_S", str(USAGE_TTL_S))


def key_names(key: str, day: str) -> list[str]:
    """The KEYS of both scripts for API key `key` on UTC day `day` (YYYY-MM-DD)."""
    base = f"mixtral:{{{key}}}"
    return [f"{base}:buckets", f"{base}:flights", f"{base}:day:{day}", f"{base}:month:{day[:7]}"]


def day_key(key: str, day: str) -> str:
    return f"mixtral:{{{key}}}:day:{day}"
