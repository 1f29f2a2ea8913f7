//! Builds the web client (web/ -> pwa/) so that one `cargo build` gives a complete binary.
//! Set PEERBOX_SKIP_WEB_BUILD=1 to embed whatever pwa/ already holds.

use std::path::Path;
use std::process::Command;

fn main() {
    for p in [
        "web/src",
        "web/public",
        "web/index.html",
        "web/package.json",
        "web/package-lock.json",
        "web/vite.config.ts",
        "web/scripts",
    ] {
        println!("cargo:rerun-if-changed={p}");
    }
    println!("cargo:rerun-if-env-changed=PEERBOX_SKIP_WEB_BUILD");
    let skip = std::env::var_os("PEERBOX_SKIP_WEB_BUILD").is_some_and(|v| v != "0");
    let web = Path::new("web");
    if skip || !web.join("package.json").exists() {
        if !Path::new("pwa/index.html").exists() {
            // rust-embed needs the folder; an empty app still lets the server build.
            println!("cargo:warning=pwa/index.html is missing: the web app is not embedded");
        }
        return;
    }
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    if Command::new(npm).arg("--version").output().is_err() {
        panic!(
            "building peerbox needs Node.js 20+ and npm to build the web client in web/ \
             (Debian: `apt-get install nodejs npm`), or set PEERBOX_SKIP_WEB_BUILD=1 to embed \
             the existing pwa/ as is"
        );
    }
    let lock = web.join("package-lock.json");
    let installed = web.join("node_modules/.package-lock.json");
    let stale = match (lock.metadata(), installed.metadata()) {
        (Ok(l), Ok(i)) => l.modified().ok() > i.modified().ok(),
        _ => true,
    };
    if stale {
        run(
            Command::new(npm)
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(web),
            "npm ci",
        );
    }
    run(
        Command::new(npm).args(["run", "build"]).current_dir(web),
        "npm run build",
    );
}

fn run(cmd: &mut Command, what: &str) {
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("`{what}` in web/ failed ({s}); see its output above"),
        Err(e) => panic!("cannot run `{what}` in web/: {e}"),
    }
}
