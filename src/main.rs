//! `viprouter`: command line → configuration → router → event loop. Nothing else lives here.

use std::process::ExitCode;

use argh::FromArgs;

use viprouter::config::{CliValues, Config};
use viprouter::limits::Limits;
use viprouter::server::event_loop::{Exit, Server};
use viprouter::server::listener;
use viprouter::vip::platform::PlatformInfo;
use viprouter::vip::router::Router;
use viprouter::zmtp::mechanism::Mechanism;

/// viprouter: a small, fast VOLTTRON VIP message router (ZeroMQ message bus).
#[derive(FromArgs)]
struct Cli {
    /// address to bind, repeatable (e.g. tcp://127.0.0.1:22916); added to the config file's
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
    println!("{:<22} {:>12}  {:<14} at the limit", "limit", "value", "unit");
    for r in limits.rows() {
        println!("{:<22} {:>12}  {:<14} {}", r.name, r.value, r.unit, r.at_limit);
    }
    println!(
        "memory ceiling: {} bytes ({:.1} MiB) = buffer budget {} + fixed tables {}",
        limits.memory_ceiling_bytes(),
        limits.memory_ceiling_bytes() as f64 / (1024.0 * 1024.0),
        limits.buffer_budget_bytes,
        limits.fixed_table_bytes()
    );
}

/// A uuid4 text, as VOLTTRON's router uses for its routing id (VIP.md §2.1).
fn uuid4(random: &[u8; 16]) -> String {
    let mut b = *random;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

fn random_bytes() -> [u8; 16] {
    use std::io::Read;
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    b
}

/// Let the process hold every connection the limits allow.
fn raise_fd_limit(connections: usize) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let want = connections as u64 + 64;
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < want {
            let new = want.min(hard);
            if setrlimit(Resource::RLIMIT_NOFILE, new, hard).is_err() || new < want {
                log::warn!("open-file limit {new} is below max-connections + 64 = {want}: accepts may fail first");
            }
        }
}

fn json_list(items: &[String]) -> Vec<u8> {
    let quoted: Vec<String> = items.iter().map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))).collect();
    format!("[{}]", quoted.join(", ")).into_bytes()
}

fn main() -> ExitCode {
    let cli: Cli = argh::from_env();
    if cli.version {
        println!("viprouter {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    init_logging(cli.verbose);
    let values = CliValues {
        vip_addresses: cli.vip_address.clone(),
        vip_local_address: cli.vip_local_address.clone(),
        instance_name: cli.instance_name.clone(),
        volttron_home: cli.volttron_home.clone(),
        allow_auth: cli.allow_auth,
    };
    let config = match Config::load(&values) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("viprouter: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.print_limits {
        print_limits(&config.limits);
        return ExitCode::SUCCESS;
    }
    if config.allow_auth {
        eprintln!(
            "viprouter: allow-auth = True needs CURVE and auth.json, which this build does not implement yet \
             (README, \"What works\"). Set `allow-auth = False` in {}/config or pass --allow-auth false.",
            config.volttron_home.display()
        );
        return ExitCode::from(2);
    }
    if cli.check_config {
        println!("volttron-home: {}", config.volttron_home.display());
        println!("config file:   {}", config.config_file.as_ref().map_or("(none)".into(), |p| p.display().to_string()));
        println!("local address: {}", config.local_address);
        println!("vip-address:   {}", config.vip_addresses.join(" "));
        println!("instance-name: {}", config.instance_name);
        println!("allow-auth:    {}", config.allow_auth);
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

fn run(config: Config) -> Result<(), String> {
    raise_fd_limit(config.limits.max_connections);
    let run_dir = config.volttron_home.join("run");
    std::fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    let mechanism = Mechanism::Null;
    let mut listeners = listener::bind(&config.local_address, mechanism)?;
    let mut vip_endpoints = Vec::new();
    for a in &config.vip_addresses {
        let bound = listener::bind(a, mechanism)?;
        vip_endpoints.extend(bound.iter().map(|l| l.endpoint.clone()));
        listeners.extend(bound);
    }
    if listeners.len() > viprouter::limits::MAX_LISTENERS {
        return Err(format!("{} endpoints: at most {} may be bound", listeners.len(), viprouter::limits::MAX_LISTENERS));
    }
    let random = random_bytes();
    let router_id = uuid4(&random);
    let mut info = PlatformInfo::with_router_id(router_id.as_bytes());
    info.instance_name = config.instance_name.clone().into_bytes();
    info.local_address = config.local_address.clone().into_bytes();
    info.addresses_json = if vip_endpoints.is_empty() {
        json_list(std::slice::from_ref(&config.local_address))
    } else {
        json_list(&vip_endpoints)
    };
    if let Some(f) = &config.agent_monitor_frequency {
        info.agent_monitor_frequency = f.clone().into_bytes();
    }
    info.volttron_central_address = config.volttron_central_address.clone().into_bytes();
    info.volttron_central_serverkey = config.volttron_central_serverkey.clone().into_bytes();
    info.bind_web_address = config.bind_web_address.clone().into_bytes();
    let seed = u32::from_le_bytes([random[0], random[1], random[2], random[3]]);
    let router = Router::new(config.limits.max_connections, info, seed);
    let mut server = Server::new(listeners, router, config.limits.clone(), router_id.clone().into_bytes())
        .map_err(|e| format!("event loop: {e}"))?;
    let endpoints: Vec<&str> = server.endpoints().collect();
    log::info!(
        "viprouter {} ready: router id {router_id}, mechanism {}, endpoints {}, max {} connections, memory ceiling {} MiB",
        env!("CARGO_PKG_VERSION"),
        mechanism.name(),
        endpoints.join(" "),
        config.limits.max_connections,
        config.limits.memory_ceiling_bytes() / (1024 * 1024)
    );
    let exit = server.run().map_err(|e| format!("event loop: {e}"))?;
    server.log_stats();
    server.cleanup();
    log::info!("stopped ({})", match exit {
        Exit::Signal => "signal",
        Exit::Quit => "quit from control",
    });
    Ok(())
}
