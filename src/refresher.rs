//! The refresher: one OS thread per session that renews role credentials
//! before they expire and runs the session's background [`Tasks`] (a
//! kmsauth generator's token renewal), and the bounded fan-out that assumes
//! many roles at once.
//!
//! The thread owns only what it needs ([`Shared`]: the client, the policy,
//! the credential slot, the tasks, the event subscribers, the optional cache
//! and MFA provider) and its control receiver, never the `Session`. It waits
//! with `select_biased!` on the control channel first and on the next
//! deadline second (a timer of the session's [`Clock`], or a manual clock's
//! wake-ups, or a change of the task list). It runs while roles can be
//! refreshed or tasks are registered. The one halt signal is
//! disconnection: the session drops the sender, and every wait here (and
//! the clients' retry backoff, STS's and a task's KMS calls alike) sees it.
//! Sleeps are capped by the policy's `max_sleep` and the wall clock is read
//! again on every wake-up, so a suspended laptop does not oversleep an
//! expiry.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{select_biased, Receiver, Sender, TryRecvError};
use time::OffsetDateTime;

use crate::cache::{Cache, CacheUser};
use crate::clock::{Clock, Wakeups};
use crate::credentials::{AccessKey, Credentials};
use crate::error::{Error, Result};
use crate::event::{Event, Subscribers};
use crate::mfa::{panic_message, MfaProvider};
use crate::schedule::{duration_between, RefreshPolicy};
use crate::secret::Secret;
use crate::slot::{RoleSpec, Slot};
use crate::sts::{GetSessionTokenRequest, StsClient};
use crate::tasks::Tasks;

/// The thread's name, as seen in `/proc/self/task/*/comm`.
pub(crate) const THREAD_NAME: &str = "stslib-refresh";

/// What a session and its refresher thread share: everything needed to get
/// and publish credentials, and nothing of the session handle.
pub(crate) struct Shared {
    /// The IAM-user profile (for messages and cache keys).
    pub(crate) profile: String,
    /// The user's long-lived keys, for GetSessionToken.
    pub(crate) user: AccessKey,
    pub(crate) client: StsClient,
    /// The session's clock (the client's too).
    pub(crate) clock: Clock,
    pub(crate) policy: RefreshPolicy,
    pub(crate) mfa_provider: Option<MfaProvider>,
    /// How many AssumeRole calls run at once.
    pub(crate) parallelism: usize,
    pub(crate) cache: Option<Cache>,
    pub(crate) slot: Slot,
    /// Background work run on the thread beside role refreshes.
    pub(crate) tasks: Tasks,
    pub(crate) subscribers: Subscribers,
}

impl Shared {
    /// Now, by the session's clock corrected with the skew STS taught the
    /// client: expiry decisions compare STS's expirations against this.
    pub(crate) fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// [`now`](Self::now) as nanoseconds since the Unix epoch, cheaply (the
    /// read path calls it).
    #[inline]
    pub(crate) fn now_nanos(&self) -> i128 {
        self.clock.now_nanos()
    }

    /// The session token, if it is valid now.
    pub(crate) fn valid_token(&self) -> Option<Arc<Credentials>> {
        self.slot
            .get()
            .token
            .clone()
            .filter(|t| t.expiration.unix_timestamp_nanos() > self.now_nanos())
    }

    /// Makes `token` the session's token; renewals ask for `lifetime`.
    pub(crate) fn adopt_token(&self, lifetime: Duration, token: &Credentials) {
        let new = Arc::new(token.clone());
        self.slot.update(|snap| snap.with_token(new, lifetime));
    }

    /// Whose entries this session reads and writes in the cache.
    pub(crate) fn cache_user(&self) -> CacheUser<'_> {
        CacheUser::new(&self.profile, &self.user.access_key_id)
    }

    /// Cached credentials of `spec` with more than its refresh window left
    /// (by the local clock corrected with the offset stored with them, which
    /// also seeds the client's when it has learnt none).
    pub(crate) fn cached_role(&self, spec: &RoleSpec) -> Option<Credentials> {
        let window = self
            .policy
            .window(Duration::from_secs(u64::from(spec.lifetime)));
        let hit = self.cache.as_ref()?.load_role_at(
            self.cache_user(),
            &spec.profile,
            &spec.role_arn,
            self.clock.local(),
            window,
        )?;
        self.clock.seed_skew(hit.clock_offset);
        log::debug!("role `{}` reused from the cache", spec.profile);
        Some(hit.credentials)
    }

    /// Stores role credentials in the cache, if any; failures are logged.
    pub(crate) fn store_role(&self, spec: &RoleSpec, c: &Credentials) {
        if let Some(cache) = &self.cache {
            let (user, offset) = (self.cache_user(), self.client.clock_skew());
            if let Err(e) = cache.store_role(user, &spec.profile, &spec.role_arn, c, offset) {
                log::warn!("cache: cannot store `{}`: {e}", spec.profile);
            }
        }
    }

    /// Stores a session token in the cache, if any; failures are logged.
    pub(crate) fn store_token(&self, serial: Option<&str>, token: &Credentials) {
        if let Some(cache) = &self.cache {
            let offset = self.client.clock_skew();
            if let Err(e) = cache.store_token(self.cache_user(), serial, token, offset) {
                log::warn!("cache: cannot store the session token: {e}");
            }
        }
    }

    /// GetSessionToken with the user's keys, with the device and code when
    /// both are given.
    pub(crate) fn get_session_token(
        &self,
        secs: u32,
        serial: Option<&str>,
        code: Option<Secret>,
    ) -> Result<Credentials> {
        let mut req = GetSessionTokenRequest::new().duration_seconds(secs);
        if let (Some(serial), Some(code)) = (serial, code) {
            req = req.serial_number(serial).token_code(code);
        }
        self.client.get_session_token(&self.user, &req)
    }
}

/// A running refresher thread.
pub(crate) struct Refresher {
    /// Never sent on: dropping it disconnects the channel, the halt signal.
    control: Sender<()>,
    handle: JoinHandle<()>,
    gate: Arc<Mutex<Gate>>,
    shared: Arc<Shared>,
    /// Set (under the task list's lock) once the thread has decided to end
    /// for want of work: a task added after that needs a new thread.
    ending: Arc<AtomicBool>,
}

/// Whether the thread is inside the application's MFA provider, which may
/// block for as long as a person takes (or forever). `halt` does not wait
/// for it: it marks the thread detached and returns; the thread, once the
/// provider returns, sees the mark and ends without another call or event.
/// One lock orders the two sides: the thread checks for a halt and enters
/// the provider under it, `halt` disconnects and then reads it.
#[derive(Default)]
struct Gate {
    in_provider: bool,
    detached: bool,
}

/// What one refresher thread works on.
struct Job {
    shared: Arc<Shared>,
    specs: Vec<RoleSpec>,
    /// The user's MFA device, resolved before the thread starts.
    mfa_serial: Option<String>,
    /// Registered before the thread starts, so a manual clock moved right
    /// after `spawn` waits for this thread too.
    wakeups: Wakeups,
    gate: Arc<Mutex<Gate>>,
    ending: Arc<AtomicBool>,
}

impl Refresher {
    /// Starts the thread for `specs` (roles already in the slot) and the
    /// session's tasks.
    pub(crate) fn spawn(
        shared: Arc<Shared>,
        specs: Vec<RoleSpec>,
        mfa_serial: Option<String>,
    ) -> Result<Refresher> {
        let (control, rx) = crossbeam_channel::bounded(0);
        let gate = Arc::new(Mutex::new(Gate::default()));
        let ending = Arc::new(AtomicBool::new(false));
        let job = Job {
            wakeups: shared.clock.wakeups(),
            shared: shared.clone(),
            specs,
            mfa_serial,
            gate: gate.clone(),
            ending: ending.clone(),
        };
        let handle = thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || run(job, &rx))
            .map_err(|e| Error::Thread {
                message: format!("cannot start {THREAD_NAME}: {e}"),
            })?;
        log::debug!("{THREAD_NAME} started");
        Ok(Refresher {
            control,
            handle,
            gate,
            shared,
            ending,
        })
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Set once the thread has decided to end (see [`Tasks::add`]).
    pub(crate) fn ending(&self) -> &AtomicBool {
        &self.ending
    }

    /// Signals the thread (by disconnecting its control channel) and joins
    /// it; a panic inside becomes an error. A thread inside the MFA provider
    /// is not waited for (see [`Gate`]): it is left to end by itself once
    /// the provider returns, and the halt is announced here.
    pub(crate) fn halt(self) -> Result<()> {
        let Refresher {
            control,
            handle,
            gate,
            shared,
            ending: _,
        } = self;
        drop(control);
        {
            let mut gate = lock(&gate);
            if gate.in_provider {
                gate.detached = true;
                log::warn!(
                    "refresher of `{}` halted while the MFA provider runs; not waiting for it \
                     (the thread ends when the provider returns)",
                    shared.profile
                );
                shared.subscribers.send(Event::Halted);
                return Ok(());
            }
        }
        handle.join().map_err(|payload| Error::Thread {
            message: format!("{THREAD_NAME} panicked: {}", panic_message(&*payload)),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Per-role refresh state inside the thread.
struct RoleState {
    spec: RoleSpec,
    next_at: OffsetDateTime,
    failures: u32,
}

fn run(job: Job, control: &Receiver<()>) {
    let Job {
        shared,
        specs,
        mfa_serial,
        wakeups,
        gate,
        ending,
    } = job;
    let inner: &Shared = &shared;
    let policy = &inner.policy;
    let snap = inner.slot.get();
    let mut roles: Vec<RoleState> = specs
        .into_iter()
        .filter_map(|spec| {
            let c = snap.roles.get(&spec.profile)?;
            Some(RoleState {
                next_at: policy.refresh_at(c.start_time, c.expiration, crate::rand::u64()),
                failures: 0,
                spec,
            })
        })
        .collect();
    // Dropped for good if it panics.
    let mut provider = inner.mfa_provider.clone();
    let mut token_at = snap
        .token
        .as_ref()
        .and_then(|t| token_deadline(inner, provider.as_ref(), t));
    let mut token_failures = 0u32;
    let mut renewal_warnings = RepeatedFailure::default();
    drop(snap);

    loop {
        // Read before the time: a clock moved after this wakes the select.
        let generation = wakeups.generation();
        if let Some(back) = inner.clock.hold_steady() {
            log::warn!(
                "refresher of `{}`: the system clock was set back by {}s; \
                 credentials stay judged by server time",
                inner.profile,
                back.as_secs()
            );
        }
        // None only for a thread started for tasks alone, before any token.
        let mut token = inner.slot.get().token.clone();
        // The session token first: roles are assumed with it. Renewed only
        // while there are roles to assume (tasks alone do not need it).
        let token_due = !roles.is_empty() && token_at.is_some_and(|at| at <= inner.now());
        if let (true, Some(held)) = (token_due, token.clone()) {
            let code = match (mfa_serial.as_deref(), &provider) {
                (Some(serial), Some(provider)) => match ask(provider, serial, control, &gate) {
                    Asked::Code(code) => Some(code),
                    Asked::Halted => {
                        log::info!("refresher of `{}` halted", inner.profile);
                        inner.subscribers.send(Event::Halted);
                        return;
                    }
                    Asked::Detached => return,
                },
                _ => None,
            };
            let renewed = match code {
                Some(Err(e)) => Err(e),
                Some(Ok(code)) => renew_token(inner, mfa_serial.as_deref(), Some(code)),
                None => renew_token(inner, mfa_serial.as_deref(), None),
            };
            match renewed {
                Ok(new) => {
                    token_failures = 0;
                    renewal_warnings = RepeatedFailure::default();
                    let new = Arc::new(new);
                    inner
                        .slot
                        .update(|snap| snap.with_token(new.clone(), snap.token_lifetime));
                    log::info!("session token renewed, expires {}", new.expiration_iso());
                    inner.subscribers.send(Event::TokenRenewed {
                        expiration: new.expiration,
                    });
                    token_at = token_deadline(inner, provider.as_ref(), &new);
                    token = Some(new);
                }
                Err(e @ Error::MfaProvider { .. }) => {
                    // A bug in the application: do not ask again. Roles are
                    // refreshed while the token lasts, then the thread ends.
                    log::error!("session token renewal failed, not renewing again: {e}");
                    provider = None;
                    token_at = None;
                    inner
                        .subscribers
                        .send(Event::TokenRenewalFailed { error: Arc::new(e) });
                }
                Err(e) => {
                    // Read the clock again: the provider may have waited on
                    // a person, the call on the network.
                    let now = inner.now();
                    match renewal_warnings.note(now, &e) {
                        Some(0) => log::warn!("session token renewal failed: {e}"),
                        Some(held) => log::warn!(
                            "session token renewal failed: {e} (and {held} time(s) the same \
                             way since the last such warning; at most one an hour)"
                        ),
                        None => log::debug!("session token renewal failed again: {e}"),
                    }
                    let wait = policy.retry_delay(
                        token_failures,
                        until_or_max(held.expiration, now),
                        crate::rand::u64(),
                    );
                    token_failures = token_failures.saturating_add(1);
                    token_at = Some(now + wait);
                    inner
                        .subscribers
                        .send(Event::TokenRenewalFailed { error: Arc::new(e) });
                }
            }
        }

        // Then every role whose deadline has come, in one round.
        let now = inner.now();
        let due: Vec<usize> = (0..roles.len())
            .filter(|&i| roles[i].next_at <= now)
            .collect();
        let valid_token = token.as_ref().filter(|t| t.expiration > now);
        if let (false, Some(valid_token)) = (due.is_empty(), valid_token) {
            if refresh_round(inner, valid_token, &mut roles, &due, control) && token_at.is_some() {
                // STS says the token has ended: renew it now, not on schedule.
                log::warn!("STS rejected the session token as expired; renewing it now");
                token_at = Some(inner.now());
            }
        }

        // Then the background tasks whose time has come.
        run_tasks(inner, control);

        let now = inner.now();
        let token_end = token
            .as_ref()
            .map_or(OffsetDateTime::UNIX_EPOCH, |t| t.expiration);
        let roles_at = plan(&mut roles, now, token_end, token_at);
        let Some(deadline) = inner.tasks.plan(roles_at, &ending) else {
            log::info!("refresher of `{}`: nothing left to refresh", inner.profile);
            inner.subscribers.send(Event::Ended);
            return;
        };
        let sleep = policy.sleep_for(now, deadline);
        if sleep.is_zero() && !halted(control) {
            // Due now (a deadline set during this pass: a token STS called
            // expired, a task): go round again at once, as a system clock's
            // zero timer would. A manual clock's timer never fires, and
            // going idle here would let `settle` return with work due.
            continue;
        }
        wakeups.idle(generation);
        log::debug!(
            "refresher of `{}`: next deadline {deadline}, sleeping {sleep:?}",
            inner.profile
        );
        select_biased! {
            recv(control) -> _ => {
                log::info!("refresher of `{}` halted", inner.profile);
                inner.subscribers.send(Event::Halted);
                return;
            }
            recv(inner.clock.timer(sleep)) -> _ => {}
            recv(wakeups.receiver()) -> _ => {}
            recv(inner.tasks.receiver()) -> _ => {}
        }
    }
}

/// Runs the tasks due now, each at the time read just before it; once
/// halted, none more is started (the rest stay due).
fn run_tasks(inner: &Shared, control: &Receiver<()>) {
    for mut task in inner.tasks.take_due(inner.now()) {
        if halted(control) {
            inner.tasks.put_back(task, None);
            continue;
        }
        if let Some(next) = task.run(inner.now(), control) {
            inner.tasks.put_back(task, Some(next));
        }
    }
}

/// How often a session token renewal that keeps failing the same way is
/// warned about: retries run up to every minute, and up to every few
/// milliseconds just before the token ends, each one a line on the
/// terminal of a program that cannot renew (no MFA prompt possible).
const RENEWAL_WARN_EVERY: time::Duration = time::Duration::hours(1);

/// Which renewal failures get a warning: the first, one that fails in
/// another way (another kind of error or AWS error code), and a repeat
/// once [`RENEWAL_WARN_EVERY`] has passed by the session's clock. Pure.
#[derive(Debug, Default)]
struct RepeatedFailure {
    /// When the last warning was, and for what kind of failure.
    last: Option<(OffsetDateTime, FailureKind)>,
    /// Failures since then that got no warning.
    held: u64,
}

type FailureKind = (std::mem::Discriminant<Error>, Option<String>);

impl RepeatedFailure {
    /// Notes a failure at `now`: `Some(held)` when it is to be warned
    /// about, `held` the failures like it since the last warning that got
    /// none; `None` when it is a repeat to log quietly.
    fn note(&mut self, now: OffsetDateTime, e: &Error) -> Option<u64> {
        let kind = (std::mem::discriminant(e), e.code().map(str::to_owned));
        match &self.last {
            Some((at, last)) if *last == kind && now - *at < RENEWAL_WARN_EVERY => {
                self.held += 1;
                None
            }
            Some((_, last)) if *last == kind => {
                self.last = Some((now, kind));
                Some(std::mem::take(&mut self.held))
            }
            _ => {
                self.last = Some((now, kind));
                self.held = 0;
                Some(0)
            }
        }
    }
}

/// Drops the roles that can no longer be refreshed and returns when the
/// loop should wake next; `None` when nothing is left to do.
///
/// Roles are assumed only with a valid session token. Without token
/// renewal (`token_at` is `None`: no MFA provider) a role whose deadline is
/// not before the token's end is dropped, and once the token has ended all
/// are. With renewal, roles outlive the token, and while it has ended they
/// wait for its renewal instead of for their own (passed) deadlines, which
/// would otherwise make the loop spin.
fn plan(
    roles: &mut Vec<RoleState>,
    now: OffsetDateTime,
    token_expiration: OffsetDateTime,
    token_at: Option<OffsetDateTime>,
) -> Option<OffsetDateTime> {
    let token_valid = now < token_expiration;
    if token_at.is_none() {
        roles.retain(|r| token_valid && r.next_at < token_expiration);
    }
    if roles.is_empty() {
        None
    } else if token_valid {
        roles.iter().map(|r| r.next_at).chain(token_at).min()
    } else {
        token_at
    }
}

/// True once the session has asked the thread to halt: the sender is gone.
fn halted(control: &Receiver<()>) -> bool {
    matches!(control.try_recv(), Err(TryRecvError::Disconnected))
}

/// Refreshes the roles at `due`, swaps in one new snapshot, sends events.
/// Once halted, no further role of the round is started (a halt waits only
/// for the calls in flight); the roles left out keep their state. Returns
/// true when STS called the session token expired (it may end before its
/// `Expiration` says: revoked, or a clock STS disagrees with).
fn refresh_round(
    inner: &Shared,
    token: &Arc<Credentials>,
    roles: &mut [RoleState],
    due: &[usize],
    control: &Receiver<()>,
) -> bool {
    let policy = &inner.policy;
    let specs: Vec<RoleSpec> = due.iter().map(|&i| roles[i].spec.clone()).collect();
    let is_halted = || halted(control);
    let results = assume_until(inner, token, &specs, &is_halted, Some(control));
    // Backoff counts from now, not from before the (possibly slow) round.
    let now = inner.now();
    let old = inner.slot.get();
    let mut fresh: BTreeMap<String, Arc<Credentials>> = BTreeMap::new();
    let mut events = Vec::with_capacity(due.len());
    let (mut ok, mut failed) = (0, 0);
    let mut token_expired = false;
    for ((profile, result), &i) in results.into_iter().zip(due) {
        let role = &mut roles[i];
        let Some(result) = result else { continue };
        match result {
            Ok(c) => {
                ok += 1;
                inner.store_role(&role.spec, &c);
                role.failures = 0;
                role.next_at = policy.refresh_at(c.start_time, c.expiration, crate::rand::u64());
                events.push(Event::Refreshed {
                    profile: profile.clone(),
                    expiration: c.expiration,
                });
                fresh.insert(profile, Arc::new(c));
            }
            Err(e) => {
                failed += 1;
                token_expired |= e.code() == Some("ExpiredToken");
                // Keep the last valid credentials; retry while they last.
                let held = old.roles.get(&profile).map_or(now, |c| c.expiration);
                let wait =
                    policy.retry_delay(role.failures, until_or_max(held, now), crate::rand::u64());
                role.failures = role.failures.saturating_add(1);
                role.next_at = now + wait;
                log::warn!(
                    "refresh of `{profile}` failed (attempt {}), retrying in {wait:?}: {e}",
                    role.failures
                );
                events.push(Event::RefreshFailed {
                    profile,
                    error: Arc::new(e),
                });
            }
        }
    }
    // Swap in the new credentials over the current snapshot under its
    // lock, keeping whatever token the session holds now (a caller may have
    // obtained a new one meanwhile).
    inner.slot.update(|snap| {
        let mut roles = snap.roles.clone();
        roles.extend(fresh);
        snap.with_roles(roles)
    });
    log::info!(
        "refresh round for `{}`: {ok} refreshed, {failed} failed",
        inner.profile
    );
    for e in events {
        inner.subscribers.send(e);
    }
    token_expired
}

/// Time left until `t`, or the largest duration once `t` has passed (a
/// retry after expiry still backs off fully instead of spinning).
fn until_or_max(t: OffsetDateTime, now: OffsetDateTime) -> std::time::Duration {
    let d = duration_between(now, t);
    if d.is_zero() {
        std::time::Duration::MAX
    } else {
        d
    }
}

/// When to renew the session token; `None` without an MFA provider.
fn token_deadline(
    inner: &Shared,
    provider: Option<&MfaProvider>,
    token: &Credentials,
) -> Option<OffsetDateTime> {
    provider?;
    Some(
        inner
            .policy
            .refresh_at(token.start_time, token.expiration, crate::rand::u64()),
    )
}

/// What asking the MFA provider came to.
enum Asked {
    Code(Result<Secret>),
    /// Halted before the provider was asked.
    Halted,
    /// Halted while the provider ran: `halt` did not wait for this thread.
    Detached,
}

/// Asks the provider for a code, unless halted; see [`Gate`].
fn ask(provider: &MfaProvider, serial: &str, control: &Receiver<()>, gate: &Mutex<Gate>) -> Asked {
    {
        let mut gate = lock(gate);
        if halted(control) {
            return Asked::Halted;
        }
        gate.in_provider = true;
    }
    let code = provider.code(serial);
    let mut gate = lock(gate);
    gate.in_provider = false;
    if gate.detached {
        log::debug!("{THREAD_NAME}: the MFA provider returned after a halt; ending");
        return Asked::Detached;
    }
    Asked::Code(code)
}

fn renew_token(inner: &Shared, serial: Option<&str>, code: Option<Secret>) -> Result<Credentials> {
    let lifetime = inner.slot.get().token_lifetime;
    let secs = u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX);
    let token = inner.get_session_token(secs, serial, code)?;
    inner.store_token(serial, &token);
    Ok(token)
}

/// True when some role would expire before it could be refreshed without
/// a thread: its refresh deadline falls before the session token ends, or
/// the token itself can be renewed.
pub(crate) fn needs_refresher(
    inner: &Shared,
    token: &Credentials,
    roles: &BTreeMap<String, Arc<Credentials>>,
) -> bool {
    !roles.is_empty()
        && (inner.mfa_provider.is_some()
            || roles
                .values()
                .any(|c| inner.policy.refresh_at(c.start_time, c.expiration, 0) < token.expiration))
}

/// AssumeRole for every spec with the session token's keys, over at most
/// `inner.parallelism` short-lived scoped threads, joined before returning.
/// Results are in `specs` order.
pub(crate) fn assume_all(
    inner: &Shared,
    token: &Credentials,
    specs: &[RoleSpec],
) -> Vec<(String, Result<Credentials>)> {
    assume_until(inner, token, specs, &|| false, None)
        .into_iter()
        .filter_map(|(profile, r)| Some((profile, r?)))
        .collect()
}

/// Like [`assume_all`], but once `halted()` holds no further spec is
/// started: those get `None`.
fn assume_until(
    inner: &Shared,
    token: &Credentials,
    specs: &[RoleSpec],
    halted: &(dyn Fn() -> bool + Sync),
    cancel: Option<&Receiver<()>>,
) -> Vec<(String, Option<Result<Credentials>>)> {
    let keys = token.access_key();
    let workers = inner.parallelism.min(specs.len());
    let slots: Vec<Mutex<Option<Result<Credentials>>>> =
        specs.iter().map(|_| Mutex::new(None)).collect();
    if workers > 1 {
        let next = AtomicUsize::new(0);
        thread::scope(|scope| {
            for _ in 0..workers {
                let work = || loop {
                    if halted() {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(spec) = specs.get(i) else { break };
                    *lock(&slots[i]) = Some(assume_one(inner, &keys, spec, cancel));
                };
                // A thread that cannot be started leaves its share to the
                // others, or to the inline pass below.
                if thread::Builder::new()
                    .name("sts-fanout".into())
                    .spawn_scoped(scope, work)
                    .is_err()
                {
                    break;
                }
            }
        });
    }
    specs
        .iter()
        .zip(slots)
        .map(|(spec, slot)| {
            let done = slot.into_inner().unwrap_or_else(|p| p.into_inner());
            let result =
                done.or_else(|| (!halted()).then(|| assume_one(inner, &keys, spec, cancel)));
            (spec.profile.clone(), result)
        })
        .collect()
}

/// The AssumeRole calls of one profile: the first with the session token,
/// each next hop with the previous role's credentials.
fn assume_one(
    inner: &Shared,
    token_keys: &AccessKey,
    spec: &RoleSpec,
    cancel: Option<&Receiver<()>>,
) -> Result<Credentials> {
    inner
        .client
        .assume_role_chain_cancellable(token_keys, &spec.hops, cancel)
        .map(|assumed| assumed.credentials)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn role(next_at: OffsetDateTime) -> RoleState {
        RoleState {
            spec: RoleSpec {
                profile: "r".into(),
                hops: Vec::new(),
                role_arn: "arn:aws:iam::123456789012:role/r".into(),
                lifetime: 3600,
            },
            next_at,
            failures: 0,
        }
    }

    const T0: OffsetDateTime = datetime!(2026-01-01 12:00 UTC);

    fn secs(s: i64) -> time::Duration {
        time::Duration::seconds(s)
    }

    #[test]
    fn repeated_renewal_failures_are_warned_about_once_an_hour() {
        let refused = Error::InvalidInput {
            field: "TokenCode",
            message: "no prompt".into(),
        };
        let denied = Error::Service(Box::new(crate::error::ServiceError {
            action: "GetSessionToken",
            status: 403,
            code: "AccessDenied".into(),
            message: "x".into(),
            request_id: None,
        }));
        let mut r = RepeatedFailure::default();
        assert_eq!(r.note(T0, &refused), Some(0), "the first one");
        // Retries every minute, then every few ms near the end: quiet.
        for i in 1..=59 {
            assert_eq!(r.note(T0 + secs(60 * i), &refused), None, "minute {i}");
        }
        assert_eq!(r.note(T0 + secs(3599), &refused), None);
        assert_eq!(r.note(T0 + secs(3600), &refused), Some(60), "an hour on");
        assert_eq!(r.note(T0 + secs(3601), &refused), None);
        // Failing another way is news at once; so is going back.
        assert_eq!(r.note(T0 + secs(3602), &denied), Some(0));
        assert_eq!(r.note(T0 + secs(3603), &denied), None);
        assert_eq!(r.note(T0 + secs(3604), &refused), Some(0));
    }

    #[test]
    fn plan_wakes_at_the_earliest_deadline() {
        let mut roles = vec![role(T0 + secs(30)), role(T0 + secs(20))];
        let at = plan(&mut roles, T0, T0 + secs(100), None);
        assert_eq!(at, Some(T0 + secs(20)));
        let at = plan(&mut roles, T0, T0 + secs(100), Some(T0 + secs(10)));
        assert_eq!(at, Some(T0 + secs(10)));
        assert_eq!(roles.len(), 2);
    }

    #[test]
    fn plan_drops_roles_that_cannot_be_refreshed_before_the_token_ends() {
        let mut roles = vec![role(T0 + secs(30)), role(T0 + secs(200))];
        let at = plan(&mut roles, T0, T0 + secs(100), None);
        assert_eq!(at, Some(T0 + secs(30)));
        assert_eq!(roles.len(), 1);
    }

    #[test]
    fn plan_ends_once_an_unrenewable_token_has_ended() {
        // A role due (deadline passed) just before the token ended: it can
        // no longer be refreshed. Keeping it made the loop spin with a
        // zero sleep forever.
        let mut roles = vec![role(T0 + secs(99))];
        assert_eq!(plan(&mut roles, T0 + secs(101), T0 + secs(100), None), None);
        assert!(roles.is_empty());
    }

    #[test]
    fn plan_waits_for_token_renewal_not_for_passed_role_deadlines() {
        let mut roles = vec![role(T0 + secs(99))];
        let retry = T0 + secs(105);
        let at = plan(&mut roles, T0 + secs(101), T0 + secs(100), Some(retry));
        assert_eq!(at, Some(retry));
        assert_eq!(roles.len(), 1);
    }
}
