//! Files: `write_json` cannot be raced outside the working directory, and
//! every file runbook reads on a user's behalf (playbooks, imports, test
//! files, recordings) is a regular file under a cap: a FIFO never hangs a
//! run and a symlink to `/dev/zero` never fills memory.

use std::time::{Duration, Instant};

use super::{run_measured, RSS_BOUND_KIB};
use crate::support::{finish, pb, Project};

/// Swap `d` between a real folder and a symlink to `outside` as fast as
/// possible while `write_json("d/x.json")` runs in a loop: the check a path
/// gets before the write, and the write, see different folders. Nothing
/// may ever land outside.
#[test]
fn write_json_cannot_be_raced_outside_the_working_directory() {
    let outside = tempfile::tempdir().unwrap();
    let p = pb(
        "let ok = 0; let refused = 0;\n\
         for i in 0..1000 { try { write_json(\"d/x.json\", #{ i: i }, #{ keep_on_failure: true }); ok += 1; } catch (e) { refused += 1; if refused < 4 { print(`${e}`); } } }\n\
         print(`ok=${ok} refused=${refused}`);\n",
    );
    let d = p.path().join("d");
    let link = p.path().join("d.link");
    std::fs::create_dir(&d).unwrap();
    std::os::unix::fs::symlink(outside.path(), &link).unwrap();
    let child = p.start(&["pb.rhai"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && started.elapsed() < Duration::from_secs(60)
            {
                // One atomic exchange: `d` is the folder, then the symlink.
                nix::fcntl::renameat2(
                    nix::fcntl::AT_FDCWD,
                    &d,
                    nix::fcntl::AT_FDCWD,
                    &link,
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                )
                .expect("renameat2(RENAME_EXCHANGE)");
                swaps += 1;
            }
            swaps
        })
    };
    let out = finish(child);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    out.code(0).has("ok=");
    let leaked: Vec<_> = std::fs::read_dir(outside.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        leaked.is_empty(),
        "files written outside the working directory after {swaps} swaps: {leaked:?}\n{}",
        out.stdout
    );
    eprintln!("write_json race: {swaps} swaps, {}", out.stdout.trim());
}

/// A symlink swapped in before the write is refused with the fix.
#[test]
fn write_json_through_a_symlink_out_names_it() {
    let outside = tempfile::tempdir().unwrap();
    let p = pb("write_json(\"d/x.json\", #{ a: 1 });\n");
    std::os::unix::fs::symlink(outside.path(), p.path().join("d")).unwrap();
    p.run(&["pb.rhai"])
        .code(1)
        .has("'d/x.json' leads outside the working directory");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}

/// A failed run takes its artifacts back beneath the working directory:
/// the script moves the folder away and puts a symlink to a folder outside
/// in its place before failing, and the file of the same name out there
/// survives.
#[test]
fn taking_artifacts_back_never_removes_a_file_outside() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("x.json");
    std::fs::write(&victim, "{}\n").unwrap();
    let mut p = pb(&format!(
        "write_json(\"d/x.json\", #{{ a: 1 }});\n\
         exec([\"sh\", \"-c\", \"mv d d.real && ln -s {} d\"]);\n\
         throw \"fail after the swap\";\n",
        outside.path().display()
    ));
    p.env("RUNBOOK_ALLOW", "sh");
    p.run(&["pb.rhai"])
        .code(1)
        .has("did not remove")
        .has("fail after the swap");
    assert!(
        victim.exists(),
        "a file outside the working directory was removed"
    );
}

fn fifo(p: &Project, rel: &str) {
    nix::unistd::mkfifo(&p.path().join(rel), nix::sys::stat::Mode::S_IRWXU).unwrap();
}

fn zero(p: &Project, rel: &str) {
    std::os::unix::fs::symlink("/dev/zero", p.path().join(rel)).unwrap();
}

/// Playbooks and imports: a FIFO, `/dev/zero` and a file over the cap.
#[test]
fn playbooks_and_imports_are_regular_files_under_the_cap() {
    let p = Project::new();
    fifo(&p, "pipe.rhai");
    p.run(&["pipe.rhai"])
        .code(2)
        .has("is not a regular file (a FIFO");
    let p = pb("import \"m\" as m;\nprint(m::x);\n");
    fifo(&p, "m.rhai");
    let (out, rss) = run_measured(&p, &["pb.rhai"]);
    out.code(2).has("m.rhai is not a regular file (a FIFO");
    assert!(rss < RSS_BOUND_KIB, "peak RSS {rss} KiB importing a FIFO");
    let p = Project::new();
    let f = std::fs::File::create(p.path().join("big.rhai")).unwrap();
    f.set_len(5 * 1024 * 1024).unwrap();
    p.run(&["big.rhai"])
        .code(2)
        .has("big.rhai is 5242880 bytes; a playbook may have at most");
}

/// `runbook test`: a snapshot that is a FIFO or `/dev/zero`, or a
/// playbook that is a FIFO, fails its test, and the next test runs.
#[test]
fn runbook_test_reads_only_regular_files() {
    let p = Project::new();
    p.file("pb.rhai", "print(1);\n").file(
        "pb.test.rhai",
        "fn test_snap() { assert_snapshot(\"out\", #{ a: 1 }); }\n\
         fn test_zero_snap() { assert_snapshot(\"zero\", #{ a: 1 }); }\n\
         fn test_fifo_playbook() { let r = playbook(\"pipe.rhai\").run(); }\n\
         fn test_after() { assert_eq(1, 1); }\n",
    );
    std::fs::create_dir(p.path().join("snapshots")).unwrap();
    fifo(&p, "snapshots/pb.out.json");
    zero(&p, "snapshots/pb.zero.json");
    fifo(&p, "pipe.rhai");
    let (out, rss) = run_measured(&p, &["test", "pb.test.rhai"]);
    assert!(out.elapsed < Duration::from_secs(30), "{:?}", out.elapsed);
    assert!(rss < RSS_BOUND_KIB, "peak RSS {rss} KiB");
    out.has("FAIL pb.test.rhai::test_snap")
        .has("snapshots/pb.out.json: cannot read it: it is a FIFO")
        .has("FAIL pb.test.rhai::test_zero_snap")
        .has("snapshots/pb.zero.json: cannot read it: it is a character device")
        .has("FAIL pb.test.rhai::test_fifo_playbook")
        .has("ok   pb.test.rhai::test_after");
}

/// Data files primitives read beyond `read_json` (a cosign public key, an
/// SDL template, Helm values) go through the same reader: a FIFO given
/// as the key is refused at once.
#[test]
fn a_fifo_as_a_cosign_key_is_refused_not_waited_on() {
    let digest = format!("sha256:{}", "a".repeat(64));
    let p = pb(&format!(
        "cosign_soft_verify(\"ghcr.io/o/app\", \"{digest}\", #{{ key: \"key.pem\" }});\n"
    ));
    fifo(&p, "key.pem");
    let out = p.run(&["pb.rhai"]);
    out.has("cannot read the public key file 'key.pem': it is a FIFO");
    assert!(out.elapsed < Duration::from_secs(20), "{:?}", out.elapsed);
}
