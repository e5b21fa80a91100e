//! Recordings: every primitive call of a real run and its result (secrets
//! redacted, a format version inside), written by `--record FILE.json`;
//! `t.replay(FILE)` answers a test run's calls from one, in order, and
//! fails at the first call that differs.

use parking_lot::Mutex;
use std::path::Path;

use rhai::Dynamic;
use serde_json::{json, Value};

use super::proxy::Call;
use crate::context::{error, RhaiResult};

/// The format written into every recording.
pub const FORMAT: &str = "runbook-record/1";

/// A value as JSON; what JSON cannot hold (a closure) as its text.
pub fn value_json(v: &Dynamic) -> Value {
    crate::value::to_json(v).unwrap_or_else(|_| Value::String(v.to_string()))
}

/// The arguments of a call as compact, redacted JSON text.
pub fn args_text(args: &[Dynamic]) -> String {
    let v = Value::Array(args.iter().map(value_json).collect());
    crate::redact::redact(&v.to_string()).into_owned()
}

/// `name(arg, …)` for messages, cut to a readable length.
pub fn call_text(name: &str, args: &[Dynamic]) -> String {
    let a = args_text(args);
    let inner = a
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(&a);
    let inner = crate::redact::cut(inner, 160);
    format!("{name}({inner})")
}

/// The recording of a run, as JSON text with every secret redacted.
pub fn render(playbook: &Path, dry_run: bool, calls: &[Call]) -> String {
    let calls: Vec<Value> = calls
        .iter()
        .map(|c| {
            let mut o = json!({
                "name": c.name,
                "args": c.args.iter().map(value_json).collect::<Vec<_>>(),
            });
            match &c.result {
                Ok(v) => o["result"] = value_json(v),
                Err(e) => o["error"] = Value::String(e.clone()),
            }
            o
        })
        .collect();
    let doc = json!({
        "format": FORMAT,
        "playbook": playbook.display().to_string(),
        "dry_run": dry_run,
        "calls": calls,
    });
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    let mut text = crate::redact::redact(&text).into_owned();
    text.push('\n');
    text
}

/// One recorded call.
#[derive(Clone, Debug)]
struct Recorded {
    name: String,
    args: Value,
    outcome: Result<Value, String>,
}

/// A recording being replayed: the calls a test must stub, in order.
#[derive(Debug)]
pub struct Replay {
    file: String,
    calls: Vec<Recorded>,
    next: Mutex<usize>,
}

impl Replay {
    /// Load a recording; keep the calls for which `replayed(name)` holds.
    pub fn load(path: &Path, replayed: &dyn Fn(&str) -> bool) -> Result<Replay, String> {
        // A regular file under the data cap: a FIFO or /dev/zero named as
        // the recording neither hangs nor fills memory.
        let text = crate::fsread::read_text(path, crate::fsread::FILE_CAP)
            .map_err(|e| format!("replay: cannot read {}: {e}", path.display()))?;
        Replay::parse(&path.display().to_string(), &text, replayed)
    }

    /// Parse recording text (`file` names it in messages).
    pub fn parse(
        file: &str,
        text: &str,
        replayed: &dyn Fn(&str) -> bool,
    ) -> Result<Replay, String> {
        let doc: Value = serde_json::from_str(text)
            .map_err(|e| format!("replay: {file} is not valid JSON: {e}"))?;
        let format = doc.get("format").and_then(Value::as_str).unwrap_or("");
        if format != FORMAT {
            return Err(format!(
                "replay: {file} has format '{format}', this runbook reads '{FORMAT}' (record it again with --record)"
            ));
        }
        let calls = doc
            .get("calls")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("replay: {file} has no \"calls\" list"))?
            .iter()
            .filter_map(|c| {
                let name = c.get("name")?.as_str()?.to_string();
                if !replayed(&name) {
                    return None;
                }
                let args = c.get("args").cloned().unwrap_or(Value::Array(vec![]));
                let outcome = match c.get("error").and_then(Value::as_str) {
                    Some(e) => Err(e.to_string()),
                    None => Ok(c.get("result").cloned().unwrap_or(Value::Null)),
                };
                Some(Recorded {
                    name,
                    args,
                    outcome,
                })
            })
            .collect();
        Ok(Replay {
            file: file.to_string(),
            calls,
            next: Mutex::new(0),
        })
    }

    /// Answer the next call from the recording, or name the divergence.
    pub fn answer(&self, name: &str, args: &[Dynamic]) -> RhaiResult<Dynamic> {
        let mut next = self.next.lock();
        let k = *next;
        let live = call_text(name, args);
        let Some(rec) = self.calls.get(k) else {
            return Err(error(format!(
                "replay diverged: call #{} `{live}` is not in {} (it has {} call(s) to replay)",
                k + 1,
                self.file,
                self.calls.len()
            )));
        };
        let rec_args: Vec<Dynamic> = rec
            .args
            .as_array()
            .map(|a| a.iter().map(crate::value::to_dynamic).collect())
            .unwrap_or_default();
        if rec.name != name || args_text(&rec_args) != args_text(args) {
            return Err(error(format!(
                "replay diverged at call #{}: the playbook called `{live}`, {} has `{}`",
                k + 1,
                self.file,
                call_text(&rec.name, &rec_args)
            )));
        }
        *next += 1;
        match &rec.outcome {
            Ok(v) => Ok(crate::value::to_dynamic(v)),
            Err(e) => Err(error(e)),
        }
    }

    /// The recorded calls not replayed yet, as a message, if any.
    pub fn leftover(&self) -> Option<String> {
        let k = *self.next.lock();
        let rec = self.calls.get(k)?;
        Some(format!(
            "replay diverged at call #{}: the playbook finished, {} still has `{}` ({} call(s) not made)",
            k + 1,
            self.file,
            rec.name,
            self.calls.len() - k
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: Vec<Dynamic>, result: Result<Dynamic, String>) -> Call {
        Call {
            name: name.into(),
            args,
            result,
            mutation: false,
        }
    }

    #[test]
    fn round_trip_and_divergence() {
        let calls = vec![
            call(
                "validate_endpoint",
                vec!["a.b:2000".into()],
                Ok(Dynamic::UNIT),
            ),
            call(
                "ghcr_has_tag",
                vec!["r".into(), "t".into()],
                Ok(true.into()),
            ),
            call(
                "image_digest",
                vec!["r".into(), "t".into()],
                Err("boom".into()),
            ),
        ];
        let text = render(Path::new("pb.rhai"), false, &calls);
        assert!(text.contains(FORMAT));
        let impure = |n: &str| n != "validate_endpoint";
        let r = Replay::parse("rec.json", &text, &impure).unwrap();
        let ok = r.answer("ghcr_has_tag", &["r".into(), "t".into()]).unwrap();
        assert!(ok.as_bool().unwrap());
        assert!(r.leftover().unwrap().contains("image_digest"));
        let err = r
            .answer("image_digest", &["r".into(), "u".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("diverged at call #2"), "{err}");
        assert!(err.contains(r#"image_digest("r","u")"#), "{err}");
        let err = r
            .answer("image_digest", &["r".into(), "t".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("boom"), "{err}");
        assert!(r.leftover().is_none());
        let bad = Replay::parse("x", r#"{"format":"other","calls":[]}"#, &impure).unwrap_err();
        assert!(bad.contains("format 'other'"), "{bad}");
    }

    #[test]
    fn secrets_are_redacted() {
        crate::redact::register("s3cr3t-value-for-record");
        let calls = vec![call(
            "secret",
            vec!["K".into()],
            Ok("s3cr3t-value-for-record".into()),
        )];
        let text = render(Path::new("pb.rhai"), false, &calls);
        assert!(!text.contains("s3cr3t-value-for-record"), "{text}");
    }
}
