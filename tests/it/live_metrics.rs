//! Live Metrics against the traffic that caused it: what the shop posts to a fake Live Metrics
//! endpoint (what the portal would show) is compared with the load the test sent.

use std::time::Duration;

use doorbuster::config::TelemetryArgs;
use doorbuster::load::{Cost, Knobs};

use crate::fake_insights::{
    DEPENDENCIES, EXCEPTIONS, FakeInsights, LivePost, REQUESTS, REQUESTS_FAILED, Shop, args,
    epoch_ms, install_telemetry, median, open_load,
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
    // Every page fails (an injected 500 or 503, before any database call); every API product
    // read is one database call.
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
    let product = shop.app.products().await[0]["id"].as_i64().unwrap();
    fake.wait_for_live_posts().await;

    let (started, ended, statuses) = open_load(&shop.base, 100, Duration::from_secs(8), |n| {
        if n % 4 == 0 {
            "/".to_owned()
        } else {
            format!("/api/products/{product}")
        }
    })
    .await;
    let seconds = ended.duration_since(started).unwrap().as_secs_f64();
    let failed = statuses.iter().filter(|&&s| s >= 500).count();
    assert_eq!(failed, statuses.len() / 4, "every page and only pages fail");
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
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
