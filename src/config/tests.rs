use clap::{CommandFactory, Parser};

use super::*;

#[derive(Debug, Parser)]
struct Serve {
    #[command(flatten)]
    config: ServeConfig,
}

/// `serve` with these flags (and a database URL), as clap parses them.
fn serve(flags: &[&str]) -> Result<ServeConfig, String> {
    let args = ["tokengate", "--database-url", "postgres://db/x"]
        .into_iter()
        .chain(flags.iter().copied());
    Serve::try_parse_from(args)
        .map(|s| s.config)
        .map_err(|e| e.to_string())
}

/// The flag that `range`'s variable sets.
fn flag(range: &Range) -> String {
    let command = Serve::command();
    let arg = command
        .get_arguments()
        .find(|a| a.get_env() == Some(std::ffi::OsStr::new(range.var)))
        .unwrap_or_else(|| panic!("no flag reads {}", range.var));
    format!("--{}", arg.get_long().expect("a long flag"))
}

#[test]
fn the_defaults_are_within_their_ranges() {
    let config = serve(&[]).expect("defaults parse");
    assert_eq!(config.session_ttl(), Duration::from_secs(12 * 3600));
    assert_eq!(config.max_token_lifetime(), None);
}

#[test]
fn every_numeric_setting_refuses_values_outside_its_range_naming_it() {
    for range in RANGES {
        let flag = flag(&range);
        let beyond = (range.max + 1).to_string();
        let below = range.min.checked_sub(1).map(|v| v.to_string());
        let bad = [
            Some(beyond.as_str()),
            below.as_deref(),
            Some("18446744073709551616"),
            Some("-1"),
            Some("ten"),
            Some(""),
        ];
        for value in bad.into_iter().flatten() {
            let error =
                serve(&[&format!("{flag}={value}")]).expect_err(&format!("{flag}={value:?}"));
            assert!(error.contains(range.var), "{error}");
            let span = format!("from {} to {}", range.min, range.max);
            assert!(error.contains(&span), "{error}");
        }
        for value in [range.min, range.max] {
            serve(&[&flag, &value.to_string()])
                .unwrap_or_else(|e| panic!("{flag}={value} refused: {e}"));
        }
    }
}

#[test]
fn every_numeric_setting_has_a_range() {
    let unbounded: Vec<String> = Serve::command()
        .get_arguments()
        .filter_map(|a| a.get_env()?.to_str().map(str::to_owned))
        .filter(|var| {
            !RANGES.iter().any(|r| r.var == var)
                && ![
                    "DATABASE_URL",
                    "TOKENGATE_LISTEN_DATABASE_URL",
                    "TOKENGATE_LISTEN",
                    "TOKENGATE_HASH_KEY",
                    "TOKENGATE_PREVIOUS_HASH_KEYS",
                    "TOKENGATE_CORS_ORIGINS",
                    "TOKENGATE_EXTRA_ACTIONS",
                    "TOKENGATE_ROUTE_RULES",
                    "TOKENGATE_SECRET_SCANNING_KEYS_FILE",
                ]
                .contains(&var.as_str())
        })
        .collect();
    assert!(
        unbounded.is_empty(),
        "settings without a range: {unbounded:?}"
    );
}

#[test]
fn values_that_overflowed_request_arithmetic_are_refused_at_start() {
    let error = serve(&["--max-token-lifetime-days", "4294967295"]).expect_err("refused");
    assert!(
        error.contains("TOKENGATE_MAX_TOKEN_LIFETIME_DAYS"),
        "{error}"
    );
    let error = serve(&["--session-ttl-secs", &(u64::MAX - 1).to_string()]).expect_err("refused");
    assert!(error.contains("TOKENGATE_SESSION_TTL"), "{error}");
    let longest = serve(&[
        "--max-token-lifetime-days",
        "36525",
        "--session-ttl-secs",
        "31622400",
    ])
    .expect("the longest accepted");
    let now = chrono::Utc::now();
    for lifetime in [
        longest.max_token_lifetime().expect("set"),
        longest.session_ttl(),
    ] {
        let lifetime = chrono::Duration::from_std(lifetime).expect("fits");
        assert!(now.checked_add_signed(lifetime).is_some());
    }
}

#[test]
fn cors_origins_must_be_origins() {
    let config = serve(&[
        "--cors-origins",
        "https://app.example.com,http://localhost:5173",
    ])
    .expect("origins");
    assert_eq!(
        config.cors_origins,
        ["https://app.example.com", "http://localhost:5173"]
    );
    for bad in [
        "*",
        "app.example.com",
        "https://app.example.com/",
        "https://a.example/x",
        "ftp://a",
    ] {
        let error = serve(&["--cors-origins", bad]).expect_err(bad);
        assert!(error.contains("TOKENGATE_CORS_ORIGINS"), "{error}");
    }
}

#[test]
fn secrets_do_not_show_in_debug() {
    let s: Secret = "postgres://u:hunter2@db/x".parse().expect("infallible");
    assert!(!format!("{s:?}").contains("hunter2"));
}
