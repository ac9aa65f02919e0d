//! The INI dialect of `$VOLTTRON_HOME/config` (VIP.md §14.2), read as VOLTTRON's
//! `ConfigFileAction.itersettings` (`volttron/platform/config.py`) reads it: `[section]`
//! headers; `#`/`;` comment lines; a key runs to the first `=`, `:` or blank (so `key value`
//! works and a URL's `:` is never the separator), then an optional `=`/`:`; a key alone is a
//! switch (empty value). The value is split like `shlex.split(value, comments=True)`: blanks
//! separate words, `'…'` and `"…"` quote (backslash escapes outside single quotes), and an
//! unquoted `#` ends the value (`vip-address = tcp://…:22916 # public`). The words are joined
//! with one blank.
//!
//! One addition for modular VOLTTRON, whose platform reads the file with Python's
//! `configparser` (`volttron/server/server_options.py` `from_file`): an **indented** line whose
//! first word holds `://` continues the value of the entry just above it (configparser's
//! multi-line value, which is how modular lists several `address`es). VOLTTRON 9's reader would
//! take such a line as a key named after the URL, which nothing reads, so no 9.x file changes
//! meaning.

/// One `key = value` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Section name (lower-case).
    pub section: String,
    /// Key (lower-case, `_` folded to `-`).
    pub key: String,
    /// The value's shell words joined by one blank (quotes and a trailing comment removed).
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
/// [`SyntaxError`] for the first malformed line (an empty key, an unterminated quote).
pub fn parse(text: &str) -> Result<Vec<Entry>, SyntaxError> {
    let mut section = String::new();
    let mut out: Vec<Entry> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_ascii_lowercase();
            continue;
        }
        if raw.starts_with([' ', '\t'])
            && line.split_whitespace().next().is_some_and(|w| w.contains("://"))
            && let Some(last) = out.last_mut()
            && last.section == section
        {
            let words = shell_words(line).ok_or(SyntaxError { line: i + 1 })?;
            for w in words {
                if !last.value.is_empty() {
                    last.value.push(' ');
                }
                last.value.push_str(&w);
            }
            continue;
        }
        let key_end = line.find(|c: char| c == '=' || c == ':' || c.is_whitespace()).unwrap_or(line.len());
        let (key, rest) = line.split_at(key_end);
        let rest = rest.trim_start();
        let rest = rest.strip_prefix(['=', ':']).unwrap_or(rest);
        let words = shell_words(rest).ok_or(SyntaxError { line: i + 1 })?;
        let key = key.to_ascii_lowercase().replace('_', "-");
        if key.is_empty() {
            return Err(SyntaxError { line: i + 1 });
        }
        out.push(Entry { section: section.clone(), key, value: words.join(" "), line: i + 1 });
    }
    Ok(out)
}

/// `shlex.split(v, comments=True, posix=True)`; `None` where Python raises (an unterminated
/// quote, a trailing backslash).
fn shell_words(v: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '#' => break,
            ' ' | '\t' | '\r' | '\n' => {
                if in_word {
                    words.push(core::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => {
                            let n = chars.next()?;
                            if !matches!(n, '"' | '\\') {
                                word.push('\\');
                            }
                            word.push(n);
                        }
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.push(chars.next()?);
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
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
        assert_eq!(parse("[volttron]\n=nonsense\n"), Err(SyntaxError { line: 2 }));
        assert_eq!(parse_bool("False"), Some(false));
        assert_eq!(parse_bool("maybe"), None);
    }

    /// VOLTTRON's `itersettings`: the key ends at the first `=`, `:` or blank (so a URL's `:` is
    /// not a separator), a key alone is a switch, and the value is read with
    /// `shlex.split(value, comments=True)`.
    #[test]
    fn separators_switches_and_shell_words_like_volttron() {
        let e = parse("[volttron]\nvip-address tcp://127.0.0.1:22916\nmsgdebug\nx = \"a b\" 'c' d\\ e # c\ny = a#b\n")
            .unwrap();
        assert_eq!((e[0].key.as_str(), e[0].value.as_str()), ("vip-address", "tcp://127.0.0.1:22916"));
        assert_eq!((e[1].key.as_str(), e[1].value.as_str()), ("msgdebug", ""));
        assert_eq!(e[2].value, "a b c d e");
        assert_eq!(e[3].value, "a");
        assert_eq!(parse("[volttron]\nx = \"open\n"), Err(SyntaxError { line: 2 }));
    }

    /// configparser's multi-line value (modular VOLTTRON's `address`): an indented line starting
    /// with a URL continues the entry above; other indented lines are ordinary settings.
    #[test]
    fn indented_urls_continue_the_value_above() {
        let e = parse("[volttron]\naddress = tcp://127.0.0.1:1\n    tcp://127.0.0.1:2 # two\n\tipc://@/x\n  y = 1\n")
            .unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[0].key.as_str(), e[0].value.as_str()),
            ("address", "tcp://127.0.0.1:1 tcp://127.0.0.1:2 ipc://@/x")
        );
        assert_eq!((e[1].key.as_str(), e[1].value.as_str()), ("y", "1"));
        // Not after an entry of the same section: an ordinary (odd) key, as VOLTTRON 9 reads it.
        let e = parse("[volttron]\n  tcp://127.0.0.1:2\n").unwrap();
        assert_eq!(e[0].key, "tcp");
    }
}
