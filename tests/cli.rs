//! The `peerbox` binary as an admin runs it: --version, check-config (refusing what start
//! would refuse, warning about what would hurt), bind and permission errors, the start-up
//! log, `0.0.0.0` beside `[::]`, SIGHUP reload and SIGTERM shutdown.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_peerbox");

/// Writes `body` as the config; without a `[metrics]` table of its own, the monitoring
/// listener is turned off (the default 127.0.0.1:9478 would clash between tests).
fn write_config(dir: &Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    let body = if body.contains("[metrics]") {
        body.to_owned()
    } else {
        format!("{body}\n[metrics]\nlisten = []\n")
    };
    std::fs::write(&path, body).unwrap();
    path
}

/// `peerbox check-config --config PATH`.
fn check_config(path: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(path)
        .output()
        .unwrap()
}

fn assert_ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const LOCAL: &str = "[https]\nlisten = [\"127.0.0.1:0\"]\n[http]\nlisten = [\"127.0.0.1:0\"]\n[turn]\nlisten = []\n";

#[test]
fn version_and_check_config() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("peerbox "));

    let dir = tempfile::tempdir().unwrap();
    let good = write_config(dir.path(), LOCAL);
    let out = check_config(&good);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));

    let bad = write_config(dir.path(), "[rooms]\ncapacity = 0\n");
    let out = check_config(&bad);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rooms.capacity"));

    // A cluster without the shared TURN secret is refused, and the message says why.
    let cluster = format!(
        "{LOCAL}[cluster]\nenabled = true\nnode_id = \"a\"\naddress = \"10.0.0.2:443\"\n\
         secret = \"0123456789abcdef0123456789abcdef\"\n"
    );
    let out = check_config(&write_config(dir.path(), &cluster));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("turn.secret") && err.contains("cluster"),
        "{err}"
    );

    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/peerbox.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/peerbox.toml"));
}

#[test]
fn the_shipped_config_passes_check_config() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
    let out = check_config(&path);
    assert_ok(&out);
}

/// Runs the server as nobody (no capabilities) on `config`, after making `dir` readable to all.
fn run_as_nobody(dir: &Path, config: &Path) -> std::process::Output {
    Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(dir)
        .status()
        .unwrap();
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            BIN,
            "--config",
        ])
        .arg(config)
        .output()
        .expect("setpriv (util-linux) runs the server as nobody")
}

#[test]
fn privileged_port_without_the_right_says_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let body = "[https]\nlisten = [\"127.0.0.1:443\"]\n[http]\nlisten = []\n[turn]\nlisten = []\n";
    let config = write_config(dir.path(), body);
    // Make the certificate first (as root), then run as nobody, which may not bind port 443.
    let out = check_config(&config);
    assert!(out.status.success());
    peerbox::tls::CertStore::load_or_generate(&dir.path().join("ssl"), "localhost").unwrap();
    let out = run_as_nobody(dir.path(), &config);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("permission denied"), "{err}");
    assert!(
        err.contains("CAP_NET_BIND_SERVICE") && err.contains("setcap"),
        "{err}"
    );
}

/// A running `peerbox` process with its log lines arriving on a channel.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn start(config: &Path) -> Running {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config").arg(config);
        Running::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd
            .env("PEERBOX_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Running { child, lines }
    }

    /// Waits for a log line containing `needle` and returns it.
    fn wait_for(&self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(10)) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(_) => panic!("no log line containing {needle:?} within 10 s"),
            }
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("peerbox did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sighup_reloads_and_sigterm_stops_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!("{LOCAL}[tls]\nwatch_interval_secs = 0\n"),
    );
    let mut server = Running::start(&config);
    let first = sha(&server.wait_for("certificate loaded"));
    let line = server.wait_for("listening for https and wss");
    let addr = line
        .split("addr=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    server.wait_for("peerbox is serving");

    // Replace the certificate (watching is off): only SIGHUP makes it take effect.
    let ssl = dir.path().join("ssl");
    std::fs::remove_file(ssl.join("cert.pem")).unwrap();
    std::fs::remove_file(ssl.join("privkey.pem")).unwrap();
    peerbox::tls::CertStore::load_or_generate(&ssl, "localhost").unwrap();
    server.signal("-HUP");
    let reloaded = server.wait_for("certificate reloaded");
    assert_ne!(sha(&reloaded), first);
    let served = Command::new("openssl")
        .args(["s_client", "-connect", &addr, "-servername", "localhost"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let pem_now = std::fs::read_to_string(ssl.join("cert.pem")).unwrap();
    let served = String::from_utf8_lossy(&served.stdout);
    let body = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>()
    };
    assert!(
        body(&served).contains(&body(&pem_now)),
        "the new certificate is served after SIGHUP"
    );

    server.signal("-TERM");
    let status = server.wait_exit(Duration::from_secs(8));
    assert!(status.success(), "{status:?}");
}

fn sha(line: &str) -> String {
    line.split("sha256=")
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs the server itself on `config`; it must fail at start. What it printed.
fn start_fails(config: &Path) -> String {
    let mut server = Running::start(config);
    assert!(!server.wait_exit(Duration::from_secs(10)).success());
    // The readers end (and the channel with them) at the pipes' EOF.
    server.lines.iter().collect::<Vec<_>>().join("\n")
}

const CLASH_HTTPS_HTTP: &str = "[https]\nlisten = [\"127.0.0.1:18443\"]\n[http]\nlisten = [\"127.0.0.1:18443\"]\n[turn]\nlisten = []\n";
const CLASH_HTTPS_TURN: &str = "[https]\nlisten = [\"127.0.0.1:18443\"]\n[http]\nlisten = []\n\
    [turn]\nlisten = [\"127.0.0.1:18443\"]\n";

#[test]
fn check_config_refuses_what_start_would_refuse() {
    let broken = "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n";
    let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    // (config, files in ssl/, what both check-config and start say)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let acme_ca = format!(
        "hostname = \"a.example\"\n{LOCAL}[acme]\nenabled = true\nca_file = \"missing-ca.pem\"\n"
    );
    let cases: [Case; 7] = [
        (&acme_ca, &[], "acme.ca_file"),
        (
            CLASH_HTTPS_HTTP,
            &[],
            "`http.listen`: 127.0.0.1:18443 clashes with 127.0.0.1:18443 in https.listen",
        ),
        (CLASH_HTTPS_TURN, &[], "[https] turn = true"),
        (
            LOCAL,
            &[("cert.pem", "garbage"), ("privkey.pem", &key)],
            "cert.pem holds no PEM certificate",
        ),
        (
            LOCAL,
            &[("cert.pem", broken), ("privkey.pem", &key)],
            "cert.pem: the certificate cannot be parsed",
        ),
        (
            LOCAL,
            &[("fullchain.pem", broken)],
            "fullchain.pem but not privkey.pem",
        ),
        (
            LOCAL,
            &[("privkey.pem", &key)],
            "neither cert.pem nor fullchain.pem",
        ),
    ];
    for (config, files, says) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), config);
        std::fs::create_dir(dir.path().join("ssl")).unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join("ssl").join(name), text).unwrap();
        }
        let out = check_config(&path);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{config} {files:?}: {err}");
        assert!(err.contains(says), "{config} {files:?}: {err}");
        let started = start_fails(&path);
        assert!(started.contains(says), "start: {started}");
        assert!(
            !started.contains("another"),
            "peerbox's own clash blamed on another program: {started}"
        );
    }
}

#[test]
fn check_config_reports_the_certificate_and_warns_about_what_hurts() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), LOCAL);
    let out = check_config(&path);
    assert_ok(&out);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("start writes a self-signed one"), "{said}");

    let ssl = dir.path().join("ssl");
    std::fs::create_dir(&ssl).unwrap();
    common::write_dated_cert(&ssl, -90, -2);
    let out = check_config(&path);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("is expired on") && stderr(&out).contains("browsers refuse it"),
        "{}",
        stderr(&out)
    );

    common::write_dated_cert(&ssl, -80, 5);
    let out = check_config(&path);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("warning: the certificate in")
            && stderr(&out).contains("expires in "),
        "{}",
        stderr(&out)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("sha256 "));

    // With ACME on, what it will do at start.
    let acme = write_config(
        dir.path(),
        &format!(
            "hostname = \"a.example\"\n{LOCAL}[acme]\nenabled = true\nchallenge = \"http-01\"\n"
        ),
    );
    let out = check_config(&acme);
    assert_ok(&out);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("acme: certificates for a.example from https://acme-v02.api.letsencrypt.org/directory by http-01; an account is registered at start"),
        "{said}"
    );

    // The shipped config: hostname "localhost" while listening on 0.0.0.0.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
    let out = check_config(&shipped);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("warning: config key `hostname`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unwritable_ssl_dir_is_said_once_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), LOCAL);
    // nobody may read the config but not write beside it, so cannot create ssl/
    let out = run_as_nobody(dir.path(), &config);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert_eq!(
        err.to_lowercase().matches("permission denied").count(),
        1,
        "{err}"
    );
    assert!(
        err.contains("writable by the user peerbox runs as"),
        "{err}"
    );
}

#[test]
fn a_port_another_process_holds_is_named_with_how_to_find_it() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[https]\nlisten = [\"127.0.0.1:{port}\"]\n[http]\nlisten = []\n[turn]\nlisten = []\n"
        ),
    );
    let err = start_fails(&config);
    assert!(
        err.contains(&format!("127.0.0.1:{port}/tcp (https.listen)")),
        "{err}"
    );
    assert!(
        err.contains(&format!("ss -tlnp 'sport = :{port}'")),
        "{err}"
    );
}

#[test]
fn the_start_up_log_names_the_version_and_the_address_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!("hostname = \"rooms.example.org\"\n{LOCAL}"),
    );
    let server = Running::start(&config);
    let first = server.wait_for("peerbox starting");
    assert!(
        first.contains(concat!("version=", env!("CARGO_PKG_VERSION"))),
        "{first}"
    );
    let line = server.wait_for("listening for https and wss");
    let addr = line
        .split("addr=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next();
    let port = addr.unwrap().rsplit(':').next().unwrap().to_owned();
    let open = server.wait_for("open this address in a browser");
    assert!(
        open.contains(&format!("url=https://rooms.example.org:{port}/")),
        "{open}"
    );
}

/// `0.0.0.0:P` and `[::]:P` side by side, as config.toml suggests, in a network namespace of
/// its own (so the wildcard addresses reach nothing but it).
#[test]
fn ipv4_and_ipv6_wildcards_on_one_port_both_listen() {
    if !Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!("skipped: `unshare -n` (root, util-linux) is not available here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "hostname = \"rooms.example.org\"\n[https]\nlisten = [\"0.0.0.0:443\", \"[::]:443\"]\n\
         [http]\nlisten = [\"0.0.0.0:80\", \"[::]:80\"]\n\
         [turn]\nlisten = [\"0.0.0.0:3478\", \"[::]:3478\"]\n",
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-n", BIN, "--config"]).arg(&config);
    let mut server = Running::spawn(cmd);
    for addr in ["0.0.0.0:443", "[::]:443"] {
        server.wait_for(&format!("listening for https and wss addr={addr}"));
    }
    server.wait_for("listening for stun/turn (udp and tcp) addr=[::]:3478");
    server.wait_for("peerbox is serving");
    server.signal("-TERM");
    assert!(server.wait_exit(Duration::from_secs(8)).success());
}

/// `turn.udp_listen`: a UDP-only STUN/TURN listener (443/udp is open where QUIC is): it
/// answers STUN over UDP, nothing listens on its port over TCP, and `joined` advertises it.
#[test]
fn udp_listen_is_udp_only() {
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[https]\nlisten = [\"127.0.0.1:0\"]\n[http]\nlisten = [\"127.0.0.1:0\"]\n\
             [turn]\nlisten = []\nudp_listen = [\"127.0.0.1:{port}\"]\n"
        ),
    );
    let server = Running::start(&config);
    server.wait_for(&format!(
        "listening for stun/turn (udp only) addr=127.0.0.1:{port}"
    ));
    server.wait_for("peerbox is serving");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut binding = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    binding.extend_from_slice(&[3; 12]);
    sock.send_to(&binding, ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = sock.recv_from(&mut buf).expect("a binding answer over udp");
    assert!(n >= 20 && buf[..2] == [0x01, 0x01], "a binding success");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens over tcp"
    );
}

/// Under systemd (`Type=notify`, `WatchdogSec=`): READY=1 once every port is bound, then
/// WATCHDOG=1 at half of `WATCHDOG_USEC`, and STOPPING=1 on SIGTERM; the monitoring listener
/// of the config answers `/readyz`.
#[test]
fn systemd_notify_and_watchdog() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = write_config(
        dir.path(),
        &format!("{LOCAL}[metrics]\nlisten = [\"127.0.0.1:{port}\"]\n"),
    );
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(&config)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "600000");
    let mut running = Running::spawn(cmd);
    let mut buf = [0u8; 256];
    let mut next = || {
        let n = sock.recv(&mut buf).expect("a notification within 10 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(next(), "READY=1\n");
    let start = std::time::Instant::now();
    for _ in 0..3 {
        assert_eq!(next(), "WATCHDOG=1\n");
    }
    // At once, then every 300 ms.
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
    running.wait_for("systemd watchdog on");
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(
        &mut tcp,
        b"GET /readyz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut tcp, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("listeners: 3 of 3 served"), "{answer}");
    running.signal("-TERM");
    loop {
        match next().as_str() {
            "WATCHDOG=1\n" => continue,
            other => {
                assert_eq!(other, "STOPPING=1\n");
                break;
            }
        }
    }
    assert!(running.wait_exit(Duration::from_secs(10)).success());
}
