//! The commands that print (`--version`, `--print-limits`, `--check-config`, `keygen`) end
//! quietly with status 0 when their stdout is already closed (`viprouter --version | head -1`
//! once `head` is gone), and report any other write error with status 1. `println!` panicked
//! there (status 101 or an abort), because the Rust runtime ignores SIGPIPE.
//!
//! `VIPROUTER_BIN` (set by `make test-arm-*`) replaces the host binary.

use std::path::PathBuf;
use std::process::{Command, Stdio};

fn bin() -> PathBuf {
    std::env::var_os("VIPROUTER_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_viprouter")), PathBuf::from)
}

fn command(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args)
        .env("SKIP_VOLTTRON_CONFIG", "1")
        .env("VOLTTRON_HOME", std::env::temp_dir().join("viprouter-cli-output"));
    c
}

const PRINTING: [&[&str]; 4] = [&["--version"], &["--print-limits"], &["--check-config"], &["keygen"]];

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    for args in PRINTING {
        // The read end is closed before the program starts: its first write gets EPIPE.
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = command(args).stdout(Stdio::from(writer)).stderr(Stdio::piped()).output().expect("run viprouter");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?}, stderr: {stderr}", out.status);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn another_write_error_is_reported() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else { return };
    let out = command(&["--version"]).stdout(Stdio::from(full)).stderr(Stdio::piped()).output().expect("run viprouter");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("writing to stdout"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
