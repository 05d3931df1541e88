//! `kubectl stateful import` round trips on the real control plane: stacks created with plain
//! `kubectl apply` of hand-written YAML → import → plan shows no changes → apply adopts them →
//! no pod was restarted (same uids) → plan is clean and the objects carry the stack's labels.

use crate::support::{TestCtx, assert_contains, client};
use k8s_openapi::api::core::v1::Pod;
use std::collections::BTreeMap;

fn kubectl(ctx: &TestCtx, args: &[&str]) -> String {
    crate::support::kubectl(Some(&ctx.ns), args, None)
}

/// `kubectl apply` (or `create`) of YAML written by hand; `{p}` stands for the test's prefix
/// (cluster-scoped names) and `{ns}` for its namespace.
fn kubectl_yaml(ctx: &TestCtx, verb: &str, name: &str, yaml: &str) {
    let path = ctx.dir.path().join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        yaml.replace("{p}", &ctx.prefix).replace("{ns}", &ctx.ns),
    )
    .unwrap();
    kubectl(ctx, &[verb, "-f", path.to_str().unwrap()]);
}

fn rollout(ctx: &TestCtx, what: &str) {
    kubectl(ctx, &["rollout", "status", what, "--timeout=90s"]);
}

/// Every pod of the namespace by name, with its uid.
async fn pods(ctx: &TestCtx) -> BTreeMap<String, String> {
    let api: kube::Api<Pod> = kube::Api::namespaced(client().await, &ctx.ns);
    api.list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| (p.metadata.name.unwrap(), p.metadata.uid.unwrap()))
        .collect()
}

/// Every workload of the namespace (`StatefulSet/db`) with its `metadata.generation`: a change
/// of its spec (a new pod template included) moves it.
fn generations(ctx: &TestCtx) -> BTreeMap<String, i64> {
    let list = kubectl(
        ctx,
        &["get", "statefulsets,deployments,daemonsets", "-o", "json"],
    );
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                ),
                o["metadata"]["generation"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// import → plan (no changes) → apply → same pods, workload specs untouched → clean plan.
/// Returns the spec's text.
async fn round_trip(ctx: &TestCtx, import_args: &[&str], expected_pods: usize) -> String {
    let before = pods(ctx).await;
    assert_eq!(before.len(), expected_pods, "{before:?}");
    let workloads = generations(ctx);
    assert!(!workloads.is_empty());
    let file = ctx.dir.path().join("imported.toml");
    let file = file.to_str().unwrap();
    let mut args = vec!["import", "-o", file];
    args.extend(import_args);
    let import = ctx.run(&args);
    import.expect_code(0);
    assert_contains(&import.stderr, "Checked: a plan of it changes nothing");
    let text = std::fs::read_to_string(file).unwrap();
    // No system object to look for here: import reads no ConfigMaps (`kube-root-ca.crt`) or
    // ServiceAccounts, and the spec has no table for a Service. The one system object it does
    // meet, the API server's Service, is tested in `the_api_servers_own_service_is_left_out`.

    let plan = ctx.run(&["plan", "-f", file, "--detailed-exitcode"]);
    plan.expect_code(0);
    assert_contains(&plan.stdout, "to adopt");
    assert!(
        !plan.stdout.contains("will be updated") && !plan.stdout.contains("must be replaced"),
        "{}\n{text}",
        plan.stdout
    );

    ctx.run(&["apply", "-f", file, "--yes", "--timeout", "2m"])
        .expect_code(0);
    assert_eq!(pods(ctx).await, before, "no pod was restarted or added");
    assert_eq!(
        generations(ctx),
        workloads,
        "adopting changed no workload's spec (metadata.generation)"
    );

    let again = ctx.run(&["plan", "-f", file, "--detailed-exitcode", "-o", "json"]);
    again.expect_code(0);
    let plan: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(plan["summary"]["adopt"], 0, "{}", again.stdout);
    assert_eq!(plan["summary"]["update"], 0, "{}", again.stdout);
    text
}

#[tokio::test]
async fn a_local_pv_statefulset_applied_by_hand_is_imported_and_adopted_without_restarts() {
    let ctx = TestCtx::new("importlocal").await;
    kubectl_yaml(
        &ctx,
        "apply",
        "local",
        r#"
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: "{p}-local"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: "{p}-disk-1", labels: {disk: ssd}}
spec:
  capacity: {storage: 2Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: "{p}-local"
  local: {path: /mnt/disks/ssd1}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [node-1]}]
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: "{p}-disk-2", labels: {disk: ssd}}
spec:
  capacity: {storage: 2Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: "{p}-local"
  local: {path: /mnt/disks/ssd1}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [node-2]}]
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: "{p}-disk-3"}
spec:
  capacity: {storage: 2Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: "{p}-local"
  local: {path: /mnt/disks/ssd1}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [node-3]}
        - {key: disk, operator: Exists}
---
apiVersion: v1
kind: Service
metadata: {name: kafka}
spec:
  clusterIP: None
  selector: {app: kafka}
  ports: [{name: broker, port: 9092}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: kafka, labels: {team: streaming}, annotations: {owner: data-team}}
spec:
  serviceName: kafka
  replicas: 2
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: kafka}}
  template:
    metadata: {labels: {app: kafka, tier: data}, annotations: {prometheus.io/scrape: "true"}}
    spec:
      terminationGracePeriodSeconds: 60
      tolerations: [{key: dedicated, operator: Equal, value: kafka, effect: NoSchedule}]
      containers:
      - name: kafka
        image: apache/kafka:3.7.0
        env: [{name: ZED, value: "1"}, {name: ALPHA, value: "$(ZED)"}]
        ports: [{name: broker, containerPort: 9092}]
        readinessProbe: {tcpSocket: {port: 9092}}
        resources: {requests: {cpu: 500m, memory: 1Gi}}
        volumeMounts: [{name: data, mountPath: /var/lib/kafka}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: "{p}-local"
      resources: {requests: {storage: 2Gi}}
"#,
    );
    rollout(&ctx, "statefulset/kafka");
    let text = round_trip(&ctx, &["--name", "kafka"], 2).await;

    // The class and all three disks (the unbound one too: its class is the stack's) are
    // imported; the claims made from the template are not.
    assert_contains(&text, &format!("name = \"{}-local\"", ctx.prefix));
    for disk in 1..=3 {
        assert_contains(&text, &format!("name = \"{}-disk-{disk}\"", ctx.prefix));
    }
    assert_contains(&text, "node = \"node-1\"");
    assert_contains(
        &text,
        "pvc/data-kafka-0: a claim of statefulset/kafka's template \"data\"",
    );
    assert_contains(
        &text,
        "service/kafka: the headless Service of statefulset/kafka",
    );
    assert!(!text.contains("[[claim]]"), "{text}");
    // Keys where the spec has them; defaults left out; the pods' labels and the selector kept.
    assert_contains(&text, "replicas = 2");
    assert_contains(&text, "pod_management_policy = \"Parallel\"");
    assert!(!text.contains("revisionHistoryLimit"), "{text}");
    assert!(!text.contains("terminationMessagePath"), "{text}");
    assert!(!text.contains("imagePullPolicy"), "{text}");
    assert_contains(&text, "selector = { matchLabels = { app = \"kafka\" } }");
    assert_contains(&text, "effect = \"NoSchedule\"");
    assert_contains(&text, "tier = \"data\"");

    let sts = kubectl(&ctx, &["get", "statefulset/kafka", "-o", "json"]);
    let sts: serde_json::Value = serde_json::from_str(&sts).unwrap();
    assert_eq!(sts["metadata"]["labels"]["kubectl-stateful/stack"], "kafka");
    assert_eq!(
        sts["metadata"]["generation"], 1,
        "the pod template never changed"
    );
    assert_eq!(
        sts["spec"]["template"]["metadata"]["labels"],
        serde_json::json!({"app": "kafka", "tier": "data"})
    );
}

#[tokio::test]
async fn a_database_on_a_dynamic_claim_is_imported_without_its_provisioned_volumes() {
    let ctx = TestCtx::new("importdb").await;
    kubectl_yaml(
        &ctx,
        "apply",
        "db",
        r#"
apiVersion: v1
kind: Service
metadata: {name: postgres}
spec:
  clusterIP: None
  selector: {app.kubernetes.io/name: postgres}
  ports: [{name: pg, port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: postgres-rw}
spec:
  selector: {app.kubernetes.io/name: postgres}
  ports: [{port: 5432}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: postgres}
spec:
  serviceName: postgres
  replicas: 1
  selector: {matchLabels: {app.kubernetes.io/name: postgres}}
  template:
    metadata: {labels: {app.kubernetes.io/name: postgres}}
    spec:
      containers:
      - name: postgres
        image: postgres:17
        env:
        - {name: PGDATA, value: /var/lib/postgresql/data/pgdata}
        - name: POSTGRES_PASSWORD
          valueFrom: {secretKeyRef: {name: pg, key: password}}
        ports: [{name: pg, containerPort: 5432}]
        volumeMounts: [{name: data, mountPath: /var/lib/postgresql/data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"#,
    );
    // A claim from the default class, made with `kubectl create` (no last-applied
    // configuration: the server's dry-run tells the defaults), mounted by a Deployment.
    kubectl_yaml(
        &ctx,
        "create",
        "backups",
        r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: backups}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: pgbackup}
spec:
  replicas: 1
  selector: {matchLabels: {app: pgbackup}}
  template:
    metadata: {labels: {app: pgbackup}}
    spec:
      containers:
      - name: pgbackup
        image: postgres:17
        command: [sleep, infinity]
        volumeMounts: [{name: backups, mountPath: /backups}]
      volumes:
      - name: backups
        persistentVolumeClaim: {claimName: backups}
"#,
    );
    rollout(&ctx, "statefulset/postgres");
    rollout(&ctx, "deployment/pgbackup");
    let text = round_trip(&ctx, &[], 2).await;

    assert_contains(&text, &format!("name = \"{}\"", ctx.ns));
    assert_contains(
        &text,
        "provisioned dynamically by kubernetes.io/host-path for pvc/data-postgres-0",
    );
    assert_contains(
        &text,
        "provisioned dynamically by kubernetes.io/host-path for pvc/backups",
    );
    assert_contains(&text, "storageclass/standard: the cluster's default class");
    assert_contains(
        &text,
        "service/postgres-rw: the spec describes a Service only as",
    );
    assert!(!text.contains("[[volume]]"), "{text}");
    // The secret reference and the mount are keys; the default class and every server
    // default are left out, although the objects carry no last-applied configuration.
    assert_contains(
        &text,
        "POSTGRES_PASSWORD = { secret = \"pg\", key = \"password\" }",
    );
    assert_contains(&text, "claim = \"backups\"");
    assert!(!text.contains("class = \"standard\""), "{text}");
    assert!(!text.contains("progressDeadlineSeconds"), "{text}");
    assert!(!text.contains("terminationMessagePolicy"), "{text}");
    assert!(!text.contains("dnsPolicy"), "{text}");
    // The StatefulSet selects its pods like the spec does: no selector patch.
    assert!(!text.contains("statefulset.patch.spec.selector"), "{text}");
}

#[tokio::test]
async fn a_shared_claim_on_a_static_volume_is_imported_with_its_volume_and_both_workloads() {
    let ctx = TestCtx::new("importshared").await;
    kubectl_yaml(
        &ctx,
        "apply",
        "shared",
        r#"
apiVersion: v1
kind: PersistentVolume
metadata: {name: "{p}-media"}
spec:
  capacity: {storage: 5Gi}
  accessModes: [ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  mountOptions: [nfsvers=4.1]
  nfs: {server: nfs.example.com, path: /exports/media}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: media, labels: {app: media}}
spec:
  accessModes: [ReadWriteMany]
  storageClassName: ""
  volumeName: "{p}-media"
  resources: {requests: {storage: 5Gi}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: thumbnailer}
spec:
  replicas: 2
  strategy: {type: Recreate}
  selector: {matchLabels: {app: thumbnailer}}
  template:
    metadata: {labels: {app: thumbnailer}}
    spec:
      containers:
      - name: worker
        image: thumbnailer:2
        volumeMounts: [{name: media, mountPath: /media}]
      volumes:
      - name: media
        persistentVolumeClaim: {claimName: media}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: indexer}
spec:
  selector: {matchLabels: {app: indexer}}
  template:
    metadata: {labels: {app: indexer}}
    spec:
      containers:
      - name: indexer
        image: indexer:1
        volumeMounts: [{name: media, mountPath: /media, readOnly: true}]
      volumes:
      - name: media
        persistentVolumeClaim: {claimName: media, readOnly: true}
"#,
    );
    rollout(&ctx, "deployment/thumbnailer");
    rollout(&ctx, "daemonset/indexer");
    let text = round_trip(&ctx, &["--name", "media"], 5).await;

    assert_contains(&text, "[[volume]]");
    assert_contains(&text, "server = \"nfs.example.com\"");
    assert_contains(&text, "mount_options = [\"nfsvers=4.1\"]");
    assert_contains(&text, &format!("volume = \"{}-media\"", ctx.prefix));
    assert_contains(&text, "strategy = { type = \"Recreate\" }");
    assert_contains(&text, "read_only = true");
    // The Deployment's container is not named after it: the containers go whole into patch.
    assert_contains(&text, "its containers are given whole in patch");
    assert_contains(&text, "name = \"worker\"");
}

#[tokio::test]
async fn named_objects_and_selectors_choose_what_is_imported() {
    let ctx = TestCtx::new("importnamed").await;
    kubectl_yaml(
        &ctx,
        "apply",
        "two",
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: a, labels: {team: xray}}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: a}}
  template:
    metadata: {labels: {app.kubernetes.io/name: a}}
    spec: {containers: [{name: a, image: "img:1"}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: b, labels: {team: yankee}}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: b}}
  template:
    metadata: {labels: {app.kubernetes.io/name: b}}
    spec: {containers: [{name: b, image: "img:1"}]}
"#,
    );
    let named = ctx.run(&["import", "deploy/a"]);
    named.expect_code(0);
    assert_contains(&named.stdout, "name = \"a\"");
    assert!(!named.stdout.contains("name = \"b\""), "{}", named.stdout);
    let selected = ctx.run(&["import", "-l", "team=yankee", "--name", "bee"]);
    selected.expect_code(0);
    assert_contains(&selected.stdout, "name = \"bee\"");
    assert_contains(&selected.stdout, "name = \"b\"");
    assert!(
        !selected.stdout.contains("name = \"a\""),
        "{}",
        selected.stdout
    );

    let missing = ctx.run(&["import", "statefulset/nope"]);
    missing.expect_code(1);
    assert_contains(&missing.stderr, "statefulset/nope not found in namespace");
    let system = ctx.run(&["import", "configmap/kube-root-ca.crt"]);
    system.expect_code(1);
    assert_contains(
        &system.stderr,
        "the spec does not describe configmap objects",
    );

    // An existing file is not overwritten without --force.
    let file = ctx.dir.path().join("a.toml");
    std::fs::write(&file, "# mine\n").unwrap();
    let refused = ctx.run(&["import", "deploy/a", "-o", file.to_str().unwrap()]);
    refused.expect_code(1);
    assert_contains(&refused.stderr, "exists");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "# mine\n");
}

/// The API server's own Service (`service/kubernetes` in `default`) is recognised and left out
/// with its reason. The suite leaves nothing else in `default` (tests/it/bad_inputs.rs and
/// rollout.rs check it), so there is nothing to import there: exit 1, as for any namespace with
/// nothing to import, and the message says what was left out and why.
#[tokio::test]
async fn the_api_servers_own_service_is_left_out() {
    let run = crate::support::run_plugin(&["import".into(), "-n".into(), "default".into()], None);
    run.expect_code(1);
    assert_contains(
        &run.stderr,
        "nothing to import in namespace default (left out: service/kubernetes: the API server's own Service)",
    );
    assert_eq!(run.stdout, "", "no spec written");
}
