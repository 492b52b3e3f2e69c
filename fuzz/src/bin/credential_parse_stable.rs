//! The credential-parser checks of `fuzz_targets/credential_parse.rs` without libFuzzer, for a
//! stable toolchain (no coverage guidance: generated inputs, biased towards near-credentials).
//!
//!   cargo run --release --manifest-path fuzz/Cargo.toml --no-default-features \
//!       --bin credential_parse_stable -- [--iterations N] [--seconds S] [--seed X] [PATH...]
//!
//! With PATHs (files, or directories of files: a cargo-fuzz corpus or crash artifacts) it checks
//! each file's bytes. Otherwise it runs N generated inputs (default 1 000 000), stopping early after
//! S seconds (default 60). A failure prints the input and writes it to
//! `fuzz/artifacts/credential_parse/stable-crash-<hash>`, which `cargo fuzz run credential_parse
//! <file>` (or this runner, given the path) replays. Exit status 0 when every input passed.

use std::hash::{BuildHasher, Hasher};
use std::panic;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tokengate_fuzz::{check_bytes, model};

/// xorshift64*: small, deterministic for a seed, good enough to pick inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

const NEAR: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_tgpswx -+/=.\xc3\xa9\xe2\x80\xa6";

/// One input: random bytes, strings over a near-credential alphabet around the right length,
/// well-formed credentials with a few bytes changed, or invalid UTF-8 around a credential.
fn generate(rng: &mut Rng) -> Vec<u8> {
    match rng.below(5) {
        0 => {
            let len = rng.below(80);
            rng.bytes(len)
        }
        1 => {
            let len = 49 + rng.below(8);
            let mut v: Vec<u8> = match rng.below(4) {
                0 => b"tgp_".to_vec(),
                1 => b"tgs_".to_vec(),
                2 => b"tgw_".to_vec(),
                _ => Vec::new(),
            };
            while v.len() < len {
                v.push(NEAR[rng.below(NEAR.len())]);
            }
            v
        }
        2 | 3 => {
            let len = 1 + rng.below(50);
            let seed = rng.bytes(len);
            let (good, _) = model::build(&seed);
            let mut v = good.into_bytes();
            for _ in 0..rng.below(3) {
                let i = rng.below(v.len());
                v[i] = NEAR[rng.below(NEAR.len())];
            }
            // The trailing two bytes steer check_bytes' own one-character mutation.
            v.extend(rng.bytes(2));
            v
        }
        _ => {
            let seed = rng.bytes(44);
            let (good, _) = model::build(&seed);
            let mut v = good.into_bytes();
            let i = rng.below(v.len());
            v.insert(i, 0x80 | (rng.next() as u8 & 0x3f)); // a stray continuation byte
            v
        }
    }
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs the checks on one input; on failure reports it and saves it as an artifact.
fn run_one(data: &[u8]) -> bool {
    if panic::catch_unwind(|| check_bytes(data)).is_ok() {
        return true;
    }
    eprintln!("FAILED on input ({} bytes)", data.len());
    eprintln!("  as text: {:?}", String::from_utf8_lossy(data));
    eprintln!("  as hex:  {}", hex(data));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts/credential_parse");
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(data);
    let file = dir.join(format!("stable-crash-{:016x}", h.finish()));
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, data)) {
        Ok(()) => eprintln!("  saved:   {}", file.display()),
        Err(e) => eprintln!("  (could not save it: {e})"),
    }
    false
}

fn files_under(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.path());
        for e in entries {
            files_under(&e.path(), out)?;
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

fn usage() -> ExitCode {
    eprintln!("usage: credential_parse_stable [--iterations N] [--seconds S] [--seed X] [PATH...]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut iterations: u64 = 1_000_000;
    let mut seconds: u64 = 60;
    let mut seed: Option<u64> = None;
    let mut paths = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| match args.next().and_then(|v| v.parse::<u64>().ok()) {
            Some(v) => Ok(v),
            None => {
                eprintln!("{name} needs a non-negative integer");
                Err(())
            }
        };
        match arg.as_str() {
            "--iterations" => match number("--iterations") {
                Ok(v) => iterations = v,
                Err(()) => return usage(),
            },
            "--seconds" => match number("--seconds") {
                Ok(v) => seconds = v,
                Err(()) => return usage(),
            },
            "--seed" => match number("--seed") {
                Ok(v) => seed = Some(v),
                Err(()) => return usage(),
            },
            "-h" | "--help" => {
                usage();
                return ExitCode::SUCCESS;
            }
            _ if arg.starts_with("--") => return usage(),
            _ => paths.push(PathBuf::from(arg)),
        }
    }

    if !paths.is_empty() {
        let mut files = Vec::new();
        for p in &paths {
            if let Err(e) = files_under(p, &mut files) {
                eprintln!("{}: {e}", p.display());
                return ExitCode::from(2);
            }
        }
        let mut failed = 0usize;
        for f in &files {
            match std::fs::read(f) {
                Ok(data) => {
                    if !run_one(&data) {
                        eprintln!("  file:    {}", f.display());
                        failed += 1;
                    }
                }
                Err(e) => {
                    eprintln!("{}: {e}", f.display());
                    return ExitCode::from(2);
                }
            }
        }
        println!(
            "credential_parse_stable: {} files, {failed} failed",
            files.len()
        );
        return if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }

    let seed = seed.unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        t ^ u64::from(std::process::id())
    });
    let mut rng = Rng(seed | 1);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut done = 0u64;
    while done < iterations {
        if done & 1023 == 0 && Instant::now() >= deadline {
            break;
        }
        let data = generate(&mut rng);
        if !run_one(&data) {
            eprintln!("  seed:    {seed} (input #{done})");
            return ExitCode::FAILURE;
        }
        done += 1;
    }
    println!(
        "credential_parse_stable: {done} inputs passed in {:.1}s (seed {seed})",
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
