//! Live Metrics against what caused it: what the shop posts to a fake Live Metrics endpoint (what
//! the portal would show) is compared with the load the test sent and the CPU it burnt.

use std::time::{Duration, Instant, SystemTime};

use doorbuster::config::{LogFormat, TelemetryArgs};
use doorbuster::load::{Cost, Knobs};
use doorbuster::metrics::process_cpu_seconds;
use doorbuster::telemetry::Telemetry;

use crate::fake_insights::{
    CPU, DEPENDENCIES, EXCEPTIONS, FakeInsights, LivePost, LoopbackClient, REQUESTS,
    REQUESTS_FAILED, Shop, args, epoch_ms, install_telemetry, median, open_load,
};
use crate::support::{TestApp, own_process};

/// With a Live Metrics endpoint that takes 0.4 s to answer (Azure's, seen from another region),
/// a steady 100 requests a second reads as 100 (±5%) in Live Metrics at the demo's trace ratio,
/// and so do their failures, the exceptions those record and their database calls: each rate is
/// counted over the time it covers.
/// (The exporter divided each interval's count by its length rounded down to whole seconds: a
/// post every 1.4 s read 140.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_metrics_rates_are_true_when_the_endpoint_is_slow() {
    if !own_process("live_metrics::live_metrics_rates_are_true_when_the_endpoint_is_slow") {
        return;
    }
    let fake = FakeInsights::answering_live_metrics_after(Duration::from_millis(400)).await;
    let telemetry = install_telemetry(&TelemetryArgs {
        trace_export_ratio: 0.1,
        ..args(Some(fake.connection_string.clone()))
    });
    let shop = Shop::serve(TestApp::sqlite().await, &telemetry).await;
    // Every page fails (an injected 500 or 503, before any database call); every order lookup is
    // one database call (the catalog is served from memory: no call).
    shop.state
        .controls
        .set_knobs(Knobs {
            pages: Cost {
                error_rate: 1.0,
                ..Cost::default()
            },
            ..Knobs::default()
        })
        .unwrap();
    fake.wait_for_live_posts().await;

    let (started, ended, statuses) = open_load(&shop.base, 100, Duration::from_secs(8), |n| {
        if n % 4 == 0 {
            "/".to_owned()
        } else {
            // A well-formed order number no order has: a 404, after one query.
            "/api/orders/0123456789AB".to_owned()
        }
    })
    .await;
    let seconds = ended.duration_since(started).unwrap().as_secs_f64();
    let failed = statuses.iter().filter(|&&s| s >= 500).count();
    assert_eq!(failed, statuses.len() / 4, "every page and only pages fail");
    assert_eq!(
        statuses.iter().filter(|&&s| s == 404).count(),
        statuses.len() - failed
    );
    // Wait for the post that covers the end of the run.
    tokio::time::sleep(Duration::from_secs(2)).await;
    shop.stop().await;
    telemetry.shutdown(Duration::from_secs(5)).await;

    // The posts whose whole interval (from the post before) lies inside the run.
    let posts = fake.live_posts();
    let window: Vec<&LivePost> = posts
        .windows(2)
        .filter(|pair| pair[0].at_ms >= epoch_ms(started) + 200 && pair[1].at_ms <= epoch_ms(ended))
        .map(|pair| &pair[1])
        .collect();
    assert!(window.len() >= 3, "too few posts inside the run: {posts:?}");
    let sent = statuses.len() as f64 / seconds;
    let truth = [
        (REQUESTS, sent),
        (REQUESTS_FAILED, sent / 4.0),
        (DEPENDENCIES, sent * 3.0 / 4.0),
        // Each failed request records one exception, traced or not.
        (EXCEPTIONS, sent / 4.0),
    ];
    for (name, want) in truth {
        let shown = median(
            window
                .iter()
                .map(|post| post.metrics.get(name).copied().unwrap_or(0.0))
                .collect(),
        );
        assert!(
            (shown / want - 1.0).abs() <= 0.05,
            "{name}: Live Metrics shows {shown:.1}/s (median), the load was {want:.1}/s; posts: {window:?}"
        );
    }
}

/// Live Metrics' CPU is reported against the container's CPU limit: with a limit of half a core
/// (a cgroup v2 `cpu.max` of `50000 100000`, staged under a folder that stands for `/`), the
/// process's CPU use is posted as twice its share of one core, so a pod pegged at its limit reads
/// 100%. (It read 50%: the exporter's figure is a share of one core.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_metrics_cpu_is_a_share_of_the_containers_limit() {
    // The process's CPU time must be this test's alone.
    if !own_process("live_metrics::live_metrics_cpu_is_a_share_of_the_containers_limit") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    for (path, contents) in [
        ("proc/self/cgroup", "0::/\n"),
        ("sys/fs/cgroup/cpu.max", "50000 100000\n"),
    ] {
        let path = root.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    let fake = FakeInsights::start().await;
    let (telemetry, _subscriber, _) = Telemetry::build_with_cgroup_root(
        &args(Some(fake.connection_string.clone())),
        LogFormat::Text,
        LoopbackClient::new(),
        root.path(),
    )
    .unwrap();
    fake.wait_for_live_posts().await;

    // A thread that burns CPU for 6 s: however much of a core the machine gives it, the posted
    // figure must be twice the process's measured share of one core.
    let (started, cpu_before) = (SystemTime::now(), process_cpu_seconds().unwrap());
    let burn = std::thread::spawn(|| {
        let until = Instant::now() + Duration::from_secs(6);
        let mut spin = 0u64;
        while Instant::now() < until {
            spin = std::hint::black_box(spin.wrapping_add(1));
        }
    });
    tokio::task::spawn_blocking(move || burn.join().unwrap())
        .await
        .unwrap();
    let (ended, cpu_after) = (SystemTime::now(), process_cpu_seconds().unwrap());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    telemetry.shutdown(Duration::from_secs(5)).await;

    let seconds = ended.duration_since(started).unwrap().as_secs_f64();
    let share_of_one_core = (cpu_after - cpu_before) / seconds * 100.0;
    let posts = fake.live_posts();
    let inside: Vec<f64> = posts
        .windows(2)
        .filter(|pair| pair[0].at_ms >= epoch_ms(started) + 200 && pair[1].at_ms <= epoch_ms(ended))
        .filter_map(|pair| pair[1].metrics.get(CPU).copied())
        .collect();
    assert!(inside.len() >= 3, "too few posts: {posts:?}");
    let shown = median(inside.clone());
    let want = share_of_one_core / 0.5;
    assert!(
        (shown / want - 1.0).abs() <= 0.25,
        "Live Metrics shows CPU {shown:.0}% (posts {inside:?}); the process used {share_of_one_core:.0}% of one core, {want:.0}% of its half-core limit"
    );
}
