//! The Rhai pitfalls people coming from shell and Python hit, each turned
//! into a hint at the place the error is reported: runtime errors
//! (`report`), compile errors (`report::parse_error`) and `check`'s lints.
//! The README's "Rhai for shell and Python people" table lists the same
//! cases; `tests/it/diagnostics.rs` holds one test per row.

/// Methods of the language that change their value in place and return
/// nothing (`()`), for every type that has them: `let t = s.replace(…)`
/// leaves `t` empty. A unit test holds the list to the engine's metadata.
pub const IN_PLACE: &[&str] = &[
    "replace",
    "trim",
    "pad",
    "make_upper",
    "make_lower",
    "crop",
    "truncate",
    "clear",
    "push",
    "append",
    "insert",
    "reverse",
    "sort",
    "dedup",
    "chop",
    "mixin",
    "fill_with",
];

/// Names from Python, JavaScript and shell, and what Rhai calls them.
pub const ALIASES: &[(&str, &str)] = &[
    ("length", "`len()`"),
    ("size", "`len()`"),
    ("count", "`len()`"),
    (
        "upper",
        "`to_upper()` (a new string) or `make_upper()` (in place)",
    ),
    (
        "lower",
        "`to_lower()` (a new string) or `make_lower()` (in place)",
    ),
    ("toUpperCase", "`to_upper()`"),
    ("toLowerCase", "`to_lower()`"),
    ("strip", "`trim()` (in place: `let t = s; t.trim();`)"),
    ("startswith", "`starts_with()`"),
    ("endswith", "`ends_with()`"),
    ("startsWith", "`starts_with()`"),
    ("endsWith", "`ends_with()`"),
    ("includes", "`contains()`, or `x in list`"),
    ("has", "`contains()`, or `\"key\" in map`"),
    ("has_key", "`\"key\" in map`"),
    ("get", "`map[\"key\"]`, or `if \"key\" in map { … }`"),
    ("items", "`for k in map.keys() { let v = map[k]; … }`"),
    ("substring", "`sub_string(start, len)`"),
    ("substr", "`sub_string(start, len)`"),
    ("str", "`x.to_string()`, or a backtick string `` `${x}` ``"),
    ("int", "`parse_int(s)`"),
    ("float", "`parse_float(s)`"),
    ("format", "a backtick string: `` `${name}: ${n}` ``"),
    ("join", JOIN),
    ("echo", "`print(x)`"),
    ("printf", "`print(`${x}`)`"),
    ("raise", "`throw \"message\"` or `fail(\"message\")`"),
    (
        "exit",
        "`fail(\"why\")` (exit 1) or `fail_usage(\"why\")` (exit 2)",
    ),
];

/// How to join an array of strings (Rhai has no `join`).
pub const JOIN: &str = "Rhai has no `join`: `arr.reduce(|acc, s| if acc == \"\" { s } else { acc + \", \" + s }, \"\")`";

/// What Rhai calls a name from another language, if we know it.
pub fn alias(name: &str) -> Option<&'static str> {
    ALIASES.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
}

/// A suffix for "no function" messages: `; Rhai calls it …` or nothing.
pub fn alias_hint(name: &str) -> String {
    match alias(name) {
        Some(a) if name == "join" => format!("; {a}"),
        Some(a) => format!("; in Rhai that is {a}"),
        None => String::new(),
    }
}

/// The hint for a method that works in place.
pub fn in_place_hint(name: &str) -> String {
    format!(
        "`{name}` works in place and returns nothing (`()`): change a copy, then use the copy: `let t = s; t.{name}(…);`"
    )
}

/// What to do about a reserved word used as a name (`'with' is a reserved
/// keyword`); `word` is the word.
pub fn reserved_hint(word: &str) -> String {
    match word {
        "default" => "; in PARAMS write `default_value: …` for a parameter's default; elsewhere pick another name, or quote a map key: `#{ \"default\": 1 }`, read with `m[\"default\"]`".into(),
        "null" | "nil" | "void" => format!(
            "; Rhai's nothing is `()`: `let x = ();`, and `if x == () {{ … }}` to test for it (`{word}` is reserved)"
        ),
        _ => format!(
            "; Rhai reserves `{word}`: pick another name for a variable, or quote it as a map key, `#{{ \"{word}\": 1 }}`, and read it with `m[\"{word}\"]`"
        ),
    }
}

/// A hint for a compile error's message, if one applies.
pub fn parse_hint(message: &str) -> Option<String> {
    if let Some(word) = message
        .strip_prefix('\'')
        .and_then(|m| m.strip_suffix("' is a reserved keyword"))
    {
        return Some(reserved_hint(word));
    }
    match message {
        "Unknown operator: '++'" | "Unknown operator: '--'" => {
            Some("; Rhai has no `++`/`--`: write `x += 1` or `x -= 1`".into())
        }
        _ => None,
    }
}

/// The type names in a Rhai "Function not found" signature, as a user
/// knows them (`&str | ImmutableString | String` is a string).
fn plain_type(t: &str) -> &str {
    let t = t.trim().trim_start_matches("&mut ");
    if t.contains("String") || t == "&str" {
        "string"
    } else {
        match t {
            "i64" | "i32" | "u8" => "int",
            "f64" | "f32" => "float",
            "()" => "()",
            "array" | "Array" => "array",
            "map" | "Map" => "map",
            other => other,
        }
    }
}

/// "a string", "an int", "`()`".
fn article(t: &str) -> String {
    match t {
        "()" => "`()`".into(),
        t if t.starts_with(['a', 'e', 'i', 'o', 'u']) => format!("an {t}"),
        t => format!("a {t}"),
    }
}

/// A function-not-found signature (`* (&str | ImmutableString | String,
/// i64)`) as its name and plain argument types.
pub fn split_signature(sig: &str) -> (&str, Vec<&str>) {
    let (name, rest) = match sig.find(" (") {
        Some(i) => (&sig[..i], &sig[i + 2..]),
        None => (sig.split('(').next().unwrap_or(sig), ""),
    };
    let inner = rest.strip_suffix(')').unwrap_or(rest);
    let types = if inner.trim().is_empty() {
        Vec::new()
    } else {
        inner.split(", ").map(plain_type).collect()
    };
    (name.trim(), types)
}

/// What to write instead, for a call Rhai found no function for.
pub fn not_found_hint(sig: &str) -> Option<String> {
    let (name, types) = split_signature(sig);
    let operator = !name.is_empty() && !name.chars().any(|c| c.is_alphanumeric() || c == '_');
    if name == "*" && types.contains(&"string") && types.contains(&"int") {
        return Some("Rhai cannot repeat a string with `*`: `let s = \"\"; s.pad(64, \"a\");` (`pad` works in place) or a loop with `s += \"a\"`".into());
    }
    if types.contains(&"()") {
        return Some(format!(
            "one of the values is `()` (nothing): it came from a method that works in place and returns nothing ({}…), a function without a result, or a value never set",
            IN_PLACE[..4].iter().map(|m| format!("`{m}`, ")).collect::<String>()
        ));
    }
    if operator && types.len() == 2 {
        return Some(format!(
            "`{name}` does not combine {} and {}: convert one side first (`n.to_string()`, `parse_int(s)`, `parse_float(s)`); `+` joins strings, also a string and a number",
            article(types[0]),
            article(types[1])
        ));
    }
    if name == "join" {
        return Some(JOIN.into());
    }
    alias(name).map(|a| format!("in Rhai that is {a}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_in_place_methods_return_nothing_in_every_overload() {
        let engine = crate::engine::new_engine();
        let mut seen = std::collections::HashSet::new();
        for (name, ret) in engine.collect_fn_metadata(
            None,
            |info| {
                let m = info.metadata;
                // The return type is params_info's extra last entry; none for `()`.
                let ret = (m.params_info.len() == m.num_params + 1)
                    .then(|| m.params_info[m.num_params].to_string());
                Some((m.name.to_string(), ret))
            },
            true,
        ) {
            if IN_PLACE.contains(&name.as_str()) {
                seen.insert(name.clone());
                let ret = ret.unwrap_or_default();
                assert!(
                    ret.is_empty() || ret.contains("Result<()"),
                    "{name} returns {ret}"
                );
            }
        }
        for m in IN_PLACE {
            assert!(seen.contains(*m), "{m} is not a function of the language");
        }
    }

    #[test]
    fn signatures_read_as_plain_types() {
        assert_eq!(
            split_signature("* (&str | ImmutableString | String, i64)"),
            ("*", vec!["string", "int"])
        );
        assert_eq!(split_signature("len (())"), ("len", vec!["()"]));
        assert!(not_found_hint("* (&str | ImmutableString | String, i64)")
            .is_some_and(|h| h.contains("s.pad(64")));
        assert!(not_found_hint("- (&str | ImmutableString | String, i64)")
            .is_some_and(|h| h.contains("does not combine a string and an int")));
        assert!(not_found_hint("f (i64, i64)").is_none());
    }
}
