//! The two Lua scripts and the encoding of their arguments and replies.
//!
//! The scripts do exactly the arithmetic of [`crate::quota::gcra`] and of the
//! embedded store's entries, in IEEE doubles like Rust's `f64`: a bucket's level
//! is drained by `elapsed × per_ms` (never below 0), a cost fits when
//! `level + cost − capacity ≤ 1e-9 × max(capacity, 1)`, charges are clamped at 0,
//! and an unlimited window's level is 0. Levels are stored and returned with 17
//! significant digits (`%.17g`), which round-trips every double exactly, so Redis
//! and [`MemoryStore`](crate::store::MemoryStore) hold bit-identical levels after
//! the same sequence of calls.
//!
//! Layout: one hash per subject, `{prefix}a:{hex id}` (account) or
//! `{prefix}c:{hex id}` (cluster), with fields `l1`…`l4` (levels, in
//! [`Window`](crate::store::Window) order), `t` (last update, Unix ms) and `i`
//! (when all its buckets will have drained, at most two days after its last
//! charge). A subject read at or after `i` is forgotten, exactly like an idle entry
//! of the embedded store; the key itself expires in Redis' time a second later.
//!
//! Arguments: `ARGV[1]` now (ms), `ARGV[2]` cost or token delta, `ARGV[3]` longest
//! idle time (ms), `ARGV[4]` TTL slack (ms), then per key 8 values: capacity and
//! rate per window, `-` for an unlimited window.

use redis::Value;

use crate::quota::gcra::BucketLimit;
use crate::store::Limits;

/// What both scripts share: argument decoding, draining, charging and writing.
macro_rules! prelude {
    () => {
        r#"
local now = tonumber(ARGV[1])
local amount = tonumber(ARGV[2])
local max_idle = tonumber(ARGV[3])
local slack = tonumber(ARGV[4])
local EPS = 1e-9

local function limits_of(s)
  local out = {}
  for i = 1, 4 do
    local base = 4 + (s - 1) * 8 + (i - 1) * 2
    local c = ARGV[base + 1]
    if c ~= '-' then
      out[i] = { cap = tonumber(c), per = tonumber(ARGV[base + 2]) }
    end
  end
  return out
end

-- Loads a subject and brings its levels to `now` (Entry::bring_to). A subject
-- whose idle time has passed is forgotten. Returns levels, last, idle.
local function load(key, lim)
  local v = redis.call('HMGET', key, 'l1', 'l2', 'l3', 'l4', 't', 'i')
  local last = tonumber(v[5]) or 0
  local idle = tonumber(v[6]) or 0
  if not (idle > now) then
    v = {}
    last = 0
    idle = 0
  end
  local elapsed = now - last
  if elapsed < 0 then elapsed = 0 end
  local lv = {}
  for i = 1, 4 do
    local level = 0
    if lim[i] then
      level = (tonumber(v[i]) or 0) - elapsed * lim[i].per
      if not (level > 0) then level = 0 end
    end
    lv[i] = level
  end
  if now > last then last = now end
  return lv, last, idle
end

local function fits(level, cost, l)
  return level + cost - l.cap <= EPS * math.max(l.cap, 1)
end

-- Entry::charge: add the cost to every limited window, never below 0.
local function charge(lv, lim, costs)
  for i = 1, 4 do
    if lim[i] then
      local level = lv[i] + costs[i]
      if not (level > 0) then level = 0 end
      lv[i] = level
    end
  end
end

local function fmt(x)
  return string.format('%.17g', x)
end

-- Entry::touch: when every bucket will have drained, at most `max_idle` away.
local function idle_after(lv, lim)
  local ttl = 0
  for i = 1, 4 do
    if lim[i] and lv[i] > 0 then
      local r
      if lim[i].per > 0 then r = math.ceil(lv[i] / lim[i].per) else r = max_idle end
      if r > ttl then ttl = r end
    end
  end
  if ttl > max_idle then ttl = max_idle end
  return ttl
end

-- Writes a subject back. After a charge its idle time moves and the key expires
-- (in Redis' own time) a little after it; otherwise both stay as they were.
local function save(key, lv, last, idle, lim, charged)
  if not charged and not (idle > now) then
    return idle
  end
  local ttl = 0
  if charged then
    ttl = idle_after(lv, lim)
    idle = now + ttl
  end
  redis.call('HSET', key, 'l1', fmt(lv[1]), 'l2', fmt(lv[2]), 'l3', fmt(lv[3]),
    'l4', fmt(lv[4]), 't', fmt(last), 'i', fmt(idle))
  if charged then
    redis.call('PEXPIRE', key, ttl + slack)
  end
  return idle
end
"#
    };
}

/// Checks every bucket of every key and charges them all, or none.
///
/// Reply: `[admitted (1/0), then per key: l1, l2, l3, l4, t, i]`, the levels after
/// the charge (admitted) or brought to now (refused), as `%.17g` strings.
pub(super) const ADMIT: &str = concat!(
    prelude!(),
    r#"
local costs = { 1, 1, amount, amount }
local subjects = {}
local ok = true
for s = 1, #KEYS do
  local lim = limits_of(s)
  local lv, last, idle = load(KEYS[s], lim)
  subjects[s] = { lim = lim, lv = lv, last = last, idle = idle }
  for i = 1, 4 do
    if lim[i] and not fits(lv[i], costs[i], lim[i]) then ok = false end
  end
end
local reply = { ok and 1 or 0 }
for s = 1, #KEYS do
  local sub = subjects[s]
  if ok then charge(sub.lv, sub.lim, costs) end
  local idle = save(KEYS[s], sub.lv, sub.last, sub.idle, sub.lim, ok)
  for i = 1, 4 do reply[#reply + 1] = fmt(sub.lv[i]) end
  reply[#reply + 1] = fmt(sub.last)
  reply[#reply + 1] = fmt(idle)
end
return reply
"#
);

/// Adds a token delta to every key's token buckets. Reply: the number of keys.
pub(super) const SETTLE: &str = concat!(
    prelude!(),
    r#"
local costs = { 0, 0, amount, amount }
for s = 1, #KEYS do
  local lim = limits_of(s)
  local lv, last, idle = load(KEYS[s], lim)
  charge(lv, lim, costs)
  save(KEYS[s], lv, last, idle, lim, true)
end
return #KEYS
"#
);

/// A double as Lua's `tonumber` reads it back exactly; non-finite values (which no
/// validated limit produces) are clamped so the script never sees `inf` or `nan`.
pub(super) fn num(x: f64) -> String {
    let x = if x.is_nan() {
        0.0
    } else {
        x.clamp(f64::MIN, f64::MAX)
    };
    // `{:e}` is the shortest representation that round-trips, in a form strtod reads.
    format!("{x:e}")
}

/// The 8 per-key arguments of a subject's limits.
pub(super) fn limit_args(limits: &Limits, out: &mut Vec<String>) {
    for limit in limits {
        match limit {
            Some(BucketLimit { capacity, per_ms }) => {
                out.push(num(*capacity));
                out.push(num(*per_ms));
            }
            None => {
                out.push("-".into());
                out.push("-".into());
            }
        }
    }
}

/// One subject's state as the admit script returned it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct State {
    pub(super) levels: [f64; 4],
    pub(super) last_ms: u64,
    pub(super) idle_at_ms: u64,
}

/// The admit script's reply, decoded.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct AdmitReply {
    pub(super) admitted: bool,
    pub(super) states: Vec<State>,
}

/// Decodes the admit script's reply for `keys` subjects; any other shape is an
/// error message, never a panic.
pub(super) fn parse_admit(value: &Value, keys: usize) -> Result<AdmitReply, String> {
    let Value::Array(items) = value else {
        return Err(format!("admit script: expected an array, got {value:?}"));
    };
    if items.len() != 1 + 6 * keys {
        return Err(format!(
            "admit script: expected {} values, got {}",
            1 + 6 * keys,
            items.len()
        ));
    }
    let admitted = match &items[0] {
        Value::Int(1) => true,
        Value::Int(0) => false,
        other => return Err(format!("admit script: bad flag {other:?}")),
    };
    let mut states = Vec::with_capacity(keys);
    for chunk in items[1..].chunks_exact(6) {
        let mut levels = [0.0; 4];
        for (level, v) in levels.iter_mut().zip(chunk) {
            let x = float(v)?;
            if !x.is_finite() || x < 0.0 {
                return Err(format!("admit script: bad level {x}"));
            }
            *level = x;
        }
        let time = |v: &Value| -> Result<u64, String> {
            let t = float(v)?;
            if !t.is_finite() || t < 0.0 {
                return Err(format!("admit script: bad time {t}"));
            }
            Ok(t as u64)
        };
        states.push(State {
            levels,
            last_ms: time(&chunk[4])?,
            idle_at_ms: time(&chunk[5])?,
        });
    }
    Ok(AdmitReply { admitted, states })
}

fn float(v: &Value) -> Result<f64, String> {
    let text = match v {
        Value::BulkString(b) => std::str::from_utf8(b).map_err(|e| e.to_string())?,
        Value::SimpleString(s) => s.as_str(),
        Value::Int(i) => return Ok(*i as f64),
        Value::Double(d) => return Ok(*d),
        other => return Err(format!("expected a number, got {other:?}")),
    };
    text.trim()
        .parse::<f64>()
        .map_err(|_| format!("expected a number, got {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_through_text() {
        for x in [
            0.0,
            1.0,
            1e-9,
            1.0 / 60_000.0,
            2000.0 / 86_400_000.0,
            1e300,
            123.456,
        ] {
            let s = num(x);
            assert_eq!(s.parse::<f64>().expect("parses"), x, "{s}");
        }
        assert_eq!(num(f64::NAN), "0e0");
        assert_eq!(num(f64::INFINITY).parse::<f64>().expect("finite"), f64::MAX);
    }

    #[test]
    fn replies_of_the_wrong_shape_are_errors() {
        let good = Value::Array(
            std::iter::once(Value::Int(1))
                .chain(
                    ["1", "0", "2.5", "0", "1700000000000", "1700000001000"]
                        .into_iter()
                        .map(|s| Value::BulkString(s.as_bytes().to_vec())),
                )
                .collect(),
        );
        let r = parse_admit(&good, 1).expect("good");
        assert!(r.admitted);
        assert_eq!(r.states[0].levels, [1.0, 0.0, 2.5, 0.0]);
        assert_eq!(r.states[0].last_ms, 1_700_000_000_000);
        assert_eq!(r.states[0].idle_at_ms, 1_700_000_001_000);

        assert!(parse_admit(&good, 2).is_err());
        for bad in [
            Value::Nil,
            Value::Int(3),
            Value::Okay,
            Value::Array(vec![]),
            Value::Array(vec![Value::Nil; 7]),
            Value::Array(vec![
                Value::Int(2),
                Value::Int(0),
                Value::Int(0),
                Value::Int(0),
                Value::Int(0),
                Value::Int(0),
                Value::Int(0),
            ]),
            Value::Array(
                std::iter::once(Value::Int(0))
                    .chain(
                        ["nan", "x", "-1", "0", "0", "0"]
                            .into_iter()
                            .map(|s| Value::BulkString(s.as_bytes().to_vec())),
                    )
                    .collect(),
            ),
        ] {
            assert!(parse_admit(&bad, 1).is_err(), "{bad:?}");
        }
    }
}
