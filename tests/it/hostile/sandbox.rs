//! `exec`'s sandbox: the program is found on runbook's own PATH (a PATH in
//! `env` cannot swap it), the resolved path is logged, and `cwd` stays
//! inside the working directory unless the run allows otherwise.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::pb;
use crate::support::Project;

/// Write an executable shell script.
fn script(p: &Project, rel: &str, body: &str) {
    p.file(rel, &format!("#!/bin/sh\n{body}\n"));
    std::fs::set_permissions(p.path().join(rel), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_path_in_env_cannot_swap_an_allowed_program() {
    let mut p = Project::new();
    p.file(
        "pb.rhai",
        &format!(
            r#"let out = exec(["rbtool"], #{{ env: #{{ PATH: "{}/evil" }} }}); print(`said=${{out.stdout}}`);"#,
            p.path().display()
        ),
    );
    script(&p, "real/rbtool", "echo real; echo \"child PATH=$PATH\"");
    script(&p, "evil/rbtool", "echo evil; touch evil-ran");
    p.path_prepend(p.path().join("real"));
    p.env("RUNBOOK_ALLOW", "rbtool");
    let real = p.path().join("real/rbtool");
    let out = p.run(&["pb.rhai", "--log-format", "json"]);
    out.code(0)
        .has("said=real\n")
        // The child still gets the PATH it was handed.
        .has("/evil")
        .has(&format!("\"program_path\":\"{}\"", real.display()));
    assert!(
        !p.path().join("evil-ran").exists(),
        "the binary from env PATH ran"
    );
}

#[test]
fn cwd_stays_inside_the_working_directory_unless_allowed() {
    let outside = tempfile::tempdir().unwrap();
    let src = format!(
        r#"let out = exec(["pwd"], #{{ cwd: "{}" }}); print(`in=${{out.stdout}}`);"#,
        outside.path().display()
    );
    let mut p = pb(&src);
    p.env("RUNBOOK_ALLOW", "pwd");
    p.run(&["pb.rhai"])
        .code(1)
        .has("is outside the working directory")
        .has("--allow-cwd-outside");
    p.run(&["pb.rhai", "--allow-cwd-outside"])
        .code(0)
        .has(&format!(
            "in={}",
            outside.path().canonicalize().unwrap().display()
        ));

    // `..` and a symlink that leads out are outside too; a subfolder is fine.
    std::os::unix::fs::symlink(outside.path(), p.path().join("link")).unwrap();
    std::fs::create_dir(p.path().join("sub")).unwrap();
    for (cwd, ok) in [("..", false), ("link", false), ("sub", true), (".", true)] {
        p.file(
            "pb.rhai",
            &format!(
                r#"let out = exec(["pwd"], #{{ cwd: "{cwd}" }}); print(`in=${{out.stdout}}`);"#
            ),
        );
        let out = p.run(&["pb.rhai"]);
        if ok {
            out.code(0).has("in=");
        } else {
            out.code(1).has("is outside the working directory");
        }
    }
    assert!(Path::new(outside.path()).exists());
}

/// Issue 18: the runner's options are declared once, and a switch told
/// off is off. `--allow-cwd-outside=false` used to turn the loosening on.
#[test]
fn a_loosening_switch_told_off_stays_off() {
    let outside = tempfile::tempdir().unwrap();
    let mut p = pb(&format!(
        r#"let out = exec(["pwd"], #{{ cwd: "{}" }}); print(`in=${{out.stdout}}`);"#,
        outside.path().display()
    ));
    p.env("RUNBOOK_ALLOW", "pwd");
    for off in [
        &["pb.rhai", "--allow-cwd-outside=false"][..],
        &["pb.rhai", "--allow-cwd-outside=no"][..],
        &["pb.rhai", "--allow-cwd-outside", "false"][..],
        &["--allow-cwd-outside=0", "pb.rhai"][..],
    ] {
        p.run(off)
            .code(1)
            .has("is outside the working directory")
            .lacks("in=/");
    }
    p.run(&["pb.rhai", "--allow-cwd-outside=true"]).code(0);
    p.run(&["pb.rhai", "--allow-cwd-outside=maybe"])
        .code(2)
        .has("--allow-cwd-outside=false");
    // In the help, and reserved like every runner option.
    p.run(&["pb.rhai", "--help"])
        .code(0)
        .has("--allow-cwd-outside");
    p.file(
        "pb.rhai",
        "const PARAMS = #{ allow_cwd_outside: #{ type: \"bool\" } };\nprint(args.allow_cwd_outside);",
    );
    p.run(&["pb.rhai"])
        .code(2)
        .has("PARAMS.allow_cwd_outside: the name is reserved");
}
