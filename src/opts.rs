//! The toolkit every primitive's binding uses: typed access to an options
//! map with errors that name the primitive, the option and what it wants;
//! durations; string arrays. It lives on the runtime side so that
//! primitives and the runtime (`run.rs`'s `--timeout`) both import it
//! downwards, never sideways or up from `primitives/`.

use std::time::Duration;

use rhai::{Array, Dynamic, Map};

use crate::context::{error, RhaiResult};

/// Owned strings from literals: command lines in unit tests.
pub use crate::error::rfc3339;

#[cfg(test)]
pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// The one unknown-key check (options maps, `PARAMS` specs): `None` when
/// `key` is known, else "unknown {noun} 'key' (did you mean ..); {label}: ..".
pub fn unknown_key(noun: &str, key: &str, known: &[&str], label: &str) -> Option<String> {
    if known.contains(&key) {
        return None;
    }
    Some(format!(
        "unknown {noun} '{key}'{}; {label}: {}",
        crate::suggest::hint(key, known.iter().copied()),
        known.join(", ")
    ))
}

/// Typed access to a primitive's options map, with errors that name the
/// primitive, the option and what it wants.
pub struct Opts<'a> {
    prim: &'static str,
    map: &'a Map,
}

impl<'a> Opts<'a> {
    /// Wrap `map`; refuse keys not in `known` (with a did-you-mean hint).
    pub fn new(prim: &'static str, map: &'a Map, known: &[&str]) -> RhaiResult<Opts<'a>> {
        for key in map.keys() {
            if let Some(why) = unknown_key("option", key, known, "it takes") {
                return Err(error(format!("{prim}: {why}")));
            }
        }
        Ok(Opts { prim, map })
    }

    fn get(&self, key: &str) -> Option<&'a Dynamic> {
        self.map.get(key).filter(|v| !v.is_unit())
    }

    fn wrong(&self, key: &str, wants: &str, got: &Dynamic) -> Box<rhai::EvalAltResult> {
        error(format!(
            "{}: option '{key}' wants {wants}, got {} ({})",
            self.prim,
            got.type_name(),
            got
        ))
    }

    /// A string option.
    pub fn str(&self, key: &str) -> RhaiResult<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if v.is_string() => Ok(Some(v.to_string())),
            Some(v) => Err(self.wrong(key, "a string", v)),
        }
    }

    /// A required string option.
    pub fn req_str(&self, key: &str) -> RhaiResult<String> {
        self.str(key)?
            .ok_or_else(|| error(format!("{}: option '{key}' is required", self.prim)))
    }

    /// An integer option (a string of digits is accepted too: dseqs are
    /// often kept as strings).
    pub fn int(&self, key: &str) -> RhaiResult<Option<i64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if v.is_int() => Ok(v.as_int().ok()),
            Some(v) if v.is_string() => {
                let s = v.to_string();
                s.parse::<i64>()
                    .map(Some)
                    .map_err(|_| self.wrong(key, "an integer", v))
            }
            Some(v) => Err(self.wrong(key, "an integer", v)),
        }
    }

    /// A boolean option.
    pub fn bool(&self, key: &str) -> RhaiResult<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .map_err(|_| self.wrong(key, "true or false", v)),
        }
    }

    /// A number option (int or float).
    pub fn float(&self, key: &str) -> RhaiResult<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if v.is_int() => Ok(v.as_int().ok().map(|i| i as f64)),
            Some(v) if v.is_float() => Ok(v.as_float().ok()),
            Some(v) => Err(self.wrong(key, "a number", v)),
        }
    }

    /// A duration: seconds as a number, or a string like "500ms", "2s", "1m".
    pub fn duration(&self, key: &str) -> RhaiResult<Option<Duration>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let parsed = if v.is_int() {
            v.as_int()
                .ok()
                .and_then(|i| u64::try_from(i).ok())
                .map(Duration::from_secs)
        } else if v.is_float() {
            v.as_float()
                .ok()
                .and_then(|f| Duration::try_from_secs_f64(f).ok())
        } else if v.is_string() {
            parse_duration(&v.to_string())
        } else {
            None
        };
        // Longer than a week is a typo (and would overflow deadlines).
        let parsed = parsed.filter(|d| *d <= MAX_DURATION);
        parsed.map(Some).ok_or_else(|| {
            self.wrong(
                key,
                "a duration up to a week (seconds, or \"500ms\", \"2s\", \"1m\")",
                v,
            )
        })
    }

    /// A map option.
    pub fn map(&self, key: &str) -> RhaiResult<Option<Map>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if v.is_map() => Ok(v.read_lock::<Map>().map(|m| m.clone())),
            Some(v) => Err(self.wrong(key, "a map #{...}", v)),
        }
    }

    /// An array option.
    pub fn array(&self, key: &str) -> RhaiResult<Option<Array>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if v.is_array() => Ok(v.read_lock::<Array>().map(|a| a.clone())),
            Some(v) => Err(self.wrong(key, "an array [...]", v)),
        }
    }

    /// The raw value of an option.
    pub fn raw(&self, key: &str) -> Option<&'a Dynamic> {
        self.get(key)
    }
}

/// The longest duration an option may have.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parse "250ms", "2s", "1.5s", "3m", "1h" or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num.trim().parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok()
}

/// An array of strings from a Rhai array (an argv, a tag list).
pub fn string_array(prim: &str, what: &str, a: &Array) -> RhaiResult<Vec<String>> {
    a.iter()
        .map(|v| {
            if v.is_string() || v.is_int() || v.is_bool() {
                Ok(v.to_string())
            } else {
                Err(error(format!(
                    "{prim}: {what} must hold strings, found {} ({v})",
                    v.type_name()
                )))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("3m"), Some(Duration::from_secs(180)));
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("5d"), None);
        assert_eq!(parse_duration("1e300"), None, "no panic on huge values");
        let mut m = Map::new();
        m.insert("t".into(), Dynamic::from(1e20_f64));
        m.insert("u".into(), Dynamic::from(i64::MAX));
        m.insert("w".into(), Dynamic::from("8d"));
        let o = Opts::new("p", &m, &["t", "u", "w"]).unwrap();
        assert!(o.duration("t").is_err());
        assert!(o.duration("u").is_err());
        assert!(o.duration("w").is_err());
    }

    #[test]
    fn unknown_options_are_named() {
        let mut m = Map::new();
        m.insert("max_elpased".into(), Dynamic::from(2_i64));
        let err = Opts::new("discover_port", &m, &["max_elapsed", "source"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unknown option 'max_elpased'"), "{err}");
        assert!(err.contains("did you mean 'max_elapsed'"), "{err}");
    }

    #[test]
    fn wrong_types_are_named() {
        let mut m = Map::new();
        m.insert("timeout".into(), Dynamic::from("soon"));
        m.insert("n".into(), Dynamic::from(true));
        let o = Opts::new("p", &m, &["timeout", "n"]).unwrap();
        assert!(o.duration("timeout").is_err());
        assert!(o
            .int("n")
            .err()
            .unwrap()
            .to_string()
            .contains("wants an integer"));
    }
}
