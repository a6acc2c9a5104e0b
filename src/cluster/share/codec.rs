//! The wire form of shared events: compact, versioned, little-endian binary.
//!
//! One stream entry carries one batch from one replica:
//!
//! ```text
//! "dg" 0x02 | replica u64 | count u16 | count × event
//! event = 0x01 account[16] now_ms u64 signals 6×f32 n u8 n × (kind u8, value u64)   (observe)
//!       | 0x02 account[16] now_ms u64 hold_ms u64                                   (unlink)
//!       | 0x03 account[16] now_ms u64 hold_ms u64                                   (dissolve)
//!       | 0x04 account[16] now_ms u64                                               (relink)
//! ```
//!
//! Version 1 (`"dg" 0x01`, written by builds before the behaviour signals) is
//! the same with 4 signals (chain of thought, focus, probing, inconsistency);
//! it is still read, the two later signals (extraction, benign) taken as 0, as
//! those builds computed nothing for them. So during a rolling upgrade the
//! upgraded replicas apply the others' events (an administrator's unlink
//! included); the older ones cannot read version 2 and skip it (see
//! docs/redis.md).
//!
//! Feature kinds travel as their wire code ([`FeatureKind::code`]); a code
//! the crate does not know is a malformed entry. Decoding checks
//! every length and value: a malformed entry is an error, never a panic, and is
//! skipped whole.

use super::Event;
use crate::cluster::SIGNALS;
use crate::extensions::AccountId;
use crate::features::{Feature, FeatureKind};

const MAGIC: &[u8; 3] = b"dg\x02";
/// Version 1: observations carry the first [`V1_SIGNALS`] signals only.
const MAGIC_V1: &[u8; 3] = b"dg\x01";
/// Signals of a version 1 observation.
const V1_SIGNALS: usize = 4;
const OBSERVE: u8 = 1;
const UNLINK: u8 = 2;
const DISSOLVE: u8 = 3;
const RELINK: u8 = 4;
/// Most events in one entry.
pub(super) const MAX_EVENTS: usize = 4096;
/// Most features of one shared observation.
const MAX_FEATURES: usize = u8::MAX as usize;

/// Why an entry could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not this format or version.
    #[error("not a distill-guard event batch (bad magic or version)")]
    Magic,
    /// Ended in the middle of a field.
    #[error("truncated at byte {0}")]
    Truncated(usize),
    /// An unknown event tag.
    #[error("unknown event tag {tag} at byte {at}")]
    Tag {
        /// The tag.
        tag: u8,
        /// Its offset.
        at: usize,
    },
    /// A feature kind code this build does not know.
    #[error("unknown feature kind {0}")]
    Kind(u8),
    /// More events than a batch may hold, or bytes left over.
    #[error("bad event count or trailing bytes")]
    Count,
}

/// Appends one encoded event (without the batch header) to `out`.
pub(super) fn encode_event(event: &Event, out: &mut Vec<u8>) {
    match event {
        Event::Observe {
            account,
            now_ms,
            signals,
            features,
        } => encode_observe(account, *now_ms, signals, features, out),
        Event::Relink { account, now_ms } => {
            out.push(RELINK);
            out.extend_from_slice(&account.0);
            out.extend_from_slice(&now_ms.to_le_bytes());
        }
        Event::Unlink {
            account,
            now_ms,
            hold_ms,
        }
        | Event::Dissolve {
            account,
            now_ms,
            hold_ms,
        } => {
            out.push(if matches!(event, Event::Unlink { .. }) {
                UNLINK
            } else {
                DISSOLVE
            });
            out.extend_from_slice(&account.0);
            out.extend_from_slice(&now_ms.to_le_bytes());
            out.extend_from_slice(&hold_ms.to_le_bytes());
        }
    }
}

/// Appends one encoded observation to `out`.
pub(super) fn encode_observe(
    account: &AccountId,
    now_ms: u64,
    signals: &[f32; SIGNALS],
    features: &[Feature],
    out: &mut Vec<u8>,
) {
    out.push(OBSERVE);
    out.extend_from_slice(&account.0);
    out.extend_from_slice(&now_ms.to_le_bytes());
    for s in signals {
        out.extend_from_slice(&s.to_le_bytes());
    }
    let n_at = out.len();
    out.push(0);
    let mut n = 0u8;
    for f in features {
        if usize::from(n) == MAX_FEATURES {
            break;
        }
        out.push(f.kind.code());
        out.extend_from_slice(&f.value.to_le_bytes());
        n += 1;
    }
    out[n_at] = n;
}

/// A batch: the header, then the already encoded events.
pub(super) fn encode_batch(replica: u64, events: &[Vec<u8>]) -> Vec<u8> {
    let len: usize = events.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(13 + len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&replica.to_le_bytes());
    let count = u16::try_from(events.len().min(MAX_EVENTS)).unwrap_or(u16::MAX);
    out.extend_from_slice(&count.to_le_bytes());
    for e in events.iter().take(usize::from(count)) {
        out.extend_from_slice(e);
    }
    out
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .at
            .checked_add(n)
            .ok_or(DecodeError::Truncated(self.at))?;
        let s = self
            .buf
            .get(self.at..end)
            .ok_or(DecodeError::Truncated(self.at))?;
        self.at = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn f32(&mut self) -> Result<f32, DecodeError> {
        Ok(f32::from_le_bytes(self.array()?))
    }
}

/// Decodes one batch: the replica that wrote it and its events.
pub(super) fn decode_batch(buf: &[u8]) -> Result<(u64, Vec<Event>), DecodeError> {
    let mut r = Reader { buf, at: 0 };
    let signals_sent = match r.take(3).map_err(|_| DecodeError::Magic)? {
        m if m == MAGIC => SIGNALS,
        m if m == MAGIC_V1 => V1_SIGNALS,
        _ => return Err(DecodeError::Magic),
    };
    let replica = r.u64()?;
    let count = usize::from(u16::from_le_bytes(r.array()?));
    if count > MAX_EVENTS {
        return Err(DecodeError::Count);
    }
    let mut events = Vec::with_capacity(count);
    for _ in 0..count {
        let at = r.at;
        let tag = r.u8()?;
        let account = AccountId(r.array()?);
        let now_ms = r.u64()?;
        let event = match tag {
            OBSERVE => {
                let mut signals = [0f32; SIGNALS];
                for s in signals.iter_mut().take(signals_sent) {
                    let x = r.f32()?;
                    // Signals are shares in 0..=1; anything else is clamped, and
                    // NaN counts as no signal.
                    *s = if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) };
                }
                let n = usize::from(r.u8()?);
                let mut features = Vec::with_capacity(n);
                for _ in 0..n {
                    let code = r.u8()?;
                    let value = r.u64()?;
                    let kind = FeatureKind::from_code(code).ok_or(DecodeError::Kind(code))?;
                    features.push(Feature { kind, value });
                }
                Event::Observe {
                    account,
                    now_ms,
                    signals,
                    features,
                }
            }
            UNLINK | DISSOLVE => {
                let hold_ms = r.u64()?;
                if tag == UNLINK {
                    Event::Unlink {
                        account,
                        now_ms,
                        hold_ms,
                    }
                } else {
                    Event::Dissolve {
                        account,
                        now_ms,
                        hold_ms,
                    }
                }
            }
            RELINK => Event::Relink { account, now_ms },
            tag => return Err(DecodeError::Tag { tag, at }),
        };
        events.push(event);
    }
    if r.at != buf.len() {
        return Err(DecodeError::Count);
    }
    Ok((replica, events))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn observe(seed: u8, n: usize) -> Event {
        Event::Observe {
            account: AccountId([seed; 16]),
            now_ms: 1_700_000_000_000 + u64::from(seed),
            signals: [0.25, 0.5, 0.0, 1.0, 0.75, 0.0],
            features: (0..n)
                .map(|i| {
                    let kind = FeatureKind::ALL[i % FeatureKind::ALL.len()];
                    Feature {
                        kind,
                        value: i as u64 * 7919,
                    }
                })
                .collect(),
        }
    }

    fn batch(events: &[Event]) -> Vec<u8> {
        let encoded: Vec<Vec<u8>> = events
            .iter()
            .map(|e| {
                let mut v = Vec::new();
                encode_event(e, &mut v);
                v
            })
            .collect();
        encode_batch(42, &encoded)
    }

    #[test]
    fn batches_round_trip() {
        let events = vec![
            observe(1, 20),
            Event::Unlink {
                account: AccountId([2; 16]),
                now_ms: 5,
                hold_ms: 86_400_000,
            },
            observe(3, 0),
            Event::Relink {
                account: AccountId([5; 16]),
                now_ms: 7,
            },
            Event::Dissolve {
                account: AccountId([4; 16]),
                now_ms: 6,
                hold_ms: 1,
            },
        ];
        let (replica, back) = decode_batch(&batch(&events)).expect("decodes");
        assert_eq!(replica, 42);
        assert_eq!(back, events);
    }

    #[test]
    fn long_lists_are_capped() {
        let e = observe(1, 300);
        let (_, back) = decode_batch(&batch(std::slice::from_ref(&e))).expect("decodes");
        let (Event::Observe { features, .. }, Event::Observe { features: sent, .. }) =
            (&back[0], &e)
        else {
            panic!("{back:?}")
        };
        assert_eq!(features.len(), MAX_FEATURES);
        assert_eq!(features[..], sent[..MAX_FEATURES]);
    }

    #[test]
    fn malformed_batches_are_errors() {
        let good = batch(&[observe(1, 3), observe(2, 3)]);
        assert_eq!(decode_batch(b""), Err(DecodeError::Magic));
        assert_eq!(decode_batch(b"dg\x03rest"), Err(DecodeError::Magic));
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(decode_batch(&trailing), Err(DecodeError::Count));
        let mut bad_tag = good.clone();
        bad_tag[13] = 9;
        assert!(matches!(
            decode_batch(&bad_tag),
            Err(DecodeError::Tag { tag: 9, .. })
        ));
        let mut bad_kind = good.clone();
        // First feature's kind code of the first event.
        bad_kind[13 + 1 + 16 + 8 + 4 * SIGNALS + 1] = 200;
        assert_eq!(decode_batch(&bad_kind), Err(DecodeError::Kind(200)));
        let mut huge = good;
        huge[11..13].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(decode_batch(&huge), Err(DecodeError::Count));
    }

    /// A batch as builds before the behaviour signals wrote it: `dg\x01`, four
    /// signals per observation.
    fn batch_v1(events: &[Event]) -> Vec<u8> {
        let mut out = MAGIC_V1.to_vec();
        out.extend_from_slice(&42u64.to_le_bytes());
        out.extend_from_slice(&(events.len() as u16).to_le_bytes());
        for e in events {
            let mut v = Vec::new();
            encode_event(e, &mut v);
            if matches!(e, Event::Observe { .. }) {
                // Drop the two signals version 1 did not have.
                let end = 1 + 16 + 8 + 4 * V1_SIGNALS;
                v.drain(end..end + 4 * (SIGNALS - V1_SIGNALS));
            }
            out.extend_from_slice(&v);
        }
        out
    }

    #[test]
    fn version_1_batches_are_read_with_the_later_signals_at_zero() {
        let unlink = Event::Unlink {
            account: AccountId([2; 16]),
            now_ms: 5,
            hold_ms: 86_400_000,
        };
        let sent = vec![observe(1, 20), unlink.clone(), observe(3, 0)];
        let (replica, back) = decode_batch(&batch_v1(&sent)).expect("decodes");
        assert_eq!(replica, 42);
        let mut expected = sent;
        for e in &mut expected {
            if let Event::Observe { signals, .. } = e {
                signals[V1_SIGNALS..].fill(0.0);
            }
        }
        assert_eq!(back, expected);
        assert_eq!(back[1], unlink);
        // Read as version 1, a version 2 observation leaves bytes over.
        let mut relabelled = batch(&[observe(1, 2)]);
        relabelled[..3].copy_from_slice(MAGIC_V1);
        assert!(decode_batch(&relabelled).is_err());
    }

    #[test]
    fn hostile_signals_are_clamped() {
        let e = Event::Observe {
            account: AccountId([1; 16]),
            now_ms: 1,
            signals: [f32::NAN, f32::INFINITY, -3.0, 0.5, 0.5, 0.5],
            features: Vec::new(),
        };
        let (_, back) = decode_batch(&batch(&[e])).expect("decodes");
        let Event::Observe { signals, .. } = back[0] else {
            panic!()
        };
        assert_eq!(signals, [0.0, 1.0, 0.0, 0.5, 0.5, 0.5]);
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_batch(&bytes);
            let mut framed = MAGIC.to_vec();
            framed.extend_from_slice(&bytes);
            let _ = decode_batch(&framed);
        }

        #[test]
        fn every_truncation_of_a_good_batch_is_an_error(cut in 0usize..200) {
            let good = batch(&[observe(1, 4), observe(2, 2)]);
            let cut = cut.min(good.len() - 1);
            prop_assert!(decode_batch(&good[..cut]).is_err());
        }
    }
}
