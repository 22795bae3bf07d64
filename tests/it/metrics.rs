//! `/metrics` read the way Prometheus, the dashboard and the autoscalers read it: counters that
//! exist before their first event, latency buckets whose percentiles are true, and every metric
//! and label the manifests query.

use axum::http::StatusCode;
use doorbuster::metrics::{Metrics, RequestAttributes};

use crate::promql::{Labels, Scrape, eval, histogram_quantile, parse};
use crate::support::{TestApp, checkout_body};

/// A pod that has served nothing yet already has every shop counter, at zero, for each label
/// value it can take. `rate()` and `increase()` start from a series' first sample, so a counter
/// that only appeared with the pod's first order lost that order to them, and a panel over a
/// counter nothing had touched yet (requests shed) said "No data".
#[tokio::test]
async fn counters_start_at_zero_so_the_first_events_are_counted() {
    let app = TestApp::sqlite().await;
    let earlier = Scrape::new(0.0, &app.state.metrics.prometheus_text(), &Labels::new());
    let zero = |name: &str, label: Option<(&str, &str)>| {
        let found = earlier.samples.iter().find(|s| {
            s.name == name && label.is_none_or(|(k, v)| s.labels.get(k).is_some_and(|x| x == v))
        });
        assert_eq!(
            found.map(|s| s.value),
            Some(0.0),
            "{name} {label:?} at zero before anything happened"
        );
    };
    for name in [
        "doorbuster_orders_total",
        "doorbuster_items_sold_total",
        "doorbuster_revenue_cents_total",
        "doorbuster_requests_shed_total",
    ] {
        zero(name, None);
    }
    for reason in ["out_of_stock", "invalid", "conflict"] {
        zero(
            "doorbuster_checkout_rejections_total",
            Some(("reason", reason)),
        );
    }
    for doorbuster in ["true", "false"] {
        zero(
            "doorbuster_cart_additions_total",
            Some(("doorbuster", doorbuster)),
        );
    }
    for control in ["knobs", "readiness"] {
        zero(
            "doorbuster_control_changes_total",
            Some(("control", control)),
        );
    }

    // The pod's very first order counts in the dashboard's queries.
    let product = app.find_product(|p| p["stock"].as_i64().unwrap() > 5).await;
    let order = app
        .post_json(
            "/api/checkout",
            &checkout_body(&[(product["id"].as_i64().unwrap(), 2)]),
        )
        .await;
    assert_eq!(order.status, StatusCode::CREATED);
    let later = Scrape::new(60.0, &app.state.metrics.prometheus_text(), &Labels::new());
    let value = |query: &str| {
        eval(&parse(query).unwrap(), &earlier, &later)
            .unwrap()
            .single()
    };
    assert_eq!(
        value("sum(increase(doorbuster_orders_total[1m]))"),
        Some(1.0)
    );
    assert_eq!(
        value("sum(increase(doorbuster_items_sold_total[1m]))"),
        Some(2.0)
    );
    assert_eq!(
        value("sum(increase(doorbuster_requests_shed_total[1m]))"),
        Some(0.0),
        "the shed panel shows 0, not No data"
    );
}

/// Grafana's latency percentiles (p50, p95, p99: `histogram_quantile` over the request-duration
/// buckets, interpolating linearly within a bucket as Prometheus does) are within 10% of the true
/// percentiles wherever those fall between 1 ms and 2 s, for latencies of any shape: uniform,
/// log-normal, two-humped, and as narrow as a fixed injected latency, which is the worst case for
/// interpolation. Each distribution goes through the shop's own histogram and is read back from
/// its Prometheus text. (With buckets at 0.1 s and 0.25 s, the README's
/// `DOORBUSTER_LATENCY=50ms..150ms` read p95 235 ms for a true 145 ms.)
#[test]
fn latency_percentiles_are_within_ten_percent_from_1ms_to_2s() {
    use rand::{Rng as _, SeedableRng as _};
    let mut rng = rand::rngs::StdRng::seed_from_u64(18);
    let mut distributions: Vec<(String, Vec<f64>)> = Vec::new();
    let uniform = |rng: &mut rand::rngs::StdRng, low: f64, high: f64, n: usize| -> Vec<f64> {
        (0..n).map(|_| rng.random_range(low..=high)).collect()
    };
    distributions.push((
        "the README's 50–150 ms".into(),
        uniform(&mut rng, 0.050, 0.150, 4_000),
    ));
    // 1 ms to 2 s, 24 steps a decade: narrow (±1%), wide (×3) and log-normal around each.
    let steps = (0..=80).map(|i| 0.001 * 10f64.powf(f64::from(i) / 24.0));
    for centre in steps {
        distributions.push((
            format!("{:.1} ms ±1%", centre * 1e3),
            uniform(&mut rng, centre * 0.99, centre * 1.01, 400),
        ));
        distributions.push((
            format!("{:.1}–{:.1} ms", centre * 1e3, centre * 3e3),
            uniform(&mut rng, centre, centre * 3.0, 1_000),
        ));
        distributions.push((
            format!("log-normal, median {:.1} ms", centre * 1e3),
            (0..1_000)
                .map(|_| {
                    // Box–Muller: a standard normal from two uniforms; sigma 0.5.
                    let (u, v): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
                    let normal = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
                    centre * (0.5 * normal).exp()
                })
                .collect(),
        ));
    }
    // Fast pages with a slow tail of checkouts: p95 and p99 land in the slow hump.
    let mut humps = uniform(&mut rng, 0.002, 0.004, 9_000);
    humps.extend(uniform(&mut rng, 0.6, 0.9, 1_000));
    distributions.push(("9:1 fast and slow".into(), humps));

    let mut checked = 0;
    let mut misses = Vec::new();
    for (name, latencies) in &distributions {
        let metrics =
            Metrics::prometheus_only(opentelemetry_sdk::Resource::builder_empty().build());
        let request = RequestAttributes {
            method: "GET".into(),
            route: "/".into(),
            synthetic: false,
        };
        for seconds in latencies {
            metrics.request_finished(&request, 200, *seconds);
        }
        let scrape = Scrape::new(0.0, &metrics.prometheus_text(), &Labels::new());
        let buckets: Vec<(f64, f64)> = scrape
            .samples
            .iter()
            .filter(|s| s.name == "http_server_request_duration_seconds_bucket")
            .map(|s| {
                let le = &s.labels["le"];
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                (bound, s.value)
            })
            .collect();
        let mut sorted = latencies.clone();
        sorted.sort_by(f64::total_cmp);
        for q in [0.5, 0.95, 0.99] {
            // The q-quantile of the observations: the ceil(q·n)-th smallest.
            let truth = sorted[((q * sorted.len() as f64).ceil() as usize).max(1) - 1];
            if !(0.001..=2.0).contains(&truth) {
                continue;
            }
            checked += 1;
            let shown = histogram_quantile(q, buckets.clone()).unwrap();
            let error = shown / truth - 1.0;
            if error.abs() >= 0.10 {
                misses.push(format!(
                    "{name}: p{} shows {:.2} ms for a true {:.2} ms ({:+.0}%)",
                    q * 100.0,
                    shown * 1e3,
                    truth * 1e3,
                    error * 100.0
                ));
            }
        }
    }
    assert!(checked > 600, "only {checked} percentiles checked");
    assert!(
        misses.is_empty(),
        "{} of {checked} percentiles off by 10% or more:\n{}",
        misses.len(),
        misses.join("\n")
    );
}
