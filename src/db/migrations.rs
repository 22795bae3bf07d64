//! The migrations of `migrations/sqlite` and `migrations/postgres`, embedded at build time
//! (build.rs) and made into sqlx migrators as `sqlx::migrate!` would: same versions,
//! descriptions and checksums, so a database migrated by either is up to date for the other.

use std::borrow::Cow;

use sqlx::SqlStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));
}

/// The migrator of one dialect's embedded migrations.
pub(crate) fn migrator(engine: super::Engine) -> Migrator {
    let files = match engine {
        super::Engine::Sqlite => embedded::SQLITE,
        super::Engine::Postgres => embedded::POSTGRES,
    };
    Migrator::with_migrations(
        files
            .iter()
            .map(|&(file, sql)| migration(file, sql))
            .collect(),
    )
}

/// A migration from its file name (`0001_catalog.sql`, checked by build.rs) and SQL, read the way
/// sqlx reads a migrations folder.
fn migration(file: &'static str, sql: &'static str) -> Migration {
    let (version, rest) = file.split_once('_').expect("checked by build.rs");
    let kind = MigrationType::from_filename(rest);
    Migration::new(
        version.parse().expect("checked by build.rs"),
        Cow::Owned(rest.trim_end_matches(kind.suffix()).replace('_', " ")),
        kind,
        SqlStr::from_static(sql),
        sql.starts_with("-- no-transaction"),
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Engine;
    use super::migrator;

    /// The embedded migrations are the folder's, as sqlx itself reads it (and as `migrate!` used
    /// to embed it): version, description, kind, SQL, checksum and transaction mode alike.
    #[tokio::test]
    async fn embedded_migrations_are_the_folders_as_sqlx_reads_it() {
        for (engine, dir) in [(Engine::Sqlite, "sqlite"), (Engine::Postgres, "postgres")] {
            let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(dir);
            let expected = sqlx::migrate::Migrator::new(folder).await.unwrap();
            let embedded = migrator(engine);
            let describe = |m: &sqlx::migrate::Migrator| {
                m.iter()
                    .map(|m| {
                        (
                            m.version,
                            m.description.to_string(),
                            m.migration_type,
                            m.sql.as_str().to_owned(),
                            m.checksum.to_vec(),
                            m.no_tx,
                        )
                    })
                    .collect::<Vec<_>>()
            };
            assert!(!describe(&expected).is_empty(), "{dir}: no migrations");
            assert_eq!(describe(&embedded), describe(&expected), "{dir}");
        }
    }
}
