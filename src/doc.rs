//! `runbook doc [NAME]`: the reference of every primitive, generated from
//! the engine's own metadata (names, parameters, doc comments), and
//! `--definitions` for editors (`.d.rhai`).

use serde_json::Value;

/// One documented function.
#[derive(Debug)]
pub struct Entry {
    /// Its name.
    pub name: String,
    /// Its signature, e.g. `validate_endpoint(endpoint: &str) -> Map`.
    pub signature: String,
    /// Its doc text, without comment markers.
    pub doc: String,
}

fn clean(comments: &[Value]) -> String {
    comments
        .iter()
        .filter_map(Value::as_str)
        .flat_map(|c| c.lines())
        .map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("///").unwrap_or(l);
            l.strip_prefix(' ').unwrap_or(l)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every primitive the engine registers (not the language's packages).
pub fn entries(engine: &rhai::Engine) -> Vec<Entry> {
    let json = engine.gen_fn_metadata_to_json(false).unwrap_or_default();
    let v: Value = serde_json::from_str(&json).unwrap_or(Value::Null);
    let mut out: Vec<Entry> = v
        .get("functions")
        .and_then(Value::as_array)
        .map(|fs| {
            fs.iter()
                .map(|f| Entry {
                    name: f
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    signature: f
                        .get("signature")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .replace("&str", "String")
                        .replace("i64", "int")
                        .replace("f64", "float"),
                    doc: clean(
                        f.get("docComments")
                            .and_then(Value::as_array)
                            .map_or(&[][..], |a| a.as_slice()),
                    ),
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then(a.signature.len().cmp(&b.signature.len()))
    });
    out
}

/// The language's own functions (Rhai's standard packages), by name, with
/// their signatures in the script's own terms (see [`rhai_terms`]): what a
/// playbook can use besides the primitives.
pub fn builtins(engine: &rhai::Engine) -> Vec<(String, Vec<String>)> {
    let primitives: std::collections::HashSet<String> = engine
        .gen_fn_signatures(false)
        .iter()
        .filter_map(|s| s.split('(').next().map(|n| n.trim().to_string()))
        .collect();
    let mut by_name: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for sig in engine.gen_fn_signatures(true) {
        let name = sig.split('(').next().unwrap_or("").trim().to_string();
        // Operators and internal getters/setters are not called by name.
        if name.is_empty()
            || primitives.contains(&name)
            || !name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            || name.contains('$')
        {
            continue;
        }
        if let Some(sig) = rhai_terms(&sig) {
            by_name.entry(name).or_default().push(sig);
        }
    }
    for v in by_name.values_mut() {
        v.sort();
        v.dedup();
    }
    by_name.retain(|_, v| !v.is_empty());
    by_name.into_iter().collect()
}

/// Rust number types a script never holds: its integers are `int` (i64),
/// its decimals `float` (f64). Overloads taking them are left out.
const FOREIGN_NUMBERS: &[&str] = &[
    "i8", "i16", "i32", "i128", "u8", "u16", "u32", "u64", "u128", "f32",
];

/// A built-in's Rust signature in Rhai's terms: `string`, `int`, `float`,
/// `bool`, `char`, `array`, `map`, `blob`, `range`, `any`, `()`; a
/// `Result<T, …>` is `T` (any built-in may throw); no return is `-> ()`.
/// None for overloads over number types a script never has.
pub fn rhai_terms(sig: &str) -> Option<String> {
    let sig = sig
        .replace("std::ops::", "")
        .replace("&mut ", "")
        .replace("mut ", "");
    let (params, ret) = match sig.split_once(" -> ") {
        Some((p, r)) => (p.to_string(), r.to_string()),
        None => (sig.clone(), "()".to_string()),
    };
    let ret = match ret
        .strip_prefix("Result<")
        .and_then(|r| r.strip_suffix(", Box<EvalAltResult>>"))
    {
        Some(inner) => inner.to_string(),
        None => ret,
    };
    let mut out = String::new();
    let mut word = String::new();
    let text = format!("{params} -> {ret}");
    for c in text.chars().chain(std::iter::once('\0')) {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if FOREIGN_NUMBERS.contains(&word.as_str()) {
            return None;
        }
        out.push_str(match word.as_str() {
            "ImmutableString" | "String" | "str" => "string",
            "INT" | "i64" => "int",
            "FLOAT" | "f64" => "float",
            "Dynamic" => "any",
            "Array" => "array",
            "Map" => "map",
            "Blob" => "blob",
            "Instant" => "timestamp",
            "FnPtr" => "Fn",
            "CharsStream" | "BitRange" => "iterator",
            w => w,
        });
        word.clear();
        if c != '\0' {
            out.push(c);
        }
    }
    // Ranges: `a..b` and `a..=b` (shown by Rhai as `range=`) alike.
    let out = out
        .replace("StepRange<int>", "range")
        .replace("StepRange<float>", "range")
        .replace("Range<int>", "range")
        .replace("Range<float>", "range")
        .replace("range=", "range")
        .replace("&string", "string")
        .replace("&", "");
    Some(out)
}

/// One line for the built-ins a playbook uses most, shown under their
/// signatures. Methods that change their value in place say so: they
/// return nothing, and they fail on a constant (`args.x`, a `const`).
const BUILTIN_HELP: &[(&str, &str)] = &[
    ("all", "true when the function is true for every element"),
    ("chars", "the string's characters, one by one (for `for c in s.chars()`)"),
    ("clear", "IN PLACE: empties the value; returns nothing"),
    ("contains", "whether the string has the text (or char), the array the value, the map the key; also `x in y`"),
    ("dedup", "IN PLACE: drops consecutive duplicates from the array"),
    ("drain", "IN PLACE: removes the matching elements from the array and returns them"),
    ("ends_with", "whether the string ends with the text"),
    ("filter", "a new array (or map) of the elements the function keeps: `xs.filter(|x| x > 1)`"),
    ("find", "the first element the function is true for, or ()"),
    ("for_each", "calls the function on each element (`this` is the element)"),
    ("get", "the element at the index (negative counts from the end) or the map's value, () when absent"),
    ("index_of", "the position of the text/char/value (or of the first element the function is true for), -1 when absent"),
    ("insert", "IN PLACE: inserts the item at the index"),
    ("is_empty", "whether the string, array or map has nothing in it"),
    ("keys", "the map's keys, as an array of strings"),
    ("len", "the number of characters of a string, elements of an array, entries of a map"),
    ("make_lower", "IN PLACE: lowercases the string; returns nothing (`to_lower` returns a copy)"),
    ("make_upper", "IN PLACE: uppercases the string; returns nothing (`to_upper` returns a copy)"),
    ("map", "a new array of what the function returns for each element: `xs.map(|x| x * 2)`"),
    ("max", "the larger of two values"),
    ("min", "the smaller of two values"),
    ("pad", "IN PLACE: pads to the length with the item; returns nothing"),
    ("parse_float", "the string as a float; throws when it is not a number"),
    ("parse_int", "the string as an int (in the radix, default 10); throws when it is not a number"),
    ("pop", "IN PLACE: removes and returns the last element (or character)"),
    ("print", "writes the value to the log (stdout)"),
    ("push", "IN PLACE: appends the item to the array; returns nothing (`xs + [x]` returns a new one)"),
    ("range", "the numbers from..to (to excluded), optionally by a step: `for i in range(0, 10, 2)`"),
    ("reduce", "folds the array into one value: `xs.reduce(|sum, x| sum + x, 0)`"),
    ("remove", "IN PLACE: removes the element at the index / the map's key / the text, and returns what was removed (for an array or map)"),
    ("replace", "IN PLACE: replaces every match in the string and returns nothing, so it fails on a constant such as `args.x`; copy first: `let t = args.x; t.replace(\"/\", \"-\");`"),
    ("retain", "IN PLACE: keeps only the matching elements; returns the removed ones"),
    ("reverse", "IN PLACE: reverses the array"),
    ("some", "true when the function is true for at least one element"),
    ("sort", "IN PLACE: sorts the array (by the comparer, which returns <0, 0 or >0); returns nothing"),
    ("split", "the string cut at each delimiter (whitespace when none), as an array of strings"),
    ("starts_with", "whether the string starts with the text"),
    ("sub_string", "the part of the string from start (len characters, or to the end)"),
    ("to_float", "the number as a float"),
    ("to_int", "the number as an int (a float is truncated)"),
    ("to_json", "the value as a JSON string"),
    ("to_lower", "a lowercase copy of the string"),
    ("to_string", "the value as a string"),
    ("to_upper", "an uppercase copy of the string"),
    ("trim", "IN PLACE: strips leading and trailing whitespace; returns nothing"),
    ("truncate", "IN PLACE: cuts the string or array to the length"),
    ("type_of", "the value's type name: \"string\", \"i64\" (an int), \"f64\", \"bool\", \"array\", \"map\", \"()\""),
    ("values", "the map's values, as an array"),
];

/// The one-line description of a built-in, if it has one.
pub fn builtin_help(name: &str) -> Option<&'static str> {
    BUILTIN_HELP
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, h)| *h)
}

/// `runbook doc builtins`, or one built-in's signatures.
pub fn render_builtins(builtins: &[(String, Vec<String>)], name: Option<&str>) -> String {
    let mut s = String::new();
    if name.is_none() {
        s.push_str("The language's own functions (Rhai's standard library), usable in every playbook.\nMethods are called either way: `s.trim()` or `trim(s)`. Types: string, int, float, bool, char, array, map, blob, range, Fn (a closure), any (any value), () (nothing).\nIN PLACE methods change the value they are called on and return nothing: they fail on a constant (`args`, `const`); copy it into a `let` first.\nReference: https://rhai.rs/book/ (Built-in functions).\n\n");
    }
    for (n, sigs) in builtins {
        if name.is_some_and(|want| want != n) {
            continue;
        }
        for sig in sigs {
            s.push_str(&format!("{sig}\n"));
        }
        if let Some(h) = builtin_help(n) {
            s.push_str(&format!("    {h}\n"));
        }
    }
    s
}

/// Text for a terminal: all entries, or those named `name`.
pub fn render(entries: &[Entry], name: Option<&str>, markdown: bool) -> Result<String, String> {
    render_with(entries, &[], name, markdown)
}

/// [`render`], pointing at the language's built-ins when `name` is one of
/// them (or is none at all).
pub fn render_with(
    entries: &[Entry],
    builtins: &[(String, Vec<String>)],
    name: Option<&str>,
    markdown: bool,
) -> Result<String, String> {
    if name == Some("builtins") {
        return Ok(render_builtins(builtins, None));
    }
    let picked: Vec<&Entry> = entries
        .iter()
        .filter(|e| name.is_none_or(|n| e.name == n))
        .collect();
    if picked.is_empty() {
        let n = name.unwrap_or("");
        if builtins.iter().any(|(b, _)| b == n) {
            return Ok(format!(
                "{n} is not a runbook primitive but a function of the language (Rhai's standard library):\n\n{}\n`runbook doc builtins` lists them all.\n",
                render_builtins(builtins, Some(n))
            ));
        }
        let join_hint = if n == "join" {
            "; Rhai has no join: `arr.reduce(|acc, s| if acc == \"\" { s } else { acc + \", \" + s }, \"\")`"
        } else {
            ""
        };
        let hint = if n == "join" {
            String::new()
        } else {
            crate::suggest::hint(
                n,
                entries
                    .iter()
                    .map(|e| e.name.as_str())
                    .chain(builtins.iter().map(|(b, _)| b.as_str())),
            )
        };
        return Err(format!(
            "there is no primitive or Rhai built-in '{n}'{hint}{join_hint}; `runbook doc` lists the primitives, `runbook doc builtins` the language's own functions"
        ));
    }
    let mut s = String::new();
    for e in picked {
        if markdown {
            s.push_str(&format!("### `{}`\n\n{}\n\n", e.signature, e.doc));
        } else {
            s.push_str(&format!("{}\n", e.signature));
            for line in e.doc.lines() {
                s.push_str(&format!("    {line}\n"));
            }
            s.push('\n');
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_and_unknown_names_point_somewhere() {
        let engine = crate::engine::new_engine();
        let b = builtins(&engine);
        let all = render_with(&[], &b, Some("builtins"), false).unwrap();
        assert!(
            all.contains("split(string: string, delimiter: string) -> array"),
            "{all}"
        );
        let one = render_with(&[], &b, Some("trim"), false).unwrap();
        assert!(
            one.starts_with("trim is not a runbook primitive but a function of the language"),
            "{one}"
        );
        let err = render_with(&[], &b, Some("join"), false).unwrap_err();
        assert!(
            err.contains("no primitive or Rhai built-in 'join'"),
            "{err}"
        );
        assert!(err.contains("`runbook doc builtins`"), "{err}");
        assert!(err.contains("arr.reduce"), "{err}");
        // Close names only.
        let err = render_with(&[], &b, Some("foo"), false).unwrap_err();
        assert!(!err.contains("did you mean"), "{err}");
        let err = render_with(&[], &b, Some("sub_strin"), false).unwrap_err();
        assert!(err.contains("did you mean 'sub_string'"), "{err}");
    }

    #[test]
    fn builtins_are_in_rhais_terms_with_descriptions() {
        let engine = crate::engine::new_engine();
        let all = render_builtins(&builtins(&engine), None);
        for rust in [
            "Result<",
            "EvalAltResult",
            "ImmutableString",
            "Dynamic",
            "i128",
            "u64",
            "f32",
            "Range<",
        ] {
            assert!(!all.contains(rust), "{rust} in:\n{all}");
        }
        for want in [
            "replace(string: string, find_string: string, substitute_string: string) -> ()\n    IN PLACE",
            "sub_string(string: string, start: int, len: int) -> string\n",
            "parse_int(string: string) -> int\n",
            "keys(map: map) -> array\n",
            "contains(array: array, value: any) -> bool\n",
            "abs(x: int) -> int\n",
            "trim(string: string) -> ()\n",
        ] {
            assert!(all.contains(want), "{want:?} not in:\n{all}");
        }
        for common in [
            "len",
            "split",
            "filter",
            "map",
            "reduce",
            "to_upper",
            "push",
            "parse_float",
        ] {
            assert!(builtin_help(common).is_some(), "{common}");
        }
    }
}
