//! The two Lua scripts and the encoding of their arguments and replies.
//!
//! The scripts do exactly the arithmetic of [`crate::quota::gcra`] and of the
//! embedded store's entries, in IEEE doubles like Rust's `f64`: a bucket's level
//! is drained by `elapsed × per_ms` (never below 0), a cost fits when
//! `level + cost − capacity ≤ 1e-9 × max(capacity, 1)`, charges are clamped at 0,
//! an unlimited window's level is 0, and a subject whose idle time has passed is
//! forgotten. Numbers cross the wire as little-endian doubles packed with Redis'
//! built-in `struct` library, never as decimal text, so Redis and
//! [`MemoryStore`](crate::store::MemoryStore) hold bit-identical levels after the
//! same sequence of calls (and no time is spent formatting and parsing numbers).
//!
//! Layout: one string per subject, `{prefix}a:{hex id}` (account) or
//! `{prefix}c:{hex id}` (cluster), holding 6 packed doubles: the 4 levels (in
//! [`Window`](crate::store::Window) order), the last update (Unix ms) and when all
//! its buckets will have drained (at most two days after its last charge). A value
//! of another length, or with a negative or non-finite number, reads as a fresh
//! subject. After a charge the key expires in Redis' own time a second after it
//! drains; a refusal keeps its TTL.
//!
//! Arguments of one call (an admission, or one settlement of a batch): the
//! account's key, then the cluster's if any; and packed doubles: now (ms), cost or
//! token delta, longest idle time (ms), TTL slack (ms), then per key
//! 4 × (capacity, rate per ms) with a NaN capacity for an unlimited window.

use redis::Value;

use crate::quota::gcra::BucketLimit;
use crate::store::Limits;

/// Bytes of one stored or returned subject state.
pub(super) const STATE_BYTES: usize = 6 * 8;

/// What both scripts share: argument decoding, loading every subject and
/// bringing it to `now`, and charging and saving. Written as straight-line code
/// over flat tables: this runs inside Redis' single thread for every request.
macro_rules! prelude {
    () => {
        r#"
local HUGE = math.huge
-- The call being worked on: its keys are KEYS[K0 + 1 .. K0 + nkeys];
-- A[b + 2w - 1], A[b + 2w] are the capacity and rate of window w of subject s,
-- with b = 4 + 8(s - 1), a NaN capacity meaning an unlimited window.
local K0, nkeys, A, now, amount, max_idle, slack
-- Its subjects brought to now: levels L[4(s - 1) + w], LAST[s], IDLE[s].
local L, LAST, IDLE

-- Decodes one call's packed arguments and runs Entry::bring_to on each of its
-- subjects. A value that is not 6 sane doubles, or whose idle time has passed,
-- is a fresh subject. Returns false on malformed arguments.
local function load(argv, k0)
  local n = (#argv / 8 - 4) / 8
  if (n ~= 1 and n ~= 2) or k0 + n > #KEYS then return false end
  K0, nkeys = k0, n
  if n == 1 then
    A = { struct.unpack('<dddddddddddd', argv) }
  else
    A = { struct.unpack('<dddddddddddddddddddd', argv) }
  end
  now, amount, max_idle, slack = A[1], A[2], A[3], A[4]
  local raws
  if n == 1 then
    raws = redis.call('MGET', KEYS[k0 + 1])
  else
    raws = redis.call('MGET', KEYS[k0 + 1], KEYS[k0 + 2])
  end
  L, LAST, IDLE = {}, {}, {}
  for s = 1, n do
    local raw = raws[s]
    local v1, v2, v3, v4, t, i = 0, 0, 0, 0, 0, 0
    if raw and #raw == 48 then
      v1, v2, v3, v4, t, i = struct.unpack('<dddddd', raw)
      if not (v1 == v1 and v1 >= 0 and v1 < HUGE and v2 == v2 and v2 >= 0 and v2 < HUGE
          and v3 == v3 and v3 >= 0 and v3 < HUGE and v4 == v4 and v4 >= 0 and v4 < HUGE
          and t == t and t >= 0 and t < HUGE and i == i and i < HUGE and i > now) then
        v1, v2, v3, v4, t, i = 0, 0, 0, 0, 0, 0
      end
    end
    local elapsed = now - t
    if elapsed < 0 then elapsed = 0 end
    local v = { v1, v2, v3, v4 }
    local b, o = 4 + (s - 1) * 8, (s - 1) * 4
    for w = 1, 4 do
      local level = 0
      if A[b + 2 * w - 1] == A[b + 2 * w - 1] then
        level = v[w] - elapsed * A[b + 2 * w]
        if not (level > 0) then level = 0 end
      end
      L[o + w] = level
    end
    if now > t then t = now end
    LAST[s], IDLE[s] = t, i
  end
  return true
end

-- With `charged`: Entry::charge (costs added to every limited window, never
-- below 0) and Entry::touch (idle when every bucket has drained, at most
-- `max_idle` away), saved with a TTL a little after that. Without: the state
-- brought to now is saved keeping its TTL (nothing is written for a fresh
-- subject). Returns the packed states.
local function commit(costs, charged)
  local packed = {}
  for s = 1, nkeys do
    local b, o = 4 + (s - 1) * 8, (s - 1) * 4
    local idle, ttl = IDLE[s], 0
    if charged then
      for w = 1, 4 do
        local c, per = A[b + 2 * w - 1], A[b + 2 * w]
        if c == c then
          local level = L[o + w] + costs[w]
          if not (level > 0) then level = 0 end
          L[o + w] = level
          if level > 0 then
            local r
            if per > 0 then r = math.ceil(level / per) else r = max_idle end
            if r > ttl then ttl = r end
          end
        end
      end
      if ttl > max_idle then ttl = max_idle end
      idle = now + ttl
    end
    local p = struct.pack('<dddddd', L[o + 1], L[o + 2], L[o + 3], L[o + 4], LAST[s], idle)
    if charged then
      redis.call('SET', KEYS[K0 + s], p, 'PX', ttl + slack)
    elseif idle > now then
      redis.call('SET', KEYS[K0 + s], p, 'KEEPTTL')
    end
    packed[s] = p
  end
  return packed
end

local BAD = 'distill-guard: bad quota script arguments'
"#
    };
}

/// Checks every bucket of every key and charges them all, or none. One call:
/// `KEYS` = the account's key and the cluster's if any, `ARGV[1]` = packed
/// arguments.
///
/// Reply: `[admitted (1/0), then per key its packed state]`: the levels after the
/// charge (admitted) or brought to now (refused).
pub(super) const ADMIT: &str = concat!(
    prelude!(),
    r#"
if #ARGV ~= 1 or not load(ARGV[1], 0) or nkeys ~= #KEYS then
  return redis.error_reply(BAD)
end
local costs = { 1, 1, amount, amount }
local ok = true
for s = 1, nkeys do
  local b, o = 4 + (s - 1) * 8, (s - 1) * 4
  for w = 1, 4 do
    local c = A[b + 2 * w - 1]
    -- gcra::check: fits when level + cost - capacity <= 1e-9 * max(capacity, 1)
    if c == c and L[o + w] + costs[w] - c > 1e-9 * math.max(c, 1) then ok = false end
  end
end
local packed = commit(costs, ok)
local reply = { ok and 1 or 0 }
for s = 1, nkeys do reply[s + 1] = packed[s] end
return reply
"#
);

/// Applies a batch of settlements in order: `ARGV[j]` = the packed arguments of
/// settlement `j` (its token delta as the amount), `KEYS` = their keys one
/// settlement after the other. Each adds its delta to its keys' token buckets.
/// Reply: the number of settlements applied.
pub(super) const SETTLE: &str = concat!(
    prelude!(),
    r#"
local k0 = 0
for j = 1, #ARGV do
  if not load(ARGV[j], k0) then return redis.error_reply(BAD) end
  commit({ 0, 0, amount, amount }, true)
  k0 = k0 + nkeys
end
if k0 ~= #KEYS then return redis.error_reply(BAD) end
return #ARGV
"#
);

/// The packed `ARGV[1]` of a call.
pub(super) fn pack_args(
    now_ms: u64,
    amount: f64,
    max_idle_ms: u64,
    slack_ms: u64,
    subjects: &[&Limits],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 * (4 + 8 * subjects.len()));
    let mut push = |x: f64| out.extend_from_slice(&x.to_le_bytes());
    push(now_ms as f64);
    push(finite_or_zero(amount));
    push(max_idle_ms as f64);
    push(slack_ms as f64);
    for limits in subjects {
        for limit in limits.iter() {
            match limit {
                Some(BucketLimit { capacity, per_ms }) => {
                    // NaN is the "unlimited" marker; a NaN limit (a caller bug) is
                    // a zero limit instead, as in `gcra::check`'s refusals.
                    push(if capacity.is_nan() { 0.0 } else { *capacity });
                    push(if per_ms.is_nan() { 0.0 } else { *per_ms });
                }
                None => {
                    push(f64::NAN);
                    push(0.0);
                }
            }
        }
    }
    out
}

fn finite_or_zero(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        0.0
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
    let Some((flag, packed)) = items.split_first() else {
        return Err("admit script: empty reply".into());
    };
    if packed.len() != keys {
        return Err(format!(
            "admit script: expected {} states, got {}",
            keys,
            packed.len()
        ));
    }
    let admitted = match flag {
        Value::Int(1) => true,
        Value::Int(0) => false,
        other => return Err(format!("admit script: bad flag {other:?}")),
    };
    let states = packed.iter().map(state).collect::<Result<_, _>>()?;
    Ok(AdmitReply { admitted, states })
}

pub(super) fn state(v: &Value) -> Result<State, String> {
    let Value::BulkString(bytes) = v else {
        return Err(format!("admit script: expected a packed state, got {v:?}"));
    };
    if bytes.len() != STATE_BYTES {
        return Err(format!(
            "admit script: packed state of {} bytes",
            bytes.len()
        ));
    }
    let mut x = [0.0; 6];
    for (slot, chunk) in x.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        let f = f64::from_le_bytes(b);
        if !f.is_finite() || f < 0.0 {
            return Err(format!("admit script: bad number {f} in state"));
        }
        *slot = f;
    }
    Ok(State {
        levels: [x[0], x[1], x[2], x[3]],
        last_ms: x[4] as u64,
        idle_at_ms: x[5] as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(xs: [f64; 6]) -> Value {
        Value::BulkString(xs.iter().flat_map(|x| x.to_le_bytes()).collect())
    }

    #[test]
    fn arguments_pack_every_limit_and_mark_unlimited_with_nan() {
        let limits: Limits = [
            Some(BucketLimit::new(60.0, 60_000.0, 60.0)),
            None,
            Some(BucketLimit {
                capacity: f64::NAN,
                per_ms: 1.0,
            }),
            None,
        ];
        let bytes = pack_args(1_700_000_000_000, f64::INFINITY, 5, 6, &[&limits]);
        let xs: Vec<f64> = bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        assert_eq!(xs.len(), 12);
        assert_eq!(&xs[..4], &[1_700_000_000_000.0, 0.0, 5.0, 6.0]);
        assert_eq!((xs[4], xs[5]), (60.0, 0.001));
        assert!(xs[6].is_nan());
        assert_eq!((xs[8], xs[9]), (0.0, 1.0), "a NaN limit is a zero limit");
        assert!(xs[10].is_nan());
    }

    #[test]
    fn replies_of_the_wrong_shape_are_errors() {
        let good = Value::Array(vec![
            Value::Int(1),
            packed([1.0, 0.0, 2.5, 0.0, 1.7e12, 1.7e12 + 1_000.0]),
        ]);
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
            Value::Array(vec![Value::Nil; 2]),
            Value::Array(vec![Value::Int(2), packed([0.0; 6])]),
            Value::Array(vec![Value::Int(0), Value::BulkString(vec![0; 47])]),
            Value::Array(vec![
                Value::Int(0),
                packed([f64::NAN, 0.0, 0.0, 0.0, 0.0, 0.0]),
            ]),
            Value::Array(vec![Value::Int(0), packed([0.0, -1.0, 0.0, 0.0, 0.0, 0.0])]),
            Value::Array(vec![
                Value::Int(0),
                packed([0.0, 0.0, 0.0, 0.0, f64::INFINITY, 0.0]),
            ]),
        ] {
            assert!(parse_admit(&bad, 1).is_err(), "{bad:?}");
        }
    }
}
