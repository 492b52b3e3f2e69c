//! argon2id password hashing off the async runtime, on a bounded number of idle-class threads
//! with a bounded queue, so a login storm can neither take every core, nor delay token
//! verification, nor make every login wait behind it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;

pub const MIN_PASSWORD_LEN: usize = 8;
/// Long enough for any passphrase, short enough that hashing it costs nothing extra.
pub const MAX_PASSWORD_LEN: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyError {
    #[error("password is too short")]
    TooShort,
    #[error("password is too long")]
    TooLong,
}

/// Why a hash or verification was not done.
#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    /// Nothing was hashed: as many hashes as the queue holds are already waiting.
    #[error("the password hashing queue is full")]
    Busy,
    #[error("the password hashing threads have stopped")]
    Stopped,
    #[error("argon2 hashing failed: {0}")]
    Failed(String),
}

#[derive(Clone)]
pub struct PasswordHasher {
    /// The queue of the hashing threads; they stop when the last clone is dropped.
    jobs: mpsc::Sender<Job>,
    /// Jobs sent and not yet taken by a thread.
    waiting: Arc<AtomicUsize>,
    /// Beyond this many waiting jobs, new ones are refused (`HashingError::Busy`).
    max_waiting: usize,
    /// Set once, by `pace`: read by the hashing threads after every job.
    pacing: Arc<OnceLock<Pacing>>,
    /// Verified against when the email is unknown, so that costs the same as a wrong password.
    dummy_hash: Arc<str>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher").finish_non_exhaustive()
    }
}

/// SPEC §3: argon2id, m = 19456 KiB, t = 2, p = 1 (OWASP's minimum).
fn argon2() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None)
        .unwrap_or_else(|_| unreachable!("constant argon2 parameters are valid"));
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &str) -> Result<String, HashingError> {
    let salt = SaltString::generate(&mut OsRng);
    let hash = argon2()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| HashingError::Failed(e.to_string()))?;
    Ok(hash.to_string())
}

fn verify_blocking(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

pub fn check_policy(password: &str) -> Result<(), PasswordPolicyError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_LEN {
        Err(PasswordPolicyError::TooShort)
    } else if chars > MAX_PASSWORD_LEN {
        Err(PasswordPolicyError::TooLong)
    } else {
        Ok(())
    }
}

/// A hashing job: runs on one of the hashing threads.
type Job = Box<dyn FnOnce() + Send>;

/// Token verifications per second, on this process, from which verification counts as busy.
const BUSY_VERIFICATIONS_PER_SECOND: f64 = 1000.0;

/// The least share of its threads' time hashing keeps, however busy verification is: logins
/// slow down under load, they never stop.
pub const MIN_HASH_SHARE: f64 = 0.1;

/// Holds hashing to a share of its threads' time while token verification is busy
/// (`PasswordHasher::pace`).
struct Pacing {
    /// A count that grows by one with every token verification of this process.
    verifications: Box<dyn Fn() -> u64 + Send + Sync>,
    share: f64,
}

/// How long a hashing thread rests after a hash that took `took`, during which `verifications`
/// token verifications ran: not at all while verification is quiet; while it is busy, long
/// enough that hashing takes `share` of the thread's time (never less than `MIN_HASH_SHARE`).
pub fn rest_after(took: Duration, verifications: u64, share: f64) -> Duration {
    let secs = took.as_secs_f64();
    let busy = secs > 0.0 && verifications as f64 >= BUSY_VERIFICATIONS_PER_SECOND * secs;
    if !busy || share >= 1.0 {
        return Duration::ZERO;
    }
    took.mul_f64(1.0 / share.max(MIN_HASH_SHARE) - 1.0)
}

/// Starts `count` hashing threads that take jobs from one queue until every sender is gone.
fn start_hashing_threads(
    count: usize,
    waiting: &Arc<AtomicUsize>,
    pacing: &Arc<OnceLock<Pacing>>,
) -> anyhow::Result<mpsc::Sender<Job>> {
    let (sender, receiver) = mpsc::channel::<Job>();
    let receiver = Arc::new(Mutex::new(receiver));
    for n in 0..count {
        let receiver = receiver.clone();
        let waiting = waiting.clone();
        let pacing = pacing.clone();
        std::thread::Builder::new()
            .name(format!("tokengate-hash-{n}"))
            .spawn(move || {
                idle_scheduling();
                loop {
                    // The lock is held only while waiting for the next job, never while hashing.
                    let job = match receiver.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    waiting.fetch_sub(1, Ordering::SeqCst);
                    let Some(pacing) = pacing.get() else {
                        job();
                        continue;
                    };
                    let (started, before) = (Instant::now(), (pacing.verifications)());
                    job();
                    let during = (pacing.verifications)().saturating_sub(before);
                    let rest = rest_after(started.elapsed(), during, pacing.share);
                    if !rest.is_zero() {
                        std::thread::sleep(rest);
                    }
                }
            })?;
    }
    Ok(sender)
}

/// Puts the calling thread in Linux's idle scheduling class (`SCHED_IDLE`): while the cores
/// are busy it runs in what the other threads leave, and the kernel preempts it as soon as a
/// request thread wakes, so a hash never holds a core a verification is waiting for. With the
/// pacing, this is what keeps a login storm out of verification's p99 (docs/benchmarks.md says
/// by how much). Where the class cannot be set, hashing runs at normal priority and says so.
fn idle_scheduling() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::unix::{
            set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
            ThreadSchedulePolicy,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        let set = set_thread_priority_and_policy(
            thread_native_id(),
            thread_priority::ThreadPriority::Min,
            idle,
        );
        if let Err(e) = set {
            tracing::warn!(error = ?e, "password hashing runs at normal priority");
        }
    }
}

impl PasswordHasher {
    /// `max_concurrent` hashes run at once, on as many dedicated threads; argon2 throughput
    /// halves beyond the core count. Up to `max_waiting` more wait for a thread; beyond that a
    /// request is refused at once (`HashingError::Busy`) rather than made to wait behind a
    /// flood.
    pub fn new(max_concurrent: usize, max_waiting: usize) -> anyhow::Result<Self> {
        let dummy = hash_blocking("tokengate-timing-equaliser")?;
        let waiting = Arc::new(AtomicUsize::new(0));
        let pacing = Arc::new(OnceLock::new());
        Ok(PasswordHasher {
            jobs: start_hashing_threads(max_concurrent.max(1), &waiting, &pacing)?,
            waiting,
            max_waiting,
            pacing,
            dummy_hash: dummy.into(),
        })
    }

    /// While token verification is busy (`verifications` counts them), hashing takes at most
    /// `share` of its threads' time: a hash filling the gaps a saturated core leaves costs
    /// verification its tail latency (docs/benchmarks.md). Logins then slow down; they never
    /// stop (`MIN_HASH_SHARE`). Once per hasher; `share` ≥ 1 paces nothing.
    pub fn pace(&self, share: f64, verifications: impl Fn() -> u64 + Send + Sync + 'static) {
        let _ = self.pacing.set(Pacing {
            verifications: Box::new(verifications),
            share,
        });
    }

    pub fn check_policy(password: &str) -> Result<(), PasswordPolicyError> {
        check_policy(password)
    }

    /// Runs `work` on a hashing thread and waits for its result without blocking the runtime;
    /// `Busy` at once when the queue is full.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashingError> {
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(HashingError::Busy);
        }
        let (done, result) = tokio::sync::oneshot::channel();
        let sent = self.jobs.send(Box::new(move || {
            // A caller that has gone while the job queued (a client disconnect during a
            // login storm) gets no hash: the thread moves on to one that is awaited.
            if !done.is_closed() {
                let _ = done.send(work());
            }
        }));
        if sent.is_err() {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(HashingError::Stopped);
        }
        result.await.map_err(|_| HashingError::Stopped)
    }

    pub async fn hash(&self, password: String) -> Result<String, HashingError> {
        self.run(move || hash_blocking(&password)).await?
    }

    /// Verifies `password` against `phc`, or against a dummy hash when there is no user, so an
    /// unknown email and a wrong password cost the same.
    pub async fn verify(
        &self,
        password: String,
        phc: Option<String>,
    ) -> Result<bool, HashingError> {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy_hash.to_string());
        let ok = self.run(move || verify_blocking(&password, &phc)).await?;
        Ok(known && ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_in_the_idle_scheduling_class() {
        use thread_priority::unix::{
            thread_schedule_policy, NormalThreadSchedulePolicy, ThreadSchedulePolicy,
        };
        let hasher = PasswordHasher::new(1, 8).expect("hasher");
        let policy = hasher
            .run(thread_schedule_policy)
            .await
            .expect("ran")
            .expect("policy");
        assert_eq!(
            policy,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle)
        );
        // The thread that made the hasher keeps its own class.
        assert_eq!(
            thread_schedule_policy().expect("policy"),
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other)
        );
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = PasswordHasher::new(2, 8).expect("hasher");
        let phc = hasher.hash("correct horse".into()).await.expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(hasher
            .verify("correct horse".into(), Some(phc.clone()))
            .await
            .expect("verify"));
        assert!(!hasher
            .verify("wrong horse".into(), Some(phc))
            .await
            .expect("verify"));
        assert!(!hasher
            .verify("tokengate-timing-equaliser".into(), None)
            .await
            .expect("verify"));
    }

    #[test]
    fn hashing_rests_only_while_verification_is_busy() {
        let hash = Duration::from_millis(20);
        // 1,000 verifications a second is busy: 20 of them during a 20 ms hash.
        assert_eq!(rest_after(hash, 19, 0.5), Duration::ZERO);
        assert_eq!(rest_after(hash, 20, 0.5), hash);
        assert_eq!(rest_after(hash, 1_000_000, 0.25), hash * 3);
        // Never below the minimum share, and a share of 1 paces nothing.
        assert_eq!(rest_after(hash, 1_000_000, 0.0), hash * 9);
        assert_eq!(rest_after(hash, 1_000_000, 1.0), Duration::ZERO);
        assert_eq!(rest_after(Duration::ZERO, 5, 0.5), Duration::ZERO);
    }

    /// The hashing thread reads the verification count around every job once paced.
    #[tokio::test]
    async fn a_paced_hasher_counts_verifications_around_every_job() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let hasher = PasswordHasher::new(1, 8).expect("hasher");
        let reads = Arc::new(AtomicU64::new(0));
        let counter = reads.clone();
        hasher.pace(0.5, move || counter.fetch_add(1, Ordering::SeqCst));
        for _ in 0..3 {
            hasher.run(|| ()).await.expect("job ran");
        }
        // Before and after each job; the last read may land just after the job's answer.
        for _ in 0..500 {
            if reads.load(Ordering::SeqCst) >= 6 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(reads.load(Ordering::SeqCst), 6);
    }

    #[tokio::test]
    async fn hashes_queue_beyond_the_thread_count_and_all_complete() {
        let hasher = PasswordHasher::new(1, 8).expect("hasher");
        let names = (0..4).map(|_| hasher.run(|| std::thread::current().name().map(str::to_owned)));
        let names = futures::future::join_all(names).await;
        for name in names {
            assert_eq!(name.expect("job ran").as_deref(), Some("tokengate-hash-0"));
        }
    }

    #[tokio::test]
    async fn a_job_whose_caller_has_gone_is_skipped() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let hasher = PasswordHasher::new(1, 8).expect("hasher");
        // Hold the only thread until released.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let started = Arc::new(AtomicBool::new(false));
        let (holder, holder_started) = (hasher.clone(), started.clone());
        let holding = tokio::spawn(async move {
            holder
                .run(move || {
                    holder_started.store(true, Ordering::SeqCst);
                    held.recv().is_ok()
                })
                .await
        });
        while !started.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        // Queued behind it, then abandoned by its caller.
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let abandoned = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            hasher.run(move || flag.store(true, Ordering::SeqCst)),
        )
        .await;
        assert!(abandoned.is_err(), "the job should still be queued");
        release.send(()).expect("holder waiting");
        assert!(holding.await.expect("joined").expect("job ran"));
        // The queue is in order: once this one has run, the abandoned one has been passed.
        hasher.run(|| ()).await.expect("job ran");
        assert!(
            !ran.load(Ordering::SeqCst),
            "an abandoned hash was computed"
        );
    }

    #[tokio::test]
    async fn beyond_the_waiting_room_a_hash_is_refused_at_once_and_nothing_is_lost() {
        use std::sync::atomic::AtomicBool;
        let hasher = PasswordHasher::new(1, 2).expect("hasher");
        // Hold the only thread until released.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let started = Arc::new(AtomicBool::new(false));
        let (holder, holder_started) = (hasher.clone(), started.clone());
        let holding = tokio::spawn(async move {
            holder
                .run(move || {
                    holder_started.store(true, Ordering::SeqCst);
                    held.recv().is_ok()
                })
                .await
        });
        while !started.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let waiters: Vec<_> = (0..2)
            .map(|n| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.run(move || n).await })
            })
            .collect();
        while hasher.waiting.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(matches!(
            hasher.verify("a password".into(), None).await,
            Err(HashingError::Busy)
        ));
        release.send(()).expect("holder waiting");
        assert!(holding.await.expect("joined").expect("job ran"));
        for (n, waiter) in waiters.into_iter().enumerate() {
            assert_eq!(waiter.await.expect("joined").expect("job ran"), n);
        }
        assert_eq!(hasher.waiting.load(Ordering::SeqCst), 0);
        hasher.hash("a password".into()).await.expect("room again");
    }

    #[test]
    fn password_policy_bounds_length() {
        assert_eq!(check_policy("short"), Err(PasswordPolicyError::TooShort));
        assert_eq!(
            check_policy(&"x".repeat(257)),
            Err(PasswordPolicyError::TooLong)
        );
        assert!(check_policy("long enough").is_ok());
    }
}
