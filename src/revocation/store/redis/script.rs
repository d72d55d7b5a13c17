//! The Lua scripts every write runs.
//!
//! [`WRITE`] merges an entry into its key (the later of each time, so a write
//! never shortens another), sets it to expire at its `until` and, on a
//! standalone Redis, appends the merged value to the change log in the same
//! atomic step. On a Cluster the entry key and the log live in different
//! slots, so the append is a second script, [`APPEND`], run after the first
//! has answered; a write counts as stored only once both have.

/// KEYS[1] entry key, KEYS[2] log (absent on a Cluster);
/// ARGV: until, cutoff ("" for a token), now (s), writer time (ms),
/// log retention (ms). Returns the merged value.
pub const WRITE: &str = r#"
local until_new = tonumber(ARGV[1])
local cutoff_new = tonumber(ARGV[2])
local cur = redis.call('GET', KEYS[1])
if cur then
  local a, b = string.match(cur, '^(%-?%d+) (%-?%d+)$')
  if a then
    if cutoff_new and tonumber(a) > cutoff_new then cutoff_new = tonumber(a) end
    if tonumber(b) > until_new then until_new = tonumber(b) end
  else
    local u = tonumber(cur)
    if u and u > until_new then until_new = u end
  end
end
local value
if cutoff_new then
  value = string.format('%d %d', cutoff_new, until_new)
else
  value = string.format('%d', until_new)
end
if until_new > tonumber(ARGV[3]) then
  redis.call('SET', KEYS[1], value, 'EXAT', until_new)
end
if KEYS[2] then
  local t = redis.call('TIME')
  local min = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[5])
  if min < 0 then min = 0 end
  redis.call('XADD', KEYS[2], 'MINID', '~', string.format('%d', min), '*',
    'k', KEYS[1], 'v', value, 't', ARGV[4])
end
return value
"#;

/// KEYS[1] log; ARGV: entry key, merged value, writer time (ms), log
/// retention (ms). Appends one entry, trimming what is older than retention.
pub const APPEND: &str = r#"
local t = redis.call('TIME')
local min = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[4])
if min < 0 then min = 0 end
return redis.call('XADD', KEYS[1], 'MINID', '~', string.format('%d', min), '*',
  'k', ARGV[1], 'v', ARGV[2], 't', ARGV[3])
"#;
