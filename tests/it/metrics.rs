//! `/metrics` read the way Prometheus, the dashboard and the autoscalers read it: counters that
//! exist before their first event, latency buckets whose percentiles are true, and every metric
//! and label the manifests query.

use axum::http::StatusCode;

use crate::promql::{Labels, Scrape, eval, parse};
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
