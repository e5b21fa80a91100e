//! Reading a file ledger from its end, newest record first: one chunk and
//! one line in memory whatever the file's size; bad lines (torn, foreign,
//! too long) are skipped and told once per read.

use std::io::{Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{path, Filter};

/// Bytes read per step when scanning a ledger file from its end.
const CHUNK: usize = 64 * 1024;

/// The longest line taken as a record; a longer one is a bad line (no
/// record runbook writes comes near: a torn or foreign file does).
pub const MAX_LINE: usize = 1024 * 1024;

/// The fields every reader relies on: a record whose value for one of them
/// is neither a string nor null is a bad line.
const CORE_FIELDS: [&str; 4] = ["result", "start", "sha", "image"];

/// Lines of a ledger file a read skipped: told once per read, by the
/// caller (a warning in a run, a line on stderr for `runbook history`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLines {
    /// The ledger file.
    pub file: PathBuf,
    /// How many lines were skipped.
    pub count: usize,
    /// The line number (from 1) of the earliest one, when it could be counted.
    pub first_line: Option<u64>,
    /// What was wrong with that line.
    pub why: String,
}

impl std::fmt::Display for BadLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = if self.count == 1 { "" } else { "s" };
        let at = match self.first_line {
            Some(n) => format!("line {n}"),
            None => "one line".into(),
        };
        write!(
            f,
            "ledger {}: skipped {} bad line{s} (first at {at}: {}); the other records are read. \
             Move the bad lines out of the file to silence this",
            self.file.display(),
            self.count,
            self.why
        )
    }
}

/// What a read found: the records it kept and the lines it skipped.
#[derive(Debug, Default)]
pub struct Found {
    /// Oldest first.
    pub records: Vec<Value>,
    /// `None` when every line read was a record.
    pub bad: Option<BadLines>,
}

/// One line as a record: `Ok(None)` for a blank line, `Err(why)` for a bad
/// one (not UTF-8, not JSON, not an object, a core field not a string).
fn parse_line(line: &[u8]) -> Result<Option<Value>, String> {
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_string())?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
    let Some(o) = v.as_object() else {
        return Err(format!("not a JSON object ({})", short(text)));
    };
    for k in CORE_FIELDS {
        if let Some(x) = o.get(k).filter(|x| !(x.is_string() || x.is_null())) {
            return Err(format!("'{k}' is {}, not a string", short(&x.to_string())));
        }
    }
    Ok(Some(v))
}

/// At most 40 characters of a bad value, for the warning.
fn short(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Walk the lines of `r` from its end, newest first, reading `chunk`
/// bytes at a time: `on_line(offset, line)` gets each line's byte offset
/// and its bytes (without the newline), or `None` for a line longer than
/// [`MAX_LINE`], until it breaks. Memory: one chunk plus one line.
fn walk_back<R: Read + Seek>(
    r: &mut R,
    chunk: usize,
    mut on_line: impl FnMut(u64, Option<&[u8]>) -> ControlFlow<()>,
) -> std::io::Result<()> {
    let mut pos = r.seek(SeekFrom::End(0))?;
    let mut buf = vec![0u8; chunk.max(1)];
    // The end of a line whose start lies in an earlier chunk, in file order.
    let mut tail: Vec<u8> = Vec::new();
    let mut too_long = false;
    while pos > 0 {
        let n = buf.len().min(usize::try_from(pos).unwrap_or(usize::MAX));
        pos -= n as u64;
        r.seek(SeekFrom::Start(pos))?;
        r.read_exact(&mut buf[..n])?;
        let mut end = n;
        while let Some(i) = buf[..end].iter().rposition(|&b| b == b'\n') {
            let piece = &buf[i + 1..end];
            let line = if too_long || tail.len() + piece.len() > MAX_LINE {
                None
            } else if tail.is_empty() {
                Some(piece)
            } else {
                tail.splice(0..0, piece.iter().copied());
                Some(&tail[..])
            };
            if on_line(pos + i as u64 + 1, line).is_break() {
                return Ok(());
            }
            tail.clear();
            too_long = false;
            end = i;
        }
        // No newline left in this chunk: its start continues the line
        // whose end is in `tail`.
        if !too_long {
            if tail.len() + end > MAX_LINE {
                too_long = true;
                tail = Vec::new();
            } else {
                tail.splice(0..0, buf[..end].iter().copied());
            }
        }
    }
    let line = if too_long { None } else { Some(&tail[..]) };
    let _ = on_line(0, line);
    Ok(())
}

/// The line number (from 1) of the line starting at byte `offset`:
/// newlines before it counted, only when a bad line needs naming.
fn line_number<R: Read + Seek>(r: &mut R, offset: u64) -> std::io::Result<u64> {
    r.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; CHUNK];
    let mut left = offset;
    let mut lines = 1u64;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = r.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        left -= n as u64;
    }
    Ok(lines)
}

/// Scan `r` (the ledger `file`) newest first: `f` gets each record and
/// says when to stop. Bad lines are skipped and counted.
fn scan<R: Read + Seek>(
    file: &Path,
    r: &mut R,
    chunk: usize,
    mut f: impl FnMut(Value) -> ControlFlow<()>,
) -> Result<Option<BadLines>, String> {
    let mut count = 0;
    let mut first: Option<(u64, String)> = None;
    walk_back(r, chunk, |offset, line| {
        let parsed = match line {
            Some(l) => parse_line(l),
            None => Err(format!("longer than {} KiB", MAX_LINE / 1024)),
        };
        match parsed {
            Ok(Some(v)) => f(v),
            Ok(None) => ControlFlow::Continue(()),
            Err(why) => {
                count += 1;
                // Walking back, the last one met is the earliest in the file.
                first = Some((offset, why));
                ControlFlow::Continue(())
            }
        }
    })
    .map_err(|e| format!("cannot read the ledger {}: {e}", file.display()))?;
    Ok(first.map(|(offset, why)| BadLines {
        file: file.to_path_buf(),
        count,
        first_line: line_number(r, offset).ok(),
        why,
    }))
}

/// Scan the file ledger of `target` from its end, newest record first,
/// until `f` breaks: memory stays one chunk and one line whatever the
/// file's size. A missing file has no records.
pub fn scan_back(
    state: &Path,
    target: &str,
    f: impl FnMut(Value) -> ControlFlow<()>,
) -> Result<Option<BadLines>, String> {
    let p = path(state, target);
    crate::lock::state::check_existing(state, "ledger")?;
    let mut file = match crate::lock::state::open(&p, crate::lock::state::Mode::Read) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read the ledger {}: {e}", p.display())),
    };
    scan(&p, &mut file, CHUNK, f)
}

/// The newest `limit` records of `target` that `filter` keeps, oldest
/// first, read from the end of the file ledger.
pub fn newest(state: &Path, target: &str, limit: usize, filter: &Filter) -> Result<Found, String> {
    let mut records = Vec::new();
    if limit == 0 {
        return Ok(Found::default());
    }
    let bad = scan_back(state, target, |r| {
        if filter.keeps(&r) {
            records.push(r);
        }
        if records.len() >= limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    records.reverse();
    Ok(Found { records, bad })
}

/// The newest `limit` of `records` (oldest first, e.g. a kube ledger's)
/// that `filter` keeps, oldest first.
pub fn keep_newest(records: Vec<Value>, limit: usize, filter: &Filter) -> Vec<Value> {
    let mut kept: Vec<Value> = records.into_iter().filter(|r| filter.keeps(r)).collect();
    let skip = kept.len().saturating_sub(limit);
    kept.drain(..skip);
    kept
}

#[cfg(test)]
mod tests {
    use super::super::{append, cell};
    use super::*;
    use serde_json::json;

    /// Scan `bytes` newest first with a `chunk`-byte step; the `start`
    /// of each record, and the bad lines.
    fn scan_bytes(bytes: &[u8], chunk: usize) -> (Vec<String>, Option<BadLines>) {
        let mut got = Vec::new();
        let bad = scan(
            Path::new("t.jsonl"),
            &mut std::io::Cursor::new(bytes.to_vec()),
            chunk,
            |r| {
                got.push(cell(&r, "start"));
                ControlFlow::Continue(())
            },
        )
        .unwrap();
        (got, bad)
    }

    fn lines(starts: &[&str]) -> Vec<u8> {
        starts
            .iter()
            .map(|s| format!("{{\"start\":\"{s}\",\"result\":\"ok\"}}\n"))
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn the_walk_back_yields_every_line_newest_first_whatever_the_chunk() {
        let bytes = lines(&["a", "bb", "ccc", "dddd", "e"]);
        for chunk in [1, 2, 3, 7, 16, 17, 64, 1 << 16] {
            let (got, bad) = scan_bytes(&bytes, chunk);
            assert_eq!(got, ["e", "dddd", "ccc", "bb", "a"], "chunk {chunk}");
            assert_eq!(bad, None, "chunk {chunk}");
        }
        // No newline at the end, blank lines, CRLF: the same records.
        let mut odd = b"\n".to_vec();
        odd.extend(lines(&["a", "b"]));
        odd.extend(b"\r\n\n{\"start\":\"c\"}\r\n{\"start\":\"d\"}");
        for chunk in [1, 5, 1 << 16] {
            assert_eq!(
                scan_bytes(&odd, chunk),
                (vec!["d".into(), "c".into(), "b".into(), "a".into()], None)
            );
        }
        assert_eq!(scan_bytes(b"", 4), (vec![], None));
    }

    #[test]
    fn a_record_longer_than_a_chunk_is_read_and_one_past_the_cap_is_a_bad_line() {
        let big = "x".repeat(200_000);
        let mut bytes = lines(&["a"]);
        bytes.extend(format!("{{\"start\":\"b\",\"note\":\"{big}\"}}\n").into_bytes());
        bytes.extend(lines(&["c"]));
        let (got, bad) = scan_bytes(&bytes, 4096);
        assert_eq!(got, ["c", "b", "a"]);
        assert_eq!(bad, None);

        let huge = "y".repeat(MAX_LINE + 10);
        for at_start in [false, true] {
            let mut bytes = Vec::new();
            if at_start {
                bytes.extend(format!("{{\"start\":\"h\",\"n\":\"{huge}\"}}\n").into_bytes());
            }
            bytes.extend(lines(&["a", "b"]));
            if !at_start {
                bytes.extend(format!("{{\"start\":\"h\",\"n\":\"{huge}\"}}\n").into_bytes());
            }
            bytes.extend(lines(&["c"]));
            let (got, bad) = scan_bytes(&bytes, 64 * 1024);
            assert_eq!(got, ["c", "b", "a"], "the long line first: {at_start}");
            let bad = bad.expect("the long line is bad");
            assert_eq!(bad.count, 1);
            assert_eq!(bad.first_line, Some(if at_start { 1 } else { 3 }));
            assert!(bad.why.contains("longer than 1024 KiB"), "{}", bad.why);
        }
    }

    #[test]
    fn bad_lines_of_every_kind_are_skipped_and_counted_once_with_the_first_line() {
        let kinds: [&[u8]; 9] = [
            b"\xff\xfe{}",
            b"null",
            b"3",
            b"[]",
            b"{\"result\":",
            b"{\"result\": 5}",
            b"{\"start\": {}}",
            b"{\"sha\": [1]}",
            b"{\"image\": true}",
        ];
        for kind in kinds {
            for place in 0..3 {
                // The bad line first, in the middle, or last.
                let mut bytes = Vec::new();
                let push_bad = |b: &mut Vec<u8>| {
                    b.extend_from_slice(kind);
                    b.push(b'\n');
                };
                if place == 0 {
                    push_bad(&mut bytes);
                }
                bytes.extend(lines(&["a", "b"]));
                if place == 1 {
                    push_bad(&mut bytes);
                }
                bytes.extend(lines(&["c"]));
                if place == 2 {
                    push_bad(&mut bytes);
                }
                for chunk in [3, 1 << 16] {
                    let (got, bad) = scan_bytes(&bytes, chunk);
                    let shown = String::from_utf8_lossy(kind);
                    assert_eq!(got, ["c", "b", "a"], "{shown} at {place}");
                    let bad = bad.unwrap_or_else(|| panic!("{shown} at {place} not reported"));
                    assert_eq!(bad.count, 1, "{shown}");
                    assert_eq!(bad.first_line, Some([1, 3, 4][place]), "{shown} at {place}");
                    let text = bad.to_string();
                    assert!(
                        text.starts_with("ledger t.jsonl: skipped 1 bad line (first at line"),
                        "{text}"
                    );
                }
            }
        }
        // Several: one report, the earliest line, the count.
        let mut bytes = b"null\n".to_vec();
        bytes.extend(lines(&["a"]));
        bytes.extend(b"{\"result\":\n\xff\n");
        bytes.extend(lines(&["b"]));
        let (got, bad) = scan_bytes(&bytes, 5);
        assert_eq!(got, ["b", "a"]);
        let bad = bad.unwrap();
        assert_eq!((bad.count, bad.first_line), (3, Some(1)));
        assert_eq!(bad.why, "not a JSON object (null)");
    }

    #[test]
    fn newest_stops_at_what_it_needs_and_filters_while_scanning() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..50 {
            let mut r = json!({"start": format!("s{i}"), "result": if i % 3 == 0 { "ok" } else { "failed" }});
            if i % 2 == 0 {
                r["sha"] = json!(format!("sha{i}"));
            }
            append(dir.path(), "t", &r).unwrap();
        }
        let starts = |f: Found| {
            f.records
                .iter()
                .map(|r| cell(r, "start"))
                .collect::<Vec<_>>()
        };
        let all = Filter::default();
        assert_eq!(
            starts(newest(dir.path(), "t", 3, &all).unwrap()),
            ["s47", "s48", "s49"]
        );
        assert_eq!(
            newest(dir.path(), "t", 500, &all).unwrap().records.len(),
            50
        );
        assert!(newest(dir.path(), "t", 0, &all).unwrap().records.is_empty());
        assert!(newest(dir.path(), "missing", 5, &all)
            .unwrap()
            .records
            .is_empty());
        let ok_with_sha = Filter {
            result: Some("ok".into()),
            has: Some("sha".into()),
        };
        // i % 6 == 0: ok and a sha.
        assert_eq!(
            starts(newest(dir.path(), "t", 2, &ok_with_sha).unwrap()),
            ["s42", "s48"]
        );
        // The scan stops at the second match: the records before it are
        // never looked at.
        let mut seen = 0;
        scan_back(dir.path(), "t", |r| {
            seen += 1;
            if cell(&r, "start") == "s42" {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
        assert_eq!(seen, 8);
        // The kube path filters the same way.
        let rs: Vec<Value> = (0..50)
            .map(|i| json!({"start": format!("s{i}"), "result": if i % 3 == 0 { "ok" } else { "failed" }, "sha": if i % 2 == 0 { json!(format!("x{i}")) } else { json!("") }}))
            .collect();
        let kept: Vec<String> = keep_newest(rs, 2, &ok_with_sha)
            .iter()
            .map(|r| cell(r, "start"))
            .collect();
        assert_eq!(kept, ["s42", "s48"]);
    }
}
