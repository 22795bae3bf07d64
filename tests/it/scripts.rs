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
