//! The commands, above the runtime and the bindings: a run
//! (`crate::run`), `runbook test` (`crate::testing`), and here `check`,
//! `doc`, `job`, `lock` and `history`. Each reads its arguments, builds
//! what it needs from the layers below and returns a [`crate::error::Error`]
//! that `main` renders.

pub mod check;
pub mod job;
pub mod lock;

use std::path::Path;

use crate::context::{Ctx, Settings};
use crate::error::Error;
use crate::logging::LogFormat;

/// The async runtime with `workers` threads, or a current-thread one for
/// 0. `Handle::block_on` drives no I/O or timers itself: on a
/// current-thread runtime another thread must be in `Runtime::block_on`
/// meanwhile (a run's main thread is, `crate::run`); where none is, use
/// workers.
pub fn runtime(workers: usize) -> Result<tokio::runtime::Runtime, Error> {
    let mut b = if workers == 0 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    b.enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the async runtime: {e}")))
}

/// `runbook doc [NAME]`.
pub fn doc(name: Option<&str>, markdown: bool, definitions: Option<&Path>) -> Result<(), Error> {
    let rt = runtime(0)?;
    let ctx = Ctx::new(
        Settings::new(Path::new("doc.rhai"), LogFormat::Pretty),
        rt.handle().clone(),
    );
    let engine = crate::primitives::engine(&ctx);
    if let Some(dir) = definitions {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Failed(format!("cannot create {}: {e}", dir.display())))?;
        engine
            .definitions()
            .include_standard_packages(false)
            .write_to_dir(dir)
            .map_err(|e| {
                Error::Failed(format!(
                    "cannot write definitions to {}: {e}",
                    dir.display()
                ))
            })?;
        crate::out::println(&format!("wrote definitions to {}", dir.display()));
        return Ok(());
    }
    let entries = crate::doc::entries(&engine);
    let builtins = crate::doc::builtins(&engine);
    let text =
        crate::doc::render_with(&entries, &builtins, name, markdown).map_err(Error::Usage)?;
    crate::out::text(crate::out::Stream::Stdout, &text);
    Ok(())
}
