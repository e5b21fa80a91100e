//! `output(name, value)` and `summary(markdown)`: what a run hands to the
//! next step. Outputs reach `$GITHUB_OUTPUT` only when the run succeeds.

use std::sync::Arc;

use rhai::{Dynamic, Engine, ImmutableString};

use crate::context::{error, Ctx, RhaiResult};
use crate::declare::Spec;
use crate::opts::Opts;
use crate::value::to_json;

/// A value as output text: strings as they are, the rest as JSON.
pub fn output_text(value: &Dynamic) -> Result<String, String> {
    if value.is_string() {
        Ok(value.to_string())
    } else {
        to_json(value).map(|v| v.to_string())
    }
}

static OUTPUT: Spec = Spec {
    name: "output",
    params: &["name: String", "value: Dynamic"],
    returns: "()",
    doc: include_str!("docs/output.md"),
    opts: &[],
};

static SUMMARY: Spec = Spec {
    name: "summary",
    params: &["markdown: String"],
    returns: "()",
    doc: include_str!("docs/summary.md"),
    opts: &[],
};

/// Register `output` and `summary`.
pub fn register(engine: &mut Engine, ctx: &Arc<Ctx>) {
    let c = ctx.clone();
    OUTPUT.register2(engine, move |name: ImmutableString, value: Dynamic, _: &Opts| -> RhaiResult<()> {
            let name = name.as_str();
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
            let mut outs = c.outputs.lock();
            outs.retain(|(n, _)| n != name);
            outs.push((name.to_string(), text));
            Ok(())
        });

    let c = ctx.clone();
    SUMMARY.register1(engine, move |md: ImmutableString, _: &Opts| {
        c.summaries
            .lock()
            .push(crate::redact::redact(&md).into_owned());
        Ok(())
    });
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
