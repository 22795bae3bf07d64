//! Outbound TLS: rustls with *ring* as its crypto provider, for the exporters' HTTPS client (and
//! sqlx's PostgreSQL connections, which pick ring through their own feature).
//!
//! reqwest is built without a provider of its own: its default brings aws-lc-rs, a C library whose
//! build was the longest step of a cold release build. reqwest then takes the process's default
//! provider, and panics when there is none, so every HTTP client is built through
//! [`client_builder`], which installs ring's first. Certificates are still checked by the platform
//! verifier (the system's trust store, `SSL_CERT_FILE` and `SSL_CERT_DIR`), and proxies come from
//! `HTTPS_PROXY` / `NO_PROXY`.

/// Makes ring the process's default rustls provider; harmless when one is already installed.
pub fn install_provider() {
    // An error only says that a default is already in place (an earlier call, or the embedding
    // program's own choice), which is what is wanted either way.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `reqwest::Client::builder()`, with the crypto provider installed first (clippy.toml refuses
/// reqwest's own constructors everywhere else).
#[allow(clippy::disallowed_methods)]
pub fn client_builder() -> reqwest::ClientBuilder {
    install_provider();
    reqwest::Client::builder()
}
