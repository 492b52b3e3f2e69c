//! `tokengate serve | migrate | bootstrap | gen-key`.

use std::io::Read;

use clap::{Parser, Subcommand};

use crate::config::{DatabaseConfig, LogFormat, ServeConfig};
use crate::credential::{HashKey, PasswordHasher};
use crate::{db, http, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "tokengate",
    version,
    about = "Issues, manages and verifies API access tokens"
)]
pub struct Cli {
    /// Log format.
    #[arg(
        long,
        env = "TOKENGATE_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then serve HTTP.
    Serve(ServeConfig),
    /// Apply pending migrations and exit.
    Migrate(DatabaseConfig),
    /// Create the first organization and its Owner (fails if an organization exists).
    Bootstrap(BootstrapArgs),
    /// Print a fresh TOKENGATE_HASH_KEY.
    GenKey,
}

#[derive(Debug, clap::Args)]
pub struct BootstrapArgs {
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// Name of the organization.
    #[arg(long)]
    pub org: String,
    /// Email of the owner.
    #[arg(long)]
    pub email: String,
    /// Display name of the owner.
    #[arg(long)]
    pub name: String,
    /// Read the owner's password from standard input (the only way: never from argv).
    #[arg(long, required = true)]
    pub password_stdin: bool,
}

/// Exit code of `bootstrap` when an organization already exists, so scripts can tell it apart.
pub const EXIT_ALREADY_BOOTSTRAPPED: i32 = 3;

pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    telemetry::init(cli.log_format);
    match cli.command {
        Command::GenKey => {
            println!("{}", HashKey::generate_base64());
            Ok(0)
        }
        Command::Migrate(database) => {
            let pool = db::connect(&database).await?;
            db::migrate(&pool).await?;
            tracing::info!("migrations applied");
            Ok(0)
        }
        Command::Bootstrap(args) => bootstrap(args).await,
        Command::Serve(config) => {
            let Some(key) = &config.hash_key else {
                anyhow::bail!(
                    "TOKENGATE_HASH_KEY is not set. Make one with `tokengate gen-key` and export it: \
                     export TOKENGATE_HASH_KEY=$(tokengate gen-key)"
                );
            };
            let key = HashKey::from_base64(key.expose())
                .map_err(|e| anyhow::anyhow!("{e}. Make a new one with `tokengate gen-key`."))?;
            http::serve(config, key).await?;
            Ok(0)
        }
    }
}

async fn bootstrap(args: BootstrapArgs) -> anyhow::Result<i32> {
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']).to_owned();
    if let Err(e) = PasswordHasher::check_policy(&password) {
        anyhow::bail!("{e}");
    }
    // The same rule as names given through the API.
    let [org, name] = [("--org", &args.org), ("--name", &args.name)].map(|(flag, value)| {
        http::valid_name("name", value).map_err(|_| {
            anyhow::anyhow!(
                "{flag} must be 1 to {} characters, without control or invisible formatting \
                 characters",
                http::MAX_NAME_LEN
            )
        })
    });
    let (org, name) = (org?, name?);
    let pool = db::connect(&args.database).await?;
    db::migrate(&pool).await?;
    let hasher = PasswordHasher::new(1, 1)?;
    let hash = hasher.hash(password).await?;
    match db::identity::bootstrap(&pool, &org, &args.email, &name, &hash).await? {
        Some(org_id) => {
            println!("created organization {org_id} with owner {}", args.email);
            Ok(0)
        }
        None => {
            eprintln!("an organization already exists: bootstrap only creates the first one");
            Ok(EXIT_ALREADY_BOOTSTRAPPED)
        }
    }
}
