//! How the GitHub Actions runner reads a step's output: both streams split
//! into lines at `\n`, `\r\n` and a bare `\r`; each line tried as a v2
//! command (`::name props::data` after trimming leading white space), then
//! as a legacy v1 command (`##[name props]data` anywhere in the line);
//! `::stop-commands::TOKEN` ignores everything until `::TOKEN::`. Modelled
//! on actions/runner's ActionCommand.TryParseV2/TryParse and
//! ActionCommandManager.

/// The command names the runner acts on.
const REGISTERED: &[&str] = &[
    "set-env",
    "set-output",
    "save-state",
    "add-mask",
    "add-path",
    "add-matcher",
    "remove-matcher",
    "debug",
    "warning",
    "error",
    "notice",
    "group",
    "endgroup",
    "echo",
    "stop-commands",
];

/// One command the runner would act on.
#[derive(Debug, Clone, PartialEq)]
pub struct Cmd {
    pub name: String,
    pub props: String,
    pub data: String,
    /// Read in the legacy `##[name]data` form (runbook never writes it).
    pub legacy: bool,
}

fn unescape_data(s: &str) -> String {
    s.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%25", "%")
}

/// A command from its info (`name props`) and data, if the runner knows
/// the name (or it is the current stop token).
fn command(info: &str, data: String, extra: Option<&str>, legacy: bool) -> Option<Cmd> {
    let (name, props) = info.split_once(' ').unwrap_or((info, ""));
    (REGISTERED.contains(&name) || Some(name) == extra).then(|| Cmd {
        name: name.into(),
        props: props.trim().into(),
        data,
        legacy,
    })
}

fn parse_v2(line: &str, extra: Option<&str>) -> Option<Cmd> {
    let rest = line.trim_start().strip_prefix("::")?;
    let end = rest.find("::")?;
    command(&rest[..end], unescape_data(&rest[end + 2..]), extra, false)
}

fn parse_v1(line: &str, extra: Option<&str>) -> Option<Cmd> {
    let start = line.find("##[")? + 3;
    let rb = start + line[start..].find(']')?;
    command(&line[start..rb], line[rb + 1..].into(), extra, true)
}

/// The commands the runner would act on in one stream's text.
pub fn commands(text: &str) -> Vec<Cmd> {
    let mut out = Vec::new();
    let mut stop: Option<String> = None;
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    for line in normalized.split('\n') {
        let token = stop.as_deref();
        let Some(cmd) = parse_v2(line, token).or_else(|| parse_v1(line, token)) else {
            continue;
        };
        if let Some(t) = &stop {
            if cmd.name == *t {
                stop = None;
            }
            continue;
        }
        if cmd.name == "stop-commands" {
            stop = Some(cmd.data.clone());
        }
        out.push(cmd);
    }
    out
}

/// The marker every hostile payload carries as its command data.
pub const PAYLOAD: &str = "INJECTED";

/// Assert that no command in stdout or stderr carries the payload (or is
/// in the legacy form, which runbook never writes): the attacker's text
/// reached the runner as text only.
#[track_caller]
pub fn assert_no_injection(stdout: &str, stderr: &str) {
    for (stream, text) in [("stdout", stdout), ("stderr", stderr)] {
        for c in commands(text) {
            let hit = c.legacy
                || c.data.trim().starts_with(PAYLOAD)
                || c.name == "stop-commands" && c.data.contains(PAYLOAD)
                || ["set-output", "set-env", "add-path", "save-state"].contains(&c.name.as_str());
            assert!(
                !hit,
                "{stream}: the runner would act on {c:?}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}"
            );
        }
    }
}

#[test]
fn the_model_reads_commands_like_the_runner() {
    let cmds = commands("x\r  ::error file=a::b%0Ac\nfoo ##[warning]w\n::stop-commands::t\n::error::hidden\n::t::\n::notice::n");
    let names: Vec<&str> = cmds.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["error", "warning", "stop-commands", "notice"]);
    assert_eq!(cmds[0].data, "b\nc");
    assert_eq!(cmds[0].props, "file=a");
    assert!(commands("plain :: text ##[nothing] x").is_empty());
    assert!(commands(":\u{200B}:error::x #\u{200B}#[error]y").is_empty());
}
