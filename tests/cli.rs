//! The `peerbox` binary as an admin runs it: --version, check-config, a privileged port
//! without the right, SIGHUP reload and SIGTERM shutdown.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_peerbox");

fn write_config(dir: &Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
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

#[test]
fn privileged_port_without_the_right_says_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let body = "[https]\nlisten = [\"127.0.0.1:443\"]\n[http]\nlisten = []\n[turn]\nlisten = []\n";
    let config = write_config(dir.path(), body);
    // Make the certificate first (as root), then run as nobody, which may not bind port 443.
    let out = check_config(&config);
    assert!(out.status.success());
    peerbox::tls::CertStore::load_or_generate(&dir.path().join("ssl"), "localhost").unwrap();
    Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(dir.path())
        .status()
        .unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            BIN,
            "--config",
        ])
        .arg(&config)
        .output()
        .expect("setpriv (util-linux) runs the server as nobody");
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
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(config)
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
    let addr = line.rsplit("addr=").next().unwrap().trim().to_owned();
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
