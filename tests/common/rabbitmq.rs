//! A private RabbitMQ node on loopback for the bridge's tests (memo §8): its own data dir,
//! cookie (`HOME`), ports and epmd, started as a child and stopped by pid on drop.
//!
//! `Broker::start` returns `None` (and the caller prints why and skips) when Debian's
//! `rabbitmq-server` is not installed: `apt-get install -y --no-install-recommends
//! rabbitmq-server` (CI's `.ci/run` does it).

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const CTL: &str = "/usr/lib/rabbitmq/bin/rabbitmqctl";

/// A free loopback port (bound then released: another process could take it in between, which
/// makes the start fail loudly, not wrongly).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// TLS material for the node's `amqps` listener.
pub struct TlsFiles {
    /// CA certificate (PEM).
    pub ca: PathBuf,
    /// Server certificate (PEM).
    pub cert: PathBuf,
    /// Server key (PEM).
    pub key: PathBuf,
}

/// A running node.
pub struct Broker {
    pub dir: tempfile::TempDir,
    pub node: String,
    pub port: u16,
    pub tls_port: Option<u16>,
    child: Option<Child>,
    epmd: Option<Child>,
    epmd_port: u16,
}

impl Broker {
    /// Whether the broker is installed.
    pub fn available() -> bool {
        Path::new(SERVER).exists() && Path::new(CTL).exists()
    }

    /// Start a node (plus `rabbitmq_auth_mechanism_ssl` and an `amqps` listener when `tls` is
    /// given) and wait until it accepts AMQP connections.
    pub fn start(tag: &str, tls: Option<&TlsFiles>) -> Option<Broker> {
        if !Self::available() {
            return None;
        }
        let dir = tempfile::Builder::new().prefix(&format!("viprouter-amqp-{tag}-")).tempdir().unwrap();
        let (port, dist, epmd_port) = (free_port(), free_port(), free_port());
        let tls_port = tls.map(|_| free_port());
        let node = format!("vr{tag}{port}@localhost");
        let mut conf = format!("listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n");
        let mut plugins = String::from("[].\n");
        if let (Some(t), Some(tp)) = (tls, tls_port) {
            conf += &format!(
                "listeners.ssl.default = 127.0.0.1:{tp}\nssl_options.cacertfile = {}\nssl_options.certfile = {}\n\
                 ssl_options.keyfile = {}\nssl_options.verify = verify_peer\nssl_options.fail_if_no_peer_cert = false\n\
                 auth_mechanisms.1 = PLAIN\nauth_mechanisms.2 = EXTERNAL\nssl_cert_login_from = common_name\n",
                t.ca.display(),
                t.cert.display(),
                t.key.display()
            );
            plugins = "[rabbitmq_auth_mechanism_ssl].\n".to_string();
        }
        std::fs::write(dir.path().join("rabbitmq.conf"), conf).unwrap();
        std::fs::write(dir.path().join("enabled_plugins"), plugins).unwrap();
        let epmd = Command::new("epmd")
            .args(["-port", &epmd_port.to_string(), "-address", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        let mut b = Broker { dir, node, port, tls_port, child: None, epmd, epmd_port };
        std::thread::sleep(Duration::from_millis(200));
        let log = std::fs::File::create(b.dir.path().join("server.out")).unwrap();
        let child = b
            .command(SERVER)
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        b.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(b);
            }
            if let Some(Ok(Some(st))) = b.child.as_mut().map(|c| c.try_wait()) {
                panic!("rabbitmq-server exited early ({st}):\n{}", b.log_tail());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("rabbitmq-server did not listen within 90 s:\n{}", b.log_tail());
    }

    /// The node's environment on a command.
    fn command(&self, program: &str) -> Command {
        let d = self.dir.path();
        let mut c = Command::new(program);
        c.env("HOME", d)
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_PID_FILE", d.join("node.pid"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("ERL_EPMD_PORT", self.epmd_port.to_string());
        c
    }

    /// `rabbitmqctl -n NODE args…` (panics with its output when it fails).
    pub fn ctl(&self, args: &[&str]) -> String {
        let out: Output = self.command(CTL).arg("-n").arg(&self.node).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The last lines of the node's logs.
    pub fn log_tail(&self) -> String {
        let mut s = std::fs::read_to_string(self.dir.path().join("server.out")).unwrap_or_default();
        if let Ok(rd) = std::fs::read_dir(self.dir.path().join("log")) {
            for e in rd.flatten() {
                s += &std::fs::read_to_string(e.path()).unwrap_or_default();
            }
        }
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = self.command(CTL).arg("-n").arg(&self.node).arg("stop").output();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(mut e) = self.epmd.take() {
            let _ = e.kill();
            let _ = e.wait();
        }
    }
}

/// A test CA, a server certificate for `localhost`/127.0.0.1 and a client certificate whose
/// CN is `client_cn` (the RabbitMQ user for EXTERNAL), made with the openssl CLI in `dir`.
/// Returns (server files, client cert, client key); `None` when openssl is missing.
pub fn make_test_pki(dir: &Path, client_cn: &str) -> Option<(TlsFiles, PathBuf, PathBuf)> {
    if Command::new("openssl").arg("version").output().is_err() {
        return None;
    }
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let ext = dir.join("server.ext");
    std::fs::write(&ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n").unwrap();
    let cext = dir.join("client.ext");
    std::fs::write(&cext, "extendedKeyUsage=clientAuth\n").unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=viprouter-test-ca",
    ]);
    for (name, cn, e) in [("server", "localhost", "server.ext"), ("client", client_cn, "client.ext")] {
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            e,
        ]);
    }
    // rabbitmq (Erlang) reads the key as any user; keep the files readable.
    Some((
        TlsFiles { ca: dir.join("ca.pem"), cert: dir.join("server.pem"), key: dir.join("server.key") },
        dir.join("client.pem"),
        dir.join("client.key"),
    ))
}
