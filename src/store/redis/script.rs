//! The two Lua scripts and the encoding of their arguments and replies.
//!
//! The scripts do exactly the arithmetic of [`crate::store::gcra`] and of the
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
//! drains; a refusal keeps its TTL, and deletes a value whose idle time has
//! passed (the embedded store forgets it too).
//!
//! Both scripts take a batch of calls (admissions, or settlements), run in
//! order with exactly the outcome each would have alone; each key the batch
//! touches is read once (one `MGET`) and written once at the end. Arguments of
//! one call: its one to four subjects' keys (the account's, the cluster's if
//! any, then their model group's if any); and packed doubles:
//! now (ms), requests and tokens to add (an admission: 1 and its reservation; a
//! settlement: 0 and its token delta; a refund: negative), longest idle time
//! (ms), TTL slack (ms), then
//! per key 4 × (capacity, rate per ms) with a NaN capacity for an unlimited
//! window.

use redis::Value;

use crate::store::gcra::BucketLimit;
use crate::store::Limits;

/// Bytes of one stored or returned subject state.
pub(super) const STATE_BYTES: usize = 6 * 8;

/// What both scripts share: checking a batch's shape, reading every key it
/// touches with one `MGET`, bringing subjects to `now`, charging them, and
/// writing each changed key once when the batch ends. Straight-line code over
/// flat tables reused from call to call: this runs inside Redis' single thread
/// for every request.
macro_rules! prelude {
    () => {
        r#"
local HUGE, ceil, max = math.huge, math.ceil, math.max
local unpack_, pack = struct.unpack, struct.pack
local BAD = 'distill-guard: bad quota script arguments'
local FORMAT = {
  '<d' .. string.rep('d', 4 + 8), '<d' .. string.rep('d', 4 + 16),
  '<d' .. string.rep('d', 4 + 24), '<d' .. string.rep('d', 4 + 32),
}

-- One slot per distinct key of the batch, holding the key's value as Redis
-- would hold it at this point had every call before run alone: levels V1..V4,
-- last update T, idle time I (OK[s] false: missing or malformed, a fresh
-- subject). PUT[s]: the value to write when the batch ends (GONE: delete the
-- key); TTL[s]: the expiry (ms) set by its last charge, nil to keep the key's
-- TTL.
local SLOT, KEY = {}, {}
local V1, V2, V3, V4, T, I, OK = {}, {}, {}, {}, {}, {}, {}
local PUT, TTL = {}, {}
local GONE = {}
-- The call being worked on: its packed arguments decoded into A (now,
-- requests, tokens, longest idle time, TTL slack, then per subject 4 x (capacity, rate per ms),
-- a NaN capacity meaning an unlimited window), its n subjects' slots S[k],
-- their levels brought to now L[4(k - 1) + w], last updates LAST[k], idle
-- times IDLE[k], and the cost per window COST[w].
local A, n
local S, L, LAST, IDLE, COST = {}, {}, {}, {}, {}

-- A stored state is sane: finite, non-negative numbers.
local function sane(v1, v2, v3, v4, t, i)
  return v1 == v1 and v1 >= 0 and v1 < HUGE and v2 == v2 and v2 >= 0 and v2 < HUGE
    and v3 == v3 and v3 >= 0 and v3 < HUGE and v4 == v4 and v4 >= 0 and v4 < HUGE
    and t == t and t >= 0 and t < HUGE and i == i and i < HUGE
end

-- Checks the batch's shape (every ARGV[j] packs a call with one to four
-- subjects, KEYS holds exactly their keys, one call after the other) and reads
-- every distinct key with one MGET. Returns each call's subject count, or nil
-- when the batch is malformed (then nothing has been read or written).
local function begin()
  local counts, total = {}, 0
  for j = 1, #ARGV do
    local c = (#ARGV[j] / 8 - 5) / 8
    if c ~= 1 and c ~= 2 and c ~= 3 and c ~= 4 then return nil end
    counts[j] = c
    total = total + c
  end
  if total == 0 or total ~= #KEYS then return nil end
  local slots = 0
  for k = 1, #KEYS do
    local key = KEYS[k]
    if not SLOT[key] then
      slots = slots + 1
      SLOT[key], KEY[slots] = slots, key
    end
  end
  local raws = redis.call('MGET', unpack(KEY))
  for s = 1, slots do
    local raw = raws[s]
    OK[s] = false
    if raw and #raw == 48 then
      local v1, v2, v3, v4, t, i = unpack_('<dddddd', raw)
      if sane(v1, v2, v3, v4, t, i) then
        V1[s], V2[s], V3[s], V4[s], T[s], I[s], OK[s] = v1, v2, v3, v4, t, i, true
      end
    end
  end
  return counts
end

-- A level drained by `elapsed`, never below 0; 0 for an unlimited window.
local function drained(v, elapsed, c, per)
  if c ~= c then return 0 end
  local level = v - elapsed * per
  if level > 0 then return level end
  return 0
end

-- Decodes call j (with c subjects, whose keys follow KEYS[k0]) and runs
-- Entry::bring_to on each subject: a missing, malformed or idle value is a
-- fresh subject.
local function load(j, k0, c)
  n = c
  A = { unpack_(FORMAT[c], ARGV[j]) }
  local now = A[1]
  for k = 1, c do
    local s = SLOT[KEYS[k0 + k]]
    S[k] = s
    local v1, v2, v3, v4, t, i = 0, 0, 0, 0, 0, 0
    if OK[s] and I[s] > now then
      v1, v2, v3, v4, t, i = V1[s], V2[s], V3[s], V4[s], T[s], I[s]
    end
    local elapsed = now - t
    if elapsed < 0 then elapsed = 0 end
    local b, o = 5 + (k - 1) * 8, (k - 1) * 4
    L[o + 1] = drained(v1, elapsed, A[b + 1], A[b + 2])
    L[o + 2] = drained(v2, elapsed, A[b + 3], A[b + 4])
    L[o + 3] = drained(v3, elapsed, A[b + 5], A[b + 6])
    L[o + 4] = drained(v4, elapsed, A[b + 7], A[b + 8])
    if now > t then t = now end
    LAST[k], IDLE[k] = t, i
  end
end

-- With `charged`: Entry::charge (COST added to every limited window, never
-- below 0) and Entry::touch (idle when every bucket has drained, at most
-- `max_idle` away), to be saved with a TTL a little after that. Without: the
-- state brought to now, to be saved keeping the key's TTL (nothing is saved for
-- a fresh subject, and an idle one is deleted). Puts each subject's packed
-- state in reply[k + 1].
local function commit(charged, reply)
  local now, max_idle, slack = A[1], A[4], A[5]
  for k = 1, n do
    local s, b, o = S[k], 5 + (k - 1) * 8, (k - 1) * 4
    local idle, ttl = IDLE[k], 0
    if charged then
      for w = 1, 4 do
        local c, per = A[b + 2 * w - 1], A[b + 2 * w]
        if c == c then
          local level = L[o + w] + COST[w]
          if not (level > 0) then level = 0 end
          L[o + w] = level
          if level > 0 then
            local r
            if per > 0 then r = ceil(level / per) else r = max_idle end
            if r > ttl then ttl = r end
          end
        end
      end
      if ttl > max_idle then ttl = max_idle end
      idle = now + ttl
    end
    local l1, l2, l3, l4, t = L[o + 1], L[o + 2], L[o + 3], L[o + 4], LAST[k]
    local p = pack('<dddddd', l1, l2, l3, l4, t, idle)
    if charged or idle > now then
      -- What a later call of the batch reads back from Redis.
      OK[s] = sane(l1, l2, l3, l4, t, idle)
      V1[s], V2[s], V3[s], V4[s], T[s], I[s] = l1, l2, l3, l4, t, idle
      PUT[s] = p
      if charged then TTL[s] = ttl + slack end
    elseif OK[s] then
      -- A value whose idle time has passed: Entry::bring_to forgets it, and so
      -- must Redis, or a later call with an earlier clock would read it back.
      OK[s], PUT[s], TTL[s] = false, GONE, nil
    end
    if reply then reply[k + 1] = p end
  end
end

-- Writes every changed key once, with its last value.
local function finish()
  for s = 1, #KEY do
    local p = PUT[s]
    if p == GONE then
      redis.call('DEL', KEY[s])
    elseif p then
      local ttl = TTL[s]
      if ttl then
        redis.call('SET', KEY[s], p, 'PX', ttl)
      else
        redis.call('SET', KEY[s], p, 'KEEPTTL')
      end
    end
  end
end
"#
    };
}

/// Admits a batch of admissions in order, each exactly as if it were alone:
/// every bucket of its account (and cluster) is checked and all of them are
/// charged, or none. `ARGV[j]` = the packed arguments of admission `j`, `KEYS` =
/// their keys one admission after the other (an admission sees the charges of
/// those before it in the batch). The whole batch is checked for shape before
/// anything is read or written, and each key is read once and written once.
///
/// Reply: one array per admission, `[admitted (1/0), then per key its packed
/// state]`: the levels after the charge (admitted) or brought to now (refused).
pub(super) const ADMIT_MANY: &str = concat!(
    prelude!(),
    r#"
local counts = begin()
if not counts then return redis.error_reply(BAD) end
local out, k0 = {}, 0
for j = 1, #counts do
  load(j, k0, counts[j])
  COST[1], COST[2], COST[3], COST[4] = A[2], A[2], A[3], A[3]
  local ok = true
  for k = 1, n do
    local b, o = 5 + (k - 1) * 8, (k - 1) * 4
    for w = 1, 4 do
      local c = A[b + 2 * w - 1]
      -- gcra::check: fits when level + cost - capacity <= 1e-9 * max(capacity, 1)
      if c == c and L[o + w] + COST[w] - c > 1e-9 * max(c, 1) then ok = false end
    end
  end
  local reply = { ok and 1 or 0 }
  commit(ok, reply)
  out[j] = reply
  k0 = k0 + n
end
finish()
return out
"#
);

/// Applies a batch of charges in order: `ARGV[j]` = the packed arguments of
/// charge `j` (a settlement: no requests and its token delta; a refund of an
/// admission: minus one request and minus its tokens), `KEYS` = their keys one
/// charge after the other. Each adds its requests and tokens to its keys'
/// buckets, without checking them against the limits.
/// Reply: the number of settlements applied.
pub(super) const SETTLE: &str = concat!(
    prelude!(),
    r#"
local counts = begin()
if not counts then return redis.error_reply(BAD) end
local k0 = 0
for j = 1, #counts do
  load(j, k0, counts[j])
  COST[1], COST[2], COST[3], COST[4] = A[2], A[2], A[3], A[3]
  commit(true, nil)
  k0 = k0 + n
end
finish()
return #ARGV
"#
);

/// Bytes of the packed arguments of a call with four subjects.
pub(super) const ARGS_BYTES_MAX: usize = 8 * (5 + 8 * 4);

/// Appends the packed arguments of a call (its `ARGV[j]`) to `out`.
pub(super) fn pack_args<'a>(
    out: &mut Vec<u8>,
    now_ms: u64,
    requests: f64,
    tokens: f64,
    max_idle_ms: u64,
    slack_ms: u64,
    subjects: impl IntoIterator<Item = &'a Limits>,
) {
    let mut push = |x: f64| out.extend_from_slice(&x.to_le_bytes());
    push(now_ms as f64);
    push(finite_or_zero(requests));
    push(finite_or_zero(tokens));
    push(max_idle_ms as f64);
    push(slack_ms as f64);
    for limits in subjects {
        for limit in limits {
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

/// A script reply of a shape the scripts never give (a bug, or a Redis that
/// is not the one it seems).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(super) enum ReplyError {
    /// Not an array.
    #[error("admit script: the reply is not an array")]
    NotArray,
    /// An empty array.
    #[error("admit script: empty reply")]
    Empty,
    /// Not one state per subject.
    #[error("admit script: expected {expected} states, got {got}")]
    States { expected: usize, got: usize },
    /// The admitted flag is neither 0 nor 1.
    #[error("admit script: the admitted flag is neither 0 nor 1")]
    Flag,
    /// Not one reply per admission.
    #[error("admit script: {got} replies for a batch of {expected}")]
    Batch { expected: usize, got: usize },
    /// A state that is not a string.
    #[error("admit script: a state is not a packed string")]
    NotPacked,
    /// A state of the wrong length.
    #[error("admit script: packed state of {0} bytes")]
    StateSize(usize),
    /// A negative, infinite or NaN number in a state.
    #[error("admit script: bad number {0} in state")]
    Number(f64),
}

impl From<ReplyError> for crate::store::StoreError {
    fn from(e: ReplyError) -> Self {
        crate::store::StoreError::unavailable(e)
    }
}

/// Decodes the admit script's reply for `keys` subjects; any other shape is an
/// error, never a panic.
pub(super) fn parse_admit(value: &Value, keys: usize) -> Result<AdmitReply, ReplyError> {
    let Value::Array(items) = value else {
        return Err(ReplyError::NotArray);
    };
    let Some((flag, packed)) = items.split_first() else {
        return Err(ReplyError::Empty);
    };
    if packed.len() != keys {
        return Err(ReplyError::States {
            expected: keys,
            got: packed.len(),
        });
    }
    let admitted = match flag {
        Value::Int(1) => true,
        Value::Int(0) => false,
        _ => return Err(ReplyError::Flag),
    };
    let states = packed.iter().map(state).collect::<Result<_, _>>()?;
    Ok(AdmitReply { admitted, states })
}

/// Decodes the batch admit script's reply: one [`parse_admit`] reply per
/// admission, admission `j` having `keys[j]` subjects. A reply of another length
/// or any malformed element is an error for the whole batch, never a panic.
pub(super) fn parse_admit_many(
    value: &Value,
    keys: &[usize],
) -> Result<Vec<AdmitReply>, ReplyError> {
    let Value::Array(items) = value else {
        return Err(ReplyError::NotArray);
    };
    if items.len() != keys.len() {
        return Err(ReplyError::Batch {
            expected: keys.len(),
            got: items.len(),
        });
    }
    items
        .iter()
        .zip(keys)
        .map(|(item, &n)| parse_admit(item, n))
        .collect()
}

/// Decodes one packed state: four levels, the last update and the idle time.
pub(super) fn state(v: &Value) -> Result<State, ReplyError> {
    let Value::BulkString(bytes) = v else {
        return Err(ReplyError::NotPacked);
    };
    if bytes.len() != STATE_BYTES {
        return Err(ReplyError::StateSize(bytes.len()));
    }
    let mut x = [0.0; 6];
    for (slot, chunk) in x.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        let f = f64::from_le_bytes(b);
        if !f.is_finite() || f < 0.0 {
            return Err(ReplyError::Number(f));
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
        let mut bytes = b"kept".to_vec();
        pack_args(
            &mut bytes,
            1_700_000_000_000,
            1.0,
            f64::INFINITY,
            5,
            6,
            [&limits],
        );
        assert_eq!(&bytes[..4], b"kept", "appends");
        let bytes = &bytes[4..];
        let xs: Vec<f64> = bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        assert_eq!(xs.len(), 13);
        assert_eq!(&xs[..5], &[1_700_000_000_000.0, 1.0, 0.0, 5.0, 6.0]);
        assert_eq!((xs[5], xs[6]), (60.0, 0.001));
        assert!(xs[7].is_nan());
        assert_eq!((xs[9], xs[10]), (0.0, 1.0), "a NaN limit is a zero limit");
        assert!(xs[11].is_nan());
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

    #[test]
    fn batch_replies_must_match_the_batch() {
        let one = |flag: i64, keys: usize| {
            let mut items = vec![Value::Int(flag)];
            items.extend((0..keys).map(|_| packed([0.0, 0.0, 1.0, 0.0, 1.7e12, 1.7e12])));
            Value::Array(items)
        };
        let good = Value::Array(vec![one(1, 1), one(0, 2), one(1, 2)]);
        let replies = parse_admit_many(&good, &[1, 2, 2]).expect("good");
        assert_eq!(
            replies.iter().map(|r| r.admitted).collect::<Vec<_>>(),
            [true, false, true]
        );
        assert_eq!(
            replies.iter().map(|r| r.states.len()).collect::<Vec<_>>(),
            [1, 2, 2]
        );
        // Too many or too few replies, a reply of the wrong width, a bad element,
        // a flat single reply, deep nesting: errors, never a panic.
        let nested = (0..10_000).fold(Value::Nil, |v, _| Value::Array(vec![v]));
        for (bad, keys) in [
            (good.clone(), &[1, 2][..]),
            (good.clone(), &[1, 2, 2, 1][..]),
            (good.clone(), &[2, 2, 2][..]),
            (Value::Array(vec![one(1, 1), Value::Nil]), &[1, 1][..]),
            (Value::Array(vec![one(3, 1)]), &[1][..]),
            (one(1, 1), &[1][..]),
            (Value::Array(vec![]), &[1][..]),
            (Value::Int(1), &[1][..]),
            (nested, &[1][..]),
        ] {
            assert!(parse_admit_many(&bad, keys).is_err(), "{keys:?}");
        }
    }
}
