//! [`TraceIndex`](super::TraceIndex) for the watermark stage's
//! [`Watermarker`](crate::watermark::Watermarker): `GET /api/trace` searches its
//! trace-back index (and verifies any tag or text mark in the excerpt).

use super::hooks::{TraceHit, TraceIndex};
use crate::extensions::{AccountId, ClusterId};
use crate::watermark::Watermarker;

impl TraceIndex for Watermarker {
    fn trace(&self, text: &str, _limit: usize) -> Vec<TraceHit> {
        // The watermark engine answers with its single best attribution.
        Watermarker::trace(self, text)
            .map(|r| TraceHit {
                score: r.confidence,
                request_id: r.request_id.map(|id| id.to_string()),
                account: AccountId::parse(&r.account),
                cluster: ClusterId::parse(&r.cluster),
                at_ms: Some(r.issued_at_ms),
                detail: serde_json::to_value(&r).unwrap_or(serde_json::Value::Null),
            })
            .into_iter()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::watermark::tag::RequestId;
    use crate::watermark::{TraceIndex as Index, WatermarkConfig};

    #[test]
    fn the_watermark_index_answers_trace_queries() {
        let index = Arc::new(Index::new(100));
        let account = AccountId([5; 16]);
        let cluster = ClusterId::from_name("ring");
        let text = "The quick brown fox jumps over the lazy dog while the harvester copies every single word of this long enough answer for the index to fingerprint it reliably.";
        index.insert(
            account,
            cluster,
            RequestId([9; 16]),
            1_714_000_000_000,
            text,
        );
        let w = Watermarker::from_config(&WatermarkConfig::default())
            .expect("default watermark config")
            .with_index(index);
        let hits = TraceIndex::trace(&w, &text[20..140], 10);
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0].account, Some(account));
        assert_eq!(hits[0].cluster, Some(cluster));
        assert!(hits[0].score > 0.5);
        assert!(TraceIndex::trace(
            &w,
            "entirely unrelated words about gardening and tomatoes in spring",
            10
        )
        .is_empty());
    }
}
