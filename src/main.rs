//! `viprouter`: command line → configuration → router → event loop. Nothing else lives here.

#![deny(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

use std::process::ExitCode;

use argh::FromArgs;

use viprouter::config::{CliValues, Config};
use viprouter::limits::Limits;
use viprouter::server::event_loop::Exit;
use viprouter::server::startup;

#[cfg(feature = "bench")]
mod bench;
mod stats_cmd;

/// `println!` for the commands' output (`--version`, `--print-limits`, `--check-config`,
/// `keygen`). It ends the process quietly, status 0, when stdout is closed early
/// (`viprouter --version | head -1`): `println!` panics there, because the Rust runtime ignores
/// SIGPIPE (which the router needs ignored for its sockets).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            stdout_failed(&e)
        }
    }};
}

/// Stdout failed: a closed pipe ends the command as done; anything else is an error.
fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("viprouter: writing to stdout: {e}");
    std::process::exit(1)
}

/// viprouter: a small, fast VOLTTRON VIP message router (ZeroMQ message bus).
#[derive(FromArgs)]
struct Cli {
    /// address to bind, repeatable (e.g. tcp://127.0.0.1:22916), added to the config file's ones
    #[argh(option)]
    vip_address: Vec<String>,
    /// local ipc address (default ipc://@$VOLTTRON_HOME/run/vip.socket)
    #[argh(option)]
    vip_local_address: Option<String>,
    /// instance name answered to `query instance-name`
    #[argh(option)]
    instance_name: Option<String>,
    /// platform directory (default $VOLTTRON_HOME, else ~/.volttron)
    #[argh(option)]
    volttron_home: Option<String>,
    /// override the config file's allow-auth (true: CURVE + auth.json; false: NULL)
    #[argh(option)]
    allow_auth: Option<bool>,
    /// admit peers that auth.json refuses (as `volttron --setup-mode`); logged, and reported
    /// with --auth-reports
    #[argh(switch)]
    setup_mode: bool,
    /// send refused (and setup-mode admitted) peers to the platform.auth agent as
    /// `viprouter.auth` messages, for its pending authorizations (viprouter-volttron)
    #[argh(switch)]
    auth_reports: bool,
    /// print every limit, its unit, what happens when it is hit, and the memory ceiling
    #[argh(switch)]
    print_limits: bool,
    /// load and validate the configuration, print it, and exit
    #[argh(switch)]
    check_config: bool,
    /// print the version and exit
    #[argh(switch)]
    version: bool,
    /// more logging: -v debug, -vv trace (RUST_LOG, when set, wins)
    #[argh(switch, short = 'v')]
    verbose: u8,
    #[argh(subcommand)]
    command: Option<Command>,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Keygen(Keygen),
    Stats(stats_cmd::StatsCmd),
    #[cfg(feature = "bench")]
    Bench(bench::BenchCmd),
}

/// Print a new CURVE key pair, in VOLTTRON's form (43-char URL-safe base64) and in Z85.
#[derive(FromArgs)]
#[argh(subcommand, name = "keygen")]
struct Keygen {}

fn keygen() -> ExitCode {
    use viprouter::auth::keys::KeyText;
    use viprouter::zmtp::mechanism::curve::KeyPair;
    let pair = KeyPair::generate(&mut rand_core::OsRng);
    let public = KeyText::new(&pair.public.0);
    let secret = KeyText::new(pair.secret.as_bytes());
    out!("{{\"public\": \"{}\", \"secret\": \"{}\"}}", public.as_str(), secret.as_str());
    out!("public (z85): {}", String::from_utf8_lossy(&pair.public.to_z85()));
    let secret_z85 = viprouter::zmtp::z85::encode_key(pair.secret.as_bytes());
    out!("secret (z85): {}", String::from_utf8_lossy(&secret_z85));
    ExitCode::SUCCESS
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format_timestamp_millis()
        .init();
}

fn print_limits(limits: &Limits) {
    use viprouter::server::memory::{fixed_table_bytes, memory_ceiling_bytes};
    out!("{:<22} {:>12}  {:<14} at the limit", "limit", "value", "unit");
    for r in limits.rows() {
        out!("{:<22} {:>12}  {:<14} {}", r.name, r.value, r.unit, r.at_limit);
    }
    let ceiling = memory_ceiling_bytes(limits);
    out!(
        "memory ceiling: {} bytes ({:.1} MiB) = buffer budget {} + fixed tables {}",
        ceiling,
        ceiling as f64 / (1024.0 * 1024.0),
        limits.buffer_budget_bytes,
        fixed_table_bytes(limits)
    );
    #[cfg(feature = "rabbitmq")]
    {
        let b = viprouter::server::memory::bridge_terms(limits);
        let more = b.total(false);
        let tls = if cfg!(feature = "rabbitmq-tls") { format!(" (+ TLS {} with amqps)", b.tls) } else { String::new() };
        out!(
            "with a RabbitMQ bridge (rabbitmq-url): up to {more} bytes ({:.1} MiB) more = transmit buffer {} + bindings {} + all_platforms prefixes {} + confirm window {} + largest delivery and its mapping {}{tls}",
            more as f64 / (1024.0 * 1024.0),
            b.transmit,
            b.bindings,
            b.prefixes,
            b.confirm,
            b.delivery
        );
    }
}

fn main() -> ExitCode {
    let cli: Cli = argh::from_env();
    if cli.version {
        out!("viprouter {}", env!("CARGO_PKG_VERSION"));
        out!("CURVE MESSAGE boxes: {}", viprouter::zmtp::mechanism::curve::sodium::backend());
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Keygen(_)) = cli.command {
        return keygen();
    }
    #[cfg(feature = "bench")]
    if let Some(Command::Bench(cmd)) = cli.command {
        return bench::main(&cmd.into());
    }
    init_logging(cli.verbose);
    let values = CliValues {
        vip_addresses: cli.vip_address.clone(),
        vip_local_address: cli.vip_local_address.clone(),
        instance_name: cli.instance_name.clone(),
        volttron_home: cli.volttron_home.clone(),
        allow_auth: cli.allow_auth,
        setup_mode: cli.setup_mode,
        auth_reports: cli.auth_reports,
    };
    let config = match Config::load(&values) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("viprouter: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Stats(cmd)) = &cli.command {
        return stats_cmd::main(cmd, &config);
    }
    if cli.print_limits {
        print_limits(&config.limits);
        return ExitCode::SUCCESS;
    }
    if cli.check_config {
        out!("volttron-home: {}", config.volttron_home.display());
        out!("layout:        {}", viprouter::auth::layout::Layout::detect(&config.volttron_home).name());
        out!("config file:   {}", config.config_file.as_ref().map_or("(none)".into(), |p| p.display().to_string()));
        out!("local address: {}", config.local_address);
        out!("vip-address:   {}", config.vip_addresses.join(" "));
        out!("instance-name: {}", config.instance_name);
        out!("allow-auth:    {}", config.allow_auth);
        out!("setup-mode:    {}", config.setup_mode);
        out!("auth-reports:  {}", config.auth_reports);
        if config.stats_topic.is_empty() {
            out!("stats publish: off");
        } else {
            let sender = if config.stats_sender.is_empty() { "(router identity)" } else { &config.stats_sender };
            out!("stats publish: {} every {} s as {sender}", config.stats_topic, config.stats_interval_s);
        }
        print_limits(&config.limits);
        return ExitCode::SUCCESS;
    }
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Large blocks as anonymous mappings: the start-up tables stay lazily resident whatever the
/// libc's `calloc` does (zig's writes its zeros: 22 MB idle instead of 2.3 MB, `pages`).
#[global_allocator]
static ALLOCATOR: viprouter::pages::PageAlloc = viprouter::pages::PageAlloc;

/// Take ownership of a descriptor systemd passed (socket activation). The binary's one `unsafe`,
/// here in its crate root so that the library's only `unsafe` stays the libsodium calls of
/// `zmtp::mechanism::curve::sodium` and the allocator of `pages` (`#![deny(unsafe_code)]`
/// everywhere else).
#[allow(unsafe_code)]
fn adopt_listen_fd(fd: std::os::fd::RawFd) -> std::os::fd::OwnedFd {
    // SAFETY: `server::activation::from_env` hands out `fd` only if LISTEN_PID is our pid and
    // 3 <= fd < 3 + LISTEN_FDS, i.e. systemd passed it to this process; getsockname() succeeded
    // on it, so it is open. Nothing in this process opened, wrapped or closed it before (files
    // read earlier in start-up get other numbers, since this one is open), and `into_listeners`
    // calls this at most once per fd, so ownership is unique.
    unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }
}

fn run(config: Config) -> Result<(), String> {
    let exit = startup::run(config, &mut adopt_listen_fd)?;
    log::info!(
        "stopped ({})",
        match exit {
            Exit::Signal => "signal",
            Exit::Quit => "quit from control",
        }
    );
    Ok(())
}
