//! Appending to a ledger: one `O_APPEND` write per record to a file (a
//! torn last line is closed first, so the record is not glued onto it), or
//! to the kube or github backend.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde_json::Value;

use super::path;
use crate::lock::Backend;

/// Append one record to the file ledger of `target`.
pub fn append(state: &Path, target: &str, record: &Value) -> Result<(), String> {
    let p = path(state, target);
    crate::lock::state::prepare(state, "ledger")?;
    let mut line = record.to_string();
    line.push('\n');
    let mut f = crate::lock::state::open(&p, crate::lock::state::Mode::Append)
        .map_err(|e| format!("cannot open the ledger {}: {e}", p.display()))?;
    // A line torn by a crash has no newline: start a new line rather than
    // glue this record onto it (both would be lost as one bad line).
    if ends_torn(&mut f) {
        line.insert(0, '\n');
    }
    // One write of the whole line: with O_APPEND it lands whole at the end.
    f.write_all(line.as_bytes())
        .and_then(|()| f.sync_data())
        .map_err(|e| format!("cannot append to the ledger {}: {e}", p.display()))
}

/// Whether the file's last byte is not a newline (a torn last line).
fn ends_torn(f: &mut std::fs::File) -> bool {
    let mut last = [0u8; 1];
    f.seek(SeekFrom::End(-1))
        .and_then(|_| f.read_exact(&mut last))
        .is_ok_and(|()| last[0] != b'\n')
}

/// Append `record` to the ledger of `target` at `place`.
pub(super) fn append_any(
    state: &Path,
    target: &str,
    record: &Value,
    place: &Backend,
    rt: &tokio::runtime::Handle,
) -> Result<(), String> {
    match place {
        Backend::File => append(state, target, record),
        Backend::Kube { namespace, context } => rt.block_on(super::kube::append(
            target,
            record,
            namespace.as_deref(),
            context.as_deref(),
        )),
        Backend::Github => {
            let api = crate::net::github::Api::from_env(crate::net::github::client())
                .map_err(|e| e.msg)?;
            rt.block_on(super::github::append(&api, target, record))
                .map_err(|e| e.msg)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A line torn by a crash (no newline at the end) stays one bad line:
    /// the next record starts a line of its own and is read.
    #[test]
    fn an_append_after_a_torn_line_starts_a_new_line() {
        let dir = tempfile::tempdir().unwrap();
        append(dir.path(), "t", &json!({"start": "a", "result": "ok"})).unwrap();
        let p = path(dir.path(), "t");
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"start\": \"torn").unwrap();
        drop(f);
        append(dir.path(), "t", &json!({"start": "b", "result": "ok"})).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let last: Vec<&str> = text.lines().rev().take(2).collect();
        assert_eq!(last[1], "{\"start\": \"torn", "{text}");
        assert_eq!(
            serde_json::from_str::<Value>(last[0]).unwrap()["start"],
            "b"
        );
        let found = super::super::newest(dir.path(), "t", 10, &Default::default()).unwrap();
        assert_eq!(found.records.len(), 2);
        assert_eq!(found.bad.map(|b| b.count), Some(1));
    }
}
