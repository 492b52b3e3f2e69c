//! A panic while answering a request still answers: the 500 envelope and a log line, never a
//! dropped connection (SPEC §9).

use std::any::Any;

use axum::http::StatusCode;
use axum::response::Response;
use tower_http::catch_panic::CatchPanicLayer;

use super::error::status_response;

type Answer = fn(Box<dyn Any + Send + 'static>) -> Response;

/// The layer `app` puts around every route and middleware below the trace span.
pub(super) fn catch_panic() -> CatchPanicLayer<Answer> {
    CatchPanicLayer::custom(answer as Answer)
}

fn answer(_payload: Box<dyn Any + Send + 'static>) -> Response {
    // The panic's message is left out: it can quote the value that caused it, a credential
    // included. The request span says which request it was; the panic hook (`telemetry`) where.
    tracing::error!("request handler panicked; answered 500");
    status_response(StatusCode::INTERNAL_SERVER_ERROR)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::http::{header, Request};
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    use super::*;

    const SECRET: &str = "tgp_NotARealSecretButShapedLikeOne";

    /// Log lines, gathered for the assertions.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut lines) = self.0.lock() {
                lines.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_the_500_envelope_and_logs_no_secret() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        async fn boom() -> &'static str {
            panic!("could not parse {SECRET}")
        }
        let router: Router = Router::new().route("/boom", get(boom)).layer(catch_panic());
        let response = router
            .oneshot(Request::get("/boom").body(Body::empty()).expect("request"))
            .await
            .expect("a response, not an error");

        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE),
            Some(&header::HeaderValue::from_static("application/json"))
        );
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .expect("body");
        assert_eq!(
            body,
            r#"{"success":false,"errors":["InternalServerError"],"data":null}"#
        );
        let logged = String::from_utf8(lines.0.lock().expect("lines").clone()).expect("utf-8");
        assert!(logged.contains("request handler panicked"), "{logged}");
        assert!(!logged.contains(SECRET), "{logged}");
    }
}
