//! The man pages `man/viprouter.8` and `man/viprouter.conf.5` (the one source of the installed
//! pages) against the program itself, so that an option, subcommand, configuration key,
//! limit or environment variable added without documentation — or documentation left behind
//! by a removal — fails here:
//!
//! * every option of `viprouter --help` and of `viprouter <command> --help` is a `.TP` item
//!   (under OPTIONS, or under the command's `.SS "viprouter NAME"` in COMMANDS) and nothing
//!   else is; an option that takes a value shows one; a `(default X)` of the help is the
//!   man page's `Default: X`;
//! * the `[volttron]` and `[viprouter]` keys of viprouter.conf(5) are exactly the keys the
//!   parser reads (`config::VOLTTRON_KEYS`, `config::viprouter_keys()`), each limit with its
//!   compiled default and minimum, and the real program accepts every documented key
//!   (`--check-config`);
//! * the LIMITS table is `viprouter --print-limits`, row by row, memory ceiling (and the
//!   RabbitMQ bridge's share, when the build has it) included;
//! * every environment variable the program reads is under ENVIRONMENT;
//! * the shipped `systemd/viprouter.conf` lists every key with its default;
//! * `groff -ww` finds nothing to warn about (when groff is installed).
//!
//! `VIPROUTER_BIN` (set by `make test-arm-*`) replaces the host binary.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use viprouter::config::{VOLTTRON_KEYS, viprouter_default, viprouter_keys};
use viprouter::limits::{self, Limits};

fn bin() -> PathBuf {
    std::env::var_os("VIPROUTER_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_viprouter")), PathBuf::from)
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Run the program with a clean configuration (no file read) and return stdout.
fn run(args: &[&str]) -> String {
    let out = Command::new(bin())
        .args(args)
        .env("SKIP_VOLTTRON_CONFIG", "1")
        .env("VOLTTRON_HOME", "/nonexistent/manpages-test")
        .output()
        .expect("run viprouter");
    assert!(out.status.success(), "viprouter {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Roff escapes and font changes out: the text a reader sees (one line).
fn plain(s: &str) -> String {
    let s = s
        .replace("\\-", "-")
        .replace("\\%", "")
        .replace("\\&", "")
        .replace("\\|", "")
        .replace("\\e", "\\")
        .replace("\\ ", " ")
        .replace("\\c", "")
        .replace("\\(bu", "*");
    let s = regex_lite::Regex::new(r"\\f[BIRP]").unwrap().replace_all(&s, "");
    s.to_string()
}

/// A macro line's arguments as the reader sees them: `.BR a " b"` → `a b` (alternating fonts
/// join their arguments without blanks; quotes group).
fn macro_text(line: &str) -> String {
    let Some(rest) = line.strip_prefix('.') else { return plain(line) };
    let (name, args) = rest.split_once(' ').unwrap_or((rest, ""));
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in args.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => words.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    words.push(cur);
    let words: Vec<&String> = words.iter().filter(|w| !w.is_empty()).collect();
    let joined = if ["BR", "BI", "IB", "IR", "RB", "RI"].contains(&name) {
        words.iter().map(|w| w.as_str()).collect::<String>()
    } else {
        words.iter().map(|w| w.as_str()).collect::<Vec<_>>().join(" ")
    };
    plain(&joined)
}

/// One `.TP` item: where it is, its tag and its body, as text.
#[derive(Debug)]
struct Item {
    sh: String,
    ss: String,
    tag: String,
    body: String,
}

struct Page {
    items: Vec<Item>,
    /// The whole page as text, whitespace collapsed.
    text: String,
    /// `.SS` headings per `.SH`.
    subsections: Vec<(String, String)>,
    th: String,
    src: String,
}

fn load(rel: &str) -> Page {
    let src = std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let (mut sh, mut ss) = (String::new(), String::new());
    let mut items: Vec<Item> = Vec::new();
    let mut subsections = Vec::new();
    let mut texts = Vec::new();
    let mut th = String::new();
    let mut lines = src.lines().peekable();
    let mut in_item = false;
    while let Some(line) = lines.next() {
        if line.starts_with(".\\\"") || line.starts_with("'\\\"") {
            continue;
        }
        let text = macro_text(line);
        if line.starts_with(".TH ") {
            th = text.clone();
        } else if line.starts_with(".SH ") {
            (sh, ss, in_item) = (text.clone(), String::new(), false);
        } else if line.starts_with(".SS ") {
            ss = text.clone();
            subsections.push((sh.clone(), ss.clone()));
            in_item = false;
        } else if line == ".TP" {
            let tag = macro_text(lines.next().expect("a tag after .TP"));
            texts.push(tag.clone());
            items.push(Item { sh: sh.clone(), ss: ss.clone(), tag, body: String::new() });
            in_item = true;
            continue;
        } else if matches!(line, ".PP" | ".P" | ".LP") || line.starts_with(".IP") {
            in_item = false;
        } else if in_item && let Some(item) = items.last_mut() {
            item.body.push(' ');
            item.body.push_str(&text);
        }
        texts.push(text);
    }
    let collapse = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    for item in &mut items {
        item.body = collapse(&item.body);
    }
    Page { items, text: collapse(&texts.join(" ")), subsections, th, src }
}

/// Option names (`--x`, `-x`) in a tag or a help line.
fn option_names(s: &str) -> BTreeSet<String> {
    let re = regex_lite::Regex::new(r"(?:^|[\s,\[|])(--?[a-z][a-z0-9-]*)").unwrap();
    re.captures_iter(s).map(|c| c[1].to_string()).collect()
}

/// What `--help` says of one option: its names, whether it takes a value, its default.
#[derive(Debug)]
struct HelpOption {
    names: BTreeSet<String>,
    takes_value: bool,
    default: Option<String>,
}

struct Help {
    options: Vec<HelpOption>,
    commands: Vec<String>,
    positionals: Vec<String>,
}

/// Parse argh's help: the usage line, then `Options:`, `Commands:`, `Positional Arguments:`
/// blocks of `  name   description` entries (descriptions wrap onto indented lines).
fn help(args: &[&str]) -> Help {
    let text = run(args);
    let usage = text.lines().next().unwrap_or_default().to_string();
    let valued = regex_lite::Regex::new(r"(--[a-z0-9-]+) <").unwrap();
    let valued: BTreeSet<String> = valued.captures_iter(&usage).map(|c| c[1].to_string()).collect();
    let mut entries: Vec<(String, String, String)> = Vec::new(); // block, head, description
    let mut block = String::new();
    for line in text.lines().skip(1) {
        if !line.starts_with(' ') && line.ends_with(':') {
            block = line.trim_end_matches(':').to_string();
        } else if let Some(entry) = line.strip_prefix("  ") {
            if !entry.starts_with(' ') {
                let (head, desc) = entry.split_once("  ").unwrap_or((entry, ""));
                entries.push((block.clone(), head.trim().to_string(), desc.trim().to_string()));
            } else if let Some(last) = entries.last_mut() {
                last.2.push(' ');
                last.2.push_str(entry.trim());
            }
        }
    }
    let default = regex_lite::Regex::new(r"\(default:? ([^ ),]+)").unwrap();
    let mut h = Help { options: Vec::new(), commands: Vec::new(), positionals: Vec::new() };
    for (block, head, desc) in entries {
        match block.as_str() {
            "Options" => {
                let names = option_names(&head);
                let takes_value = names.iter().any(|n| valued.contains(n));
                let default = default.captures(&desc).map(|c| c[1].to_string());
                h.options.push(HelpOption { names, takes_value, default });
            }
            "Commands" => h.commands.push(head),
            "Positional Arguments" => h.positionals.push(head),
            other => panic!("unexpected help block {other:?} in viprouter {args:?}"),
        }
    }
    h
}

/// Does `body` say `Default: VALUE` or `Default VALUE` (VALUE not followed by more of a word)?
fn says_default(body: &str, value: &str) -> bool {
    ["Default: ", "Default "].iter().any(|prefix| {
        body.match_indices(&format!("{prefix}{value}"))
            .any(|(at, m)| !body[at + m.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_'))
    })
}

/// The `.TP` items of viprouter(8) that document the options of `command` ("" = the router).
fn documented_options<'a>(page: &'a Page, command: &str) -> Vec<&'a Item> {
    page.items
        .iter()
        .filter(|i| {
            if command.is_empty() {
                i.sh == "OPTIONS"
            } else {
                i.sh == "COMMANDS" && i.ss.split_whitespace().nth(1) == Some(command)
            }
        })
        .collect()
}

fn check_options(page: &Page, command: &str, h: &Help) {
    let items = documented_options(page, command);
    let who = if command.is_empty() { "viprouter".to_string() } else { format!("viprouter {command}") };
    for opt in &h.options {
        let item = items
            .iter()
            .find(|i| option_names(&i.tag) == opt.names)
            .unwrap_or_else(|| panic!("{who} {:?} is not documented in man/viprouter.8", opt.names));
        let rest: String = item
            .tag
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty() && !w.starts_with('-') && *w != "help")
            .collect();
        assert_eq!(
            !rest.is_empty(),
            opt.takes_value,
            "{who} {:?}: man tag {:?} and --help disagree on a value",
            opt.names,
            item.tag
        );
        if let Some(d) = &opt.default {
            let d = d.trim_end_matches(['.', ';', ':']);
            assert!(
                says_default(&item.body, d),
                "{who} {:?}: --help says default {d}, man/viprouter.8 says: {}",
                opt.names,
                item.body
            );
        }
    }
    for item in &items {
        let names = option_names(&item.tag);
        assert!(
            h.options.iter().any(|o| o.names == names),
            "man/viprouter.8 documents {who} {names:?}, which --help does not have"
        );
    }
}

#[test]
fn viprouter_8_documents_every_option_and_command() {
    let page = load("man/viprouter.8");
    let top = help(&["--help"]);
    check_options(&page, "", &top);
    let documented: BTreeSet<String> = page
        .subsections
        .iter()
        .filter(|(sh, _)| sh == "COMMANDS")
        .filter_map(|(_, ss)| ss.split_whitespace().nth(1).map(str::to_string))
        .collect();
    let commands: BTreeSet<String> = top.commands.iter().cloned().collect();
    assert_eq!(documented, commands, "COMMANDS of man/viprouter.8 vs the commands of --help");
    for command in &top.commands {
        let h = help(&[command, "--help"]);
        check_options(&page, command, &h);
        let heading = page.subsections.iter().find(|(_, ss)| ss.split_whitespace().nth(1) == Some(command)).unwrap();
        for p in &h.positionals {
            let singular = p.trim_end_matches('s');
            assert!(heading.1.contains(&format!("[{singular}")), "viprouter {command} <{p}> is not in {:?}", heading.1);
        }
        let synopsis = format!("viprouter {command}");
        assert!(page.text.contains(&synopsis), "{synopsis} is not in SYNOPSIS");
    }
    let version = format!("viprouter {}", env!("CARGO_PKG_VERSION"));
    assert!(page.th.contains(&version), "man/viprouter.8 .TH {:?} is not for {version}", page.th);
}

/// Every environment variable the program reads (`env::var("X")`, `env::var_os("X")`, or the
/// `get("X")` of `server::activation`) outside `#[cfg(test)]`, plus env_logger's.
fn environment_read() -> BTreeSet<String> {
    let re = regex_lite::Regex::new(r#"(?:var|var_os|get)\("([A-Z][A-Z0-9_]+)"\)"#).unwrap();
    let mut found: BTreeSet<String> = ["RUST_LOG", "RUST_LOG_STYLE"].map(String::from).into();
    let mut dirs = vec![repo("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("tests.rs") {
                let src = std::fs::read_to_string(&path).unwrap();
                let code = src.split("#[cfg(test)]").next().unwrap_or_default();
                found.extend(re.captures_iter(code).map(|c| c[1].to_string()));
            }
        }
    }
    found
}

#[test]
fn viprouter_8_documents_the_environment_signals_and_files() {
    let page = load("man/viprouter.8");
    let documented: BTreeSet<String> = page
        .items
        .iter()
        .filter(|i| i.sh == "ENVIRONMENT")
        .flat_map(|i| i.tag.split([',', ' ']).filter(|w| !w.is_empty()).map(str::to_string).collect::<Vec<_>>())
        .collect();
    let read = environment_read();
    assert!(read.contains("VOLTTRON_HOME") && read.contains("LISTEN_FDS"), "the source scan found {read:?}");
    assert_eq!(documented, read, "ENVIRONMENT of man/viprouter.8 vs the variables the source reads");
    let signals: BTreeSet<&str> =
        page.items.iter().filter(|i| i.sh == "SIGNALS").flat_map(|i| i.tag.split([',', ' '])).collect();
    for s in ["SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1"] {
        assert!(signals.contains(s), "{s} is not under SIGNALS");
    }
    for f in ["config", "keystore", "known_hosts", "auth.json", "protected_topics.json", "run/"] {
        let path = format!("$VOLTTRON_HOME/{f}");
        assert!(page.items.iter().any(|i| i.sh == "FILES" && i.tag == path), "{path} is not under FILES");
    }
    for unit in ["viprouter.service", "viprouter.socket"] {
        assert!(repo(&format!("systemd/{unit}")).exists());
        let path = format!("/lib/systemd/system/{unit}");
        assert!(page.items.iter().any(|i| i.sh == "FILES" && i.tag == path), "{path} is not under FILES");
    }
}

/// The `.TP` keys under viprouter.conf(5)'s `.SS "Section [name]"`.
fn documented_keys<'a>(page: &'a Page, section: &str) -> Vec<&'a Item> {
    page.items.iter().filter(|i| i.sh == "KEYS" && i.ss == format!("Section [{section}]")).collect()
}

#[test]
fn viprouter_conf_5_documents_every_key_the_parser_reads() {
    let page = load("man/viprouter.conf.5");
    let volttron: BTreeSet<&str> = documented_keys(&page, "volttron").iter().map(|i| i.tag.as_str()).collect();
    assert_eq!(
        volttron,
        VOLTTRON_KEYS.into_iter().collect(),
        "[volttron] keys of man/viprouter.conf.5 vs config::VOLTTRON_KEYS"
    );
    let own = documented_keys(&page, "viprouter");
    let own_keys: BTreeSet<&str> = own.iter().map(|i| i.tag.as_str()).collect();
    assert_eq!(
        own_keys,
        viprouter_keys().collect(),
        "[viprouter] keys of man/viprouter.conf.5 vs config::viprouter_keys()"
    );
    for item in &own {
        let default = viprouter_default(&item.tag).unwrap();
        if let Some((_, floor)) = Limits::bounds(&item.tag) {
            let want = format!("Default {default}, minimum {floor}.");
            assert!(
                item.body.ends_with(&want),
                "{}: man/viprouter.conf.5 should end with {want:?}: {}",
                item.tag,
                item.body
            );
        } else {
            assert!(
                says_default(&item.body, &default),
                "{}: man/viprouter.conf.5 should say Default: {default}",
                item.tag
            );
        }
    }
    // The real parser accepts every documented key at its documented default…
    let home = tempfile::Builder::new().prefix("viprouter-manpages").tempdir().unwrap();
    let mut file = String::from("[volttron]\nvip-address = tcp://127.0.0.1:22916\nmessage-bus = zmq\n");
    for k in volttron.iter().filter(|k| !["vip-address", "message-bus", "allow-auth"].contains(k)) {
        file.push_str(&format!("{k} = x\n"));
    }
    file.push_str("[viprouter]\n");
    for k in &own_keys {
        file.push_str(&format!("{k} = {}\n", viprouter_default(k).unwrap()));
    }
    std::fs::write(home.path().join("config"), &file).unwrap();
    let check = |file: &str| {
        std::fs::write(home.path().join("config"), file).unwrap();
        Command::new(bin()).arg("--volttron-home").arg(home.path()).arg("--check-config").output().unwrap()
    };
    let out = check(&file);
    assert!(out.status.success(), "{file}\n{}", String::from_utf8_lossy(&out.stderr));
    // …and refuses an undocumented one.
    let out = check("[viprouter]\nundocumented-key = 1\n");
    assert_eq!(out.status.code(), Some(2));
    let version = format!("viprouter {}", env!("CARGO_PKG_VERSION"));
    assert!(page.th.contains(&version), "man/viprouter.conf.5 .TH {:?} is not for {version}", page.th);
}

/// The rows of the `.TS` … `.TE` table: cells split at `|`, `T{ … T}` blocks joined.
fn table_rows(src: &str) -> Vec<Vec<String>> {
    let start = src.find("\n.TS\n").expect("a .TS table") + 5;
    let end = src[start..].find("\n.TE\n").expect(".TE") + start;
    let body = &src[start..end];
    let data = &body[body.find(".\n").expect("tbl format ends with '.'") + 2..];
    let joined = data.replace("T{\n", "").replace("\nT}", "");
    joined.lines().map(|l| l.split('|').map(|c| plain(c).trim().to_string()).collect()).collect()
}

#[test]
fn viprouter_conf_5_limits_table_is_print_limits() {
    let page = load("man/viprouter.conf.5");
    let printed = run(&["--print-limits"]);
    let rows = table_rows(&page.src);
    let mut lines = printed.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(rows[0].join(" ").split_whitespace().collect::<Vec<_>>(), header);
    let mut n = 1;
    for line in lines {
        if line.starts_with("memory ceiling:") || line.starts_with("with a RabbitMQ bridge") {
            assert!(page.text.contains(line), "man/viprouter.conf.5 lacks {line:?}");
            continue;
        }
        let mut words = line.split_whitespace().map(str::to_string);
        let mut want: Vec<String> = words.by_ref().take(3).collect();
        want.push(words.collect::<Vec<_>>().join(" "));
        assert_eq!(rows.get(n), Some(&want), "LIMITS row {n} of man/viprouter.conf.5 vs --print-limits");
        n += 1;
    }
    assert_eq!(rows.len(), n, "man/viprouter.conf.5 has more LIMITS rows than --print-limits");
    for (v, what) in [
        (limits::MAX_IDENTITY_BYTES as u64, "bytes of routing identity"),
        (limits::MAX_COMMAND_BYTES, "bytes of a command frame"),
        (limits::MAX_HANDSHAKE_FRAME_BYTES, "bytes of a handshake frame"),
        (limits::MAX_PREFIX_BYTES as u64, "bytes of a subscription prefix"),
        (limits::MAX_BUS_BYTES as u64, "bytes of a pubsub bus name"),
        (limits::MAX_LISTENERS as u64, "listening endpoints"),
        (limits::MAX_QUOTED_MSG_ID as u64, "bytes of a MSG_ID quoted by error-msg-id"),
        (limits::MAX_EXT_PREFIXES_PER_LINK as u64, "subscription prefixes per remote platform"),
        (limits::EXT_PREFIX_BYTES_PER_LINK as u64, "bytes of them"),
        (limits::MAX_INSTANCE_NAME_BYTES as u64, "bytes of a remote platform's instance name"),
        (limits::MAX_LINK_ADDRESS_BYTES as u64, "bytes of its address"),
    ] {
        assert!(page.text.contains(&format!("{v} {what}")), "man/viprouter.conf.5 lacks \"{v} {what}\"");
    }
}

/// The shipped configuration (`/etc/viprouter/config`) shows every key, commented out, with
/// its default for the limits.
#[test]
fn shipped_config_lists_every_key() {
    let text = std::fs::read_to_string(repo("systemd/viprouter.conf")).unwrap();
    let has = |k: &str| text.lines().find(|l| l.strip_prefix('#').is_some_and(|l| l.starts_with(&format!("{k} ="))));
    for k in VOLTTRON_KEYS.into_iter().chain(viprouter_keys()) {
        let line = has(k).unwrap_or_else(|| panic!("systemd/viprouter.conf has no `#{k} = …` line"));
        if let Some(default) = viprouter_default(k) {
            assert_eq!(line, format!("#{k} = {default}"), "systemd/viprouter.conf: default of {k}");
        }
    }
}

/// `groff -ww` (all warnings) on both pages must print nothing. Skipped, loudly, without groff
/// (`apt-get install groff-base`); `make man-lint` installs it and runs lintian's check too.
#[test]
fn groff_finds_nothing_to_warn_about() {
    for page in ["man/viprouter.8", "man/viprouter.conf.5"] {
        let out = match Command::new("groff").args(["-t", "-man", "-Tutf8", "-ww", "-z"]).arg(repo(page)).output() {
            Ok(out) => out,
            Err(e) => {
                eprintln!("SKIPPED groff check of {page}: {e} (apt-get install groff-base)");
                return;
            }
        };
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "groff on {page}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
