//! Reading the Prometheus text exposition back into samples (the JSON form of the metrics).

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

/// One series of the exposition: `name{labels} value`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Sample {
    /// Series name (histograms give `_bucket`, `_sum` and `_count` series).
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value (always finite).
    pub value: f64,
}

/// The samples of a text exposition; comments, lines that do not parse and values that are not
/// finite are skipped.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(sample)
        .collect()
}

fn sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = label_set(inner)?;
        labels = parsed;
        rest = after;
    }
    // A timestamp may follow the value; values that are not finite are left out (JSON has no
    // number for them).
    let value: f64 = rest.split_whitespace().next()?.parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// `k="v",...}` → the labels and what follows the closing brace.
fn label_set(mut s: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    loop {
        s = s.trim_start_matches([',', ' ']);
        if let Some(after) = s.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_string();
        let (value, after) = quoted(s[eq + 1..].strip_prefix('"')?)?;
        labels.insert(key, value);
        s = after;
    }
}

/// An escaped label value up to its closing quote → the value and what follows.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            other => value.push(other),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_labels_escapes_and_histogram_series() {
        let text = "# TYPE x counter\n\
            logline_http_requests_total{method=\"GET\",route=\"/a \\\"b\\\"\\\\c\",status=\"200\"} 3\n\
            logline_runs_started_total 2\n\
            h_bucket{le=\"+Inf\"} 5\n\
            h_sum{} 0.25 1700000000\n";
        let s = parse(text);
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].labels["route"], "/a \"b\"\\c");
        assert_eq!((s[0].value, s[1].value), (3.0, 2.0));
        assert!(s[1].labels.is_empty());
        assert_eq!(s[2].labels["le"], "+Inf");
        assert_eq!((s[3].name.as_str(), s[3].value), ("h_sum", 0.25));
    }

    #[test]
    fn skips_what_does_not_parse() {
        let text =
            "no_value\nbroken{a=\"x} 1\nbad{a=x} 1\nok 1\nnan NaN\ninf +Inf\nx{a=\"1\"} oops";
        let names: Vec<String> = parse(text).into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["ok"]);
    }
}
