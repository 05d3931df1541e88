//! Spec loading: accepted examples, and every kind of error with its position and key path.

use super::*;

fn errors(text: &str) -> Vec<String> {
    match load("stack.toml", text, "stack") {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.lines(),
    }
}

fn render(text: &str) -> String {
    let err = load("stack.toml", text, "stack").expect_err("expected errors");
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .render_report(&mut out, err.as_ref())
        .unwrap();
    out
}

#[test]
fn examples_load() {
    for ex in ["local-pv", "postgres", "shared-claim"] {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("examples/{ex}.toml"));
        let spec = load_file(&path).unwrap_or_else(|e| panic!("{ex}: {e:?}"));
        assert_eq!(spec.stack_name(), spec.name.as_ref().unwrap().get_ref());
    }
}

#[test]
fn stack_name_defaults_to_file_stem() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("deploy.d");
    std::fs::create_dir(&nested).unwrap();
    let path = nested.join("orders-db.toml");
    std::fs::write(&path, "[[claim]]\nname = \"data\"\nsize = \"1Gi\"\n").unwrap();
    let spec = load_file(&path).unwrap();
    assert_eq!(spec.stack_name(), "orders-db");
    // Only the last extension is dropped.
    let dotted = nested.join("orders.v2.toml");
    std::fs::write(&dotted, "[[claim]]\nname = \"data\"\nsize = \"1Gi\"\n").unwrap();
    assert_eq!(load_file(&dotted).unwrap().stack_name(), "orders.v2");
    // `name` wins over the file's stem.
    std::fs::write(
        &path,
        "name = \"orders\"\n[[claim]]\nname = \"data\"\nsize = \"1Gi\"\n",
    )
    .unwrap();
    assert_eq!(load_file(&path).unwrap().stack_name(), "orders");
}

#[test]
fn bad_quantity_has_position_key_and_caret() {
    let text = "[[claim]]\nname = \"data\"\nsize = \"10GB-x\"\n";
    assert_eq!(
        errors(text),
        vec![
            "stack.toml:3:8: claim[0].size: invalid quantity \"10GB-x\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        ]
    );
    let report = render(text);
    assert!(report.contains("[stack.toml:3:8]"), "{report}");
    insta::assert_snapshot!(report);
}

#[test]
fn unknown_key_is_rejected_with_its_path() {
    let text = "[[statefulset]]\nname = \"db\"\nimage = \"x\"\nreplica = 3\n";
    let lines = errors(text);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("stack.toml:4:1: statefulset[0].replica: unknown field `replica`"),
        "{lines:?}"
    );
}

#[test]
fn bad_enum_value_names_the_choices() {
    let text =
        "[[storage_class]]\nname = \"fast\"\nprovisioner = \"x\"\nbinding_mode = \"Later\"\n";
    let lines = errors(text);
    assert!(
        lines[0]
            .starts_with("stack.toml:4:16: storage_class[0].binding_mode: unknown variant `Later`"),
        "{lines:?}"
    );
    assert!(lines[0].contains("WaitForFirstConsumer"));
}

#[test]
fn several_errors_are_reported_at_once() {
    let text = r#"
[[volume]]
name = "Disk_1"
capacity = "10Gi"
local = { path = "/mnt" }
node = "node-1"

[[volume]]
name = "disk-2"
capacity = "lots"
host_path = { path = "/tmp/x" }

[[volume]]
name = "disk-2"
capacity = "1Gi"
host_path = { path = "/tmp/y" }
"#;
    assert_eq!(
        errors(text),
        vec![
            "stack.toml:3:8: volume[0].name: \"Disk_1\" is not a valid name: 'D' is not allowed",
            "stack.toml:10:12: volume[1].capacity: invalid quantity \"lots\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            "stack.toml:14:8: volume[2]: duplicate volume name \"disk-2\" (first defined at volume[1])",
        ]
    );
}

#[test]
fn claim_larger_than_its_volume() {
    let text = r#"
[[volume]]
name = "pv-a"
capacity = "5Gi"
access_modes = ["ReadWriteOnce"]
host_path = { path = "/tmp/a" }

[[claim]]
name = "c"
size = "6Gi"
access_modes = ["ReadWriteMany"]
volume = "pv-a"
"#;
    assert_eq!(
        errors(text),
        vec![
            "stack.toml:10:8: claim[0].size: claim asks for 6Gi but volume \"pv-a\" holds only 5Gi",
            "stack.toml:11:16: claim[0].access_modes: volume \"pv-a\" does not offer ReadWriteMany (it offers ReadWriteOnce)",
        ]
    );
}

#[test]
fn volume_needs_one_source_and_local_needs_a_node() {
    let text = "[[volume]]\nname = \"v\"\ncapacity = \"1Gi\"\nlocal = { path = \"/mnt\" }\nnfs = { server = \"s\", path = \"/\" }\n\n[[volume]]\nname = \"w\"\ncapacity = \"1Gi\"\nlocal = { path = \"/mnt\" }\n";
    let lines = errors(text);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].contains("volume[0]: a volume needs exactly one source, found 2"));
    assert!(lines[1].contains("volume[0]: a local volume needs node affinity"));
    assert!(lines[2].contains("volume[1]: a local volume needs node affinity"));
}

#[test]
fn statefulset_checks() {
    let text = r#"
[[statefulset]]
name = "db"
image = "x"
replicas = -1
ports = [70000]

[[statefulset.volume_claim]]
name = "data"
size = "1Gi"
mount = "var/lib"

[[statefulset.mount]]
claim = "data"
path = "/var/lib"
"#;
    let lines = errors(text);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("statefulset[0].replicas: replicas must not be negative")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("statefulset[0].ports[0]: port 70000")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains(
            "statefulset[0].volume_claim[0].mount: mount path \"var/lib\" must be absolute"
        )),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("statefulset[0].mount[0]: duplicate pod volume name \"data\"")),
        "{lines:?}"
    );
}

#[test]
fn references_to_the_cluster_are_checked() {
    let text = r#"
[[claim]]
name = "c"
size = "1Gi"
class = "fast"

[[claim]]
name = "d"
size = "20Gi"
volume = "existing"

[[statefulset]]
name = "db"
image = "x"
[[statefulset.mount]]
claim = "missing"
path = "/m"
"#;
    let spec = load("stack.toml", text, "stack").unwrap();
    let mut cluster = ClusterNames::default();
    cluster.storage_classes.insert("standard".into());
    cluster.volumes.insert(
        "existing".into(),
        ClusterVolume {
            capacity: Some("10Gi".into()),
            access_modes: vec!["ReadWriteOnce".into()],
            class: String::new(),
        },
    );
    let err = errors_for(&spec, check_references(&spec, &cluster));
    assert_eq!(
        err.lines(),
        vec![
            "stack.toml:9:8: claim[1].size: claim asks for 20Gi but volume \"existing\" holds only 10Gi",
            "stack.toml:16:9: statefulset[0].mount[0].claim: claim \"missing\" is neither in the spec nor in the namespace",
        ]
    );
    // A class with neither a StorageClass nor a volume is a warning, not an error.
    let warn = errors_for(&spec, warnings(&spec, &cluster));
    assert_eq!(
        warn.lines(),
        vec![
            "stack.toml:5:9: claim[0].class: no StorageClass and no volume has class \"fast\": the claim stays Pending until a volume of class \"fast\" exists",
        ]
    );
}

#[test]
fn a_class_carried_by_a_volume_needs_no_storage_class_object() {
    let text = r#"
[[volume]]
name = "task-pv-volume"
capacity = "10Gi"
class = "manual"
host_path = { path = "/mnt/data" }

[[claim]]
name = "task-pv-claim"
size = "3Gi"
class = "manual"
"#;
    let spec = load("stack.toml", text, "stack").unwrap();
    let cluster = ClusterNames::default();
    assert!(check_references(&spec, &cluster).is_empty());
    assert!(warnings(&spec, &cluster).is_empty());
}

#[test]
fn shared_single_node_claims_and_plain_secrets_are_warnings() {
    let text = r#"
[[claim]]
name = "data"
size = "1Gi"

[[deployment]]
name = "web"
image = "nginx"
replicas = 2
env = { DB_PASSWORD = "hunter2", DB_HOST = "db", API_TOKEN = { secret = "api", key = "token" } }
[[deployment.mount]]
claim = "data"
path = "/data"

[[daemonset]]
name = "agent"
image = "agent"
[[daemonset.mount]]
claim = "data"
path = "/data"
"#;
    let spec = load("stack.toml", text, "stack").unwrap();
    let lines = errors_for(&spec, warnings(&spec, &ClusterNames::default())).lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(lines[0].starts_with("stack.toml:12:9: deployment[0].mount[0].claim: claim \"data\" is ReadWriteOnce but 2 replicas"), "{lines:#?}");
    assert!(
        lines[1].starts_with("stack.toml:10:")
            && lines[1].contains("deployment[0].env.DB_PASSWORD: DB_PASSWORD looks like a secret"),
        "{lines:#?}"
    );
    assert!(
        lines[2].contains("daemonset[0].mount[0].claim")
            && lines[2].contains("a DaemonSet runs a pod on every node"),
        "{lines:#?}"
    );
}

#[test]
fn keys_that_do_not_apply_to_a_workload_kind_are_refused_at_their_line() {
    let text = r#"
[[daemonset]]
name = "agent"
image = "agent"
replicas = 3

[[deployment]]
name = "web"
image = "nginx"
node_selector = { disk = "ssd" }
[[deployment.volume_claim]]
name = "data"
size = "1Gi"
mount = "/data"
"#;
    let err = load("stack.toml", text, "stack").unwrap_err();
    let lines = err.lines();
    assert!(
        lines.iter().any(|l| l.starts_with(
            "stack.toml:5:12: daemonset[0].replicas: replicas does not apply to a DaemonSet"
        )),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.starts_with("stack.toml:10:17: deployment[0].node_selector: node_selector does not apply to a Deployment")), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.contains(
            "deployment[0].volume_claim: claim templates are for StatefulSets, not a Deployment"
        )),
        "{lines:#?}"
    );
}
