//! What the logs of the real binary look like in a file: plain text without terminal colour
//! codes, naming the hash keys by id only.

use std::process::Stdio;
use std::time::Duration;

use sqlx::PgPool;

use crate::process::database_url;

const BIN: &str = env!("CARGO_BIN_EXE_tokengate");

#[sqlx::test]
async fn text_logs_to_a_file_carry_no_colour_codes(db: PgPool) {
    let key = tokengate::credential::HashKey::generate_base64();
    let key_id = tokengate::credential::HashKey::from_base64(&key)
        .expect("key")
        .id()
        .to_string();
    let path = std::env::temp_dir().join(format!("tokengate-{}.log", uuid::Uuid::new_v4()));
    let file = std::fs::File::create(&path).expect("log file");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut child = tokio::process::Command::new(BIN)
        .arg("serve")
        .env("DATABASE_URL", database_url(&db))
        .env("TOKENGATE_HASH_KEY", &key)
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
    // Which key it uses, by its id (as `tokengate key-status` names it), never the key.
    assert!(
        text.contains("hash keys") && text.contains(&key_id),
        "{text}"
    );
    assert!(!text.contains(&key), "the key was logged");
    assert!(
        text.contains("/health/ready"),
        "request lines logged: {text}"
    );
    assert!(
        !logs.contains(&0x1b),
        "an ESC byte in the log file: {text:?}"
    );
}
