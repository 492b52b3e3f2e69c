use super::*;

fn token(id: Uuid, org: Uuid) -> Arc<CachedToken> {
    token_by(id, org, Uuid::nil())
}

fn token_by(id: Uuid, org: Uuid, creator: Uuid) -> Arc<CachedToken> {
    Arc::new(CachedToken {
        id,
        organization_id: org,
        kind: TokenKind::Service,
        status: TokenStatus::Active,
        expires_at: None,
        grace_ends_at: None,
        creator_id: creator,
        frozen: Arc::new(Vec::new()),
        scope: None,
        last_noted: AtomicI64::new(0),
    })
}

fn live() -> Arc<LiveEntry> {
    Arc::new(LiveEntry {
        is_member: true,
        statements: Arc::new(Vec::new()),
    })
}

fn session(user: Uuid) -> Arc<CachedSession> {
    Arc::new(CachedSession {
        user: SessionUser {
            session_id: Uuid::new_v4(),
            user_id: user,
            email: "a@example.test".into(),
            name: "a".into(),
            expires_at: Utc::now() + chrono::Duration::hours(1),
        },
        organizations: Vec::new(),
    })
}

fn enabled() -> Caches {
    let caches = Caches::new(CacheConfig::default());
    caches.set_enabled(true);
    caches
}

#[test]
fn nothing_is_cached_while_the_listener_is_down() {
    let caches = Caches::new(CacheConfig::default());
    let g = caches.generation();
    caches.insert_token(
        g,
        Digest([1; 32]),
        Some(token(Uuid::new_v4(), Uuid::new_v4())),
    );
    caches.insert_session(g, Digest([1; 32]), session(Uuid::new_v4()));
    assert!(matches!(caches.token(&Digest([1; 32])), TokenLookup::Miss));
    assert!(caches.session(&Digest([1; 32])).is_none());
}

#[test]
fn a_read_that_raced_an_invalidation_is_not_inserted() {
    let caches = enabled();
    let id = Uuid::new_v4();
    let g = caches.generation();
    caches.drop_token(id);
    caches.insert_token(g, Digest([2; 32]), Some(token(id, Uuid::new_v4())));
    caches.insert_session(g, Digest([2; 32]), session(Uuid::new_v4()));
    assert!(matches!(caches.token(&Digest([2; 32])), TokenLookup::Miss));
    assert!(caches.session(&Digest([2; 32])).is_none());
}

#[test]
fn invalidation_drops_the_token_and_forgets_unknown_digests() {
    let caches = enabled();
    let (id, org) = (Uuid::new_v4(), Uuid::new_v4());
    let g = caches.generation();
    caches.insert_token(g, Digest([3; 32]), Some(token(id, org)));
    caches.insert_token(g, Digest([4; 32]), None);
    caches.insert_token(g, Digest([9; 32]), Some(token(Uuid::new_v4(), org)));
    assert!(matches!(
        caches.token(&Digest([3; 32])),
        TokenLookup::Hit(_)
    ));
    assert!(matches!(
        caches.token(&Digest([4; 32])),
        TokenLookup::KnownUnknown
    ));
    // A rotated token is cached under two digests; both go.
    caches.insert_token(g, Digest([8; 32]), Some(token(id, org)));
    caches.drop_token(id);
    assert!(matches!(caches.token(&Digest([3; 32])), TokenLookup::Miss));
    assert!(matches!(caches.token(&Digest([8; 32])), TokenLookup::Miss));
    assert!(matches!(caches.token(&Digest([4; 32])), TokenLookup::Miss));
    assert!(matches!(
        caches.token(&Digest([9; 32])),
        TokenLookup::Hit(_)
    ));
}

#[test]
fn organization_invalidation_drops_its_tokens_and_live_permissions_only() {
    let caches = enabled();
    let (org, other) = (Uuid::new_v4(), Uuid::new_v4());
    let user = Uuid::new_v4();
    let g = caches.generation();
    caches.insert_token(g, Digest([5; 32]), Some(token(Uuid::new_v4(), org)));
    caches.insert_token(g, Digest([6; 32]), Some(token(Uuid::new_v4(), other)));
    caches.insert_live(g, org, user, live());
    caches.insert_live(g, other, user, live());
    caches.drop_organization(org);
    assert!(matches!(caches.token(&Digest([5; 32])), TokenLookup::Miss));
    assert!(matches!(
        caches.token(&Digest([6; 32])),
        TokenLookup::Hit(_)
    ));
    assert!(caches.live(org, user).is_none());
    assert!(caches.live(other, user).is_some());
}

#[test]
fn member_invalidation_drops_only_the_named_members() {
    let caches = enabled();
    let org = Uuid::new_v4();
    let users: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    let g = caches.generation();
    for user in &users {
        caches.insert_live(g, org, *user, live());
    }
    caches.insert_token(
        g,
        Digest([7; 32]),
        Some(token_by(Uuid::new_v4(), org, users[0])),
    );
    caches.drop_members(org, &users[..2]);
    assert!(caches.live(org, users[0]).is_none());
    assert!(caches.live(org, users[1]).is_none());
    assert!(caches.live(org, users[2]).is_some());
    assert!(caches.live(org, users[3]).is_some());
    // Frozen layers do not depend on live permissions.
    assert!(matches!(
        caches.token(&Digest([7; 32])),
        TokenLookup::Hit(_)
    ));
}

#[test]
fn membership_invalidation_drops_the_members_live_permissions_and_sessions() {
    let caches = enabled();
    let (org, user, other) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let g = caches.generation();
    caches.insert_live(g, org, user, live());
    caches.insert_live(g, org, other, live());
    caches.insert_token(
        g,
        Digest([1; 32]),
        Some(token_by(Uuid::new_v4(), org, user)),
    );
    caches.insert_token(
        g,
        Digest([2; 32]),
        Some(token_by(Uuid::new_v4(), org, other)),
    );
    caches.insert_session(g, Digest([3; 32]), session(user));
    caches.insert_session(g, Digest([4; 32]), session(other));
    caches.drop_membership(org, user);
    assert!(caches.live(org, user).is_none());
    // Their tokens go by id, when the removal names them.
    assert!(matches!(
        caches.token(&Digest([1; 32])),
        TokenLookup::Hit(_)
    ));
    assert!(caches.session(&Digest([3; 32])).is_none());
    assert!(caches.live(org, other).is_some());
    assert!(matches!(
        caches.token(&Digest([2; 32])),
        TokenLookup::Hit(_)
    ));
    assert!(caches.session(&Digest([4; 32])).is_some());
    // A fresh read after the invalidation is cached again.
    let g = caches.generation();
    caches.insert_session(g, Digest([3; 32]), session(user));
    assert!(caches.session(&Digest([3; 32])).is_some());
    caches.drop_sessions(user);
    assert!(caches.session(&Digest([3; 32])).is_none());
    assert!(caches.session(&Digest([4; 32])).is_some());
}

#[test]
fn entries_are_bounded_and_evicted_one_by_one() {
    let caches = Caches::new(CacheConfig {
        max_entries: 50,
        ..CacheConfig::default()
    });
    caches.set_enabled(true);
    let g = caches.generation();
    for i in 0..200u8 {
        caches.insert_token(g, Digest([i; 32]), Some(token(Uuid::new_v4(), Uuid::nil())));
    }
    let sizes = caches.sizes();
    assert!(sizes.tokens <= 50, "{sizes:?}");
    // The id index forgets what was evicted.
    let indexed = caches.index.lock().map(|i| i.len()).unwrap_or(usize::MAX);
    assert!(indexed <= 100, "{indexed}");
    assert!(sizes.tokens > 0, "{sizes:?}");
    assert!(caches.evictions() > 0);
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

#[test]
fn dropped_members_that_were_cached_are_queued_to_be_read_again() {
    let caches = enabled();
    let mut inbox = caches.refreshes.take_inbox().expect("inbox");
    let org = Uuid::new_v4();
    let (cached, uncached) = (Uuid::new_v4(), Uuid::new_v4());
    let g = caches.generation();
    caches.insert_live(g, org, cached, live());
    caches.drop_members(org, &[cached, uncached]);
    assert!(caches.live(org, cached).is_none());
    assert!(caches.refreshes.awaited((org, uncached)).is_none());
    // A change while the batch is only queued leaves it: it will read after the change.
    caches.drop_members(org, &[cached]);
    let batch = block_on(caches.refreshes.next(&mut inbox)).expect("a batch");
    assert_eq!(batch.members, vec![(org, cached)]);
    assert!(inbox.try_recv().is_err(), "one batch");
    let mut waiting = caches.refreshes.awaited((org, cached)).expect("awaited");
    caches.insert_refreshed(&batch, vec![((org, cached), live())]);
    assert!(caches.live(org, cached).is_some());
    caches.refreshes.finished(batch);
    assert!(caches.refreshes.awaited((org, cached)).is_none());
    // Whoever waited is woken: the batch's end closes the channel.
    assert!(block_on(waiting.changed()).is_err());
}

#[test]
fn a_member_a_request_waits_for_is_read_before_the_queue() {
    let caches = enabled();
    let mut inbox = caches.refreshes.take_inbox().expect("inbox");
    let org = Uuid::new_v4();
    let users: Vec<Uuid> = (0..400).map(|_| Uuid::new_v4()).collect();
    for user in &users {
        caches.insert_live(caches.generation(), org, *user, live());
    }
    caches.drop_members(org, &users);
    // Four batches queued; a request for the last member asks for it to be read first, and
    // the round trip is filled up from the queue (one batch for one waiting request).
    let last = (org, users[399]);
    let mut waiting = caches.refreshes.awaited(last).expect("awaited");
    let first = block_on(caches.refreshes.next(&mut inbox)).expect("a batch");
    assert_eq!(first.members[0], last);
    assert_eq!(first.members.len(), 101);
    caches.insert_refreshed(&first, vec![(last, live())]);
    caches.refreshes.finished(first);
    assert!(block_on(waiting.changed()).is_err());
    assert!(caches.live(org, users[399]).is_some());
    // Then the rest of the queue, batch by batch; the last no longer holds the member read
    // first.
    for _ in 0..2 {
        let batch = block_on(caches.refreshes.next(&mut inbox)).expect("queued");
        assert_eq!(batch.members.len(), 100);
    }
    let rest = block_on(caches.refreshes.next(&mut inbox)).expect("queued");
    assert!(rest.members.contains(&last));
    assert!(inbox.try_recv().is_err());
    caches.live.remove(&last);
    caches.insert_refreshed(&rest, vec![(last, live())]);
    assert!(caches.live(org, users[399]).is_none());
}

#[test]
fn a_batch_that_read_before_a_change_inserts_nothing() {
    let caches = enabled();
    let mut inbox = caches.refreshes.take_inbox().expect("inbox");
    let (org, user) = (Uuid::new_v4(), Uuid::new_v4());
    caches.insert_live(caches.generation(), org, user, live());
    caches.drop_members(org, &[user]);
    let first = block_on(caches.refreshes.next(&mut inbox)).expect("a batch");
    // Changed while the first batch reads: its ticket goes, and the member is queued again.
    caches.drop_members(org, &[user]);
    caches.insert_refreshed(&first, vec![((org, user), live())]);
    assert!(caches.live(org, user).is_none());
    caches.refreshes.finished(first);
    let second = block_on(caches.refreshes.next(&mut inbox)).expect("queued again");
    assert!(
        caches.refreshes.awaited((org, user)).is_some(),
        "the second batch's"
    );
    // A removal from the organization takes the second batch's ticket too.
    caches.drop_membership(org, user);
    assert!(caches.refreshes.awaited((org, user)).is_none());
    caches.insert_refreshed(&second, vec![((org, user), live())]);
    assert!(caches.live(org, user).is_none());
}

#[test]
fn entries_expire_after_their_ttl() {
    let caches = Caches::new(CacheConfig {
        negative_ttl: Duration::from_millis(50),
        ..CacheConfig::default()
    });
    caches.set_enabled(true);
    let g = caches.generation();
    caches.insert_token(g, Digest([1; 32]), Some(token(Uuid::new_v4(), Uuid::nil())));
    caches.insert_token(g, Digest([2; 32]), None);
    assert!(matches!(
        caches.token(&Digest([2; 32])),
        TokenLookup::KnownUnknown
    ));
    std::thread::sleep(Duration::from_millis(100));
    // The unknown digest's 50 ms are over; the token's 30 s are not.
    assert!(matches!(caches.token(&Digest([2; 32])), TokenLookup::Miss));
    assert!(matches!(
        caches.token(&Digest([1; 32])),
        TokenLookup::Hit(_)
    ));
}
