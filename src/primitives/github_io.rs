//! `output(name, value)` and `summary(markdown)`: what a run hands to the
//! next step. Outputs reach `$GITHUB_OUTPUT` only when the run succeeds.

use std::sync::Arc;

use rhai::{Dynamic, Engine, FuncRegistration};

use crate::context::{error, Ctx, RhaiResult};
use crate::primitives::to_json;

/// A value as output text: strings as they are, the rest as JSON.
pub fn output_text(value: &Dynamic) -> Result<String, String> {
    if value.is_string() {
        Ok(value.to_string())
    } else {
        to_json(value).map(|v| v.to_string())
    }
}

const OUTPUT_DOC: &str = "\
/// Set a step output. Written to `$GITHUB_OUTPUT` (multiline-safe, random
/// delimiter) and printed in the run's final summary, only if the run
/// succeeds: a failed run sets no output. Strings are written as they are,
/// other values as JSON. Secrets are redacted.";

const SUMMARY_DOC: &str = "\
/// Append Markdown to the job summary (`$GITHUB_STEP_SUMMARY`), redacted.
/// Written at the end of the run, whether it succeeds or fails.";

/// Register `output` and `summary`.
pub fn register(engine: &mut Engine, ctx: &Arc<Ctx>) {
    let c = ctx.clone();
    FuncRegistration::new("output")
        .with_params_info(["name: &str", "value: Dynamic", "()"])
        .with_comments([OUTPUT_DOC])
        .register_into_engine(engine, move |name: &str, value: Dynamic| -> RhaiResult<()> {
            if !crate::github::valid_output_name(name) {
                return Err(error(format!(
                    "output: '{name}' is not a valid output name (letters, digits, '_' and '-', not starting with a digit)"
                )));
            }
            let text = output_text(&value).map_err(|e| error(format!("output {name}: {e}")))?;
            let text = crate::redact::redact(&text).into_owned();
            if !c.dry_run() {
                c.guard_mutation("output")?;
            }
            tracing::info!(primitive = "output", name, value = %text, "output {name}={text}");
            let mut outs = c.outputs.lock().unwrap_or_else(|e| e.into_inner());
            outs.retain(|(n, _)| n != name);
            outs.push((name.to_string(), text));
            Ok(())
        });

    let c = ctx.clone();
    FuncRegistration::new("summary")
        .with_params_info(["markdown: &str", "()"])
        .with_comments([SUMMARY_DOC])
        .register_into_engine(engine, move |md: &str| {
            c.summaries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(crate::redact::redact(md).into_owned());
        });
}

/// At the end of a successful run: write outputs to `$GITHUB_OUTPUT`.
pub fn flush_outputs(ctx: &Ctx) -> Result<(), String> {
    let outs = ctx
        .outputs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if outs.is_empty() {
        return Ok(());
    }
    let Some(path) = std::env::var_os("GITHUB_OUTPUT").filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    if ctx.dry_run() {
        tracing::info!(
            "dry run: would write {} output(s) to $GITHUB_OUTPUT",
            outs.len()
        );
        return Ok(());
    }
    let mut text = String::new();
    for (name, value) in &outs {
        text.push_str(&crate::github::render_output(name, value)?);
    }
    crate::github::append(std::path::Path::new(&path), &text).map_err(|e| {
        format!(
            "cannot write $GITHUB_OUTPUT ({}): {e}",
            path.to_string_lossy()
        )
    })
}

/// At the end of any run: append summaries to `$GITHUB_STEP_SUMMARY`.
pub fn flush_summaries(ctx: &Ctx) {
    let parts = ctx
        .summaries
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if parts.is_empty() {
        return;
    }
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        let mut text = parts.join("\n");
        text.push('\n');
        if let Err(e) = crate::github::append(std::path::Path::new(&path), &text) {
            tracing::warn!("cannot write $GITHUB_STEP_SUMMARY: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_values_are_text_or_json() {
        assert_eq!(output_text(&Dynamic::from("a:1")).unwrap(), "a:1");
        assert_eq!(output_text(&Dynamic::from(3_i64)).unwrap(), "3");
        let mut m = rhai::Map::new();
        m.insert("k".into(), Dynamic::from(true));
        assert_eq!(output_text(&Dynamic::from(m)).unwrap(), "{\"k\":true}");
    }
}
