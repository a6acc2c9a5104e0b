//! What recording a decision costs on the request path: metrics alone, metrics and
//! the decision memory, and with an audit sink queueing the record.

#![allow(missing_docs)] // criterion_group! generates undocumented items
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use distill_guard::dialect::Dialect;
use distill_guard::extensions::{AccountId, Action, Cluster, Decision, Reason, Scope};
use distill_guard::telemetry::Telemetry;

fn decision(i: u64) -> Decision {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&i.to_le_bytes());
    let account = AccountId(b);
    Decision {
        request_id: Some(format!("req-{i}").into()),
        account,
        cluster: Cluster::singleton(account),
        suspicion: 0.3,
        action: Action::Throttle,
        status: 429,
        limited_by: Some(Scope::Account),
        shadowed: false,
        reserved_tokens: 1500,
        tier: "default".into(),
        model_group: None,
        limited_in_group: false,
        reasons: vec![Reason {
            signal: "template_reuse".into(),
            weight: 0.3,
        }],
    }
}

fn bench(c: &mut Criterion) {
    let decisions: Vec<Decision> = (0..1024).map(decision).collect();
    let mut g = c.benchmark_group("telemetry");
    let t = Telemetry::new(10_000);
    let mut i = 0usize;
    g.bench_function("metrics_only", |b| {
        b.iter(|| {
            let d = &decisions[i % decisions.len()];
            i += 1;
            t.metrics().decision(
                d.action,
                Dialect::OpenAi,
                d.status,
                d.limited_by,
                d.suspicion,
                1,
            );
        })
    });
    g.bench_function("record_with_memory", |b| {
        b.iter(|| {
            let d = &decisions[i % decisions.len()];
            i += 1;
            t.record(black_box(d), Dialect::OpenAi, 1_714_000_000_000 + i as u64);
        })
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("dg-audit-bench-{}", std::process::id()));
    let cfg = distill_guard::audit::AuditConfig {
        path: Some(dir.to_string_lossy().into_owned()),
        ..Default::default()
    };
    let audited = Telemetry::new(10_000);
    let (sink, _task) = rt
        .block_on(distill_guard::audit::start(
            &cfg,
            audited.metrics().audit_counters(),
        ))
        .expect("open")
        .expect("enabled");
    audited.set_audit(Some(sink));
    // The writer only runs when the runtime is driven: the queue fills and the
    // rest are counted as dropped, which is the hot path's worst case.
    g.bench_function("record_with_audit_queue", |b| {
        b.iter(|| {
            let d = &decisions[i % decisions.len()];
            i += 1;
            audited.record(black_box(d), Dialect::OpenAi, 1_714_000_000_000);
        })
    });
    g.finish();
    let _ = std::fs::remove_file(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
