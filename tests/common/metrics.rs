//! Reading `/metrics`: its samples, and `promtool check metrics` on its text.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

pub type Samples = BTreeMap<String, f64>;

/// The samples of an exposition text: `name{labels}` -> value (comments skipped).
pub fn samples(text: &str) -> Samples {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("{l:?}"));
            (
                key.to_owned(),
                value.parse().unwrap_or_else(|_| panic!("{l:?}")),
            )
        })
        .collect()
}

pub async fn scrape(server: &super::TestServer) -> (String, Samples) {
    let r = server.get_metrics("/metrics", &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = String::from_utf8(r.body().to_vec()).unwrap();
    let s = samples(&text);
    (text, s)
}

/// `promtool check metrics` on `text`: exit 0 and no complaint (it lints names and help too).
pub fn promtool_accepts(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; tests/run-all.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "{said}\n{text}"
    );
}
