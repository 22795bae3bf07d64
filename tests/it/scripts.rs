//! The shell helpers the scripts source, run by bash on sample inputs.

use std::path::Path;
use std::process::Command;

/// `debian_mirror SUITE` (scripts/lib/debian-mirror.sh) with `/etc/apt` replaced by `etc`.
fn debian_mirror(etc: &Path, suite: &str) -> Option<String> {
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source scripts/lib/debian-mirror.sh && debian_mirror {suite}"
        ))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("APT_ETC", etc)
        .output()
        .unwrap();
    output
        .status
        .success()
        .then(|| String::from_utf8(output.stdout).unwrap().trim().to_owned())
}

/// scripts/check-k8s takes the Debian mirror from the machine's own apt sources, in either
/// format: the suite's source first, disabled and source-only stanzas ignored, no mirror written
/// into the script.
#[test]
fn debian_mirror_comes_from_the_apt_sources() {
    let etc = tempfile::tempdir().unwrap();
    let dir = etc.path().join("sources.list.d");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("debian.sources"),
        "# deb822, as Debian 12 and later write it\n\
         Types: deb\nURIs: http://disabled.example/debian\nSuites: bookworm\nEnabled: no\n\n\
         Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n\n\
         Types: deb deb-src\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n\
         Components: main\n",
    )
    .unwrap();
    assert_eq!(
        debian_mirror(etc.path(), "bookworm").as_deref(),
        Some("http://mirror.example/debian")
    );
    // Another release's machine: its main mirror carries bookworm too.
    assert_eq!(
        debian_mirror(etc.path(), "trixie").as_deref(),
        Some("http://mirror.example/debian")
    );

    // One-line style, with options, wins when it comes first (sources.list).
    std::fs::write(
        etc.path().join("sources.list"),
        "deb-src http://src.example/debian bookworm main\n\
         deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://proxy.example:3142/debian bookworm main\n",
    )
    .unwrap();
    assert_eq!(
        debian_mirror(etc.path(), "bookworm").as_deref(),
        Some("http://proxy.example:3142/debian")
    );

    // Only a security source: no mirror to build from, said by the exit status.
    std::fs::remove_file(etc.path().join("sources.list")).unwrap();
    std::fs::write(
        dir.join("debian.sources"),
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n",
    )
    .unwrap();
    assert_eq!(debian_mirror(etc.path(), "bookworm"), None);

    let script =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/check-k8s")).unwrap();
    assert!(
        !script.contains("deb.debian.org"),
        "scripts/check-k8s names a mirror of its own"
    );
}

/// What `test_setup SCOPE` (scripts/lib/setup.sh, the set-up of scripts/test and CI) did, run by
/// bash with stand-ins first on PATH: `id` says the user is `uid`, and `apt-get` records its
/// arguments (failing when `apt_fails`) instead of installing anything.
struct Setup {
    success: bool,
    stderr: String,
    apt_calls: Vec<String>,
}

fn test_setup(scope: &str, uid: u32, assume_missing: &str, apt_fails: bool) -> Setup {
    let stubs = tempfile::tempdir().unwrap();
    let log = stubs.path().join("apt-get.log");
    let write = |name: &str, body: String| {
        let path = stubs.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        let mut permissions = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&path, permissions).unwrap();
    };
    write(
        "apt-get",
        format!(
            "echo \"$*\" >> '{}'\nexit {}",
            log.display(),
            if apt_fails { 100 } else { 0 }
        ),
    );
    write("apt-cache", String::new());
    write("id", format!("echo {uid}"));
    let path = format!(
        "{}:{}",
        stubs.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -euo pipefail; source scripts/lib/setup.sh; test_setup {scope}; echo done >&2"
        ))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PATH", path)
        .env("DOORBUSTER_SETUP_ASSUME_MISSING", assume_missing)
        .env_remove("DOORBUSTER_SETUP_DRY_RUN")
        .env_remove("DOORBUSTER_TEST_POSTGRES_URL")
        // Other tools of the machine are looked for as they are: PostgreSQL's server is left out
        // of that (a suite may run on a server of its own) unless said to be missing.
        .envs(
            (!assume_missing.contains("postgresql"))
                .then_some(("DOORBUSTER_TEST_POSTGRES_URL", "postgres://elsewhere")),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    Setup {
        success: output.status.success() && stderr.ends_with("done\n"),
        stderr,
        apt_calls: std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect(),
    }
}

/// scripts/test installs what is missing as root with apt-get (what CI runs too), prints the one
/// command to run otherwise, and stops loudly when it cannot: tried with PostgreSQL's server and
/// Chromium said to be missing, and a stand-in apt-get.
#[test]
fn test_setup_installs_as_root_or_prints_the_command() {
    // Root: the Rust tests' share (no Chromium: that is the browser tests').
    let root = test_setup("rust", 0, "postgresql chromium", false);
    assert!(root.success, "{}", root.stderr);
    assert_eq!(root.apt_calls.len(), 2, "{:?}", root.apt_calls);
    assert!(
        root.apt_calls[0].starts_with("update"),
        "{:?}",
        root.apt_calls
    );
    assert!(
        root.apt_calls[1].starts_with("install -y") && root.apt_calls[1].ends_with(" postgresql"),
        "{:?}",
        root.apt_calls
    );
    assert!(
        root.stderr.contains("installing postgresql (apt-get)"),
        "{}",
        root.stderr
    );

    // Not root: nothing installed, the command printed, a failing status; everything the full
    // run needs is in that one command.
    let user = test_setup("all", 1000, "postgresql chromium", false);
    assert!(!user.success, "{}", user.stderr);
    assert!(user.apt_calls.is_empty(), "{:?}", user.apt_calls);
    assert!(
        user.stderr
            .contains("sudo apt-get install -y postgresql chromium"),
        "{}",
        user.stderr
    );

    // Root, but apt-get fails: the set-up stops there.
    let failed = test_setup("rust", 0, "postgresql", true);
    assert!(!failed.success, "{}", failed.stderr);
    assert_eq!(failed.apt_calls.len(), 1, "{:?}", failed.apt_calls);

    // Nothing missing: apt-get is not run at all.
    let ready = test_setup("rust", 0, "", false);
    assert!(ready.success, "{}", ready.stderr);
    assert!(ready.apt_calls.is_empty(), "{:?}", ready.apt_calls);
}
