//! What the rehearsal reads from a rendered overlay (`kubectl kustomize k8s/overlays/<name>`):
//! the storefront Deployment (replicas, the pod's requests and CPU limit, whether it may go to
//! the virtual node, its literal `DOORBUSTER_*` settings), the autoscaler (a KEDA ScaledObject or
//! an `autoscaling/v2` HPA, turned into one [`hpa::Spec`]), the load generator Job (its
//! `loadgen` command line, parsed by the real CLI) and the ServiceMonitor's scrape interval.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;
use serde_json::Value;

use super::hpa::{self, Policy, Rules, Select};
use crate::cli::{Cli, Command};
use crate::loadgen::LoadgenArgs;

/// The taint key of the virtual node (v1 and v2 alike).
pub const VIRTUAL_NODE_TAINT: &str = "virtual-kubelet.io/provider";
/// The HPA controller's `--horizontal-pod-autoscaler-tolerance` default.
pub const DEFAULT_TOLERANCE: f64 = 0.1;
/// KEDA's `maxReplicaCount` when a ScaledObject does not set it.
const KEDA_DEFAULT_MAX: u32 = 100;

/// The storefront's pods.
#[derive(Clone, Debug)]
pub struct Storefront {
    pub name: String,
    pub replicas: u32,
    /// The pod's requests (all containers): what the scheduler fits onto a node.
    pub cpu_request_m: u64,
    pub memory_request_mib: f64,
    /// The storefront container's CPU limit (its request when it has none).
    pub cpu_limit_m: u64,
    /// Tolerates the virtual node's taint: may burst there.
    pub tolerates_virtual_node: bool,
    /// Required onto the virtual node (components/virtual-node-only): never on a VM.
    pub requires_virtual_node: bool,
    /// The storefront container's settings with literal values.
    pub env: BTreeMap<String, String>,
}

/// The autoscaler, as the HPA controller will see it.
#[derive(Clone, Debug)]
pub struct Scaler {
    /// What it is, for people: "KEDA ScaledObject doorbuster (prometheus trigger)".
    pub source: String,
    /// Window of the PromQL `rate()` the metric comes from, when the overlay shows it.
    pub rate_window: Option<Duration>,
    pub spec: hpa::Spec,
}

/// The load generator Job.
#[derive(Clone, Debug)]
pub struct Surge {
    pub job: String,
    pub args: LoadgenArgs,
    /// The whole `loadgen …` command line, as the Job runs it.
    pub command_line: String,
    pub active_deadline: Option<Duration>,
    pub cpu_request_m: u64,
    pub memory_request_mib: f64,
}

/// Everything the rehearsal takes from one rendered overlay.
#[derive(Clone, Debug)]
pub struct Overlay {
    pub storefront: Storefront,
    pub scaler: Scaler,
    pub surge: Surge,
    pub scrape_interval: Option<Duration>,
}

impl Overlay {
    /// Reads the output of `kubectl kustomize` (YAML documents separated by `---`).
    pub fn parse(rendered: &str) -> Result<Overlay, String> {
        let mut docs = Vec::new();
        for document in serde_yaml_ng::Deserializer::from_str(rendered) {
            let value = Value::deserialize(document)
                .map_err(|e| format!("the rendered manifests are not YAML: {e}"))?;
            if !value.is_null() {
                docs.push(value);
            }
        }
        let of_kind =
            |kind: &str| -> Vec<&Value> { docs.iter().filter(|d| d["kind"] == kind).collect() };
        let scaled_objects = of_kind("ScaledObject");
        let hpas = of_kind("HorizontalPodAutoscaler");
        let (scaler, target) = match (scaled_objects.as_slice(), hpas.as_slice()) {
            ([so], []) => keda(so)?,
            ([], [hpa]) => hpa_v2(hpa)?,
            ([], []) => {
                return Err(
                    "no autoscaler: the overlay has no ScaledObject or HorizontalPodAutoscaler"
                        .to_owned(),
                );
            }
            _ => {
                return Err(format!(
                    "{} ScaledObject(s) and {} HorizontalPodAutoscaler(s): the rehearsal models one autoscaler on the storefront",
                    scaled_objects.len(),
                    hpas.len()
                ));
            }
        };
        let deployment = of_kind("Deployment")
            .into_iter()
            .find(|d| d["metadata"]["name"] == target.as_str())
            .ok_or_else(|| {
                format!(
                    "the autoscaler targets Deployment {target}, which the overlay does not have"
                )
            })?;
        let storefront = storefront(deployment)?;
        let jobs: Vec<&Value> = of_kind("Job")
            .into_iter()
            .filter(|job| loadgen_command(job).is_some())
            .collect();
        let surge = match jobs.as_slice() {
            [job] => surge(job)?,
            [] => {
                return Err(
                    "no load generator: the overlay has no Job running `doorbuster loadgen`"
                        .to_owned(),
                );
            }
            _ => return Err("more than one load generator Job".to_owned()),
        };
        let scrape_interval = of_kind("ServiceMonitor")
            .into_iter()
            .flat_map(|sm| {
                sm["spec"]["endpoints"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .find_map(|endpoint| endpoint["interval"].as_str().map(str::to_owned))
            .map(|text| parse_duration(&text))
            .transpose()?;
        Ok(Overlay {
            storefront,
            scaler,
            surge,
            scrape_interval,
        })
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| format!("bad duration {text:?}: {e}"))
}

/// A KEDA ScaledObject: KEDA creates an HPA with `minReplicas` = `minReplicaCount` (at least 1:
/// KEDA itself takes the workload to zero), `maxReplicas` = `maxReplicaCount`, the behaviour of
/// `advanced.horizontalPodAutoscalerConfig`, and per trigger an External metric whose target is
/// the trigger's `threshold` as an `AverageValue` (the default `metricType` of every trigger but
/// CPU and memory; `GetMetricTargetMili` in KEDA's `pkg/scalers`).
fn keda(so: &Value) -> Result<(Scaler, String), String> {
    let spec = &so["spec"];
    let name = so["metadata"]["name"].as_str().unwrap_or("?");
    let target = spec["scaleTargetRef"]["name"]
        .as_str()
        .ok_or("the ScaledObject has no scaleTargetRef.name")?
        .to_owned();
    let kind = spec["scaleTargetRef"]["kind"]
        .as_str()
        .unwrap_or("Deployment");
    if kind != "Deployment" {
        return Err(format!(
            "the ScaledObject scales a {kind}: only Deployments are modelled"
        ));
    }
    let triggers = spec["triggers"].as_array().cloned().unwrap_or_default();
    let [trigger] = triggers.as_slice() else {
        return Err(format!(
            "the ScaledObject has {} triggers: the rehearsal models one",
            triggers.len()
        ));
    };
    let kind = trigger["type"].as_str().unwrap_or("?");
    let metric_type = trigger["metricType"].as_str().unwrap_or("AverageValue");
    if metric_type != "AverageValue" || kind == "cpu" || kind == "memory" {
        return Err(format!(
            "a {kind} trigger with metricType {metric_type}: the rehearsal models AverageValue targets (requests per second per pod)"
        ));
    }
    let threshold = number(&trigger["metadata"]["threshold"])
        .ok_or("the trigger has no numeric metadata.threshold")?;
    let rate_window = trigger["metadata"]["query"].as_str().and_then(rate_window);
    let min = count(&spec["minReplicaCount"]).unwrap_or(0).max(1);
    let max = count(&spec["maxReplicaCount"]).unwrap_or(KEDA_DEFAULT_MAX);
    let behavior = &spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"];
    let scaler = Scaler {
        source: format!(
            "KEDA ScaledObject {name} ({kind} trigger, threshold {threshold}) → HPA on an External metric, AverageValue {threshold} per pod"
        ),
        rate_window,
        spec: hpa::Spec {
            min,
            max,
            target: threshold,
            up: rules(&behavior["scaleUp"], Rules::default_up())?,
            down: rules(&behavior["scaleDown"], Rules::default_down())?,
            tolerance: DEFAULT_TOLERANCE,
        },
    };
    Ok((scaler, target))
}

/// An `autoscaling/v2` HPA with one Pods or External metric and an `AverageValue` target.
fn hpa_v2(hpa: &Value) -> Result<(Scaler, String), String> {
    let spec = &hpa["spec"];
    let name = hpa["metadata"]["name"].as_str().unwrap_or("?");
    let target = spec["scaleTargetRef"]["name"]
        .as_str()
        .ok_or("the HPA has no scaleTargetRef.name")?
        .to_owned();
    let metrics = spec["metrics"].as_array().cloned().unwrap_or_default();
    let [metric] = metrics.as_slice() else {
        return Err(format!(
            "the HPA has {} metrics: the rehearsal models one",
            metrics.len()
        ));
    };
    let kind = metric["type"].as_str().unwrap_or("?");
    let source = match kind {
        "Pods" => &metric["pods"],
        "External" => &metric["external"],
        _ => {
            return Err(format!(
                "the HPA scales on a {kind} metric: the rehearsal models requests per second (a Pods or External metric with an AverageValue target); pods on a virtual node report no CPU to a CPU HPA"
            ));
        }
    };
    let average = source["target"]["averageValue"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            source["target"]["averageValue"]
                .as_f64()
                .map(|v| v.to_string())
        })
        .ok_or("the HPA's metric has no AverageValue target")?;
    let per_pod =
        parse_quantity(&average).ok_or_else(|| format!("bad averageValue {average:?}"))?;
    let metric_name = source["metric"]["name"].as_str().unwrap_or("?");
    let scaler = Scaler {
        source: format!(
            "HorizontalPodAutoscaler {name} on the {kind} metric {metric_name}, AverageValue {per_pod} per pod"
        ),
        rate_window: None,
        spec: hpa::Spec {
            min: count(&spec["minReplicas"]).unwrap_or(1),
            max: count(&spec["maxReplicas"]).ok_or("the HPA has no maxReplicas")?,
            target: per_pod,
            up: rules(&spec["behavior"]["scaleUp"], Rules::default_up())?,
            down: rules(&spec["behavior"]["scaleDown"], Rules::default_down())?,
            tolerance: DEFAULT_TOLERANCE,
        },
    };
    Ok((scaler, target))
}

/// One direction of `behavior`; what it leaves out keeps the API's default.
fn rules(value: &Value, default: Rules) -> Result<Rules, String> {
    if value.is_null() {
        return Ok(default);
    }
    let window = match count(&value["stabilizationWindowSeconds"]) {
        Some(seconds) => Duration::from_secs(u64::from(seconds)),
        None => default.window,
    };
    let select = match value["selectPolicy"].as_str() {
        None | Some("Max") => Select::Max,
        Some("Min") => Select::Min,
        Some("Disabled") => Select::Disabled,
        Some(other) => return Err(format!("unknown selectPolicy {other:?}")),
    };
    let policies = match value["policies"].as_array() {
        None => default.policies,
        Some(list) => list
            .iter()
            .map(|policy| {
                let value = count(&policy["value"]).ok_or("a scaling policy without a value")?;
                let period = Duration::from_secs(u64::from(
                    count(&policy["periodSeconds"])
                        .ok_or("a scaling policy without periodSeconds")?,
                ));
                match policy["type"].as_str() {
                    Some("Pods") => Ok(Policy::Pods { value, period }),
                    Some("Percent") => Ok(Policy::Percent { value, period }),
                    other => Err(format!("unknown scaling policy type {other:?}")),
                }
            })
            .collect::<Result<_, String>>()?,
    };
    Ok(Rules {
        window,
        select,
        policies,
    })
}

/// The `[1m]` of `sum(rate(x[1m]))`.
fn rate_window(query: &str) -> Option<Duration> {
    let start = query.find("rate(")?;
    let rest = &query[start..];
    let open = rest.find('[')?;
    let close = rest[open..].find(']')? + open;
    humantime::parse_duration(&rest[open + 1..close]).ok()
}

fn storefront(deployment: &Value) -> Result<Storefront, String> {
    let name = deployment["metadata"]["name"]
        .as_str()
        .unwrap_or("?")
        .to_owned();
    let pod = &deployment["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().cloned().unwrap_or_default();
    let main = containers
        .iter()
        .find(|c| c["name"] == name.as_str())
        .or_else(|| containers.first())
        .ok_or_else(|| format!("Deployment {name} has no containers"))?;
    let (mut cpu, mut memory) = (0, 0.0);
    for container in &containers {
        let (c, m) = requests(container)
            .ok_or_else(|| format!("a container of Deployment {name} has no CPU and memory requests: nothing to fit onto a node"))?;
        cpu += c;
        memory += m;
    }
    let cpu_limit_m = main["resources"]["limits"]["cpu"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            main["resources"]["limits"]["cpu"]
                .as_f64()
                .map(|v| v.to_string())
        })
        .and_then(|text| parse_cpu_m(&text))
        .unwrap_or(cpu);
    let tolerates_virtual_node = pod["tolerations"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| {
            t["key"] == VIRTUAL_NODE_TAINT || (t["key"].is_null() && t["operator"] == "Exists")
        });
    let selector = &pod["nodeSelector"];
    let required =
        pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            .to_string();
    let requires_virtual_node = selector["type"] == "virtual-kubelet"
        || selector["virtualization"] == "virtualnode2"
        || required.contains("virtual-kubelet")
        || required.contains("virtualnode2");
    let env = main["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|var| {
            Some((
                var["name"].as_str()?.to_owned(),
                var["value"].as_str()?.to_owned(),
            ))
        })
        .collect();
    Ok(Storefront {
        replicas: count(&deployment["spec"]["replicas"]).unwrap_or(1),
        name,
        cpu_request_m: cpu,
        memory_request_mib: memory,
        cpu_limit_m,
        tolerates_virtual_node,
        requires_virtual_node,
        env,
    })
}

/// The `command` and `args` of the Job's container that runs `loadgen`, from `loadgen` on.
fn loadgen_command(job: &Value) -> Option<Vec<String>> {
    let containers = job["spec"]["template"]["spec"]["containers"].as_array()?;
    containers.iter().find_map(|container| {
        let words: Vec<String> = ["command", "args"]
            .iter()
            .flat_map(|key| container[*key].as_array().cloned().unwrap_or_default())
            .filter_map(|word| word.as_str().map(str::to_owned))
            .collect();
        let at = words.iter().position(|word| word == "loadgen")?;
        Some(words[at..].to_vec())
    })
}

fn surge(job: &Value) -> Result<Surge, String> {
    let name = job["metadata"]["name"].as_str().unwrap_or("?").to_owned();
    let words = loadgen_command(job).unwrap_or_default();
    let mut argv = vec!["doorbuster".to_owned()];
    argv.extend(words.iter().cloned());
    let cli = Cli::try_parse_from(&argv)
        .map_err(|e| format!("Job {name}'s command line does not parse: {e}"))?;
    let Command::Loadgen(args) = cli.into_command() else {
        return Err(format!("Job {name} does not run loadgen"));
    };
    let container = job["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|list| list.first())
        .cloned()
        .unwrap_or_default();
    let (cpu, memory) = requests(&container).unwrap_or((0, 0.0));
    Ok(Surge {
        job: name,
        args,
        command_line: words.join(" "),
        active_deadline: job["spec"]["activeDeadlineSeconds"]
            .as_u64()
            .map(Duration::from_secs),
        cpu_request_m: cpu,
        memory_request_mib: memory,
    })
}

/// A container's CPU (millicores) and memory (MiB) requests.
fn requests(container: &Value) -> Option<(u64, f64)> {
    let requests = &container["resources"]["requests"];
    let text = |v: &Value| {
        v.as_str()
            .map(str::to_owned)
            .or_else(|| v.as_f64().map(|n| n.to_string()))
    };
    Some((
        parse_cpu_m(&text(&requests["cpu"])?)?,
        parse_memory_mib(&text(&requests["memory"])?)?,
    ))
}

fn count(value: &Value) -> Option<u32> {
    value.as_u64().and_then(|n| u32::try_from(n).ok())
}

/// A number given as a YAML number or a string (`threshold: "20"`).
fn number(value: &Value) -> Option<f64> {
    value
        .as_f64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|n: &f64| n.is_finite() && *n > 0.0)
}

/// A Kubernetes quantity as a plain number: `20`, `20000m`, `1.5k`.
pub fn parse_quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let (number, scale) = match text.strip_suffix('m') {
        Some(n) => (n, 0.001),
        None => match text.strip_suffix('k') {
            Some(n) => (n, 1000.0),
            None => (text, 1.0),
        },
    };
    number
        .parse::<f64>()
        .ok()
        .map(|n| n * scale)
        .filter(|n| n.is_finite())
}

/// CPU in millicores: `500m`, `1`, `0.5`.
pub fn parse_cpu_m(text: &str) -> Option<u64> {
    let text = text.trim();
    match text.strip_suffix('m') {
        Some(m) => m.parse().ok(),
        None => text
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0)
            .map(|n| (n * 1000.0).round() as u64),
    }
}

/// Memory in MiB: `512Mi`, `1Gi`, `1G`, `536870912`.
pub fn parse_memory_mib(text: &str) -> Option<f64> {
    let text = text.trim();
    const UNITS: [(&str, f64); 8] = [
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    let (number, bytes) = UNITS
        .iter()
        .find_map(|(suffix, bytes)| text.strip_suffix(suffix).map(|n| (n, *bytes)))
        .unwrap_or((text, 1.0));
    number
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map(|n| n * bytes / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_cpu_m("500m"), Some(500));
        assert_eq!(parse_cpu_m("1"), Some(1000));
        assert_eq!(parse_cpu_m("0.25"), Some(250));
        assert_eq!(parse_memory_mib("512Mi"), Some(512.0));
        assert_eq!(parse_memory_mib("1Gi"), Some(1024.0));
        assert_eq!(parse_memory_mib("1048576"), Some(1.0));
        assert_eq!(parse_quantity("20"), Some(20.0));
        assert_eq!(parse_quantity("20500m"), Some(20.5));
        assert_eq!(parse_cpu_m("lots"), None);
    }

    #[test]
    fn the_rate_window_comes_from_the_query() {
        assert_eq!(
            rate_window(r#"sum(rate(http_server_request_duration_seconds_count{a="b"}[1m]))"#),
            Some(Duration::from_secs(60))
        );
        assert_eq!(rate_window("sum(x)"), None);
    }

    const RENDERED: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: doorbuster}
spec:
  replicas: 2
  template:
    spec:
      tolerations: [{key: virtual-kubelet.io/provider, operator: Exists, effect: NoSchedule}]
      containers:
        - name: doorbuster
          env: [{name: DOORBUSTER_REQUEST_TIMEOUT, value: 10s}, {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
          resources: {requests: {cpu: 500m, memory: 512Mi}, limits: {cpu: 500m, memory: 512Mi}}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: doorbuster}
spec:
  scaleTargetRef: {name: doorbuster}
  minReplicaCount: 2
  maxReplicaCount: 30
  advanced:
    horizontalPodAutoscalerConfig:
      behavior:
        scaleDown:
          stabilizationWindowSeconds: 120
          selectPolicy: Min
          policies: [{type: Percent, value: 50, periodSeconds: 60}]
  triggers:
    - type: prometheus
      metadata: {query: 'sum(rate(x[1m]))', threshold: "20"}
---
apiVersion: batch/v1
kind: Job
metadata: {name: doorbuster-loadgen}
spec:
  activeDeadlineSeconds: 900
  template:
    spec:
      containers:
        - name: loadgen
          command: ["/usr/local/bin/doorbuster"]
          args: ["loadgen", "--target", "http://doorbuster", "--open", "--stages", "1m:30,5m:400"]
          resources: {requests: {cpu: "1", memory: 512Mi}}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: doorbuster}
spec:
  endpoints: [{port: metrics, interval: 15s}]
"#;

    #[test]
    fn a_rendered_overlay_reads_into_the_model() {
        let overlay = Overlay::parse(RENDERED).unwrap();
        let store = &overlay.storefront;
        assert_eq!(
            (store.replicas, store.cpu_request_m, store.cpu_limit_m),
            (2, 500, 500)
        );
        assert_eq!(store.memory_request_mib, 512.0);
        assert!(store.tolerates_virtual_node && !store.requires_virtual_node);
        assert_eq!(
            store
                .env
                .get("DOORBUSTER_REQUEST_TIMEOUT")
                .map(String::as_str),
            Some("10s")
        );
        assert!(
            !store.env.contains_key("POD_NAME"),
            "values from the API are not literal"
        );

        let spec = &overlay.scaler.spec;
        assert_eq!((spec.min, spec.max, spec.target), (2, 30, 20.0));
        assert_eq!(spec.up, Rules::default_up(), "scaleUp left to the defaults");
        assert_eq!(spec.down.window, Duration::from_secs(120));
        assert_eq!(spec.down.select, Select::Min);
        assert_eq!(overlay.scaler.rate_window, Some(Duration::from_secs(60)));

        assert!(overlay.surge.args.open);
        assert_eq!(
            overlay.surge.command_line,
            "loadgen --target http://doorbuster --open --stages 1m:30,5m:400"
        );
        assert_eq!(
            overlay.surge.active_deadline,
            Some(Duration::from_secs(900))
        );
        assert_eq!(overlay.surge.cpu_request_m, 1000);
        assert_eq!(overlay.scrape_interval, Some(Duration::from_secs(15)));
    }

    #[test]
    fn what_cannot_be_modelled_is_said() {
        let cpu_hpa = r#"
kind: HorizontalPodAutoscaler
metadata: {name: doorbuster}
spec:
  scaleTargetRef: {name: doorbuster}
  maxReplicas: 20
  metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 60}}}]
"#;
        let error = Overlay::parse(cpu_hpa).unwrap_err();
        assert!(error.contains("Resource metric"), "{error}");
        let error = Overlay::parse("kind: Deployment\nmetadata: {name: x}\n").unwrap_err();
        assert!(error.contains("no autoscaler"), "{error}");
    }
}
