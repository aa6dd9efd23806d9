"""The Lua scripts of the Redis frontier: every change that touches several keys runs as one
script, so no other worker ever sees half of it (a URL marked seen but not queued, a counter that
disagrees with the streams).

Key layout under one job (``fetchlab:{JOB}:``; the braces are a Redis Cluster hash tag, so all keys
of a job live in one slot):

=================  ======  ==================================================================
``st``             hash    URL fingerprint (16 bytes) -> ``0`` known (queued or leased),
                           ``2`` done, ``3`` failed: the dedup memory of the whole job
``bands``          zset    stream names by lease order (priority desc, then depth)
``q:P:D``          stream  queued URLs of priority P and depth D; consumer group ``g``; an
                           entry is leased while it is in the group's pending list (PEL)
``delayed``        zset    retries waiting for their not-before time (score), JSON members
``counts``         hash    ``q`` ``l`` ``d`` ``f``: queued, leased, done, failed
``wstat``          hash    ``NAME:d`` / ``NAME:f``: done / failed per worker
=================  ======  ==================================================================

Scripts build stream key names from ``ARGV[1]`` (the job prefix): every key of a job shares its
hash slot, which is what a cluster needs.
"""

from __future__ import annotations

__all__ = ["ACK", "ADD", "LEASE", "REQUEUE"]

# The helper every script that writes a stream shares: create the band (its stream and consumer
# group) the first time a URL of that priority and depth is queued.
_BAND = """
local function band_key(prefix, band, score)
  local key = prefix .. 'q:' .. band
  if redis.call('ZADD', prefix .. 'bands', 'NX', score, band) == 1 then
    redis.pcall('XGROUP', 'CREATE', key, 'g', '0', 'MKSTREAM')
  end
  return key
end
"""

# ARGV: prefix, then (fp, url, depth, parent, priority, band, score) * n. Returns new count.
ADD = (
    _BAND
    + """
local prefix = ARGV[1]
local new = 0
for i = 2, #ARGV, 7 do
  if redis.call('HSETNX', prefix .. 'st', ARGV[i], '0') == 1 then
    local key = band_key(prefix, ARGV[i + 5], ARGV[i + 6])
    redis.call('XADD', key, '*', 'u', ARGV[i + 1], 'd', ARGV[i + 2], 'p', ARGV[i + 3],
               'a', '0', 'r', ARGV[i + 4])
    new = new + 1
  end
end
if new > 0 then redis.call('HINCRBY', prefix .. 'counts', 'q', new) end
return new
"""
)

# ARGV: prefix, consumer, n, now. Moves due retries into their streams, then reads new entries
# band by band. Returns {band, id, fields} triples.
LEASE = (
    _BAND
    + """
local prefix, me, n, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local due = redis.call('ZRANGEBYSCORE', prefix .. 'delayed', '-inf', now, 'LIMIT', 0, 1000)
for _, m in ipairs(due) do
  local e = cjson.decode(m)
  local key = band_key(prefix, e.b, e.s)
  redis.call('XADD', key, '*', 'u', e.u, 'd', e.d, 'p', e.p, 'a', e.a, 'r', e.r)
  redis.call('ZREM', prefix .. 'delayed', m)
end
local out = {}
local bands = redis.call('ZRANGE', prefix .. 'bands', 0, -1)
for _, b in ipairs(bands) do
  if #out >= n then break end
  local got = redis.call('XREADGROUP', 'GROUP', 'g', me, 'COUNT', n - #out,
                         'STREAMS', prefix .. 'q:' .. b, '>')
  if got then
    for _, e in ipairs(got[1][2]) do out[#out + 1] = {b, e[1], e[2]} end
  end
end
if #out > 0 then
  redis.call('HINCRBY', prefix .. 'counts', 'q', -#out)
  redis.call('HINCRBY', prefix .. 'counts', 'l', #out)
end
return out
"""
)

# ARGV: prefix, consumer, state ('2' done / '3' failed), then (band, id, fp) * n. XACK first: an
# entry no longer pending (acked by whoever took it over) changes nothing. Returns acked count.
ACK = """
local prefix, me, state = ARGV[1], ARGV[2], ARGV[3]
local acked = 0
for i = 4, #ARGV, 3 do
  local key = prefix .. 'q:' .. ARGV[i]
  if redis.call('XACK', key, 'g', ARGV[i + 1]) == 1 then
    redis.call('XDEL', key, ARGV[i + 1])
    redis.call('HSET', prefix .. 'st', ARGV[i + 2], state)
    acked = acked + 1
  end
end
if acked > 0 then
  local field = (state == '2') and 'd' or 'f'
  redis.call('HINCRBY', prefix .. 'counts', 'l', -acked)
  redis.call('HINCRBY', prefix .. 'counts', field, acked)
  redis.call('HINCRBY', prefix .. 'wstat', me .. ':' .. field, acked)
end
return acked
"""

# ARGV: prefix, then (band, id, not_before, json entry, score) * n: a leased entry goes back to
# the queue (a retry with its not-before time, or a released lease at once). Returns requeued.
REQUEUE = (
    _BAND
    + """
local prefix = ARGV[1]
local moved = 0
for i = 2, #ARGV, 5 do
  local key = prefix .. 'q:' .. ARGV[i]
  if redis.call('XACK', key, 'g', ARGV[i + 1]) == 1 then
    redis.call('XDEL', key, ARGV[i + 1])
    local e = cjson.decode(ARGV[i + 3])
    if tonumber(ARGV[i + 2]) > 0 then
      redis.call('ZADD', prefix .. 'delayed', ARGV[i + 2], ARGV[i + 3])
    else
      local k = band_key(prefix, e.b, ARGV[i + 4])
      redis.call('XADD', k, '*', 'u', e.u, 'd', e.d, 'p', e.p, 'a', e.a, 'r', e.r)
    end
    moved = moved + 1
  end
end
if moved > 0 then
  redis.call('HINCRBY', prefix .. 'counts', 'l', -moved)
  redis.call('HINCRBY', prefix .. 'counts', 'q', moved)
end
return moved
"""
)
