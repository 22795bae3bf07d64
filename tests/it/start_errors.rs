//! A database that cannot be opened stops the start with a sentence that says what to change,
//! never with the pool's "timed out while waiting for an open connection". Each case runs the real
//! binary (`doorbuster migrate`, which connects like `serve`) against the PostgreSQL the suite
//! runs, or, for what that server cannot be made to do (check a password, refuse or insist on
//! TLS), against a fake server that answers the way PostgreSQL does.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// Runs `doorbuster migrate` on `url` with a one-second acquire timeout; returns its stderr once
/// it has failed, and how long it took.
fn migrate_fails(url: &str) -> (String, Duration) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_doorbuster"))
        .arg("migrate")
        .env_clear()
        .env("DATABASE_URL", url)
        .env("DOORBUSTER_DB_ACQUIRE_TIMEOUT", "1s")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run doorbuster migrate");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "migrate succeeded on {url}");
    assert!(
        !stderr.contains("pool timed out"),
        "the pool's words, not the cause: {stderr}"
    );
    (stderr, started.elapsed())
}

fn admin_url() -> String {
    std::env::var("DOORBUSTER_TEST_POSTGRES_URL")
        .expect("run scripts/test, which starts PostgreSQL (or set DOORBUSTER_TEST_POSTGRES_URL)")
}

/// `postgres://USER@HOST:PORT/DB` on the suite's server, with another user and database.
fn url_on_test_server(user: &str, database: &str) -> String {
    let admin = admin_url();
    let rest = admin.split_once("://").expect("a URL").1;
    let host_port = rest
        .rsplit_once('@')
        .map_or(rest, |(_, host)| host)
        .split(['/', '?'])
        .next()
        .expect("host:port");
    format!("postgres://{user}@{host_port}/{database}")
}

/// Nothing listening: "connection refused at HOST:PORT", at once (not after the acquire timeout).
#[test]
fn closed_port_says_connection_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let (stderr, took) = migrate_fails(&format!(
        "postgres://shop:secret@127.0.0.1:{port}/doorbuster"
    ));
    assert!(
        stderr.contains(&format!("connection refused at 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(
        !stderr.contains("secret"),
        "the password is never shown: {stderr}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// A database that does not exist is named, with how to create it.
#[test]
fn unknown_database_is_named() {
    let (stderr, _) = migrate_fails(&url_on_test_server("postgres", "doorbuster_no_such_db"));
    assert!(
        stderr.contains("the database \"doorbuster_no_such_db\" does not exist at 127.0.0.1:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("CREATE DATABASE doorbuster_no_such_db OWNER postgres"),
        "{stderr}"
    );
}

/// A role that does not exist is named, with how to create it.
#[test]
fn unknown_role_is_named() {
    let (stderr, _) = migrate_fails(&url_on_test_server("doorbuster_no_such_role", "postgres"));
    assert!(
        stderr.contains("the role \"doorbuster_no_such_role\" does not exist at 127.0.0.1:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("CREATE ROLE doorbuster_no_such_role LOGIN"),
        "{stderr}"
    );
}

/// `sslmode=verify-full` without the CA that signed the server's certificate (the suite's server
/// has a self-signed one): the TLS failure says to name the CA.
#[test]
fn untrusted_server_certificate_says_to_name_the_ca() {
    let url = format!(
        "{}?sslmode=verify-full",
        url_on_test_server("postgres", "postgres")
    );
    let (stderr, _) = migrate_fails(&url);
    assert!(stderr.contains("TLS with 127.0.0.1:"), "{stderr}");
    assert!(stderr.contains("sslrootcert=CA.pem"), "{stderr}");
}

/// What a fake server does after the client's startup message.
#[derive(Clone, Copy)]
enum Fake {
    /// Asks for a password, then refuses it (SQLSTATE 28P01), as PostgreSQL does.
    WrongPassword,
    /// Refuses an unencrypted session, as a server with only `hostssl` lines does (28000).
    RequiresTls,
    /// Accepts the connection and never answers.
    Silent,
}

/// A server on 127.0.0.1 that speaks the start of PostgreSQL's protocol: it declines TLS ('N' to
/// an SSLRequest, as a server with `ssl=off` does) and then behaves as `fake` says.
async fn fake_postgres(fake: Fake) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut startup = message(&mut socket).await?;
                // SSLRequest: the code 80877103, and no TLS here.
                if startup == 80877103u32.to_be_bytes() {
                    socket.write_all(b"N").await.ok()?;
                    startup = message(&mut socket).await?;
                }
                let _ = startup;
                let error = |code: &str, text: &str| {
                    let mut fields = Vec::new();
                    for (kind, value) in
                        [(b'S', "FATAL"), (b'V', "FATAL"), (b'C', code), (b'M', text)]
                    {
                        fields.push(kind);
                        fields.extend_from_slice(value.as_bytes());
                        fields.push(0);
                    }
                    fields.push(0);
                    let mut out = vec![b'E'];
                    out.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
                    out.extend_from_slice(&fields);
                    out
                };
                match fake {
                    Fake::WrongPassword => {
                        // AuthenticationCleartextPassword, then the password message.
                        socket
                            .write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3])
                            .await
                            .ok()?;
                        let kind = socket.read_u8().await.ok()?;
                        assert_eq!(kind, b'p', "a password message");
                        message(&mut socket).await?;
                        let refusal =
                            error("28P01", "password authentication failed for user \"shop\"");
                        socket.write_all(&refusal).await.ok()?;
                    }
                    Fake::RequiresTls => {
                        let refusal = error(
                            "28000",
                            "no pg_hba.conf entry for host \"127.0.0.1\", user \"shop\", database \"doorbuster\", no encryption",
                        );
                        socket.write_all(&refusal).await.ok()?;
                    }
                    Fake::Silent => tokio::time::sleep(Duration::from_secs(30)).await,
                }
                Some(())
            });
        }
    });
    port
}

/// One length-prefixed message (the length counts itself), its body returned.
async fn message(socket: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let length = socket.read_u32().await.ok()? as usize;
    let mut body = vec![0; length.checked_sub(4)?];
    socket.read_exact(&mut body).await.ok()?;
    Some(body)
}

/// A wrong password is called that, and the password itself never shows.
#[tokio::test]
async fn wrong_password_is_called_that() {
    let port = fake_postgres(Fake::WrongPassword).await;
    let url = format!("postgres://shop:not-the-password@127.0.0.1:{port}/doorbuster");
    let (stderr, _) = tokio::task::spawn_blocking(move || migrate_fails(&url))
        .await
        .unwrap();
    assert!(
        stderr.contains(&format!(
            "wrong password for user \"shop\" at 127.0.0.1:{port}"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-password"), "{stderr}");
}

/// A server that accepts only TLS, asked for a session without it, and a URL that insists on TLS
/// with a server that has none: both say "TLS required" and what to change.
#[tokio::test]
async fn tls_required_either_way() {
    let port = fake_postgres(Fake::RequiresTls).await;
    let url = format!("postgres://shop@127.0.0.1:{port}/doorbuster?sslmode=disable");
    let (stderr, _) = tokio::task::spawn_blocking(move || migrate_fails(&url))
        .await
        .unwrap();
    assert!(
        stderr.contains("TLS required: the server at 127.0.0.1:"),
        "{stderr}"
    );
    assert!(stderr.contains("remove sslmode=disable"), "{stderr}");

    let port = fake_postgres(Fake::RequiresTls).await;
    let url = format!("postgres://shop@127.0.0.1:{port}/doorbuster?sslmode=require");
    let (stderr, _) = tokio::task::spawn_blocking(move || migrate_fails(&url))
        .await
        .unwrap();
    assert!(stderr.contains("TLS required by DATABASE_URL"), "{stderr}");
    assert!(
        stderr.contains(&format!("the server at 127.0.0.1:{port} does not offer it")),
        "{stderr}"
    );
}

/// A server that accepts and then says nothing: the start gives up after the acquire timeout and
/// says where it waited.
#[tokio::test]
async fn silent_server_is_a_bounded_wait() {
    let port = fake_postgres(Fake::Silent).await;
    let url = format!("postgres://shop@127.0.0.1:{port}/doorbuster");
    let (stderr, took) = tokio::task::spawn_blocking(move || migrate_fails(&url))
        .await
        .unwrap();
    assert!(
        stderr.contains(&format!("no answer from 127.0.0.1:{port} within 1s")),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
}
