//! The sandbox's imports: a `stdlib/` planted in a shared parent folder
//! overrides nothing, a module symlinked out of the project is refused,
//! and `runbook check` ends on a folder with symlink loops.

use std::time::{Duration, Instant};

use crate::support::{bin, wait_output};

fn run_in(dir: &std::path::Path, args: &[&str]) -> crate::support::Output {
    let started = Instant::now();
    let child = std::process::Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env_remove("GITHUB_ACTIONS")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_output(child, Duration::from_secs(60), started)
}

#[test]
fn a_stdlib_planted_above_the_project_is_not_used() {
    let shared = tempfile::tempdir().unwrap();
    // The attacker's module, in a folder above the victim's project.
    std::fs::create_dir_all(shared.path().join("stdlib")).unwrap();
    std::fs::write(
        shared.path().join("stdlib/images.rhai"),
        "fn short_sha(s) { print(\"PLANTED\"); \"planted\" }\n",
    )
    .unwrap();
    let project = shared.path().join("victim");
    std::fs::create_dir_all(project.join("playbooks")).unwrap();
    std::fs::write(
        project.join("playbooks/pb.rhai"),
        "import \"images\" as images;\nprint(images::short_sha(\"0123456789abcdef0123456789abcdef01234567\"));\n",
    )
    .unwrap();
    // From the project's folder, and from the playbook's own folder.
    for cwd in [project.clone(), project.join("playbooks")] {
        let pb = project.join("playbooks/pb.rhai");
        let out = run_in(&cwd, &[pb.to_str().unwrap()]);
        out.code(0).lacks("PLANTED").has("0123456");
    }
    // The project's own stdlib/ still overrides the embedded module.
    std::fs::create_dir_all(project.join("stdlib")).unwrap();
    std::fs::write(
        project.join("stdlib/images.rhai"),
        "fn short_sha(s) { \"project-override\" }\n",
    )
    .unwrap();
    run_in(&project, &["playbooks/pb.rhai"])
        .code(0)
        .has("project-override");
}

#[test]
fn a_module_symlinked_out_of_the_project_is_refused() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("outside.rhai"), "fn x() { 1 }\n").unwrap();
    let project = root.path().join("p");
    std::fs::create_dir_all(&project).unwrap();
    std::os::unix::fs::symlink(root.path().join("outside.rhai"), project.join("evil.rhai"))
        .unwrap();
    std::fs::write(
        project.join("pb.rhai"),
        "import \"evil\" as e;\nprint(e::x());\n",
    )
    .unwrap();
    run_in(&project, &["pb.rhai"])
        .code(2)
        .has("symlink")
        .has("outside");
    // A symlink that stays inside is fine.
    std::fs::write(project.join("real.rhai"), "fn x() { 2 }\n").unwrap();
    std::os::unix::fs::symlink(project.join("real.rhai"), project.join("alias.rhai")).unwrap();
    std::fs::write(
        project.join("ok.rhai"),
        "import \"alias\" as a;\nprint(a::x());\n",
    )
    .unwrap();
    run_in(&project, &["ok.rhai"]).code(0).has("2");
}

#[test]
fn check_ends_on_a_folder_with_symlink_loops() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("a/b")).unwrap();
    std::fs::write(root.path().join("a/b/pb.rhai"), "let x = 1;\n").unwrap();
    std::os::unix::fs::symlink(root.path(), root.path().join("a/b/loop")).unwrap();
    std::os::unix::fs::symlink(root.path().join("a"), root.path().join("a/b/up")).unwrap();
    let out = run_in(root.path(), &["check", "."]);
    out.code(0).has("pb.rhai");
}
