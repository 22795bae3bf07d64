//! The README's shell examples work when pasted. Every fenced `sh` block is run with bash, in a
//! temporary folder, unless an HTML comment right above it says `readme-test: skip (WHY)`; one
//! that says `readme-test: expect "TEXT"` must also print TEXT. A block that starts the shop
//! (`cargo run --release`, with or without variables before it) is started, must log its URL,
//! answer `/readyz` and the home page, and exit 0 on SIGTERM; the first one keeps running as the
//! shop the other blocks talk to. Blocks that talk to the shop must not get a 4xx or 5xx.
//!
//! What is replaced before a block runs, each replacement used at least once (so this list cannot
//! outlive the README):
//! - `cargo run --release [--]` and `target/release/doorbuster`: the binary this test suite built
//!   (building the release binary inside the suite would take minutes);
//! - `localhost:8080` and `127.0.0.1:8080`: the shop the first such block started, which listens
//!   on 127.0.0.1 and a free port (`DOORBUSTER_HOST`, `PORT`, `DOORBUSTER_ADMIN_PORT` are set for
//!   it, as nothing in a test may listen on other interfaces or a fixed port);
//! - `sudo -u postgres psql` and the role `shop` and database `doorbuster` of the PostgreSQL
//!   example: `psql` on the suite's PostgreSQL, with a role and database named for this run (and
//!   dropped after it), so runs side by side or on a shared server never meet.
//!
//! Blocks that are skipped still have their `doorbuster` command lines parsed by the real CLI, as
//! are the `$ ` lines of `text` blocks.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clap::Parser as _;
use doorbuster::cli::Cli;
use sqlx::{Connection as _, PgConnection};

/// A fenced block of the README.
#[derive(Debug)]
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    lang: String,
    text: String,
    /// What the comment right above the fence says to the test, if anything.
    marker: Option<Marker>,
}

#[derive(Debug, PartialEq)]
enum Marker {
    Skip(String),
    Expect(String),
}

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

fn blocks(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(lang) = lines[i].strip_prefix("```") else {
            i += 1;
            continue;
        };
        let marker = i
            .checked_sub(1)
            .and_then(|above| lines[above].trim().strip_prefix("<!-- readme-test:"))
            .map(|comment| {
                let comment = comment
                    .trim()
                    .strip_suffix("-->")
                    .expect("a readme-test comment ends on its line")
                    .trim();
                if let Some(why) = comment.strip_prefix("skip") {
                    let why = why.trim().trim_start_matches('(').trim_end_matches(')');
                    assert!(
                        !why.is_empty(),
                        "line {i}: say why the block is skipped: skip (WHY)"
                    );
                    Marker::Skip(why.to_owned())
                } else if let Some(text) = comment.strip_prefix("expect") {
                    Marker::Expect(text.trim().trim_matches('"').to_owned())
                } else {
                    panic!("line {i}: unknown readme-test comment: {comment}")
                }
            });
        let start = i;
        i += 1;
        let mut text = String::new();
        while i < lines.len() && !lines[i].starts_with("```") {
            text.push_str(lines[i]);
            text.push('\n');
            i += 1;
        }
        blocks.push(Block {
            line: start + 1,
            lang: lang.trim().to_owned(),
            text,
            marker,
        });
        i += 1;
    }
    blocks
}

/// Whether a block starts the shop: its command, after any `VAR=value` words, is the bare
/// `cargo run --release`.
fn starts_the_shop(text: &str) -> bool {
    let words: Vec<&str> = text
        .split_whitespace()
        .skip_while(|word| word.contains('=') && !word.starts_with('-'))
        .collect();
    words == ["cargo", "run", "--release"]
}

/// The replacements, in order, and how often each was used.
struct Replacements {
    pairs: Vec<(&'static str, String)>,
    used: Vec<usize>,
}

impl Replacements {
    fn apply(&mut self, text: &str) -> String {
        let mut text = text.to_owned();
        for (i, (from, to)) in self.pairs.iter().enumerate() {
            let count = text.matches(from).count();
            if count > 0 {
                self.used[i] += count;
                text = text.replace(from, to);
            }
        }
        text
    }

    fn set(&mut self, from: &str, to: String) {
        let pair = self.pairs.iter_mut().find(|(f, _)| *f == from).unwrap();
        pair.1 = to;
    }
}

/// The shop a block started, stopped with SIGTERM when dropped if the test did not stop it.
struct Shop {
    child: Child,
    addr: String,
}

impl Shop {
    /// Sends SIGTERM and expects a clean exit.
    fn stop(mut self, line: usize) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "line {line}: the shop exited with {status}"
                );
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "line {line}: the shop did not stop within 20 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment every block gets: the caller's PATH and HOME, nothing of the shop's own
/// settings.
fn command(dir: &Path, script: &str) -> Command {
    let mut command = Command::new("bash");
    command
        .args(["-e", "-o", "pipefail", "-c", script])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .stdin(Stdio::null());
    command
}

/// Starts a block that starts the shop; returns it once it has logged its URL.
fn start_shop(dir: &Path, script: &str, line: usize) -> Shop {
    let mut child = command(dir, script)
        .env("DOORBUSTER_HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("DOORBUSTER_ADMIN_PORT", "0")
        .env("DOORBUSTER_DRAIN_DELAY", "0s")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("open at http://").nth(1) {
                let addr = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let _ = tx.send(addr);
            }
        }
    });
    let errors = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let mut shop = Shop {
        child,
        addr: String::new(),
    };
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(addr) => shop.addr = addr,
        _ => {
            drop(shop);
            panic!(
                "line {line}: `{}` did not start the shop: {}",
                script.trim(),
                errors.join().unwrap()
            );
        }
    }
    shop
}

async fn get(url: &str) -> reqwest::StatusCode {
    let client = doorbuster::tls::client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    client.get(url).send().await.unwrap().status()
}

/// Parses each `doorbuster` command line of a block with the real CLI.
fn parse_commands(text: &str, bin: &str, line: usize) {
    for command in text.lines() {
        let command = command.trim().trim_start_matches("$ ");
        let Some(args) = command.strip_prefix(bin) else {
            continue;
        };
        let argv: Vec<&str> = std::iter::once("doorbuster")
            .chain(args.split_whitespace())
            .collect();
        if let Err(error) = Cli::try_parse_from(&argv) {
            panic!("line {line}: `{command}` does not parse:\n{error}");
        }
    }
}

/// The PostgreSQL role and database made for this run, dropped afterwards.
struct Scratch {
    admin_url: String,
    name: String,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await.ok()?;
                for sql in [
                    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    format!("DROP ROLE IF EXISTS {name}"),
                ] {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut admin)
                        .await;
                }
                admin.close().await.ok()
            });
            Ok::<(), std::io::Error>(())
        })
        .join();
    }
}

/// Every shell example of the README, run as written (but for the replacements listed at the top
/// of this file) against the shop it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_shell_examples_work() {
    let readme = readme();
    let blocks = blocks(&readme);
    let bin = env!("CARGO_BIN_EXE_doorbuster");
    let admin_url = std::env::var("DOORBUSTER_TEST_POSTGRES_URL")
        .expect("run scripts/test, which starts PostgreSQL (or set DOORBUSTER_TEST_POSTGRES_URL)");
    let pg_host_port = admin_url
        .split_once("://")
        .and_then(|(_, rest)| rest.rsplit_once('@').map(|(_, host)| host).or(Some(rest)))
        .and_then(|host| host.split(['/', '?']).next())
        .expect("host:port in DOORBUSTER_TEST_POSTGRES_URL")
        .to_owned();
    let scratch = Scratch {
        admin_url: admin_url.clone(),
        name: format!("doorbuster_readme_{}", std::process::id()),
    };
    let name = scratch.name.clone();
    let mut replacements = Replacements {
        pairs: vec![
            ("cargo run --release --", bin.to_owned()),
            ("cargo run --release", bin.to_owned()),
            ("target/release/doorbuster", bin.to_owned()),
            (
                "sudo -u postgres psql",
                format!("psql --no-psqlrc '{admin_url}'"),
            ),
            ("ROLE shop LOGIN", format!("ROLE {name} LOGIN")),
            (
                "DATABASE doorbuster OWNER shop",
                format!("DATABASE {name} OWNER {name}"),
            ),
            (
                "postgres://shop:secret@localhost/doorbuster",
                format!("postgres://{name}:secret@{pg_host_port}/{name}"),
            ),
            // Set once the first block has started the shop.
            ("localhost:8080", String::new()),
            ("127.0.0.1:8080", String::new()),
        ],
        used: vec![0; 9],
    };

    let dir = tempfile::tempdir().unwrap();
    let mut shop: Option<Shop> = None;
    let (mut ran, mut skipped) = (0, Vec::new());
    for block in &blocks {
        let shell = matches!(block.lang.as_str(), "sh" | "bash" | "shell" | "console");
        if !shell {
            if block.lang == "text" {
                let text = replacements.apply(&block.text);
                parse_commands(&text, bin, block.line);
            }
            continue;
        }
        if let Some(Marker::Skip(why)) = &block.marker {
            let text = replacements.apply(&block.text);
            parse_commands(&text, bin, block.line);
            skipped.push(format!("line {}: {why}", block.line));
            continue;
        }
        let script = replacements.apply(&block.text);
        if starts_the_shop(&block.text) {
            let started = start_shop(dir.path(), &script, block.line);
            let base = format!("http://{}", started.addr);
            assert_eq!(get(&format!("{base}/readyz")).await, 200, "{base}/readyz");
            assert_eq!(get(&format!("{base}/")).await, 200, "{base}/");
            if shop.is_none() {
                replacements.set("localhost:8080", started.addr.clone());
                replacements.set("127.0.0.1:8080", started.addr.clone());
                shop = Some(started);
            } else {
                started.stop(block.line);
            }
        } else {
            let talks_to_shop =
                block.text.contains("localhost:8080") || block.text.contains("127.0.0.1:8080");
            assert!(
                !talks_to_shop || shop.is_some(),
                "line {}: the block talks to the shop before any block starts it",
                block.line
            );
            let output = tokio::time::timeout(
                Duration::from_secs(60),
                tokio::process::Command::from(command(dir.path(), &script)).output(),
            )
            .await
            .unwrap_or_else(|_| panic!("line {}: did not finish within 60 s", block.line))
            .unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            let shown = format!(
                "line {}:\n{script}\nstdout:\n{stdout}\nstderr:\n{stderr}",
                block.line
            );
            assert!(output.status.success(), "exit {}: {shown}", output.status);
            for refused in ["HTTP/1.1 4", "HTTP/1.1 5", "\"status\":4", "\"status\":5"] {
                assert!(!stdout.contains(refused), "`{refused}`: {shown}");
            }
            if let Some(Marker::Expect(text)) = &block.marker {
                assert!(stdout.contains(text.as_str()), "expected `{text}`: {shown}");
            }
        }
        ran += 1;
    }
    if let Some(shop) = shop.take() {
        shop.stop(0);
    }
    drop(scratch);
    for ((from, _), used) in replacements.pairs.iter().zip(&replacements.used) {
        assert!(
            *used > 0,
            "the replacement of `{from}` is no longer used by the README: drop it"
        );
    }
    assert!(ran >= 4, "ran only {ran} blocks");
    eprintln!("ran {ran} README blocks; skipped: {skipped:#?}");
}

/// The README's examples are found, marked and classified as this test expects (a check of the
/// test's own reading, without a shop).
#[test]
fn readme_blocks_are_read_as_intended() {
    let blocks = blocks(&readme());
    let shell: Vec<&Block> = blocks.iter().filter(|b| b.lang == "sh").collect();
    assert!(shell.iter().any(|b| starts_the_shop(&b.text)));
    assert!(
        shell
            .iter()
            .any(|b| b.text.contains("DATABASE_URL=postgres://") && starts_the_shop(&b.text))
    );
    assert!(!starts_the_shop("cargo run --release -- migrate"));
    assert!(
        shell.iter().all(|b| !b.text.contains('…')),
        "an ellipsis in a shell example cannot be pasted"
    );
}
