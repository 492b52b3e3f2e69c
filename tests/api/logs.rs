//! Text logs written anywhere but a terminal are plain text: no terminal colour codes in a file.

use std::process::Stdio;
use std::time::Duration;

use sqlx::PgPool;

use crate::process::database_url;

const BIN: &str = env!("CARGO_BIN_EXE_tokengate");

#[sqlx::test]
async fn text_logs_to_a_file_carry_no_colour_codes(db: PgPool) {
    let path = std::env::temp_dir().join(format!("tokengate-{}.log", uuid::Uuid::new_v4()));
    let file = std::fs::File::create(&path).expect("log file");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut child = tokio::process::Command::new(BIN)
        .arg("serve")
        .env("DATABASE_URL", database_url(&db))
        .env(
            "TOKENGATE_HASH_KEY",
            tokengate::credential::HashKey::generate_base64(),
        )
        .env("TOKENGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("TOKENGATE_LOG_FORMAT", "text")
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(Stdio::from(file))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn tokengate");
    let url = format!("http://127.0.0.1:{port}/health/ready");
    let mut ready = false;
    for _ in 0..300 {
        if let Ok(answer) = reqwest::get(&url).await {
            if answer.status() == 200 {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "the service did not become ready");
    let pid = child.id().expect("running").to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exit in time")
        .expect("wait");
    let logs = std::fs::read(&path).expect("read logs");
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&logs);
    assert!(text.contains("listening"), "{text}");
    assert!(
        text.contains("/health/ready"),
        "request lines logged: {text}"
    );
    assert!(
        !logs.contains(&0x1b),
        "an ESC byte in the log file: {text:?}"
    );
}
