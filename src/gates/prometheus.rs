//! One Prometheus instant query through the HTTP API
//! (`GET /api/v1/query?query=…`) and its single value.

use std::time::Duration;

use serde_json::Value;

use crate::error::PrimError;

/// The answer of a query: a number, or nothing (no series, NaN).
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// The single value.
    Value(f64),
    /// No value, and why (judged by the gate's `on_empty`).
    Empty(String),
}

/// The query URL for `base` (the server, e.g. `http://127.0.0.1:9090`).
pub fn query_url(base: &str, query: &str) -> Result<reqwest::Url, PrimError> {
    let base = base.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(PrimError::usage(format!(
            "'{base}' is not an http(s) URL; give the Prometheus server, e.g. \"http://127.0.0.1:9090\""
        )));
    }
    reqwest::Url::parse_with_params(&format!("{base}/api/v1/query"), [("query", query)])
        .map_err(|e| PrimError::usage(format!("'{base}' is not a valid URL: {e}")))
}

/// Run `query` on the server at `base`, bounded by `timeout`. An answer
/// of 5xx, 429 or no answer is transient; a bad query (400, 422) is fatal,
/// with Prometheus's own words.
pub async fn instant(
    http: &reqwest::Client,
    base: &str,
    query: &str,
    timeout: Duration,
) -> Result<Answer, PrimError> {
    let url = query_url(base, query)?;
    let resp = http
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| PrimError::transient(format!("{base}: {}", crate::net::http_error(&e))))?;
    let status = resp.status().as_u16();
    // The body of a query answer is small; a huge one is not Prometheus.
    let body = crate::net::read_body(resp, 4 << 20, "prometheus_query")
        .await
        .map_err(|e| PrimError::transient(e.to_string()))?;
    let json: Option<Value> = serde_json::from_slice(&body).ok();
    let said = json
        .as_ref()
        .and_then(|j| j.get("error"))
        .and_then(Value::as_str)
        .map(|e| format!(": {e}"))
        .unwrap_or_default();
    match status {
        200 => {}
        429 | 500..=599 => {
            return Err(PrimError::transient(format!(
                "{base} answered {status}{said}"
            )))
        }
        _ => {
            return Err(PrimError::fatal(format!(
                "{base} answered {status}{said} (check the query)"
            )))
        }
    }
    let Some(json) = json else {
        return Err(PrimError::fatal(format!(
            "{base} answered 200 but not with JSON: is it a Prometheus server?"
        )));
    };
    parse(&json).map_err(|e| PrimError::fatal(format!("{base}: {e}")))
}

/// The single value of a query answer.
pub fn parse(json: &Value) -> Result<Answer, String> {
    if json.get("status").and_then(Value::as_str) != Some("success") {
        return Err(format!("the query did not succeed: {json}"));
    }
    let data = json.get("data").ok_or("the answer has no `data`")?;
    let kind = data.get("resultType").and_then(Value::as_str).unwrap_or("");
    let result = data
        .get("result")
        .ok_or("the answer has no `data.result`")?;
    let sample = match kind {
        "scalar" => result,
        "vector" => {
            let series = result.as_array().ok_or("`data.result` is not a list")?;
            match series.as_slice() {
                [] => return Ok(Answer::Empty("the query returned no series".into())),
                [one] => one.get("value").ok_or("the series has no `value`")?,
                more => {
                    return Err(format!(
                        "the query returned {} series; a gate needs one value: aggregate it (e.g. sum(...))",
                        more.len()
                    ))
                }
            }
        }
        other => {
            return Err(format!(
                "the query returned a {other}; a gate needs an instant vector or a scalar"
            ))
        }
    };
    let text = sample
        .get(1)
        .and_then(Value::as_str)
        .ok_or("the sample is not [time, \"value\"]")?;
    match text.parse::<f64>() {
        Ok(v) if v.is_nan() => Ok(Answer::Empty("the query's value is NaN".into())),
        Ok(v) => Ok(Answer::Value(v)),
        Err(_) => Err(format!("the sample value '{text}' is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vector(values: &[&str]) -> Value {
        let result: Vec<Value> = values
            .iter()
            .map(|v| json!({"metric": {}, "value": [1.7e9, v]}))
            .collect();
        json!({"status": "success", "data": {"resultType": "vector", "result": result}})
    }

    #[test]
    fn one_series_is_the_value_none_is_empty_many_is_an_error() {
        assert_eq!(parse(&vector(&["0.25"])).unwrap(), Answer::Value(0.25));
        assert!(matches!(parse(&vector(&[])).unwrap(), Answer::Empty(_)));
        assert!(matches!(
            parse(&vector(&["NaN"])).unwrap(),
            Answer::Empty(_)
        ));
        assert!(parse(&vector(&["1", "2"]))
            .unwrap_err()
            .contains("2 series"));
        let scalar =
            json!({"status": "success", "data": {"resultType": "scalar", "result": [1.7e9, "3"]}});
        assert_eq!(parse(&scalar).unwrap(), Answer::Value(3.0));
        let matrix = json!({"status": "success", "data": {"resultType": "matrix", "result": []}});
        assert!(parse(&matrix).unwrap_err().contains("matrix"));
    }

    #[test]
    fn the_query_is_encoded() {
        let u = query_url("http://127.0.0.1:9090/", "sum(rate(x{a=\"b\"}[1m]))").unwrap();
        assert_eq!(u.path(), "/api/v1/query");
        assert_eq!(
            u.query_pairs().next().unwrap().1,
            "sum(rate(x{a=\"b\"}[1m]))"
        );
        assert!(query_url("127.0.0.1:9090", "up").is_err());
    }
}
