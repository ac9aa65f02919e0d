//! `viprouter stats`: what a running router is doing, for an operator on the gateway.
//!
//! It connects to the router as a local agent would ([`target`]: the ipc endpoint of
//! `$VOLTTRON_HOME`, or any `--address`; CURVE with the keys the platform's files name), says
//! `hello`, asks `query stats` ([`connection`]: blocking I/O with timeouts around the library's
//! sans-IO [`viprouter::zmtp::session::client::ClientSession`]) and prints the object as a table
//! ([`sample`] reads it and computes rates, [`table`] renders it), or raw (`--json`);
//! `--watch N` asks again every N seconds on the same connection, with rates over the interval.
//!
//! Exit status ([`Failure::code`]): 0 done; 1 a protocol error or an unexpected answer;
//! 2 the configuration, the address or the keys are unusable; 3 no router at the address;
//! 4 the router did not answer in time; 5 the router refused us (ZMTP ERROR, e.g. `400` for a
//! key `auth.json` does not list, or a handshake it closed).

use std::fmt;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use argh::FromArgs;

use viprouter::config::Config;

mod connection;
mod sample;
mod table;
mod target;
#[cfg(test)]
mod tests;

use connection::Connection;
use sample::Sample;

/// show what a running router is doing: peers, connections, messages in and out per second,
/// drops by cause, top talkers, slowest subscribers, buffers against the limits, uptime
#[derive(FromArgs, Debug, PartialEq)]
#[argh(subcommand, name = "stats")]
pub struct StatsCmd {
    /// the router's address, tcp://HOST:PORT or ipc://PATH or ipc://@NAME; without it, the
    /// local endpoint of the platform (vip-local-address)
    #[argh(option)]
    pub address: Option<String>,
    /// the router's CURVE public key (40-char Z85 or 43-char base64); without it, the address's
    /// serverkey= parameter, known_hosts, or the platform keystore (a modular home:
    /// credentials_store/platform.json)
    #[argh(option)]
    pub serverkey: Option<String>,
    /// our CURVE key pair, a JSON keystore file {"public": ..., "secret": ...} whose public key
    /// auth.json lists; without it, keystores/control.connection (vctl's), else the platform's
    /// keystore (a modular home: credentials_store/control.connection.json, else platform.json)
    #[argh(option)]
    pub key_file: Option<String>,
    /// our routing identity; without it, viprouter.stats.PID
    #[argh(option)]
    pub identity: Option<String>,
    /// print the query stats object as JSON, one line per answer
    #[argh(switch)]
    pub json: bool,
    /// ask again every this many seconds: the table with rates over the interval, on a cleared
    /// screen
    #[argh(option)]
    pub watch: Option<u64>,
    /// with --watch, stop after this many answers; without it, run until interrupted
    #[argh(option)]
    pub count: Option<u64>,
    /// seconds to wait for the connection, the handshake and each answer (default 5)
    #[argh(option, default = "5")]
    pub timeout: u64,
}

/// Why `viprouter stats` failed; each kind has its exit status.
#[derive(Debug)]
pub enum Failure {
    /// The router broke the protocol or answered something unexpected (1).
    Protocol(String),
    /// The configuration, the address or the keys are unusable (2).
    Config(String),
    /// Nothing listens at the address (3).
    Absent(String),
    /// The router did not answer in time (4).
    Timeout(String),
    /// The router refused us (5).
    Refused(String),
}

impl Failure {
    /// The exit status.
    pub fn code(&self) -> u8 {
        match self {
            Failure::Protocol(_) => 1,
            Failure::Config(_) => 2,
            Failure::Absent(_) => 3,
            Failure::Timeout(_) => 4,
            Failure::Refused(_) => 5,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Protocol(m)
            | Failure::Config(m)
            | Failure::Absent(m)
            | Failure::Timeout(m)
            | Failure::Refused(m) => f.write_str(m),
        }
    }
}

/// Clear the screen and move the cursor home (ANSI), before each `--watch` table.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// Run `viprouter stats` with the platform's configuration `config`.
pub fn main(cmd: &StatsCmd, config: &Config) -> ExitCode {
    match run(cmd, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("viprouter stats: {e}");
            ExitCode::from(e.code())
        }
    }
}

fn run(cmd: &StatsCmd, config: &Config) -> Result<(), Failure> {
    if cmd.watch == Some(0) {
        return Err(Failure::Config("--watch takes a whole number of seconds, at least 1".into()));
    }
    if cmd.timeout == 0 {
        return Err(Failure::Config("--timeout takes a whole number of seconds, at least 1".into()));
    }
    let target = target::resolve(cmd, config)?;
    let timeout = Duration::from_secs(cmd.timeout);
    let mut conn = Connection::open(&target, timeout)?;
    conn.hello()?;
    let instance = conn.query(b"instance-name")?;
    let header = table::Header { address: target.address.clone(), instance: String::from_utf8_lossy(&instance).into() };
    let mut previous: Option<Sample> = None;
    let mut answers = 0u64;
    loop {
        let raw = conn.query(b"stats")?;
        let sample = Sample::parse(&raw).map_err(|e| Failure::Protocol(format!("query stats: {e}")))?;
        let mut out = std::io::stdout().lock();
        let text = if cmd.json {
            format!("{}\n", String::from_utf8_lossy(&raw))
        } else {
            let clear = if cmd.watch.is_some() { CLEAR } else { "" };
            format!("{clear}{}", table::render(&header, &sample, previous.as_ref(), cmd.watch))
        };
        if out.write_all(text.as_bytes()).and_then(|()| out.flush()).is_err() {
            return Ok(()); // stdout closed (a pager quit): nothing more to show
        }
        answers += 1;
        let Some(every) = cmd.watch else { return Ok(()) };
        if cmd.count.is_some_and(|n| answers >= n) {
            return Ok(());
        }
        previous = Some(sample);
        std::thread::sleep(Duration::from_secs(every));
    }
}
