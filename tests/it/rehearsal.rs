//! `doorbuster rehearse` as the binary runs it: measuring a pod's capacity with the real shop and
//! load generator, predicting the surge from rendered manifests, and refusing what it cannot
//! stand behind. (The HPA algorithm, the node model and the timeline have unit tests in
//! `src/rehearsal/`; CI rehearses the real `aks-demo` overlay with `scripts/rehearse`.)

use std::path::Path;
use std::process::{Command, Output};

/// A rendered overlay shaped like `aks-demo`: KEDA on requests per second, the storefront
/// tolerating the virtual node, the surge as an open-model Job.
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
          args: ["serve"]
          env: [{name: DOORBUSTER_REQUEST_TIMEOUT, value: 10s}, {name: DOORBUSTER_ADMIN_PORT, value: "9090"}]
          resources: {requests: {cpu: 500m, memory: 512Mi}, limits: {cpu: 500m, memory: 512Mi}}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: doorbuster}
spec:
  scaleTargetRef: {name: doorbuster}
  minReplicaCount: 2
  maxReplicaCount: 30
  triggers:
    - type: prometheus
      metadata: {query: 'sum(rate(http_server_request_duration_seconds_count[1m]))', threshold: "20"}
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
          args: ["loadgen", "--target", "http://doorbuster", "--open", "--stages", "1m:30,5m:400,3m:400,1m:0"]
          resources: {requests: {cpu: "1", memory: 512Mi}}
"#;

fn rehearse(dir: &Path, manifests: &str, extra: &[&str]) -> Output {
    let file = dir.join("rendered.yaml");
    std::fs::write(&file, manifests).unwrap();
    Command::new(env!("CARGO_BIN_EXE_doorbuster"))
        .arg("rehearse")
        .arg("--manifests")
        .arg(&file)
        .arg("--guide")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/DEPLOY-AKS.md"))
        .arg("--capacity")
        .arg(dir.join("capacity.json"))
        .args(extra)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run doorbuster rehearse")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `--measure` runs the shop and the load generator (this test's debug build, briefly), saves
/// what one core served with the overlay's settings, and predicts the surge with it: pods on
/// the VM nodes first, the rest on the virtual node. A later rehearsal refuses that saved
/// measurement, since a debug build says nothing about what a pod serves.
#[test]
fn measure_then_predict_and_refuse_a_debug_measurement() {
    let dir = tempfile::tempdir().unwrap();
    let measured = rehearse(
        dir.path(),
        RENDERED,
        &[
            "--measure",
            "--measure-rounds",
            "1",
            "--measure-round",
            "1s",
            "--measure-users",
            "4",
        ],
    );
    let output = text(&measured);
    assert_eq!(measured.status.code(), Some(0), "{output}");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("capacity.json")).unwrap()).unwrap();
    assert!(
        saved["requests_per_second_per_core"].as_f64().unwrap() > 0.0,
        "{saved}"
    );
    assert_eq!(saved["build"], "debug");
    assert_eq!(
        saved["knobs"],
        serde_json::json!({"DOORBUSTER_REQUEST_TIMEOUT": "10s"}),
        "the overlay's work settings, not where it listens"
    );
    assert!(output.contains("minute by minute"), "{output}");
    assert!(output.contains("reaches the virtual node"), "{output}");
    assert!(output.contains("REHEARSAL PASSED"), "{output}");

    let reused = rehearse(dir.path(), RENDERED, &[]);
    assert_eq!(reused.status.code(), Some(2), "{}", text(&reused));
    assert!(text(&reused).contains("debug build"), "{}", text(&reused));
}

/// A surge staged in users (a closed crowd) fails the rehearsal: its rate would follow the pods
/// instead of leading them, which is what made the demo jump to maxReplicas in its warm-up.
#[test]
fn a_closed_crowd_fails_the_rehearsal() {
    let dir = tempfile::tempdir().unwrap();
    let capacity = serde_json::json!({
        "requests_per_second_per_core": 2000.0, "rounds": [2000.0], "p50_ms": 1.0, "p99_ms": 2.0,
        "errors": 0, "knobs": {"DOORBUSTER_REQUEST_TIMEOUT": "10s"},
        "workload": "journey browse=80,cart=15,checkout=5, think time 0s", "method": "given",
        "build": "release", "version": "0.1.0", "measured_at": "never", "machine": "none"
    });
    std::fs::write(dir.path().join("capacity.json"), capacity.to_string()).unwrap();
    let closed = RENDERED.replace(
        r#""--open", "--stages", "1m:30,5m:400,3m:400,1m:0""#,
        r#""--stages", "30s:50,2m:500,1m:500,30s:0""#,
    );
    let output = rehearse(dir.path(), &closed, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("closed crowd"), "{}", text(&output));

    let open = rehearse(dir.path(), RENDERED, &[]);
    assert_eq!(open.status.code(), Some(0), "{}", text(&open));
}
