//! Rhai values to JSON and back, bounded: a value that nests deeper than
//! [`MAX_DEPTH`] (or contains itself through a shared closure capture) is
//! an error, never a stack overflow that would skip the run's cleanup.

use rhai::{Array, Dynamic, Map};
use serde_json::Value;

/// How deep a value may nest when converted (the engine's expression
/// depth is 64; JSON sources are limited to 128 by the parser).
pub const MAX_DEPTH: usize = 128;

/// A Rhai value as JSON.
pub fn to_json(v: &Dynamic) -> Result<Value, String> {
    convert(v, 0)
}

fn convert(v: &Dynamic, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "the value nests deeper than {MAX_DEPTH} levels (does it contain itself?)"
        ));
    }
    if v.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(b) = v.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = v.as_int() {
        return Ok(Value::from(i));
    }
    if let Ok(f) = v.as_float() {
        return Ok(serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number));
    }
    if let Ok(c) = v.as_char() {
        return Ok(Value::String(c.to_string()));
    }
    if v.is_string() {
        return Ok(Value::String(v.to_string()));
    }
    if v.is_array() {
        let Some(a) = v.read_lock::<Array>() else {
            return Err("an array is being changed elsewhere (a shared value)".into());
        };
        let items = a.clone();
        drop(a);
        return items
            .iter()
            .map(|x| convert(x, depth + 1))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    if v.is_blob() {
        let Some(b) = v.read_lock::<rhai::Blob>() else {
            return Err("a blob is being changed elsewhere (a shared value)".into());
        };
        return Ok(Value::Array(b.iter().map(|x| Value::from(*x)).collect()));
    }
    if v.is_map() {
        let Some(m) = v.read_lock::<Map>() else {
            return Err("a map is being changed elsewhere (a shared value)".into());
        };
        let entries = m.clone();
        drop(m);
        let mut out = serde_json::Map::with_capacity(entries.len());
        for (k, x) in &entries {
            out.insert(k.to_string(), convert(x, depth + 1)?);
        }
        return Ok(Value::Object(out));
    }
    Err(format!(
        "a {} cannot be written as JSON (only strings, numbers, booleans, (), arrays and maps)",
        v.type_name()
    ))
}

/// JSON as a Rhai value.
pub fn to_dynamic(v: &Value) -> Dynamic {
    rhai::serde::to_dynamic(v).unwrap_or(Dynamic::UNIT)
}

/// A map from `(key, value)` pairs.
pub fn map<const N: usize>(pairs: [(&str, Dynamic); N]) -> Map {
    pairs.into_iter().map(|(k, v)| (k.into(), v)).collect()
}

/// Seconds as a Rhai float (the unit every result map uses).
pub fn secs(d: std::time::Duration) -> Dynamic {
    Dynamic::from(d.as_secs_f64() as rhai::FLOAT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_round_trip() {
        let j = serde_json::json!({"a": [1, 2.5, "x", true, null], "b": {"c": {}}});
        assert_eq!(to_json(&to_dynamic(&j)).unwrap(), j);
    }

    #[test]
    fn deep_and_self_containing_values_are_errors() {
        let mut v = Dynamic::from(Array::new());
        for _ in 0..(MAX_DEPTH + 5) {
            v = Dynamic::from(vec![v]);
        }
        let e = to_json(&v).unwrap_err();
        assert!(e.contains("deeper than"), "{e}");

        let engine = rhai::Engine::new();
        let m: Dynamic = engine
            .eval("let m = #{}; let f = || m; m.f = f; m")
            .unwrap();
        let e = to_json(&m).unwrap_err();
        assert!(e.contains("cannot be written as JSON"), "{e}");
    }
}
