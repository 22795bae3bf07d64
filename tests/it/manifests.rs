//! The Kubernetes manifests and the binary agree: every variable the manifests set for a
//! Doorbuster container is one the binary reads, with a value it accepts; every `args` line parses
//! with the real CLI; the probe paths answer on the shop port; the ports are the binary's; every
//! metric and label the dashboard, the KEDA query and the adapter rules name is exported. The
//! YAML under `k8s/` is read directly (base, components, overlay patches and the manifests applied
//! on their own alike), so the test needs no kubectl. Environment changes in patches must be
//! strategic-merge patches (a container named like the base's), which is what this test reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use clap::{ArgAction, Command, CommandFactory, Parser};
use doorbuster::cli::Cli;
use serde::Deserialize;
use serde_json::Value;

use crate::support::TestApp;

/// Variables the binary reads outside clap, each by a library. Every other variable must be the
/// `env` of a clap argument of some subcommand.
const READ_OUTSIDE_CLAP: &[&str] = &[
    // tracing-subscriber's EnvFilter (src/telemetry.rs).
    "RUST_LOG",
    // sqlx's PostgreSQL driver, when DATABASE_URL has no password (libpq's variable).
    "PGPASSWORD",
];

/// One container as it appears in one YAML document (a base resource or a patch).
#[derive(Clone, Debug)]
struct ContainerDoc {
    file: PathBuf,
    name: String,
    spec: Value,
}

fn k8s_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("k8s")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read k8s/") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// Every document of every YAML file under k8s/.
fn documents() -> Vec<(PathBuf, Value)> {
    let mut files = Vec::new();
    yaml_files(&k8s_dir(), &mut files);
    files.sort();
    assert!(!files.is_empty(), "no YAML under {}", k8s_dir().display());
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read YAML");
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{}: not YAML: {e}", file.display()));
            if !value.is_null() {
                docs.push((file.clone(), value));
            }
        }
    }
    docs
}

/// Every `containers` / `initContainers` entry anywhere in the documents.
fn containers(docs: &[(PathBuf, Value)]) -> Vec<ContainerDoc> {
    fn walk(file: &Path, value: &Value, out: &mut Vec<ContainerDoc>) {
        match value {
            Value::Object(map) => {
                for (key, item) in map {
                    if key == "containers" || key == "initContainers" {
                        for c in item.as_array().into_iter().flatten() {
                            out.push(ContainerDoc {
                                file: file.to_owned(),
                                name: c["name"].as_str().unwrap_or_default().to_owned(),
                                spec: c.clone(),
                            });
                        }
                    } else {
                        walk(file, item, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(file, item, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (file, doc) in docs {
        walk(file, doc, &mut out);
    }
    out
}

/// Whether an image reference names Doorbuster's image: the `doorbuster` placeholder that the
/// kustomize tree's image component renames, or `[registry/]doorbuster[:tag][@digest]` in a
/// manifest applied on its own.
fn is_doorbuster_image(image: &str) -> bool {
    let without_digest = image.split('@').next().unwrap_or_default();
    let last = without_digest.rsplit('/').next().unwrap_or_default();
    last.split(':').next() == Some("doorbuster")
}

/// Doorbuster's containers: every container whose image is Doorbuster's, each followed by the
/// patches overlays apply to it (documents of a container with the same name and no image). Keyed
/// by container name, with the file added when two manifests use the same name.
fn doorbuster_containers(docs: &[(PathBuf, Value)]) -> BTreeMap<String, Vec<ContainerDoc>> {
    let (bases, patches): (Vec<ContainerDoc>, Vec<ContainerDoc>) = containers(docs)
        .into_iter()
        .partition(|c| c.spec.get("image").is_some());
    let bases: Vec<ContainerDoc> = bases
        .into_iter()
        .filter(|c| c.spec["image"].as_str().is_some_and(is_doorbuster_image))
        .collect();
    let mut grouped = BTreeMap::new();
    for base in &bases {
        let key = if bases.iter().filter(|b| b.name == base.name).count() > 1 {
            let file = base.file.strip_prefix(k8s_dir()).unwrap_or(&base.file);
            format!("{} ({})", base.name, file.display())
        } else {
            base.name.clone()
        };
        let mut group = vec![base.clone()];
        group.extend(patches.iter().filter(|p| p.name == base.name).cloned());
        grouped.insert(key, group);
    }
    assert!(
        grouped.contains_key("doorbuster"),
        "the base Deployment's container `doorbuster` with image `doorbuster` was not found"
    );
    grouped
}

/// Every subcommand path of the CLI (the top level is `serve` by default).
fn commands() -> Vec<Command> {
    let root = Cli::command();
    let mut out = vec![root.clone()];
    out.extend(root.get_subcommands().cloned());
    out
}

/// The environment variables clap reads, with the argument that reads each.
fn clap_env() -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for command in commands() {
        for arg in command.get_arguments() {
            if let Some(var) = arg.get_env() {
                env.insert(var.to_string_lossy().into_owned(), arg.get_id().to_string());
            }
        }
    }
    env
}

/// The subcommand a container's args run: the first argument if it is a subcommand name.
fn subcommand(args: &[String]) -> Option<&str> {
    args.first()
        .map(String::as_str)
        .filter(|first| !first.starts_with('-'))
}

/// A container's args, from whichever document of it sets them (the base resource).
fn args_of(docs: &[ContainerDoc]) -> Vec<String> {
    docs.iter()
        .find_map(|c| c.spec["args"].as_array())
        .map(|args| {
            args.iter()
                .map(|a| a.as_str().expect("args are strings").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `name: value` pairs of a container document's `env`, with `None` for `valueFrom`.
fn env_of(doc: &ContainerDoc) -> Vec<(String, Option<String>)> {
    doc.spec["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let name = e["name"]
                .as_str()
                .expect("env entries have names")
                .to_owned();
            (name, e["value"].as_str().map(str::to_owned))
        })
        .collect()
}

/// Every variable set on a Doorbuster container is read by the binary.
#[test]
fn every_variable_the_manifests_set_is_read_by_the_binary() {
    let docs = documents();
    let clap_env = clap_env();
    let mut unknown = Vec::new();
    for (name, container_docs) in doorbuster_containers(&docs) {
        for doc in &container_docs {
            assert!(
                doc.spec.get("envFrom").is_none(),
                "{}: container {name} uses envFrom, whose variables this test cannot check; list them under env",
                doc.file.display()
            );
            for (var, _) in env_of(doc) {
                if clap_env.contains_key(&var) || READ_OUTSIDE_CLAP.contains(&var.as_str()) {
                    continue;
                }
                unknown.push(format!("{} (container {name}): {var}", doc.file.display()));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "the manifests set variables the binary does not read:\n{}",
        unknown.join("\n")
    );
}

/// Each container's args, with the manifests' literal variable values as flags, parse with the
/// real CLI: a misspelt flag, a bad duration or a non-number port fails here, not in a pod.
#[test]
fn container_args_and_values_parse() {
    let docs = documents();
    let clap_env = clap_env();
    for (name, container_docs) in doorbuster_containers(&docs) {
        let args = args_of(&container_docs);
        let sub = subcommand(&args);
        let command = Cli::command();
        let target = match sub {
            Some(sub) => command
                .find_subcommand(sub)
                .unwrap_or_else(|| {
                    panic!("container {name} runs `{sub}`, which is no subcommand of doorbuster")
                })
                .clone(),
            None => command.clone(),
        };
        // One parse per document, so each patch's values are checked against the base's args.
        for doc in &container_docs {
            let mut argv = vec!["doorbuster".to_owned()];
            argv.extend(args.iter().cloned());
            for (var, value) in env_of(doc) {
                let (Some(value), Some(id)) = (value, clap_env.get(&var)) else {
                    continue;
                };
                let arg = target
                    .get_arguments()
                    .chain(command.get_arguments())
                    .find(|a| a.get_id() == id.as_str())
                    .unwrap_or_else(|| {
                        panic!("{var} is set on {name}, whose subcommand has no such setting")
                    });
                let long = arg
                    .get_long()
                    .expect("env-backed arguments have a long flag");
                if matches!(arg.get_action(), ArgAction::SetTrue) {
                    assert!(
                        ["true", "false"].contains(&value.as_str()),
                        "{}: {var}={value:?}: use true or false",
                        doc.file.display()
                    );
                    if value == "true" {
                        argv.push(format!("--{long}"));
                    }
                } else {
                    argv.push(format!("--{long}={value}"));
                }
            }
            if let Err(error) = Cli::try_parse_from(&argv) {
                panic!(
                    "{}: container {name}: `{}` does not parse:\n{error}",
                    doc.file.display(),
                    argv.join(" ")
                );
            }
        }
    }
}

/// The storefront's ports are the binary's: `http` is the default PORT (and the PORT the
/// manifests set), `metrics` the admin port; probes use those named ports.
#[test]
fn ports_are_the_binarys() {
    let docs = documents();
    let grouped = doorbuster_containers(&docs);
    let storefront = &grouped["doorbuster"];
    // The Deployment itself; the rest of the group are overlay patches.
    let base = &storefront[0];
    let ports: BTreeMap<&str, u64> = base.spec["ports"]
        .as_array()
        .expect("the storefront declares ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["containerPort"].as_u64().unwrap(),
            )
        })
        .collect();

    let command = Cli::command();
    let port_arg = command
        .get_arguments()
        .find(|a| a.get_env().is_some_and(|e| e == "PORT"))
        .expect("PORT is a setting");
    let default_port: u64 = port_arg.get_default_values()[0]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        ports.get("http"),
        Some(&default_port),
        "http is the shop port"
    );
    let admin_default: u64 = command
        .get_arguments()
        .find(|a| a.get_env().is_some_and(|e| e == "DOORBUSTER_ADMIN_PORT"))
        .expect("DOORBUSTER_ADMIN_PORT is a setting")
        .get_default_values()[0]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        ports.get("metrics"),
        Some(&admin_default),
        "metrics is the admin port"
    );

    for doc in storefront {
        for (var, value) in env_of(doc) {
            let expected = match var.as_str() {
                "PORT" => default_port,
                "DOORBUSTER_ADMIN_PORT" => admin_default,
                _ => continue,
            };
            assert_eq!(
                value.as_deref(),
                Some(expected.to_string().as_str()),
                "{}: {var} must match the container port",
                doc.file.display()
            );
        }
        for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
            if let Some(port) = doc.spec[probe]["httpGet"]["port"].as_str() {
                assert_eq!(port, "http", "{probe} must probe the shop port");
            }
        }
    }
}

/// Every HTTP probe path in the manifests answers 200 from the real router.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_paths_are_answered() {
    let docs = documents();
    let mut paths = BTreeSet::new();
    for (_, container_docs) in doorbuster_containers(&docs) {
        for doc in container_docs {
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                if let Some(path) = doc.spec[probe]["httpGet"]["path"].as_str() {
                    paths.insert(path.to_owned());
                }
            }
        }
    }
    assert!(
        paths.contains("/healthz") && paths.contains("/readyz"),
        "liveness on /healthz and readiness on /readyz: {paths:?}"
    );
    let app = TestApp::sqlite().await;
    for path in paths {
        let response = app.get(&path).await;
        assert_eq!(response.status, StatusCode::OK, "{path}");
    }
}

/// The labels Prometheus adds to every series it scrapes through a ServiceMonitor: the Prometheus
/// Operator's target labels (`namespace`, `service`, `pod`, `container`, `endpoint`) and
/// Prometheus's own (`job`, `instance`). The ServiceMonitor's relabelings add more; those are read
/// from it.
const SCRAPE_LABELS: &[&str] = &[
    "namespace",
    "service",
    "pod",
    "container",
    "endpoint",
    "job",
    "instance",
];

/// Every query the manifests run against Prometheus, with where it comes from: the dashboard's
/// panels and variables, the KEDA ScaledObject's Prometheus triggers, and the prometheus-adapter
/// rules (their series queries, and their metrics queries as the adapter fills them in).
fn manifest_queries() -> Vec<(String, String)> {
    let k8s = k8s_dir().join("components");
    let mut queries = Vec::new();
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(k8s.join("monitoring/dashboard.json")).unwrap(),
    )
    .unwrap();
    fn panels(panel: &Value, queries: &mut Vec<(String, String)>) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                let title = panel["title"].as_str().unwrap_or("?");
                queries.push((format!("dashboard panel {title:?}"), expr.to_owned()));
            }
        }
        for inner in panel["panels"].as_array().into_iter().flatten() {
            panels(inner, queries);
        }
    }
    for panel in dashboard["panels"].as_array().unwrap() {
        panels(panel, &mut queries);
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        // `label_values(metric, label)`: the metric must have the label.
        if let Some(query) = variable["query"]["query"].as_str()
            && let Some(inner) = query
                .strip_prefix("label_values(")
                .and_then(|q| q.strip_suffix(')'))
            && let Some((metric, label)) = inner.split_once(',')
        {
            queries.push((
                format!("dashboard variable {}", variable["name"]),
                format!("sum by ({}) ({})", label.trim(), metric.trim()),
            ));
        }
    }
    let scaled: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(k8s.join("rps-keda/scaledobject.yaml")).unwrap(),
    )
    .unwrap();
    for trigger in scaled["spec"]["triggers"].as_array().unwrap() {
        if trigger["type"] == "prometheus" {
            queries.push((
                "KEDA ScaledObject".to_owned(),
                trigger["metadata"]["query"].as_str().unwrap().to_owned(),
            ));
        }
    }
    let adapter = k8s.join("rps-prometheus-adapter");
    let config: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(adapter.join("adapter-config.yaml")).unwrap(),
    )
    .unwrap();
    let values: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(adapter.join("adapter-values.yaml")).unwrap(),
    )
    .unwrap();
    for (file, rules) in [
        ("adapter-config.yaml", &config["rules"]),
        ("adapter-values.yaml", &values["rules"]["custom"]),
    ] {
        for rule in rules.as_array().unwrap() {
            let series = rule["seriesQuery"].as_str().unwrap();
            queries.push((format!("{file} seriesQuery"), series.to_owned()));
            // The adapter fills in its template per series: the series' name, a matcher for
            // each resource label (namespace, pod), and those labels to group by.
            let name = series.split('{').next().unwrap().trim();
            let resources: Vec<&str> = rule["resources"]["overrides"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let matchers: Vec<String> = resources.iter().map(|l| format!("{l}=\"x\"")).collect();
            let metrics_query = rule["metricsQuery"]
                .as_str()
                .unwrap()
                .replace("<<.Series>>", name)
                .replace("<<.LabelMatchers>>", &matchers.join(","))
                .replace("<<.GroupBy>>", &resources.join(","));
            queries.push((format!("{file} metricsQuery"), metrics_query));
        }
    }
    queries
}

/// Every metric and label that the dashboard, the KEDA ScaledObject and the prometheus-adapter
/// rules query is on a running shop's `/metrics` after traffic and an order, or is added by the
/// scrape (Prometheus's target labels and the ServiceMonitor's relabelings). The queries are read
/// from those files and parsed, so a renamed metric or label, or a query that reaches for
/// cAdvisor, fails here rather than on a dark panel or a scaler stuck at its minimum. Metrics
/// named `kube_*` are kube-state-metrics', not the shop's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_and_label_the_manifests_query_is_exported() {
    use crate::fake_insights::Shop;
    use crate::promql::{Labels, Scrape, parse};
    use crate::support::checkout_body;

    let app = TestApp::sqlite().await;
    let state = app.state.clone();
    let shop = Shop::serve_state(app, state).await;
    let http = doorbuster::tls::client_builder().build().unwrap();
    let product = shop
        .app
        .find_product(|p| p["stock"].as_i64().unwrap() > 5)
        .await;
    for path in ["/", "/cart", "/p/no-such-thing", "/healthz"] {
        http.get(format!("{}{path}", shop.base))
            .send()
            .await
            .unwrap();
    }
    let order = http
        .post(format!("{}/api/checkout", shop.base))
        .json(&checkout_body(&[(product["id"].as_i64().unwrap(), 1)]))
        .send()
        .await
        .unwrap();
    assert_eq!(order.status(), 201);
    let text = shop.scrape().await;
    shop.stop().await;

    let monitor: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(k8s_dir().join("components/monitoring/servicemonitor.yaml"))
            .unwrap(),
    )
    .unwrap();
    let mut added: BTreeSet<String> = SCRAPE_LABELS.iter().map(|l| l.to_string()).collect();
    for endpoint in monitor["spec"]["endpoints"].as_array().unwrap() {
        for relabel in endpoint["relabelings"].as_array().into_iter().flatten() {
            if let Some(label) = relabel["targetLabel"].as_str() {
                added.insert(label.to_owned());
            }
        }
    }
    let scrape = Scrape::new(0.0, &text, &Labels::new());
    let queries = manifest_queries();
    assert!(queries.len() > 20, "too few queries found: {queries:?}");
    let mut missing = BTreeSet::new();
    let mut checked = BTreeSet::new();
    for (source, query) in &queries {
        let expr = parse(&query.replace("$namespace", "doorbuster"))
            .unwrap_or_else(|error| panic!("{source}: {error}: {query}"));
        let has = |metric: &str, label: &str| {
            added.contains(label)
                || scrape
                    .label_names(metric)
                    .is_some_and(|labels| labels.contains(label))
        };
        for (metric, matchers) in expr.selectors() {
            if metric.starts_with("kube_") {
                continue;
            }
            checked.insert(metric.to_owned());
            if scrape.label_names(metric).is_none() {
                missing.insert(format!("{source}: metric {metric} is not exported"));
                continue;
            }
            for matcher in matchers {
                if !has(metric, &matcher.label) {
                    missing.insert(format!("{source}: {metric} has no label {}", matcher.label));
                }
            }
        }
        for (label, metrics) in expr.grouping_labels() {
            for metric in metrics.iter().filter(|m| !m.starts_with("kube_")) {
                if scrape.label_names(metric).is_some() && !has(metric, &label) {
                    missing.insert(format!("{source}: {metric} has no label {label}"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "queried but not exported:\n{}",
        missing.into_iter().collect::<Vec<_>>().join("\n")
    );
    // The ones the demo cannot do without are among those checked.
    for metric in [
        "http_server_request_duration_seconds_count",
        "http_server_request_duration_seconds_bucket",
        "doorbuster_orders_total",
        "doorbuster_requests_shed_total",
    ] {
        assert!(
            checked.contains(metric),
            "{metric} is not queried: {checked:?}"
        );
    }
}
