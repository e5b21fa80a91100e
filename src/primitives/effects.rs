//! What each primitive touches, in one place: `runbook test` runs the pure
//! ones for real and demands a stub for the rest, dry run plans the
//! mutations, and lock fencing can guard the same set.

use rhai::{Dynamic, Map};

/// Primitives with no effect outside the run: their result depends only on
/// their arguments and the run's own state (outputs, summary, logs). Tests
/// run them for real.
pub const PURE: &[&str] = &[
    "validate_endpoint",
    "parse_json",
    "to_json",
    "kube_cpu",
    "kube_memory",
    "utc_now",
    "fail",
    "fail_usage",
    "is_dry_run",
    "output",
    "summary",
    "log_info",
    "log_warn",
    "log_event",
];

/// Primitives that touch files only inside the run's working directory.
/// Tests run them for real in the run's temporary folder.
pub const WORKDIR_FILES: &[&str] = &[
    "read_json",
    "read_yaml",
    "file_exists",
    "write_json",
    "remove_artifact",
];

/// Primitives that change the world: what a dry run plans instead of doing.
/// `exec` counts unless its options say `read_only: true`. The rest only
/// read (`kube_server`, `kube_wait_release`, `helm_template`, …): a dry
/// run runs them for real, a test stubs them.
pub const MUTATIONS: &[&str] = &[
    "exec",
    "helm_install",
    "write_json",
    "remove_artifact",
    "akash_update",
    "output",
];

/// Whether this call of `name` with `args` changes the world.
pub fn is_mutation(name: &str, args: &[Dynamic]) -> bool {
    if !MUTATIONS.contains(&name) {
        return false;
    }
    if name == "exec" {
        let read_only = args
            .get(1)
            .and_then(|o| o.read_lock::<Map>().map(|m| m.get("read_only").cloned()))
            .flatten()
            .and_then(|v| v.as_bool().ok())
            .unwrap_or(false);
        return !read_only;
    }
    true
}

/// Whether a test may run `name` for real (no stub needed).
pub fn runs_in_tests(name: &str) -> bool {
    PURE.contains(&name) || WORKDIR_FILES.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_is_a_mutation_unless_read_only() {
        let argv = Dynamic::from(rhai::Array::new());
        assert!(is_mutation("exec", std::slice::from_ref(&argv)));
        let mut opts = Map::new();
        opts.insert("read_only".into(), Dynamic::from(true));
        assert!(!is_mutation("exec", &[argv.clone(), Dynamic::from(opts)]));
        let mut opts = Map::new();
        opts.insert("read_only".into(), Dynamic::from(false));
        assert!(is_mutation("exec", &[argv, Dynamic::from(opts)]));
        assert!(is_mutation("akash_update", &[]));
        assert!(!is_mutation("akash_deployment", &[]));
    }

    #[test]
    fn network_primitives_need_stubs() {
        for name in [
            "image_digest",
            "ghcr_has_tag",
            "exec",
            "akash_update",
            "git_sha",
            "kube_wait_release",
            "kube_server",
            "helm_template",
        ] {
            assert!(!runs_in_tests(name), "{name}");
        }
        // Reads: they run for real in a dry run, and change nothing.
        for name in ["kube_wait_release", "helm_template", "kube_capacity"] {
            assert!(!is_mutation(name, &[]), "{name}");
        }
        assert!(runs_in_tests("validate_endpoint"));
        assert!(runs_in_tests("write_json"));
    }
}
