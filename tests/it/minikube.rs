//! The Minikube flow end to end: the real playbook and binary, the `helm`,
//! `kubectl` and `minikube` stand-ins on PATH, and a fake Kubernetes API
//! (plain HTTP on 127.0.0.1) reached by kube-rs through a generated
//! kubeconfig — including every way the flow must refuse or fail.

use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::kube::{habit_tracker, FakeKube, Frontend, Rollout};
use support::{Output, Project, CANARY};

const NS: &str = "habit-tracker";
const JWT: &str = "jwt-canary-0b3e71c9d5";
const GEMINI: &str = "gemini-canary-5f2a9e8c41";

/// Every canary value the runs see.
fn canaries() -> [String; 3] {
    [CANARY.to_string(), JWT.to_string(), GEMINI.to_string()]
}

struct Env {
    p: Project,
    kube: FakeKube,
    front: Frontend,
}

impl Env {
    fn new(backend: Rollout, frontend: Rollout) -> Env {
        let front = Frontend::start();
        let kube = FakeKube::start(habit_tracker(NS, front.port, backend, frontend));
        let mut p = Project::new();
        p.copy_from_repo("k8s/charts/habit-tracker")
            .copy_from_repo("playbooks/minikube.rhai");
        p.standins();
        let kc = kube.kubeconfig(p.path(), "minikube");
        p.env("KUBECONFIG", kc.to_str().unwrap())
            .env(
                "DATABASE_URL",
                &format!("postgresql://app:{CANARY}@db.example:5432/app"),
            )
            .env("JWT_SECRET", JWT)
            .env("GEMINI_API_KEY", GEMINI);
        let e = Env { p, kube, front };
        e.standin("minikube.json", json!({"ip": "127.0.0.1"}));
        e
    }

    fn ready() -> Env {
        Env::new(Rollout::ReadyAfter(3), Rollout::ReadyAfter(2))
    }

    fn standin(&self, file: &str, v: Value) {
        std::fs::write(self.p.path().join("standin").join(file), v.to_string()).unwrap();
    }

    fn run(&self, extra: &[&str]) -> Output {
        let mut args = vec!["playbooks/minikube.rhai", "--log-format", "json"];
        args.extend_from_slice(extra);
        self.p.run(&args)
    }

    fn calls(&self) -> Vec<Value> {
        calls(self.p.path())
    }

    fn helm_calls(&self, sub: &str) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|c| c["prog"] == "helm" && c["argv"][0] == sub)
            .collect()
    }
}

fn calls(project: &Path) -> Vec<Value> {
    std::fs::read_to_string(project.join("standin/calls.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Whether a process has ended (a zombie waiting to be reaped counts as
/// ended); waits up to 2 s for it.
fn gone(pid: i32) -> bool {
    for _ in 0..100 {
        let exists = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false);
        if !exists || zombie {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn argv(c: &Value) -> Vec<String> {
    c["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// The temporary secrets file of an upgrade call: (path, mode, content).
fn secrets_file(call: &Value) -> (String, String, String) {
    let v = call["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| {
            v["path"]
                .as_str()
                .unwrap()
                .contains("runbook-helm-secrets-")
        })
        .unwrap_or_else(|| panic!("no secrets values file in {call}"));
    (
        v["path"].as_str().unwrap().to_string(),
        v["mode"].as_str().unwrap_or("").to_string(),
        v["content"].as_str().unwrap_or("").to_string(),
    )
}

/// No canary in any recorded argv or env, nor in the run's output.
#[track_caller]
fn no_secret_leaks(e: &Env, out: &Output) {
    for c in canaries() {
        out.lacks(&c);
        for call in e.calls() {
            let text = format!("{} {}", call["argv"], call["env"]);
            assert!(!text.contains(&c), "secret in a recorded call: {call}");
            // Only the temporary secrets file may hold secrets.
            for v in call["values"].as_array().into_iter().flatten() {
                if !v["path"]
                    .as_str()
                    .unwrap_or("")
                    .contains("runbook-helm-secrets-")
                {
                    assert!(!v.to_string().contains(&c), "secret in a values file: {v}");
                }
            }
        }
    }
}

#[test]
fn happy_path_installs_waits_finds_the_node_port_and_checks_health() {
    let e = Env::ready();
    let gh_out = e.p.path().join("gh_output");
    std::fs::write(&gh_out, "").unwrap();
    let mut e = e;
    e.p.env("GITHUB_OUTPUT", gh_out.to_str().unwrap());
    let out = e.run(&[]);
    let url = format!("http://127.0.0.1:{}", e.front.port);
    out.code(0)
        .has(&format!("habit-tracker is up: {url}"))
        .has(&format!("url={url}"))
        .has("rolled out");
    no_secret_leaks(&e, &out);
    assert!(std::fs::read_to_string(&gh_out).unwrap().contains(&url));

    // Preflight read minikube's status and ip, never `minikube service`.
    let mk: Vec<Vec<String>> = e
        .calls()
        .iter()
        .filter(|c| c["prog"] == "minikube")
        .map(argv)
        .collect();
    assert_eq!(mk[0][..3], ["status", "-o", "json"]);
    assert!(mk.iter().any(|a| a[0] == "ip"));
    assert!(mk.iter().all(|a| a[0] != "service"), "{mk:?}");

    // One upgrade with Helm 3's flags, the local values, then the secrets file.
    let ups = e.helm_calls("upgrade");
    assert_eq!(ups.len(), 1);
    let a = argv(&ups[0]).join(" ");
    assert!(a.starts_with("upgrade --install habit-tracker k8s/charts/habit-tracker --namespace habit-tracker --create-namespace --kube-context minikube --values k8s/charts/habit-tracker/values-local.yaml --values "), "{a}");
    assert!(a.ends_with("--wait --atomic --timeout 300s"), "{a}");
    let (path, mode, content) = secrets_file(&ups[0]);
    assert_eq!(
        mode, "0o600",
        "the secrets file must be 0600 during the call"
    );
    let v: Value = serde_json::from_str(&content).unwrap();
    assert_eq!(v["secrets"]["JWT_SECRET"], JWT);
    assert!(v["secrets"]["DATABASE_URL"]
        .as_str()
        .unwrap()
        .contains(CANARY));
    assert!(
        !Path::new(&path).exists(),
        "the secrets file is removed after success"
    );

    // kube-rs watched both Deployments (listed by the release's label),
    // found the frontend's Service by its labels, read nodes and pods.
    let reqs = e.kube.requests();
    for want in [
        "GET /version",
        "GET /api/v1/nodes",
        "GET /apis/apps/v1/namespaces/habit-tracker/deployments?labelSelector=app.kubernetes.io/instance=habit-tracker",
        "GET /apis/apps/v1/namespaces/habit-tracker/deployments/habit-tracker-backend",
        "GET /apis/apps/v1/namespaces/habit-tracker/deployments/habit-tracker-frontend",
        "GET /api/v1/namespaces/habit-tracker/services?labelSelector=app.kubernetes.io/instance=habit-tracker,app.kubernetes.io/component=frontend",
        "GET /api/v1/namespaces/habit-tracker/services/habit-tracker-backend:8000/proxy/health",
    ] {
        assert!(reqs.iter().any(|r| r == want), "no {want} in {reqs:#?}");
    }
    assert!(reqs.iter().any(|r| r.contains("watch=true")), "{reqs:#?}");
    assert!(e.front.hits() >= 1);

    // A second run with nothing changed is a no-op upgrade that succeeds.
    let again = e.run(&[]);
    again.code(0).has(&format!("url={url}"));
    assert_eq!(e.helm_calls("upgrade").len(), 2);
}

#[test]
fn helm_4_gets_its_own_flags() {
    let e = Env::ready();
    e.standin("helm.json", json!({"version": "v4.0.0+g5b4d1a0"}));
    let out = e.run(&["--install-timeout", "90s"]);
    out.code(0);
    let a = argv(&e.helm_calls("upgrade")[0]).join(" ");
    assert!(
        a.contains("--wait=watcher --rollback-on-failure --timeout 90s"),
        "{a}"
    );
    assert!(!a.contains("--atomic"), "{a}");
}

#[test]
fn an_old_helm_is_refused_before_anything_changes() {
    let e = Env::ready();
    e.standin("helm.json", json!({"version": "v3.11.3+g66a969e"}));
    e.run(&[]).code(1).has("too old").has("3.12");
    assert!(e.helm_calls("upgrade").is_empty());
}

#[test]
fn a_release_stuck_in_pending_upgrade_is_refused_with_the_way_out() {
    let e = Env::ready();
    e.standin(
        "helm.json",
        json!({"release": {"name": "habit-tracker", "namespace": NS, "status": "pending-upgrade", "revision": 4}}),
    );
    e.run(&[])
        .code(1)
        .has("is pending-upgrade (revision 4")
        .has("helm rollback habit-tracker 3 -n habit-tracker");
    assert!(
        e.helm_calls("upgrade").is_empty(),
        "nothing may act on a pending release"
    );
}

#[test]
fn a_failed_install_names_the_blocker_and_removes_the_secrets_file() {
    let e = Env::ready();
    e.standin(
        "helm.json",
        json!({"upgrade": {"fail": true, "after_status": "failed",
            "stderr": "Error: UPGRADE FAILED: resource Deployment/habit-tracker/habit-tracker-backend not ready. status: InProgress, message: Available: 0/1\ncontext deadline exceeded"}}),
    );
    e.standin(
        "kubectl.json",
        json!({"events": [
            {"apiVersion": "v1", "kind": "Event", "type": "Normal", "reason": "Scheduled", "message": "Successfully assigned habit-tracker/habit-tracker-backend-7d9f8c6b5-x2x7k to minikube",
             "lastTimestamp": "2024-05-06T10:00:01Z", "involvedObject": {"kind": "Pod", "name": "habit-tracker-backend-7d9f8c6b5-x2x7k", "namespace": NS}},
            {"apiVersion": "v1", "kind": "Event", "type": "Warning", "reason": "Failed", "message": "Failed to pull image \"ghcr.io/mconstant/habit-tracker-backend:0.1.0\": not found",
             "lastTimestamp": "2024-05-06T10:00:04Z", "involvedObject": {"kind": "Pod", "name": "habit-tracker-backend-7d9f8c6b5-x2x7k", "namespace": NS}}
        ]}),
    );
    let out = e.run(&["--install-timeout", "5s", "--rollback-timeout", "7s"]);
    // Exit 3: the install failed and was put back (by helm_install itself).
    out.code(3)
        .has("the deploy failed")
        .has("blocked by Deployment habit-tracker/habit-tracker-backend")
        .has("Failed to pull image")
        .has("runbook uninstalled the failed first install (budget 7s)")
        .has("release habit-tracker does not exist now")
        .lacks("context deadline exceeded\"");
    no_secret_leaks(&e, &out);
    let (path, mode, _) = secrets_file(&e.helm_calls("upgrade")[0]);
    assert_eq!(mode, "0o600");
    assert!(
        !Path::new(&path).exists(),
        "the secrets file is removed after a failure"
    );
    // Helm's rollback did not happen (the release is left failed): runbook
    // rolled back on the rollback's own budget.
    let rb = e.helm_calls("uninstall");
    assert_eq!(rb.len(), 1, "a failed first install is uninstalled");
    assert!(argv(&rb[0]).join(" ").contains("--wait --timeout 7s"));
    assert_eq!(argv(&e.helm_calls("upgrade")[0]).last().unwrap(), "5s");
}

#[test]
fn sigterm_during_the_install_kills_helm_and_removes_the_secrets_file() {
    let e = Env::ready();
    e.standin("helm.json", json!({"upgrade": {"sleep": 60}}));
    let started = Instant::now();
    let mut cmd = e.p.command(&["playbooks/minikube.rhai"]);
    let child = cmd.spawn().unwrap();
    let pid = child.id() as i32;
    // Wait (bounded) until helm upgrade has started.
    let up = loop {
        if let Some(c) = e.helm_calls("upgrade").into_iter().next() {
            break c;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "helm upgrade never ran"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let (path, mode, _) = secrets_file(&up);
    assert_eq!(mode, "0o600");
    assert!(
        Path::new(&path).exists(),
        "the secrets file exists while helm runs"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = support::wait_output(child, Duration::from_secs(30), started);
    out.code(143);
    assert!(out.elapsed < Duration::from_secs(40));
    assert!(
        !Path::new(&path).exists(),
        "the secrets file is removed after SIGTERM"
    );
    let helm_pid = up["pid"].as_i64().unwrap() as i32;
    assert!(gone(helm_pid), "helm (pid {helm_pid}) outlived the run");
}

#[test]
fn a_hung_helm_is_stopped_by_the_install_and_rollback_budgets() {
    let e = Env::ready();
    e.standin("helm.json", json!({"upgrade": {"sleep": 120}}));
    let started = Instant::now();
    let out = e.run(&["--install-timeout", "1s", "--rollback-timeout", "1s"]);
    let took = started.elapsed();
    // 1 s install + 1 s rollback + 5 s grace for Helm to report.
    out.code(3).has("did not finish within 7s and was stopped");
    // The stand-in would hang for 120 s: ending well before proves it was
    // stopped (not a timing figure: the machine may be loaded).
    assert!(took < Duration::from_secs(90), "took {took:?}");
    let up = &e.helm_calls("upgrade")[0];
    assert!(argv(up).join(" ").ends_with("--timeout 1s"));
    let (path, _, _) = secrets_file(up);
    assert!(
        !Path::new(&path).exists(),
        "the secrets file is removed after a timeout"
    );
    let helm_pid = up["pid"].as_i64().unwrap() as i32;
    assert!(
        gone(helm_pid),
        "the hung helm (pid {helm_pid}) was not stopped"
    );
}

#[test]
fn requests_beyond_capacity_are_refused_before_any_install() {
    let e = Env::ready();
    e.kube
        .update(|c| c.nodes = vec![support::kube::node("minikube", "1", "1Gi")]);
    e.run(&[])
        .code(1)
        .has("no room for habit-tracker")
        .has("requests 500m CPU and 512 MiB")
        .has("the nodes have 250m CPU")
        .has("Nothing was installed");
    assert!(e.helm_calls("upgrade").is_empty());
    assert!(
        e.helm_calls("status").is_empty(),
        "refused before Helm was asked about the release"
    );
    // The requests are Helm's rendering of the chart with the local values.
    let t = argv(&e.helm_calls("template")[0]).join(" ");
    assert_eq!(t, "template habit-tracker k8s/charts/habit-tracker --namespace habit-tracker --values k8s/charts/habit-tracker/values-local.yaml");
}

#[test]
fn requests_follow_the_values_helm_merges() {
    // Two backend replicas in the local values: 750m, no room on a 1-CPU node.
    let e = Env::ready();
    let local =
        e.p.path()
            .join("k8s/charts/habit-tracker/values-local.yaml");
    let text = std::fs::read_to_string(&local).unwrap();
    std::fs::write(
        &local,
        text.replace("backend:\n  replicaCount: 1", "backend:\n  replicaCount: 2"),
    )
    .unwrap();
    e.kube
        .update(|c| c.nodes = vec![support::kube::node("minikube", "1300m", "4Gi")]);
    e.run(&[])
        .code(1)
        .has("the chart requests 750m CPU and 768 MiB, the nodes have 550m CPU");
    assert!(e.helm_calls("upgrade").is_empty());
}

#[test]
fn a_chart_that_does_not_render_stops_the_flow_before_the_install() {
    let e = Env::ready();
    e.standin(
        "helm.json",
        json!({"template": {"code": 1, "stderr": "Error: execution error at (habit-tracker/templates/_helpers.tpl:80:4): image ghcr.io/mconstant/habit-tracker-backend needs a concrete tag (got \"latest\")"}}),
    );
    e.run(&[])
        .code(1)
        .has(
            "helm_template: `helm template habit-tracker k8s/charts/habit-tracker` failed (exit 1)",
        )
        .has("needs a concrete tag");
    assert!(e.helm_calls("upgrade").is_empty());
}

#[test]
fn an_old_cluster_is_refused_before_anything_changes() {
    let e = Env::ready();
    e.kube.update(|c| c.version = "v1.27.3".into());
    e.run(&[])
        .code(1)
        .has("kube_server: the cluster at http://127.0.0.1:")
        .has("runs Kubernetes v1.27.3, older than the 1.28 required (min_version)");
    assert!(e.helm_calls("upgrade").is_empty());
    assert!(e.helm_calls("template").is_empty());
}

#[test]
fn dry_run_plans_the_install_and_runs_nothing_that_changes() {
    let e = Env::ready();
    let out = e.run(&["--dry-run"]);
    out.code(0)
        .has("dry run: would run")
        .has("helm upgrade --install habit-tracker k8s/charts/habit-tracker")
        .has("--values <temporary 0600 secrets values file>")
        .has("\\\"JWT_SECRET\\\": \\\"***\\\"")
        .has("environment: minikube")
        .has("nothing was changed");
    no_secret_leaks(&e, &out);
    for c in e.calls() {
        let a = argv(&c);
        let sub = a.first().map(String::as_str).unwrap_or("");
        assert!(
            !(c["prog"] == "helm"
                && ["upgrade", "rollback", "uninstall", "install"].contains(&sub)),
            "a dry run ran {a:?}"
        );
    }
    // Read-only calls did run for real.
    assert_eq!(e.helm_calls("status").len(), 1);
    assert!(e.kube.requests().iter().all(|r| r.starts_with("GET ")));
}

#[test]
fn image_pull_backoff_is_named_within_the_rollout_bound() {
    let e = Env::new(Rollout::ReadyAfter(1), Rollout::Stuck("ImagePullBackOff"));
    let started = Instant::now();
    let out = e.run(&["--rollout-timeout", "2s"]);
    let took = started.elapsed();
    out.code(3)
        .has("gate 'rollout' failed")
        .has("habit-tracker-frontend did not roll out within 2s")
        .has("pod habit-tracker-frontend-7d9f8c6b5-x2x7k (Pending): container frontend waiting: ImagePullBackOff")
        .has("minikube image load");
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert!(took >= Duration::from_secs(2), "gave up early: {took:?}");
}

#[test]
fn a_missing_rbac_permission_is_explained() {
    // A Role that may get and list Deployments but not watch them.
    let e = Env::ready();
    e.kube.update(|c| c.forbidden = vec!["watch=true".into()]);
    // The rollout gate fails; the first install is uninstalled (exit 3).
    e.run(&[])
        .code(3)
        .has("gate 'rollout' failed")
        .has("uninstalling habit-tracker")
        .has("kube_wait_release: watch Deployment habit-tracker/habit-tracker-backend: forbidden (403)")
        .has("cannot watch resource")
        .has("lacks the RBAC permission to watch deployments")
        .has("kubectl auth can-i watch deployments -n habit-tracker");
    // Listing them at all forbidden: named just the same, before any wait.
    e.kube.update(|c| c.forbidden = vec!["deployments".into()]);
    e.run(&[])
        .code(3)
        .has("kubectl auth can-i list deployments -n habit-tracker");
}

#[test]
fn a_refused_connection_is_explained() {
    let mut e = Env::ready();
    let kc = support::kube::refused_kubeconfig(e.p.path(), "minikube");
    e.p.env("KUBECONFIG", kc.to_str().unwrap());
    e.run(&[])
        .code(1)
        .has("connection refused")
        .has("minikube start")
        .has("kubectl config current-context");
    assert!(e.helm_calls("upgrade").is_empty());
}

#[test]
fn a_stopped_minikube_is_read_from_the_status_bit_field() {
    let e = Env::ready();
    e.standin("minikube.json", json!({"status": "stopped"}));
    e.run(&[])
        .code(1)
        .has("status exit 7")
        .has("the minikube host (VM or container) is not running")
        .has("Kubernetes (the API server) is not running")
        .has("minikube start -p minikube");
    e.standin("minikube.json", json!({"status": "missing"}));
    e.run(&[]).code(1).has("minikube has no profile 'minikube'");
}

#[test]
fn an_unknown_kube_context_is_named() {
    let e = Env::ready();
    e.run(&["--context", "kind-dev", "--minikube=false"])
        .code(1)
        .has("cannot load the kube context 'kind-dev'");
}

/// Not a test: serves a fake cluster whose Deployments are already rolled
/// out, for bench/minikube.sh. Writes `kubeconfig`, `node_port` and `ready`
/// into $BENCH_DIR and serves until `$BENCH_DIR/stop` appears (at most
/// 9 minutes). Without BENCH_DIR it fails: run through `--ignored` by hand
/// it would otherwise report ok having served nothing.
#[test]
#[ignore]
fn serve_fake_cluster_for_the_benchmark() {
    let Ok(dir) = std::env::var("BENCH_DIR") else {
        panic!("BENCH_DIR is not set: this is bench/minikube.sh's fake cluster; run `bash bench/minikube.sh`");
    };
    let dir = std::path::PathBuf::from(dir);
    let front = Frontend::start();
    let kube = FakeKube::start(habit_tracker(
        NS,
        front.port,
        Rollout::Ready,
        Rollout::Ready,
    ));
    kube.kubeconfig(&dir, "minikube");
    std::fs::write(dir.join("node_port"), front.port.to_string()).unwrap();
    std::fs::write(dir.join("ready"), "").unwrap();
    let started = Instant::now();
    while !dir.join("stop").exists() && started.elapsed() < Duration::from_secs(540) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_smaller_primitives_answer_and_fail_within_their_bounds() {
    let e = Env::ready();
    e.kube.update(|c| c.proxy_status = 503);
    e.p.file(
        "prims.rhai",
        r#"
print(`node port ${kube_node_port("habit-tracker", "habit-tracker-frontend", 3000, #{ context: "minikube" })}`);
print(`by name ${kube_node_port("habit-tracker", "habit-tracker-frontend", "http")}`);
try { kube_node_port("habit-tracker", "habit-tracker-backend", 8000); } catch (err) { print(`clusterip: ${err}`); }
try { kube_node_port("habit-tracker", "nope", 8000); } catch (err) { print(`missing: ${err}`); }
print(`deployments ${kube_deployments("habit-tracker", #{})}`);
print(`cpu ${kube_cpu("1.5")} memory ${kube_memory("1Gi")}`);
try {
    kube_service_check("habit-tracker", "habit-tracker-backend", 8000, "/health", #{ max_elapsed: 1, initial_interval: 0.1 });
} catch (err) { print(`proxy: ${err}`); }
try { http_check("http://127.0.0.1:9/", #{ max_elapsed: "1s", initial_interval: "100ms" }); } catch (err) { print(`refused: ${err}`); }
"#,
    );
    let started = Instant::now();
    let out = e.p.run(&["prims.rhai"]);
    out.code(0)
        .has(&format!("node port {}", e.front.port))
        .has(&format!("by name {}", e.front.port))
        .has("clusterip: kube_node_port: Service habit-tracker-backend is of type ClusterIP")
        .has("missing: kube_node_port: there is no Service habit-tracker/nope")
        .has("deployments [\"habit-tracker-backend\", \"habit-tracker-frontend\"]")
        .has("cpu 1500 memory 1073741824")
        .has("proxy: kube_service_check: Service habit-tracker/habit-tracker-backend:8000/health (through the API server's proxy) did not answer 200")
        .has("last: answered 503")
        .has("refused: http_check: http://127.0.0.1:9/ did not answer 200")
        .has("bound max_elapsed = 1s");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_new_options_answer_and_refuse_bad_input() {
    let e = Env::ready();
    e.p.file(
        "opts.rhai",
        r#"
try { print(`ok: ${kube_server(#{ min_version: "1.28" }).version}`); } catch (err) { print(`err: ${err}`); }
try { print(`ok: ${kube_server(#{ min_version: 1.28 })}`); } catch (err) { print(`err: ${err}`); }
try { print(`ok: ${kube_server(#{ min_version: "one.two" })}`); } catch (err) { print(`err: ${err}`); }
try { print(`ok: ${kube_server(#{ min_versoin: "1.28" })}`); } catch (err) { print(`err: ${err}`); }
try { print(`ok: ${kube_wait_release("habit-tracker", #{ namespace: "habit-tracker", timeout: "20s" }).deployments.map(|d| d.name)}`); } catch (err) { print(`err: ${err}`); }
try { print(`ok: ${kube_wait_release("habit-tracker", #{ namespace: "nope" })}`); } catch (err) { print(`err: ${err}`); }
try { print(`ok: ${kube_wait_release("habit-tracker", #{ timeout: true })}`); } catch (err) { print(`err: ${err}`); }
try { print(`ok: ${kube_wait_release("Bad_Release")}`); } catch (err) { print(`err: ${err}`); }
try { print(`ok: ${discover_port(#{ internal_port: 3000, max_elapsed: 1, initial_interval: 0.1, source: #{ kube: #{ namespace: "habit-tracker", selector: "app.kubernetes.io/component=frontend", node: "127.0.0.1" } } })}`); } catch (err) { print(`err: ${err}`); }
try { print(`ok: ${discover_port(#{ internal_port: 3000, max_elapsed: 1, initial_interval: 0.1, source: #{ kube: #{ namespace: "habit-tracker", selector: "app.kubernetes.io/component=nothing" } } })}`); } catch (err) { print(`err: ${err}`); }
try { print(`ok: ${discover_port(#{ internal_port: 9999, max_elapsed: 1, source: #{ kube: #{ namespace: "habit-tracker", selector: "app.kubernetes.io/instance=habit-tracker" } } })}`); } catch (err) { print(`err: ${err}`); }
try { print(`ok: ${discover_port(#{ internal_port: 3000, max_elapsed: 1, initial_interval: 0.1, source: #{ kube: #{ namespace: "habit-tracker", service: "habit-tracker-frontend", selector: "a=b" } } })}`); } catch (err) { print(`err: ${err}`); }
try { print(`ok: ${discover_port(#{ internal_port: 3000, max_elapsed: 1, initial_interval: 0.1, source: #{ kube: #{ namespace: "habit-tracker", selector: "a in (b)" } } })}`); } catch (err) { print(`err: ${err}`); }
try { print(`ok: ${helm_template("habit-tracker", "k8s/charts/habit-tracker", #{ namespace: "habit-tracker", set: #{ "backend.replicaCount": 3 } }).requests}`); } catch (err) { print(`err: ${err}`); }
try { print(`ok: ${helm_template("habit-tracker", "k8s/charts/habit-tracker", #{ values: ["missing.yaml"] })}`); } catch (err) { print(`err: ${err}`); }
try { print(`ok: ${helm_template("habit-tracker", "k8s/charts/habit-tracker", #{ valuse: ["x.yaml"] })}`); } catch (err) { print(`err: ${err}`); }
try { print(`ok: ${helm_template("habit-tracker", "k8s/charts/habit-tracker", #{ set: #{ backend: #{ replicaCount: 2 } } })}`); } catch (err) { print(`err: ${err}`); }
try { print(`ok: ${helm_template("habit-tracker", "k8s/charts/habit-tracker", #{ namespace: 3 })}`); } catch (err) { print(`err: ${err}`); }
"#,
    );
    let out = e.p.run(&["opts.rhai"]);
    out.code(0)
        .has("ok: v1.30.0")
        .has("err: kube_server: option 'min_version' wants a string, got f64")
        .has("err: kube_server: min_version 'one.two' is not a Kubernetes version MAJOR.MINOR")
        .has("err: kube_server: unknown option 'min_versoin'")
        .has("ok: [\"habit-tracker-backend\", \"habit-tracker-frontend\"]")
        .has("err: kube_wait_release: release habit-tracker has no Deployment in namespace nope (label app.kubernetes.io/instance=habit-tracker)")
        .has("err: kube_wait_release: option 'timeout' wants")
        .has("err: kube_wait_release: release name 'Bad_Release' is not valid")
        .has(&format!("ok: 127.0.0.1:{}", e.front.port))
        .has("no Service in habit-tracker matches app.kubernetes.io/component=nothing yet")
        .has("no Service matching app.kubernetes.io/instance=habit-tracker in habit-tracker has port 9999: habit-tracker-backend has 8000 (http); habit-tracker-frontend has 3000 (http)")
        .has("the kube source takes 'service' or 'selector', not both")
        .has("selector 'a in (b)' is not a label selector")
        .has("ok: #{\"cpu\": 1000, \"memory\": 1073741824}")
        .has("err: helm_template: the values file 'missing.yaml' does not exist")
        .has("err: helm_template: unknown option 'valuse'")
        .has("err: helm_template: set 'backend' wants a string, number or bool, got map")
        .has("err: helm_template: option 'namespace' wants a string");
    // Uncaught, a bad option value fails the run (exit 1; exit 2 is the
    // command line's and fail_usage's).
    e.p.file("usage.rhai", "kube_server(#{ min_version: \"1.x\" });\n");
    e.p.run(&["usage.rhai"]).code(1).has("min_version '1.x'");
}

#[test]
fn a_backend_unhealthy_after_the_upgrade_is_rolled_back_with_helm() {
    let e = Env::ready();
    // Revision 1 is deployed; the upgrade makes 2, whose backend answers 503.
    e.standin(
        "helm.json",
        json!({"release": {"status": "deployed", "revision": 1}}),
    );
    e.kube.update(|c| c.proxy_status = 503);
    let out = e.run(&["--health-timeout", "2s", "--rollback-timeout", "20s"]);
    out.code(3)
        .has("backend-health")
        .has("rolled back")
        .has("rolling habit-tracker back to revision 1");
    assert_eq!(e.helm_calls("upgrade").len(), 1);
    let rb = e.helm_calls("rollback");
    assert_eq!(rb.len(), 1, "{:#?}", e.calls());
    assert_eq!(
        argv(&rb[0]).join(" "),
        "rollback habit-tracker 1 --wait --timeout 20s --namespace habit-tracker --kube-context minikube"
    );
    // Helm's record: revision 3 is the rollback to 1, and it is what runs.
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(e.p.path().join("standin/helm-state.json")).unwrap(),
    )
    .unwrap();
    let rel = &state["releases"]["habit-tracker"];
    assert_eq!(
        (rel["revision"].as_i64(), rel["status"].as_str()),
        (Some(3), Some("deployed"))
    );
    assert_eq!(rel["description"], "Rollback to 1");
    assert!(e.helm_calls("uninstall").is_empty());
    no_secret_leaks(&e, &out);
}
