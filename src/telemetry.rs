//! Tracing setup. Request spans carry a request id, the method, the matched route and the path
//! (never the query string or a header value), so every line of a request can be found again.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("tokengate=info,tower_http=info,warn"));
    let registry = tracing_subscriber::registry().with(filter);
    // try_init: tests may initialise more than once.
    let _ = match format {
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_ansi(colour())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    log_panics_without_their_message();
}

/// Colour codes only for a person at a terminal: a file, a pipe or a log collector gets plain
/// text (and `NO_COLOR`, set to anything, turns them off too).
fn colour() -> bool {
    use std::io::IsTerminal;
    let no_color = matches!(std::env::var_os("NO_COLOR"), Some(v) if !v.is_empty());
    std::io::stderr().is_terminal() && !no_color
}

/// Panics go to the log, in its format, with where they happened but not their message: the
/// default hook prints the message to stderr, and a message can quote the value that caused
/// the panic, a credential or a password included.
fn log_panics_without_their_message() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
        tracing::error!(
            location = location.as_deref().unwrap_or("unknown"),
            thread = std::thread::current().name().unwrap_or("unnamed"),
            "panic (its message is not logged)"
        );
    }));
}
