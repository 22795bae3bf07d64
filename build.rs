//! `sqlx::migrate!` embeds `migrations/` at compile time; tell cargo to rebuild when a migration
//! is added, not only when one that existed at the last build changes.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
