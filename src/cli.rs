//! `tokengate serve | migrate | bootstrap | gen-key | key-status`.

mod key_status;

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::config::{DatabaseConfig, KeyConfig, LogFormat, ServeConfig};
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
    /// Create the first organization and its Owner (exit 3 if an organization exists, or
    /// nothing to do with --if-empty).
    Bootstrap(BootstrapArgs),
    /// Print a fresh TOKENGATE_HASH_KEY.
    GenKey,
    /// How many credentials still depend on each hash key, and whether the previous keys
    /// (TOKENGATE_PREVIOUS_HASH_KEYS) can be dropped: exit 0 if so, 4 while credentials still
    /// need one.
    KeyStatus(KeyStatusArgs),
}

#[derive(Debug, clap::Args)]
pub struct KeyStatusArgs {
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub keys: KeyConfig,
}

#[derive(Debug, clap::Args)]
pub struct BootstrapArgs {
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// Name of the organization.
    #[arg(long, env = "TOKENGATE_BOOTSTRAP_ORG")]
    pub org: Option<String>,
    /// Email of the owner.
    #[arg(long, env = "TOKENGATE_BOOTSTRAP_EMAIL")]
    pub email: Option<String>,
    /// Display name of the owner.
    #[arg(long, env = "TOKENGATE_BOOTSTRAP_NAME")]
    pub name: Option<String>,
    /// Read the owner's password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Read the owner's password from this file (a Docker secret such as
    /// /run/secrets/owner_password). TOKENGATE_BOOTSTRAP_PASSWORD gives it directly; never on
    /// the command line.
    #[arg(long, env = "TOKENGATE_BOOTSTRAP_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// When an organization exists, do nothing and succeed, without reading the password: a
    /// step every start of a deployment can run before `serve`.
    #[arg(long)]
    pub if_empty: bool,
}

/// The password given in the environment: read here, not by clap, so that no `--help` or parse
/// error can print it.
const PASSWORD_VAR: &str = "TOKENGATE_BOOTSTRAP_PASSWORD";

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
        Command::KeyStatus(args) => {
            let (current, previous) = hash_keys(&args.keys)?;
            key_status::run(&args.database, &current, &previous).await
        }
        Command::Serve(config) => {
            let (current, previous) = hash_keys(&config.keys)?;
            http::serve(config, current, previous).await?;
            Ok(0)
        }
    }
}

/// The current key and the previous ones, each checked; an error names the variable (and the
/// entry) at fault, never a key.
fn hash_keys(config: &KeyConfig) -> anyhow::Result<(HashKey, Vec<HashKey>)> {
    let Some(key) = &config.hash_key else {
        anyhow::bail!(
            "TOKENGATE_HASH_KEY is not set. Make one with `tokengate gen-key` and export it: \
             export TOKENGATE_HASH_KEY=$(tokengate gen-key)"
        );
    };
    let current = HashKey::from_base64(key.expose())
        .map_err(|e| anyhow::anyhow!("{e}. Make a new one with `tokengate gen-key`."))?;
    let entries: Vec<&str> = config
        .previous_hash_keys
        .iter()
        .map(|k| k.expose())
        .collect();
    let previous = HashKey::previous_from_base64(&current, &entries).map_err(|e| {
        anyhow::anyhow!(
            "{e}. TOKENGATE_PREVIOUS_HASH_KEYS takes the keys used before TOKENGATE_HASH_KEY, \
             comma-separated, each as `tokengate gen-key` prints it."
        )
    })?;
    Ok((current, previous))
}

async fn bootstrap(args: BootstrapArgs) -> anyhow::Result<i32> {
    // Bad input is refused before anything touches the database, except with --if-empty, whose
    // later runs need neither the password nor the owner's details.
    let owner = if args.if_empty {
        None
    } else {
        Some(first_owner(&args)?)
    };
    let pool = db::connect(&args.database).await?;
    db::migrate(&pool).await?;
    // `db::identity::bootstrap` checks again under a lock: this only spares the password.
    if args.if_empty && any_organization(&pool).await? {
        eprintln!("an organization exists: nothing to bootstrap");
        return Ok(0);
    }
    let owner = match owner {
        Some(owner) => owner,
        None => first_owner(&args)?,
    };
    let hasher = PasswordHasher::new(1, 1)?;
    let hash = hasher.hash(owner.password).await?;
    match db::identity::bootstrap(&pool, &owner.org, &owner.email, &owner.name, &hash).await? {
        Some(org_id) => {
            println!("created organization {org_id} with owner {}", owner.email);
            Ok(0)
        }
        // Another process bootstrapped meanwhile.
        None if args.if_empty => {
            eprintln!("an organization exists: nothing to bootstrap");
            Ok(0)
        }
        None => {
            eprintln!("an organization already exists: bootstrap only creates the first one");
            Ok(EXIT_ALREADY_BOOTSTRAPPED)
        }
    }
}

/// The first organization and its Owner, checked as the API would check them.
struct FirstOwner {
    org: String,
    email: String,
    name: String,
    password: String,
}

fn first_owner(args: &BootstrapArgs) -> anyhow::Result<FirstOwner> {
    let (Some(org), Some(email), Some(name)) = (&args.org, &args.email, &args.name) else {
        anyhow::bail!(
            "bootstrap needs the organization, the owner's email and name: --org, --email and \
             --name, or TOKENGATE_BOOTSTRAP_ORG, TOKENGATE_BOOTSTRAP_EMAIL and \
             TOKENGATE_BOOTSTRAP_NAME"
        );
    };
    // The same rule as names given through the API.
    let [org, name] = [("--org", org), ("--name", name)].map(|(flag, value)| {
        http::valid_name("name", value).map_err(|_| {
            anyhow::anyhow!(
                "{flag} must be 1 to {} characters, without control or invisible formatting \
                 characters",
                http::MAX_NAME_LEN
            )
        })
    });
    let (org, name) = (org?, name?);
    let password = read_password(args)?;
    if let Err(e) = PasswordHasher::check_policy(&password) {
        anyhow::bail!("{e}");
    }
    Ok(FirstOwner {
        org,
        email: email.clone(),
        name,
        password,
    })
}

/// The owner's password from exactly one source: standard input, a file, or the environment.
fn read_password(args: &BootstrapArgs) -> anyhow::Result<String> {
    let from_env = std::env::var_os(PASSWORD_VAR).filter(|v| !v.is_empty());
    let sources = [
        args.password_stdin,
        args.password_file.is_some(),
        from_env.is_some(),
    ];
    let password = match sources {
        [true, false, false] => {
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password)?;
            password
        }
        [false, true, false] => {
            let path = args.password_file.as_deref().unwrap_or(Path::new(""));
            std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!("cannot read the password file {}: {e}", path.display())
            })?
        }
        [false, false, true] => from_env
            .unwrap_or_default()
            .into_string()
            .map_err(|_| anyhow::anyhow!("{PASSWORD_VAR} is not valid UTF-8"))?,
        [false, false, false] => anyhow::bail!(
            "give the owner's password with --password-stdin, --password-file \
             (TOKENGATE_BOOTSTRAP_PASSWORD_FILE) or {PASSWORD_VAR}"
        ),
        _ => anyhow::bail!(
            "give the owner's password one way only: --password-stdin, --password-file \
             (TOKENGATE_BOOTSTRAP_PASSWORD_FILE) or {PASSWORD_VAR}"
        ),
    };
    // Files and pipes usually end with a newline that is not part of the password.
    Ok(password.trim_end_matches(['\r', '\n']).to_owned())
}

async fn any_organization(pool: &sqlx::PgPool) -> anyhow::Result<bool> {
    let exists: bool = sqlx::query_scalar("select exists(select 1 from organizations)")
        .fetch_one(pool)
        .await?;
    Ok(exists)
}
