//! Results: one [`CaseResult`] per workload run, printed as a table and as JSON lines whose
//! field names are vipbench's where they overlap (`../shared/bench/vipbench.c`).

use std::fmt::Write as _;
use viprouter::json::emit::push_str;

/// One JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    /// An integer.
    Int(i64),
    /// A float printed with this many decimals (vipbench's precision for the field).
    Float(f64, usize),
    /// A boolean.
    Bool(bool),
    /// A string.
    Str(String),
}

impl Val {
    /// The value as a number (booleans 0/1), if it is one.
    #[cfg(test)]
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Int(i) => Some(*i as f64),
            Val::Float(f, _) => Some(*f),
            Val::Bool(b) => Some(f64::from(u8::from(*b))),
            Val::Str(_) => None,
        }
    }

    fn write_json(&self, out: &mut String) {
        match self {
            Val::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Val::Float(f, d) if f.is_finite() => {
                let _ = write!(out, "{f:.d$}", d = *d);
            }
            Val::Float(..) => out.push_str("null"),
            Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Val::Str(s) => push_str(out, s),
        }
    }
}

/// The result of one workload.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseResult {
    /// `route`, `rtt`, `fanout` or `peers`.
    pub workload: String,
    /// JSON fields, in output order.
    pub fields: Vec<(String, Val)>,
    /// The human table line.
    pub line: String,
}

impl CaseResult {
    pub(crate) fn new(workload: &str) -> CaseResult {
        CaseResult { workload: workload.to_string(), fields: Vec::new(), line: String::new() }
    }

    pub(crate) fn set(&mut self, key: &str, v: Val) -> &mut Self {
        if let Some(f) = self.fields.iter_mut().find(|(k, _)| k == key) {
            f.1 = v;
        } else {
            self.fields.push((key.to_string(), v));
        }
        self
    }

    pub(crate) fn int(&mut self, key: &str, v: impl TryInto<i64>) -> &mut Self {
        self.set(key, Val::Int(v.try_into().unwrap_or(i64::MAX)))
    }

    pub(crate) fn float(&mut self, key: &str, v: f64, decimals: usize) -> &mut Self {
        self.set(key, Val::Float(v, decimals))
    }

    pub(crate) fn bool(&mut self, key: &str, v: bool) -> &mut Self {
        self.set(key, Val::Bool(v))
    }

    /// The `failure` field, if the run failed.
    pub(crate) fn failure(&mut self, failure: Option<&str>) -> &mut Self {
        if let Some(f) = failure {
            self.str("failure", f);
        }
        self
    }

    pub(crate) fn str(&mut self, key: &str, v: &str) -> &mut Self {
        self.set(key, Val::Str(v.to_string()))
    }

    /// A field's value.
    pub fn get(&self, key: &str) -> Option<&Val> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A numeric field's value.
    #[cfg(test)]
    pub fn num(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(Val::as_f64)
    }

    /// The result as one JSON object on one line.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{");
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_str(&mut out, k);
            out.push(':');
            v.write_json(&mut out);
        }
        out.push('}');
        out
    }
}

/// vipbench `pct`: the ceil(p·n)-th smallest of sorted nanoseconds `v`, in µs.
pub(crate) fn pct(v: &[u64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let i = ((p * v.len() as f64 + 0.999_999) as usize).saturating_sub(1).min(v.len() - 1);
    v.get(i).copied().unwrap_or(0) as f64 / 1000.0
}

/// A latency distribution in µs (rtt, fanout, fanout-lat): vipbench's min/mean/p50/p99/p99.9/max.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Latency {
    pub n: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    /// Sort the nanosecond samples `v` and summarise them.
    pub fn of(v: &mut [u64]) -> Latency {
        v.sort_unstable();
        let n = v.len() as u64;
        let sum: f64 = v.iter().map(|&x| x as f64).sum();
        Latency {
            n,
            min: v.first().map_or(0.0, |&x| x as f64 / 1000.0),
            mean: if n > 0 { sum / n as f64 / 1000.0 } else { 0.0 },
            p50: pct(v, 0.50),
            p99: pct(v, 0.99),
            p999: pct(v, 0.999),
            max: v.last().map_or(0.0, |&x| x as f64 / 1000.0),
        }
    }

    /// Append the rtt case's fields, each name prefixed by `prefix` (`min_us`, `mean_us`,
    /// `p50_us`, `p99_us`, `p999_us`, `max_us`).
    pub fn fields(&self, r: &mut CaseResult, prefix: &str) {
        for (k, v) in [
            ("min_us", self.min),
            ("mean_us", self.mean),
            ("p50_us", self.p50),
            ("p99_us", self.p99),
            ("p999_us", self.p999),
            ("max_us", self.max),
        ] {
            r.float(&format!("{prefix}{k}"), v, 1);
        }
    }

    /// `p50 … p99 … p99.9 … max … us` for the table.
    pub fn line(&self) -> String {
        format!("p50 {:8.1}  p99 {:8.1}  p99.9 {:8.1}  max {:9.1} us", self.p50, self.p99, self.p999, self.max)
    }
}

/// Every result of one `viprouter bench` run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// In the order run.
    pub results: Vec<CaseResult>,
    /// Where the router ran and how its CPU was measured (printed under the table).
    pub notes: Vec<String>,
}

impl Report {
    /// The result of `workload` (the first, if it ran more than once).
    #[cfg(test)]
    pub fn get(&self, workload: &str) -> Option<&CaseResult> {
        self.results.iter().find(|r| r.workload == workload)
    }

    /// One JSON line per result (vipbench's format), joined by newlines.
    pub fn to_json(&self) -> String {
        self.results.iter().map(CaseResult::to_json).collect::<Vec<_>>().join("\n")
    }

    /// The table as text.
    pub fn table(&self) -> String {
        let mut out = format!("\n{:<14} {:<7} result\n", "label", "load");
        for r in &self.results {
            out.push_str(&r.line);
            out.push('\n');
        }
        for n in &self.notes {
            out.push_str("  ");
            out.push_str(n);
            out.push('\n');
        }
        out
    }

    /// Print the table on stderr, as vipbench does (stdout stays for `--json` lines).
    pub fn print_table(&self) {
        eprint!("{}", self.table());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_as_vipbench() {
        let v: Vec<u64> = (1..=1000).map(|x| x * 1000).collect();
        assert_eq!(pct(&v, 0.5), 500.0);
        assert_eq!(pct(&v, 0.99), 990.0);
        assert_eq!(pct(&v, 0.999), 999.0);
        assert_eq!(pct(&[], 0.5), 0.0);
        let mut w: Vec<u64> = v.iter().rev().copied().collect();
        let l = Latency::of(&mut w);
        assert_eq!((l.n, l.min, l.p50, l.p99, l.p999, l.max), (1000, 1.0, 500.0, 990.0, 999.0, 1000.0));
        assert_eq!(l.mean, 500.5);
        assert_eq!(Latency::of(&mut []), Latency::default());
        let mut r = CaseResult::new("x");
        l.fields(&mut r, "all_");
        assert_eq!(r.num("all_p999_us"), Some(999.0));
        assert_eq!(r.fields.len(), 6);
    }

    #[test]
    fn json_line_keeps_order_precision_and_escapes() {
        let mut r = CaseResult::new("route");
        r.str("label", "a\"b").str("workload", "route").bool("ok", true).int("sent", 5u64);
        r.float("elapsed_s", 1.23456, 3).float("msgs_per_s", f64::NAN, 0);
        r.int("sent", 6u64);
        assert_eq!(
            r.to_json(),
            r#"{"label":"a\"b","workload":"route","ok":true,"sent":6,"elapsed_s":1.235,"msgs_per_s":null}"#
        );
        assert_eq!(r.num("sent"), Some(6.0));
        assert_eq!(r.num("label"), None);
    }
}
