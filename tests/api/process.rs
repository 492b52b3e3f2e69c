//! The real binary as a process: start-up errors, shutdown, slow clients, and what its logs
//! contain at `trace`.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_tokengate");
const PASSWORD: &str = "correct horse battery";

pub(crate) struct Process {
    child: Child,
    addr: String,
    logs: Arc<Mutex<String>>,
}

/// The URL of this test's own database (`#[sqlx::test]` made it on DATABASE_URL's server).
pub fn database_url(db: &PgPool) -> String {
    let server = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let base = server.split('?').next().unwrap_or(&server);
    let base = &base[..base.rfind('/').expect("a database path")];
    let name = db
        .connect_options()
        .get_database()
        .expect("database name")
        .to_owned();
    format!("{base}/{name}")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

fn key() -> String {
    tokengate::credential::HashKey::generate_base64()
}

pub(crate) async fn start(database_url: &str, env: &[(&str, &str)]) -> Process {
    let port = free_port();
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("TOKENGATE_HASH_KEY", key())
        .env("TOKENGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("spawn tokengate");
    let logs = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().expect("stderr");
    let sink = logs.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(mut logs) = sink.lock() {
                logs.push_str(&line);
                logs.push('\n');
            }
        }
    });
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..300 {
        if TcpStream::connect(&addr).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Process { child, addr, logs }
}

impl Process {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub(crate) fn terminate(&self) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `limit`; returns how long it took.
    pub(crate) async fn exit_within(&mut self, limit: Duration) -> Duration {
        let started = Instant::now();
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .expect("the process did not exit in time")
            .expect("wait");
        assert!(status.success(), "exit status {status}");
        started.elapsed()
    }
}

#[tokio::test]
async fn serve_refuses_to_start_without_a_hash_key_and_says_how_to_make_one() {
    let output = std::process::Command::new(BIN)
        .arg("serve")
        .env_remove("TOKENGATE_HASH_KEY")
        .env("DATABASE_URL", "postgres://127.0.0.1:1/none")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TOKENGATE_HASH_KEY"), "{stderr}");
    assert!(stderr.contains("tokengate gen-key"), "{stderr}");
}

#[tokio::test]
async fn serve_refuses_out_of_range_settings_naming_the_variable_and_the_range() {
    for (var, value, range) in [
        // Each of the first two made every token creation or login fail once serving.
        (
            "TOKENGATE_MAX_TOKEN_LIFETIME_DAYS",
            "4294967295",
            "from 1 to 36525",
        ),
        (
            "TOKENGATE_SESSION_TTL",
            "18446744073709551615",
            "from 60 to 31622400",
        ),
        ("TOKENGATE_MAX_CONCURRENT_HASHES", "0", "from 1 to 256"),
    ] {
        let child = Command::new(BIN)
            .arg("serve")
            .env("TOKENGATE_HASH_KEY", key())
            .env("DATABASE_URL", "postgres://127.0.0.1:1/none")
            .env("TOKENGATE_LISTEN", "127.0.0.1:0")
            .env(var, value)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn tokengate");
        // Accepted, it would keep serving (not ready, retrying the database): bound the wait.
        let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{var}={value} was accepted: tokengate kept running"))
            .expect("wait");
        assert!(!output.status.success(), "{var}={value} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(var), "{stderr}");
        assert!(stderr.contains(range), "{stderr}");
    }
}

#[tokio::test]
async fn bootstrap_refuses_names_with_invisible_characters() {
    let mut bootstrap = std::process::Command::new(BIN)
        .args([
            "bootstrap",
            "--org",
            "Acme\u{202e}gro",
            "--email",
            "owner@example.test",
            "--name",
            "O",
            "--password-stdin",
        ])
        .env("DATABASE_URL", "postgres://127.0.0.1:1/none")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bootstrap");
    bootstrap
        .stdin
        .take()
        .expect("stdin")
        .write_all_sync(PASSWORD.as_bytes());
    let output = bootstrap.wait_with_output().expect("wait");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--org must be"), "{stderr}");
}

#[sqlx::test]
async fn a_request_timeout_answers_408_with_the_security_headers(db: PgPool) {
    let mut process = start(&database_url(&db), &[("TOKENGATE_REQUEST_TIMEOUT", "1")]).await;
    // A body that never finishes arriving keeps the handler waiting past the timeout.
    let mut stream = TcpStream::connect(&process.addr).await.expect("connect");
    stream
        .write_all(
            b"POST /api/v1/identity/login HTTP/1.1\r\nHost: t\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .await
        .expect("partial request");
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read_head = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed without a response");
            head.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_head)
        .await
        .expect("a response within the timeout");
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head")
        + 4;
    let mut body = head.split_off(end);
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 408"), "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert!(head.contains("cache-control: no-store"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    // The envelope, as for every other refusal.
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .expect("content-length")
        .trim()
        .parse()
        .expect("a length");
    let read_body = async {
        while body.len() < length {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed before the body");
            body.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_body)
        .await
        .expect("the body");
    let body: Value = serde_json::from_slice(&body).expect("a JSON body");
    assert_eq!(
        body,
        json!({"success": false, "errors": ["RequestTimeout"], "data": null})
    );
    process.terminate();
    process.exit_within(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn with_the_database_down_at_start_it_stays_up_not_ready_and_retries() {
    let closed = free_port();
    let mut process = start(&format!("postgres://postgres@127.0.0.1:{closed}/none"), &[]).await;
    let client = reqwest::Client::new();
    let live = client
        .get(process.url("/health/live"))
        .send()
        .await
        .expect("live");
    assert_eq!(live.status(), 200);
    let ready = client
        .get(process.url("/health/ready"))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["errors"], json!(["ServiceUnavailable"]));
    // The first attempt gives up after the pool's acquire timeout (5 s by default).
    for _ in 0..100 {
        if process.logs().contains("retrying") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(process.logs().contains("retrying"), "{}", process.logs());
    assert!(
        process.child.try_wait().expect("wait").is_none(),
        "it exited"
    );
    process.terminate();
    process.exit_within(Duration::from_secs(10)).await;
}

#[sqlx::test]
async fn sigterm_lets_in_flight_requests_finish_and_refuses_new_connections(db: PgPool) {
    let mut process = start(&database_url(&db), &[("TOKENGATE_SHUTDOWN_GRACE", "5")]).await;
    // A request whose body is still on its way: the handler is running when SIGTERM arrives.
    let body = r#"{"email":"nobody@example.test","password":"long enough"}"#;
    let mut stream = TcpStream::connect(&process.addr).await.expect("connect");
    let head = format!(
        "POST /api/v1/identity/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream
        .write_all(&body.as_bytes()[..10])
        .await
        .expect("part");
    tokio::time::sleep(Duration::from_millis(300)).await;
    process.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        TcpStream::connect(&process.addr).await.is_err(),
        "a new connection was accepted during shutdown"
    );
    stream
        .write_all(&body.as_bytes()[10..])
        .await
        .expect("rest");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response");
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert!(response.contains("EmailPasswordMismatch"), "{response}");
    process.exit_within(Duration::from_secs(10)).await;
}

#[sqlx::test]
async fn stalled_sockets_do_not_hold_the_shutdown_past_the_grace_period(db: PgPool) {
    let mut process = start(
        &database_url(&db),
        &[
            ("TOKENGATE_SHUTDOWN_GRACE", "1"),
            ("TOKENGATE_HEADER_READ_TIMEOUT", "60"),
        ],
    )
    .await;
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(&process.addr).await.expect("connect");
        stream
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: t\r\n")
            .await
            .expect("partial head");
        stalled.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    process.terminate();
    let took = process.exit_within(Duration::from_secs(8)).await;
    assert!(took < Duration::from_secs(8));
}

#[sqlx::test]
async fn slowloris_connections_are_closed_while_normal_clients_are_served(db: PgPool) {
    let mut process = start(
        &database_url(&db),
        &[("TOKENGATE_HEADER_READ_TIMEOUT", "1")],
    )
    .await;
    let mut slow = TcpStream::connect(&process.addr).await.expect("connect");
    slow.write_all(b"GET /health/live HTTP/1.1\r\nHost: t\r\n")
        .await
        .expect("partial head");
    let client = reqwest::Client::new();
    let live = client
        .get(process.url("/health/live"))
        .send()
        .await
        .expect("live");
    assert_eq!(live.status(), 200);
    // Within a few seconds the stalled connection is closed by the server.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the stalled connection was never closed");
    // The timeout also ends idle keep-alive connections, so ask on a new one.
    let live = reqwest::Client::new()
        .get(process.url("/health/live"))
        .send()
        .await
        .expect("live");
    assert_eq!(live.status(), 200);
    process.terminate();
    process.exit_within(Duration::from_secs(10)).await;
}

/// Every request and response of the scenario, to search for secrets afterwards.
struct Recorder {
    client: reqwest::Client,
    base: String,
    /// (secret, index of the response that revealed it)
    secrets: Vec<(String, usize)>,
    responses: Vec<String>,
}

impl Recorder {
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let text = request
            .send()
            .await
            .expect("send")
            .text()
            .await
            .expect("text");
        self.responses.push(text.clone());
        serde_json::from_str(&text).expect("json")
    }

    /// Remembers a secret revealed by the last response (or chosen by us: index of the next).
    fn secret(&mut self, secret: &str, revealed_by_last: bool) {
        let index = if revealed_by_last {
            self.responses.len() - 1
        } else {
            self.responses.len()
        };
        self.secrets.push((secret.to_owned(), index));
    }
}

#[sqlx::test]
async fn no_secret_reaches_the_logs_at_trace_or_any_later_response(db: PgPool) {
    let url = database_url(&db);
    let mut bootstrap = std::process::Command::new(BIN)
        .args([
            "bootstrap",
            "--org",
            "Acme",
            "--email",
            "owner@example.test",
            "--name",
            "O",
            "--password-stdin",
        ])
        .env("DATABASE_URL", &url)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("bootstrap");
    bootstrap
        .stdin
        .take()
        .expect("stdin")
        .write_all_sync(PASSWORD.as_bytes());
    assert!(bootstrap.wait().expect("wait").success());

    let mut process = start(&url, &[("RUST_LOG", "trace")]).await;
    let mut r = Recorder {
        client: reqwest::Client::new(),
        base: format!("http://{}", process.addr),
        secrets: Vec::new(),
        responses: Vec::new(),
    };
    r.secret(PASSWORD, false);
    let login = r
        .call(
            Method::POST,
            "/api/v1/identity/login",
            None,
            Some(json!({ "email": "owner@example.test", "password": PASSWORD })),
        )
        .await;
    let session = login["data"]["token"].as_str().expect("session").to_owned();
    r.secret(&session, true);
    let dev_password = "developer passphrase";
    r.secret(dev_password, false);
    r.call(
        Method::POST,
        "/api/v1/members",
        Some(&session),
        Some(json!({ "email": "dev@example.test", "name": "Dev", "password": dev_password })),
    )
    .await;
    let pat = r
        .call(
            Method::POST,
            "/api/v1/access-tokens",
            Some(&session),
            Some(json!({ "name": "pat", "type": "Personal" })),
        )
        .await;
    let pat_id = pat["data"]["id"].as_str().expect("id").to_owned();
    let pat = pat["data"]["token"].as_str().expect("secret").to_owned();
    r.secret(&pat, true);
    let sat = r
        .call(Method::POST, "/api/v1/access-tokens", Some(&session),
              Some(json!({ "name": "sat", "type": "Service", "permissions": [{ "resourceType": "flag",
                  "effect": "allow", "actions": ["*"], "resources": ["project/*:env/*:flag/*"] }] })))
        .await;
    let sat_id = sat["data"]["id"].as_str().expect("id").to_owned();
    let sat = sat["data"]["token"].as_str().expect("secret").to_owned();
    r.secret(&sat, true);
    for bearer in [&pat, &sat, &session] {
        r.call(Method::GET, "/api/v1/auth/whoami", Some(bearer), None)
            .await;
        r.call(Method::POST, "/api/v1/auth/check", Some(bearer),
               Some(json!({ "checks": [{ "action": "ManageFeatureFlag", "resource": "project/a:env/b:flag/c" }] })))
            .await;
        r.call(Method::GET, "/api/v1/access-tokens", Some(bearer), None)
            .await;
    }
    let rotated = r
        .call(
            Method::POST,
            &format!("/api/v1/access-tokens/{pat_id}/rotate"),
            Some(&session),
            Some(json!({ "oldTokenExpiresInSeconds": 60 })),
        )
        .await;
    let rotated = rotated["data"]["token"]
        .as_str()
        .expect("secret")
        .to_owned();
    r.secret(&rotated, true);
    r.call(Method::GET, "/api/v1/auth/whoami", Some(&rotated), None)
        .await;
    r.call(Method::GET, "/api/v1/auth/whoami", Some(&pat), None)
        .await;
    let new_password = "a new owner passphrase";
    r.secret(new_password, false);
    r.call(
        Method::PUT,
        "/api/v1/user/password",
        Some(&session),
        Some(json!({ "currentPassword": PASSWORD, "newPassword": new_password })),
    )
    .await;
    r.call(
        Method::POST,
        &format!("/api/v1/access-tokens/{sat_id}/deactivate"),
        Some(&session),
        Some(json!({})),
    )
    .await;
    r.call(Method::GET, "/api/v1/auth/whoami", Some(&sat), None)
        .await;
    r.call(
        Method::DELETE,
        &format!("/api/v1/access-tokens/{sat_id}"),
        Some(&session),
        None,
    )
    .await;
    r.call(Method::GET, "/api/v1/auth/whoami", Some(&sat), None)
        .await;
    r.call(
        Method::GET,
        "/api/v1/audit-logs?pageSize=100",
        Some(&session),
        None,
    )
    .await;
    r.call(
        Method::GET,
        "/api/v1/access-tokens?pageSize=100",
        Some(&session),
        None,
    )
    .await;
    r.call(
        Method::POST,
        "/api/v1/identity/login",
        None,
        Some(json!({ "email": "owner@example.test", "password": "wrong guess 123" })),
    )
    .await;

    process.terminate();
    process.exit_within(Duration::from_secs(10)).await;
    let logs = process.logs();
    // The logs did record the traffic (so the search below means something)…
    assert!(
        logs.contains("/api/v1/access-tokens"),
        "no request logs at trace"
    );
    assert!(logs.lines().count() > 50, "suspiciously few log lines");
    for (secret, revealed_at) in &r.secrets {
        // The body part of a credential is what matters; the prefix alone is not secret.
        let needle = secret.get(4..).filter(|s| s.len() >= 16).unwrap_or(secret);
        assert!(
            !logs.contains(needle),
            "a secret reached the logs: …{}",
            &needle[..6]
        );
        for (i, response) in r.responses.iter().enumerate() {
            if i != *revealed_at {
                assert!(
                    !response.contains(needle),
                    "a secret reappeared in response {i}"
                );
            }
        }
    }
    assert!(!logs.to_ascii_lowercase().contains("authorization: "));
}

trait WriteAllSync {
    fn write_all_sync(self, bytes: &[u8]);
}

impl WriteAllSync for std::process::ChildStdin {
    fn write_all_sync(mut self, bytes: &[u8]) {
        std::io::Write::write_all(&mut self, bytes).expect("write stdin");
    }
}
