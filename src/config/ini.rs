//! The INI dialect of `$VOLTTRON_HOME/config` (VIP.md §14.2): `[section]` headers,
//! `key = value` (or `key: value`), `#`/`;` comment lines, values optionally quoted.

/// One `key = value` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Section name (lower-case).
    pub section: String,
    /// Key (lower-case, `_` folded to `-`).
    pub key: String,
    /// Value with surrounding quotes removed.
    pub value: String,
    /// 1-based line number.
    pub line: usize,
}

/// A line that is neither a section, a comment nor `key = value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based line number.
    pub line: usize,
}

/// Parse `text` into entries, in file order.
///
/// # Errors
/// [`SyntaxError`] for the first malformed line.
pub fn parse(text: &str) -> Result<Vec<Entry>, SyntaxError> {
    let mut section = String::new();
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_ascii_lowercase();
            continue;
        }
        let Some(pos) = line.find(['=', ':']) else { return Err(SyntaxError { line: i + 1 }) };
        let (key, value) = line.split_at(pos);
        let value = value.get(1..).unwrap_or("").trim();
        let value = unquote(value);
        let key = key.trim().to_ascii_lowercase().replace('_', "-");
        if key.is_empty() {
            return Err(SyntaxError { line: i + 1 });
        }
        out.push(Entry { section: section.clone(), key, value: value.to_string(), line: i + 1 });
    }
    Ok(out)
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

/// Python-style boolean (`True`, `false`, `1`, `no`, ...).
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vcfg_output() {
        let text = "[volttron]\nmessage-bus = zmq\nvip-address = tcp://127.0.0.1:22916\n# comment\ninstance-name = \"volttron1\"\n\n[viprouter]\nmax_connections: 100\n";
        let e = parse(text).unwrap();
        assert_eq!(e.len(), 4);
        assert_eq!(e[1].key, "vip-address");
        assert_eq!(e[1].value, "tcp://127.0.0.1:22916");
        assert_eq!(e[2].value, "volttron1");
        assert_eq!(
            (e[3].section.as_str(), e[3].key.as_str(), e[3].value.as_str(), e[3].line),
            ("viprouter", "max-connections", "100", 8)
        );
        assert_eq!(parse("[volttron]\nnonsense\n"), Err(SyntaxError { line: 2 }));
        assert_eq!(parse_bool("False"), Some(false));
        assert_eq!(parse_bool("maybe"), None);
    }
}
