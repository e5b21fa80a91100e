//! `runbook lock status|break NAME` and `runbook history TARGET`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::error::Error;

/// Where a lock lives, for the CLI.
#[derive(Args, Debug, Clone)]
pub struct Where {
    /// The backend: file, kube or github (default RUNBOOK_LOCK_BACKEND, else file).
    #[arg(long)]
    pub backend: Option<String>,
    /// The Lease's namespace (kube).
    #[arg(long)]
    pub namespace: Option<String>,
    /// The kubeconfig context (kube).
    #[arg(long)]
    pub context: Option<String>,
}

/// `runbook lock …`.
#[derive(Subcommand, Debug)]
pub enum LockCmd {
    /// Who holds NAME, since when, until when, its fencing token (exit 0 held, 1 free).
    Status {
        /// The lock's name.
        name: String,
        #[command(flatten)]
        at: Where,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Break NAME: the next run may take it; the holder self-fences.
    Break {
        /// The lock's name.
        name: String,
        /// Why (required; recorded in the ledger).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        at: Where,
    },
}

/// `runbook history` arguments.
#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// The target (a lock name, or a playbook's file name).
    pub target: String,
    /// Print the records as JSON.
    #[arg(long)]
    pub json: bool,
    /// Show at most N records.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    #[command(flatten)]
    pub at: Where,
}

fn state() -> PathBuf {
    let workdir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    crate::lock::state_dir(&workdir)
}

/// Multi-thread: `Handle::block_on` (the ledger's) drives I/O and timers
/// only on a runtime with worker threads.
fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    super::runtime(1)
}

/// Run `runbook lock …`.
pub fn lock(cmd: LockCmd) -> Result<(), Error> {
    match cmd {
        LockCmd::Status { name, at, json } => {
            let target = name;
            let name = crate::lock::name_for(&target);
            let backend =
                crate::lock::Backend::parse(at.backend.as_deref(), at.namespace, at.context)
                    .map_err(|e| Error::Usage(e.to_string()))?;
            let s = match &backend {
                crate::lock::Backend::File => crate::lock::file::status(&state(), &name),
                crate::lock::Backend::Kube { namespace, context } => {
                    runtime()?.block_on(crate::lock::kube::status(
                        &crate::kube::Clients::default(),
                        &name,
                        namespace.as_deref(),
                        context.as_deref(),
                    ))
                }
                crate::lock::Backend::Github => runtime()?.block_on(crate::lock::github::status(
                    crate::net::github::client(),
                    &name,
                )),
            }
            .map_err(Error::Failed)?;
            if json {
                crate::out::println(&serde_json::to_string_pretty(&s).unwrap_or_default());
            } else {
                let mut text = s.render();
                if target != name {
                    // Which target the derived name stands for.
                    text = text.replacen(
                        &format!("lock {name}:"),
                        &format!("lock {name} (for '{target}'):"),
                        1,
                    );
                }
                crate::out::text(crate::out::Stream::Stdout, &text);
            }
            if s.held {
                Ok(())
            } else {
                // Exit 1 without an "error:" line: free is an answer, and
                // it is on the screen already.
                Err(Error::Failed(format!("lock {name} is free")).shown())
            }
        }
        LockCmd::Break { name, reason, at } => {
            let name = crate::lock::name_for(&name);
            let reason = reason.filter(|r| !r.trim().is_empty()).ok_or_else(|| {
                Error::Usage(format!(
                    "lock break {name} needs --reason TEXT: it is recorded in the ledger with who broke it"
                ))
            })?;
            let backend =
                crate::lock::Backend::parse(at.backend.as_deref(), at.namespace, at.context)
                    .map_err(|e| Error::Usage(e.to_string()))?;
            let by = crate::lock::actor();
            let rt = runtime()?;
            let before = match &backend {
                crate::lock::Backend::File => {
                    crate::lock::file::break_lock(&state(), &name, &by, &reason)
                }
                crate::lock::Backend::Kube { namespace, context } => {
                    rt.block_on(crate::lock::kube::break_lock(
                        &name,
                        namespace.as_deref(),
                        context.as_deref(),
                        &by,
                        &reason,
                    ))
                }
                crate::lock::Backend::Github => {
                    rt.block_on(crate::lock::github::break_lock(&name, &by, &reason))
                }
            }
            .map_err(Error::Failed)?;
            let holder = before.holder.as_ref().map(|h| h.holder.clone());
            if let Err(e) = crate::ledger::record_break(
                &state(),
                &backend,
                rt.handle(),
                &name,
                &reason,
                before.token + 1,
                holder.clone(),
            ) {
                crate::out::eprintln(&format!("warning: the break is not in the ledger: {e}"));
            }
            let was = if before.held {
                format!(
                    "was held by {}",
                    holder.unwrap_or_else(|| "an unknown holder".into())
                )
            } else {
                "it was free".into()
            };
            crate::out::println(&format!(
                "broke lock {name} ({was}); a holder still running refuses every further change"
            ));
            Ok(())
        }
    }
}

/// Run `runbook history TARGET [--json] [--limit N]`: the ledger's
/// newest records, read where the lock of TARGET keeps them.
pub fn history(a: HistoryArgs) -> Result<(), Error> {
    let (as_json, limit) = (a.json, a.limit);
    let (backend, namespace, context) = (
        a.at.backend.as_deref(),
        a.at.namespace.as_deref(),
        a.at.context.as_deref(),
    );
    let target = &crate::lock::name_for(&a.target);
    let dir = state();
    let lock_place = crate::lock::Backend::parse(
        backend,
        namespace.map(String::from),
        context.map(String::from),
    )
    .map_err(|e| Error::Usage(e.to_string()))?;
    let place = if backend.is_some() {
        lock_place
    } else {
        crate::ledger::place_for(Some(&lock_place)).map_err(Error::Usage)?
    };
    let rt = runtime()?;
    let found = crate::ledger::newest_any(
        &dir,
        target,
        &place,
        rt.handle(),
        limit,
        &crate::ledger::Filter::default(),
    )
    .map_err(Error::Failed)?;
    // No log sink here: the warning goes straight to stderr.
    if let Some(bad) = &found.bad {
        crate::out::eprintln(&format!("warning: {bad}"));
    }
    let records = found.records;
    if as_json {
        crate::out::println(
            &serde_json::to_string_pretty(&records).unwrap_or_else(|_| "[]".into()),
        );
        return Ok(());
    }
    if records.is_empty() {
        let at = match &place {
            crate::lock::Backend::File => dir.display().to_string(),
            crate::lock::Backend::Kube { .. } => format!("ConfigMap runbook-ledger-{target}"),
            crate::lock::Backend::Github => format!(
                "deployments to environment {target} of {}",
                std::env::var("GITHUB_REPOSITORY").unwrap_or_default()
            ),
        };
        crate::out::println(&format!(
            "no ledger records for '{target}' ({} backend, {at})",
            place.name()
        ));
        return Ok(());
    }
    crate::out::text(
        crate::out::Stream::Stdout,
        &crate::ledger::render_table(&records, limit),
    );
    Ok(())
}
