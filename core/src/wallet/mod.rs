//! `Wallet`: the phone's offline wallet, the API the apps (through uniffi)
//! and the `clink` CLI call.
//!
//! - Local operations (drafts, queueing, balance, history, requests) are
//!   plain blocking calls on the local store: short SQLite transactions.
//! - Network operations (register, verify, sync, approve/decline, clock, the
//!   avatar, and those in `online`: send now, withdraw, policy, second
//!   factor, cancel) are `async` (uniffi turns them into Kotlin `suspend` /
//!   Swift `async`); they must run on a tokio runtime, as reqwest does.
//!   Async rather than a runtime owned by the wallet: the apps' own
//!   schedulers decide where the wait happens, and a cancelled call just
//!   stops being polled.
//!
//! Everything is persisted before the network is awaited: an item is marked
//! `sending` on disk before its request leaves, and the server's answers are
//! recorded in one transaction, so a call that is cancelled, or a process
//! that is killed, loses nothing; the next sync sends the unanswered items
//! again under their idempotency keys and the server answers with the first
//! result. Each remittance therefore posts exactly once. When the request
//! could not even connect, its items go back to `queued`: `sending` means
//! the server may have seen the item.
//!
//! The device key lives in the `SecretStore`; queued items, which carry the
//! PIN, are sealed with a second key from that store (see `seal`).

mod avatar;
pub mod bump_pay;
pub mod crash;
mod file_secrets;
pub mod network;
mod online;
mod pairing;
#[doc(hidden)]
pub mod profile;
mod seal;
pub mod shop_pay;
pub mod sound_pay;

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use ring::rand::{SecureRandom, SystemRandom};

use self::profile::Phase;
use crate::http_client::{ApiClient, ClientError};
use crate::secrets::{self, SecretError, SecretStore};
use crate::store::{self, Dispatched, ItemAnswer, Store, StoreError};
pub use crate::store::{Draft, DraftKind, KnownPayee, OutboxItem, OutboxState, Reason};
use crate::wire::signing::{self, DeviceKey};
use crate::wire::*;
pub use avatar::{Avatar, FIELD_AVATAR_EMOJI, FIELD_AVATAR_PICTURE};
pub use bump_pay::{BumpPayment, BumpPaymentState};
pub use file_secrets::FileSecretStore;
pub use network::ClockOffset;
pub use online::PendingWithdrawal;
pub use seal::{OUTBOX_KEY, SealError};
pub use shop_pay::{ShopPayment, ShopPaymentPhase};
pub use sound_pay::{SoundPayment, SoundPaymentState, SoundRequest, SoundRequestState};

/// The database file inside the wallet's data directory.
pub const DATABASE_FILE: &str = "wallet.sqlite3";

const META_PENDING_PHONE: &str = "pending_phone";
const META_PHONE: &str = "phone";
const META_NAME: &str = "display_name";
const META_CURRENCY: &str = "currency_code";
const META_EXPONENT: &str = "currency_exponent";
const META_CLOCK_OFFSET: &str = "clock_offset_ms";
const META_SECOND_FACTOR_ABOVE: &str = "second_factor_above";
const META_SECOND_FACTOR_REGISTERED_AT: &str = "second_factor_registered_at_ms";

const MAX_COUNTERPARTY_CHARS: usize = 32;
/// `WalletError::InvalidInput` fields the bindings turn into exceptions of
/// their own.
pub const FIELD_MEMO: &str = "memo";
pub const FIELD_DISPLAY_NAME: &str = "display name";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalletError {
    #[error("the wallet's local storage failed: {detail}")]
    Storage { detail: String },
    #[error("the secret store failed: {detail}")]
    Secrets { detail: String },
    #[error("this wallet is not registered yet: register a phone number and verify it first")]
    NotRegistered,
    #[error("no registration is in progress: register a phone number first")]
    NoPendingRegistration,
    #[error("there is no draft {id}")]
    DraftNotFound { id: i64 },
    #[error("there is no outbox item {id}")]
    OutboxItemNotFound { id: i64 },
    #[error("invalid {field}: {reason}")]
    InvalidInput { field: String, reason: String },
    #[error("outbox item {id} cannot do that now: {detail}")]
    WrongItemState { id: i64, detail: String },
    #[error(
        "the server cannot be reached ({detail}); everything queued is kept and goes with the next sync"
    )]
    Offline { detail: String },
    #[error("the server refused: {message}")]
    Refused {
        code: ErrorCode,
        message: String,
        attempts_remaining: Option<u32>,
        locked_until_ms: Option<i64>,
    },
    #[error("the server's answer was not understood: {detail}")]
    Protocol { detail: String },
    #[error(
        "this payment needs a second factor and this install has no second-factor key registered: register one with the PIN, then confirm the payment again"
    )]
    SecondFactorNotRegistered,
    #[error(
        "a withdrawal of {amount} is still without an answer from the server: withdraw {amount} again to finish it (it is done once, however often it is tried) before a new one"
    )]
    WithdrawalPending { amount: i64 },
}

impl From<StoreError> for WalletError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::DraftNotFound { id } => WalletError::DraftNotFound { id },
            StoreError::OutboxItemNotFound { id } => WalletError::OutboxItemNotFound { id },
            StoreError::IllegalTransition { id, transition } => WalletError::WrongItemState {
                id,
                detail: transition.to_string(),
            },
            other => WalletError::Storage {
                detail: other.to_string(),
            },
        }
    }
}

impl From<SecretError> for WalletError {
    fn from(e: SecretError) -> Self {
        WalletError::Secrets {
            detail: e.to_string(),
        }
    }
}

impl From<SealError> for WalletError {
    fn from(e: SealError) -> Self {
        WalletError::Secrets {
            detail: e.to_string(),
        }
    }
}

impl From<ClientError> for WalletError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Api(e) => WalletError::Refused {
                code: e.code,
                message: e.message,
                attempts_remaining: e.attempts_remaining,
                locked_until_ms: e.locked_until_ms,
            },
            ClientError::Transport(detail) | ClientError::Unreachable(detail) => {
                WalletError::Offline { detail }
            }
            ClientError::Decode { status, detail } if status >= 500 => WalletError::Offline {
                detail: format!("HTTP {status}: {detail}"),
            },
            ClientError::Decode { status, detail } => WalletError::Protocol {
                detail: format!("HTTP {status}: {detail}"),
            },
            ClientError::NoKey => WalletError::NotRegistered,
        }
    }
}

/// Who this wallet is, as last confirmed by the server.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct AccountSummary {
    /// E.164.
    pub phone: String,
    pub display_name: String,
    /// Cached: as of the last sync, in minor units.
    pub balance: i64,
    pub currency_code: String,
    pub currency_exponent: u8,
    /// The security policy: sends and approvals above this amount need the
    /// second factor as well as the PIN; `None`, the PIN alone.
    pub second_factor_above: Option<i64>,
    /// Whether this install's second-factor key is registered with the
    /// server (as far as this wallet knows).
    pub second_factor_registered: bool,
}

/// A registration code is on its way to the phone.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct RegistrationStarted {
    /// The number as the server understood it (E.164).
    pub phone: String,
    pub code_expires_at_ms: i64,
}

/// What one `sync_now` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct SyncReport {
    pub accepted: u32,
    pub rejected: u32,
    pub needs_action: u32,
    /// Sent but not answered for good (the server was briefly unavailable);
    /// they go again next sync.
    pub still_sending: u32,
    pub new_requests: u32,
    pub balance: i64,
}

/// Something the UI may want to show at once.
#[derive(Clone, Debug, PartialEq)]
pub enum WalletEvent {
    OutboxItemChanged { item_id: i64, state: OutboxState },
    RequestReceived { request: TransferView },
    BalanceChanged { balance: i64 },
}

/// Receives [`WalletEvent`]s, on whatever thread made the change; keep it quick.
pub trait WalletListener: Send + Sync {
    fn on_event(&self, event: WalletEvent);
}

/// The offline wallet. Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct Wallet {
    inner: Arc<Inner>,
}

struct Inner {
    store: Mutex<Store>,
    secrets: Arc<dyn SecretStore>,
    server_url: String,
    rng: SystemRandom,
    sealer: seal::Sealer,
    client: Mutex<Option<(Arc<DeviceKey>, ApiClient)>>,
    /// The last clock offset estimate, shared with the API client's signing.
    clock_offset_ms: Arc<AtomicI64>,
    listener: Mutex<Option<Arc<dyn WalletListener>>>,
    /// One sync at a time, so two never send the same batch.
    sync_running: tokio::sync::Mutex<()>,
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a single store call or a field swap, so a
    // panic elsewhere cannot leave the data half-changed.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn invalid(field: &str, reason: impl Into<String>) -> WalletError {
    WalletError::InvalidInput {
        field: field.to_string(),
        reason: reason.into(),
    }
}

impl Wallet {
    /// Opens the wallet in `data_dir` (created if missing), talking to
    /// `server_url`, with its secrets in `secrets`.
    pub fn open(
        data_dir: &str,
        server_url: &str,
        secrets: Arc<dyn SecretStore>,
    ) -> Result<Wallet, WalletError> {
        std::fs::create_dir_all(data_dir).map_err(|e| WalletError::Storage {
            detail: format!("cannot create the data directory: {e}"),
        })?;
        let store = Store::open(&Path::new(data_dir).join(DATABASE_FILE))?;
        let rng = SystemRandom::new();
        let sealer = seal::Sealer::load_or_create(secrets.as_ref(), &rng)?;
        let clock_offset_ms = Arc::new(AtomicI64::new(
            store.meta_i64(META_CLOCK_OFFSET)?.unwrap_or(0),
        ));
        let client = match secrets.get(secrets::DEVICE_SIGNING_KEY)? {
            Some(_) => {
                let key = Arc::new(secrets::device_key(secrets.as_ref(), &rng)?);
                let client = ApiClient::new(server_url)
                    .with_key(key.clone())
                    .with_clock_offset(clock_offset_ms.clone());
                Some((key, client))
            }
            None => None,
        };
        Ok(Wallet {
            inner: Arc::new(Inner {
                store: Mutex::new(store),
                secrets,
                server_url: server_url.to_string(),
                rng,
                sealer,
                client: Mutex::new(client),
                clock_offset_ms,
                listener: Mutex::new(None),
                sync_running: tokio::sync::Mutex::new(()),
            }),
        })
    }

    pub fn set_listener(&self, listener: Option<Arc<dyn WalletListener>>) {
        *lock(&self.inner.listener) = listener;
    }

    fn emit(&self, event: WalletEvent) {
        let listener = lock(&self.inner.listener).clone();
        if let Some(l) = listener {
            l.on_event(event);
        }
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.inner.store)
    }

    /// The signed client; only once a device key exists.
    fn client(&self) -> Result<(Arc<DeviceKey>, ApiClient), WalletError> {
        lock(&self.inner.client)
            .clone()
            .ok_or(WalletError::NotRegistered)
    }

    fn registered_client(&self) -> Result<ApiClient, WalletError> {
        if self.store().meta(META_PHONE)?.is_none() {
            return Err(WalletError::NotRegistered);
        }
        Ok(self.client()?.1)
    }

    // ------------------------------------------------------ registration

    /// Step 1: sends a code to `phone`. Makes the device key on first use.
    pub async fn register(&self, phone: &str) -> Result<RegistrationStarted, WalletError> {
        let client = {
            let mut slot = lock(&self.inner.client);
            if slot.is_none() {
                let key = Arc::new(secrets::device_key(
                    self.inner.secrets.as_ref(),
                    &self.inner.rng,
                )?);
                let client = ApiClient::new(&self.inner.server_url)
                    .with_key(key.clone())
                    .with_clock_offset(self.inner.clock_offset_ms.clone());
                *slot = Some((key, client));
            }
            slot.clone().expect("set above").1
        };
        let started = client.register(phone).await?;
        self.store().set_meta(META_PENDING_PHONE, phone)?;
        Ok(RegistrationStarted {
            phone: started.phone.as_e164().to_string(),
            code_expires_at_ms: started.code_expires_at_ms,
        })
    }

    /// Step 2: the code from the SMS, the name others see, and the PIN that
    /// will confirm payments.
    pub async fn verify(
        &self,
        code: &str,
        display_name: &str,
        pin: &str,
    ) -> Result<AccountSummary, WalletError> {
        check_pin(pin)?;
        let display_name = text::check_display_name(display_name)
            .map_err(|e| invalid(FIELD_DISPLAY_NAME, e.to_string()))?;
        let phone = self
            .store()
            .meta(META_PENDING_PHONE)?
            .ok_or(WalletError::NoPendingRegistration)?;
        let client = self.client()?.1;
        let account = client
            .verify(&VerifyRequest {
                phone,
                code: code.trim().to_string(),
                display_name,
                pin: pin.to_string(),
            })
            .await?;
        self.save_account(&account)?;
        self.account()?.ok_or(WalletError::NotRegistered)
    }

    fn save_account(&self, account: &AccountView) -> Result<(), WalletError> {
        let store = self.store();
        store.set_meta(META_PHONE, account.phone.as_e164())?;
        store.set_meta(META_NAME, &account.display_name)?;
        store.set_meta(store::META_BALANCE, &account.balance.to_string())?;
        store.set_meta(META_CURRENCY, &account.currency.code)?;
        store.set_meta(META_EXPONENT, &account.currency.exponent.to_string())?;
        match account.policy.second_factor_above {
            Some(limit) => store.set_meta(META_SECOND_FACTOR_ABOVE, &limit.to_string())?,
            None => store.delete_meta(META_SECOND_FACTOR_ABOVE)?,
        }
        Ok(())
    }

    /// The account as of the last sync; `None` before verification.
    pub fn account(&self) -> Result<Option<AccountSummary>, WalletError> {
        let store = self.store();
        let Some(phone) = store.meta(META_PHONE)? else {
            return Ok(None);
        };
        Ok(Some(AccountSummary {
            phone,
            display_name: store.meta(META_NAME)?.unwrap_or_default(),
            balance: store.meta_i64(store::META_BALANCE)?.unwrap_or(0),
            currency_code: store.meta(META_CURRENCY)?.unwrap_or_default(),
            currency_exponent: store.meta_i64(META_EXPONENT)?.unwrap_or(0) as u8,
            second_factor_above: store.meta_i64(META_SECOND_FACTOR_ABOVE)?,
            second_factor_registered: store.meta(META_SECOND_FACTOR_REGISTERED_AT)?.is_some(),
        }))
    }

    /// The cached balance (as of the last sync).
    pub fn balance(&self) -> Result<i64, WalletError> {
        Ok(self.store().meta_i64(store::META_BALANCE)?.unwrap_or(0))
    }

    // ------------------------------------------------------------ drafts

    pub fn draft_send(&self, payee: &str, amount: i64, memo: &str) -> Result<Draft, WalletError> {
        self.new_draft(DraftKind::Send, payee, amount, memo)
    }

    pub fn draft_request(
        &self,
        payer: &str,
        amount: i64,
        memo: &str,
    ) -> Result<Draft, WalletError> {
        self.new_draft(DraftKind::Request, payer, amount, memo)
    }

    fn new_draft(
        &self,
        kind: DraftKind,
        counterparty: &str,
        amount: i64,
        memo: &str,
    ) -> Result<Draft, WalletError> {
        let (counterparty, memo) = check_draft(counterparty, amount, memo)?;
        Ok(self
            .store()
            .insert_draft(kind, &counterparty, amount, &memo, now_ms())?)
    }

    pub fn edit_draft(
        &self,
        id: i64,
        counterparty: &str,
        amount: i64,
        memo: &str,
    ) -> Result<Draft, WalletError> {
        let (counterparty, memo) = check_draft(counterparty, amount, memo)?;
        Ok(self
            .store()
            .update_draft(id, &counterparty, amount, &memo, now_ms())?)
    }

    pub fn delete_draft(&self, id: i64) -> Result<(), WalletError> {
        Ok(self.store().delete_draft(id)?)
    }

    pub fn drafts(&self) -> Result<Vec<Draft>, WalletError> {
        Ok(self.store().drafts()?)
    }

    pub fn known_payees(&self) -> Result<Vec<KnownPayee>, WalletError> {
        Ok(self.store().known_payees()?)
    }

    // ------------------------------------------------------------ outbox

    /// Confirms a draft with the PIN: signs it, fixes its idempotency key and
    /// moves it to the outbox. Works offline.
    pub fn queue(&self, draft_id: i64, pin: &str) -> Result<OutboxItem, WalletError> {
        let mut items = self.queue_drafts(vec![draft_id], pin)?;
        items
            .pop()
            .ok_or(WalletError::DraftNotFound { id: draft_id })
    }

    /// Confirms several drafts with one PIN entry, all or none.
    pub fn queue_drafts(
        &self,
        draft_ids: Vec<i64>,
        pin: &str,
    ) -> Result<Vec<OutboxItem>, WalletError> {
        check_pin(pin)?;
        let key = self.registered_key()?;
        let signed_at = self.server_now_ms()?;
        let mut queued = Vec::with_capacity(draft_ids.len());
        for id in draft_ids {
            let draft = self.store().draft(id)?;
            let idempotency_key = self.new_idempotency_key()?;
            let item = sign_item(&key, &draft, &idempotency_key, pin, signed_at);
            let sealed = self.seal_item(&item, &idempotency_key)?;
            queued.push((draft, idempotency_key, sealed));
        }
        let items = self.store().queue_drafts(&queued, now_ms())?;
        for item in &items {
            self.emit(WalletEvent::OutboxItemChanged {
                item_id: item.id,
                state: item.state,
            });
        }
        Ok(items)
    }

    /// Confirms again an item that needs action (wrong PIN, locked account,
    /// confirmation too old): re-signed with the PIN, same idempotency key.
    pub fn requeue(&self, item_id: i64, pin: &str) -> Result<OutboxItem, WalletError> {
        check_pin(pin)?;
        let key = self.registered_key()?;
        let item = self.store().outbox_item(item_id)?;
        if item.state != OutboxState::NeedsAction {
            return Err(WalletError::WrongItemState {
                id: item_id,
                detail: format!("it is {}, not needs_action", item.state.as_str()),
            });
        }
        let draft = Draft {
            id: item.id,
            kind: item.kind,
            counterparty: item.counterparty.clone(),
            amount: item.amount,
            memo: item.memo.clone(),
            created_at_ms: item.queued_at_ms,
            updated_at_ms: item.updated_at_ms,
        };
        let signed = sign_item(
            &key,
            &draft,
            &item.idempotency_key,
            pin,
            self.server_now_ms()?,
        );
        let sealed = self.seal_item(&signed, &item.idempotency_key)?;
        let item = self.store().requeue(item_id, &sealed, now_ms())?;
        self.emit(WalletEvent::OutboxItemChanged {
            item_id,
            state: item.state,
        });
        Ok(item)
    }

    /// The outbox, oldest first.
    pub fn outbox(&self) -> Result<Vec<OutboxItem>, WalletError> {
        Ok(self.store().outbox(&[])?)
    }

    fn registered_key(&self) -> Result<Arc<DeviceKey>, WalletError> {
        if self.store().meta(META_PHONE)?.is_none() {
            return Err(WalletError::NotRegistered);
        }
        Ok(self.client()?.0)
    }

    fn new_idempotency_key(&self) -> Result<String, WalletError> {
        let mut bytes = [0u8; 16];
        self.inner
            .rng
            .fill(&mut bytes)
            .map_err(|_| WalletError::Secrets {
                detail: "no randomness available".into(),
            })?;
        Ok(hex::encode(bytes))
    }

    fn seal_item(&self, item: &SyncItem, idempotency_key: &str) -> Result<Vec<u8>, WalletError> {
        let plain =
            zeroize::Zeroizing::new(serde_json::to_vec(item).expect("sync items serialise"));
        Ok(self
            .inner
            .sealer
            .seal(&plain, idempotency_key, &self.inner.rng)?)
    }

    fn open_item(&self, item: &OutboxItem, sealed: &[u8]) -> Result<SyncItem, WalletError> {
        let plain = self.inner.sealer.open(sealed, &item.idempotency_key)?;
        serde_json::from_slice(&plain).map_err(|_| WalletError::Storage {
            detail: format!("outbox item {} does not hold a signed item", item.id),
        })
    }

    // -------------------------------------------------------------- sync

    /// Sends the outbox in batches, records every answer, and brings in the
    /// whole inbox, the balance and any history the phone has not seen.
    /// Safe to call again at any time: items without a recorded answer are
    /// sent again under their idempotency keys.
    ///
    /// Up to two batches are in flight: while one batch's answers are
    /// recorded, the server already works on the next. The server runs two
    /// requests in flight side by side, so an answer to a later batch may
    /// have read the balance before an earlier batch committed. Hence the
    /// balance and the inbox are taken only from answers whose request left
    /// after every earlier answer had arrived: the first, and, when batches
    /// overlapped, one last request with no items at the end; more inbox
    /// pages follow while the server says more are waiting.
    pub async fn sync_now(&self) -> Result<SyncReport, WalletError> {
        let _one_at_a_time = self.inner.sync_running.lock().await;
        let client = self.registered_client()?;
        let mut report = SyncReport {
            balance: self.balance()?,
            ..SyncReport::default()
        };
        // The first request goes even with nothing queued: it brings the inbox.
        let (dispatched, cursor) = profile::time(Phase::Dispatch, || self.dispatch_batch(0))?;
        let mut current = self.send_batch(&client, dispatched, cursor)?;
        let mut first = true;
        let mut inbox_has_more = false;
        loop {
            let next = match current.batch.last() {
                Some((last, _)) if current.batch.len() == MAX_SYNC_ITEMS => {
                    match self.send_next_batch(&client, last.id) {
                        Ok(next) => next,
                        Err(e) => {
                            self.settle(current, &mut report).await;
                            return Err(e);
                        }
                    }
                }
                _ => None,
            };
            let waiting = Instant::now();
            let (answer, may_have_arrived) = current.finish().await;
            profile::add(Phase::Wait, waiting.elapsed());
            let response = match answer {
                Ok(response) => response,
                Err(e) => {
                    let undone = if may_have_arrived {
                        Ok(())
                    } else {
                        self.not_sent(&current.fresh)
                    };
                    if let Some(next) = next {
                        self.settle(next, &mut report).await;
                    }
                    undone?;
                    return Err(e);
                }
            };
            crash::point(crash::AFTER_RESPONSE);
            let has_more = profile::time(Phase::Record, || {
                self.record_batch(&current.batch, response, first, &mut report)
            })?;
            if first {
                inbox_has_more = has_more;
            }
            match next {
                None => break,
                Some(next) => {
                    crash::point(crash::BETWEEN_BATCHES);
                    current = next;
                    first = false;
                }
            }
        }
        // Batches overlapped (`!first`), or the inbox has more pages: ask
        // again with no items, now that every answer is in.
        let mut ask_again = !first || inbox_has_more;
        let asking = Instant::now();
        while ask_again {
            let request = SyncRequest {
                inbox_after: self
                    .store()
                    .meta_i64(store::META_INBOX_CURSOR)?
                    .unwrap_or(0),
                items: Vec::new(),
            };
            let (answer, _) = self.post_sync(&client, &request).await;
            ask_again = self.record_batch(&[], answer?, true, &mut report)?;
        }
        profile::add(Phase::Account, asking.elapsed());
        let paging = Instant::now();
        self.catch_up_history(&client).await?;
        profile::add(Phase::History, paging.elapsed());
        Ok(report)
    }

    /// Takes the next batch (after `after_id`) and marks it `sending` on
    /// disk; with the inbox cursor to send along.
    fn dispatch_batch(&self, after_id: i64) -> Result<(Dispatched, i64), WalletError> {
        let mut store = self.store();
        let dispatched = store.dispatch(after_id, MAX_SYNC_ITEMS, now_ms())?;
        let cursor = store.meta_i64(store::META_INBOX_CURSOR)?.unwrap_or(0);
        Ok((dispatched, cursor))
    }

    /// Sends a dispatched batch in the background.
    fn send_batch(
        &self,
        client: &ApiClient,
        dispatched: Dispatched,
        inbox_after: i64,
    ) -> Result<InFlight, WalletError> {
        let batch = dispatched.items;
        for (item, _) in &batch {
            self.emit(WalletEvent::OutboxItemChanged {
                item_id: item.id,
                state: item.state,
            });
        }
        if !batch.is_empty() {
            crash::point(crash::BEFORE_REQUEST);
        }
        let items = profile::time(Phase::Unseal, || {
            batch
                .iter()
                .map(|(item, sealed)| self.open_item(item, sealed))
                .collect::<Result<Vec<_>, _>>()
        });
        let items = match items {
            Ok(items) => items,
            Err(e) => {
                // Nothing was sent: the marks are undone.
                self.not_sent(&dispatched.fresh)?;
                return Err(e);
            }
        };
        let request = SyncRequest { inbox_after, items };
        let (wallet, client) = (self.clone(), client.clone());
        let response = tokio::spawn(async move { wallet.post_sync(&client, &request).await });
        Ok(InFlight {
            batch,
            fresh: dispatched.fresh,
            response,
        })
    }

    /// The batch after `after_id`, sent, if any items are left: an empty
    /// request here would race the batch still in flight.
    fn send_next_batch(
        &self,
        client: &ApiClient,
        after_id: i64,
    ) -> Result<Option<InFlight>, WalletError> {
        let (dispatched, cursor) =
            profile::time(Phase::Dispatch, || self.dispatch_batch(after_id))?;
        if dispatched.items.is_empty() {
            return Ok(None);
        }
        self.send_batch(client, dispatched, cursor).map(Some)
    }

    /// Puts items whose request never left back in the queue, and says so.
    fn not_sent(&self, fresh: &[i64]) -> Result<(), WalletError> {
        if fresh.is_empty() {
            return Ok(());
        }
        let moved = self.store().not_sent(fresh, now_ms())?;
        for item_id in moved {
            self.emit(WalletEvent::OutboxItemChanged {
                item_id,
                state: OutboxState::Queued,
            });
        }
        Ok(())
    }

    /// Waits for a request this sync gives up on, so that its items end
    /// where they belong: answered, or back in the queue if it never left.
    /// Its own errors are not reported; the caller already has one.
    async fn settle(&self, mut flight: InFlight, report: &mut SyncReport) {
        let (answer, may_have_arrived) = flight.finish().await;
        let _ = match answer {
            Ok(response) => self
                .record_batch(&flight.batch, response, false, report)
                .map(|_| ()),
            Err(_) if !may_have_arrived => self.not_sent(&flight.fresh),
            Err(_) => Ok(()),
        };
    }

    /// Records one answer: its items' results and, with `account` (the
    /// request left after every earlier answer of this sync had arrived),
    /// its inbox page and balance; tells the listener. Returns whether the
    /// server has more inbox pages waiting.
    fn record_batch(
        &self,
        batch: &[(OutboxItem, Vec<u8>)],
        response: SyncResponse,
        account: bool,
        report: &mut SyncReport,
    ) -> Result<bool, WalletError> {
        let answers = match_answers(batch, response.results)?;
        let halfway = answers.len() / 2;
        let recorded = self.store().record_sync(
            &answers,
            account.then_some((&response.inbox, response.balance)),
            now_ms(),
            &|i| {
                if i + 1 == halfway {
                    crash::point(crash::MID_RECORD)
                }
            },
        )?;
        for (_, answer) in &answers {
            match answer {
                ItemAnswer::Accepted(_) => report.accepted += 1,
                ItemAnswer::Rejected(_) => report.rejected += 1,
                ItemAnswer::NeedsAction(_) => report.needs_action += 1,
                ItemAnswer::Retry => report.still_sending += 1,
            }
        }
        if account {
            report.new_requests += recorded.new_requests.len() as u32;
            report.balance = response.balance;
        }
        for (item_id, state) in recorded.changed {
            self.emit(WalletEvent::OutboxItemChanged { item_id, state });
        }
        for request in recorded.new_requests {
            self.emit(WalletEvent::RequestReceived { request });
        }
        if let Some(balance) = recorded.balance_changed {
            self.emit(WalletEvent::BalanceChanged { balance });
        }
        // A page that brought nothing cannot be followed by more: stop
        // rather than ask forever.
        Ok(account && response.inbox.has_more && !response.inbox.notifications.is_empty())
    }

    /// Pages the server's history, newest first, until a page holds nothing
    /// the phone has not stored: transfers that reach no inbox (a send made
    /// by telephone, one made before this install) come in too.
    async fn catch_up_history(&self, client: &ApiClient) -> Result<(), WalletError> {
        let mut before = None;
        loop {
            let page = client.history(before, HISTORY_PAGE).await?;
            let nothing_new = self.store().merge_history(&page.items)?;
            match page.next_before {
                Some(next) if !nothing_new => before = Some(next),
                _ => return Ok(()),
            }
        }
    }

    /// One sync request, retried with exponential backoff and jitter while
    /// the failure is passing (network, 5xx). Each try is signed afresh. A
    /// request refused for its timestamp means the phone's clock moved since
    /// the last estimate (or there was none): the wallet measures the offset
    /// again and tries once more. Also says whether any try may have reached
    /// the server: only a try that could not connect surely did not.
    async fn post_sync(
        &self,
        client: &ApiClient,
        request: &SyncRequest,
    ) -> (Result<SyncResponse, WalletError>, bool) {
        let mut attempt = 0;
        let mut clock_checked = false;
        let mut may_have_arrived = false;
        loop {
            let result = client
                .call::<SyncResponse>(reqwest::Method::POST, paths::SYNC, Some(request), true)
                .await;
            if !matches!(result, Err(ClientError::Unreachable(_))) {
                may_have_arrived = true;
            }
            if let Err(ClientError::Api(e)) = &result
                && e.code == ErrorCode::StaleTimestamp
                && !clock_checked
            {
                clock_checked = true;
                if let Err(e) = self.estimate_clock_offset().await {
                    return (Err(e), may_have_arrived);
                }
                continue;
            }
            let passing = match &result {
                Ok(_) => false,
                Err(ClientError::Unreachable(_) | ClientError::Transport(_)) => true,
                Err(ClientError::Api(e)) => e.code.is_retryable(),
                Err(ClientError::Decode { status, .. }) => *status >= 500,
                Err(ClientError::NoKey) => false,
            };
            attempt += 1;
            if !passing || attempt >= network::MAX_SYNC_ATTEMPTS {
                return (result.map_err(WalletError::from), may_have_arrived);
            }
            tokio::time::sleep(network::backoff_delay(attempt, self.jitter())).await;
        }
    }

    fn jitter(&self) -> f64 {
        let mut b = [0u8; 4];
        let _ = self.inner.rng.fill(&mut b);
        u32::from_le_bytes(b) as f64 / (u32::MAX as f64 + 1.0)
    }

    // ------------------------------------------------ history and requests

    /// History, newest first; `before_ms` pages back.
    pub fn history(
        &self,
        limit: u32,
        before_ms: Option<i64>,
    ) -> Result<Vec<TransferView>, WalletError> {
        Ok(self.store().history(before_ms, limit)?)
    }

    /// Requests for money waiting for this user's decision (as of the last sync).
    pub fn incoming_requests(&self) -> Result<Vec<TransferView>, WalletError> {
        Ok(self.store().incoming_requests()?)
    }

    /// Pays a request. Online only: the answer is immediate. Above the
    /// security policy's threshold the second factor is answered with this
    /// install's key (see `online`).
    pub async fn approve_request(
        &self,
        request_id: &str,
        pin: &str,
    ) -> Result<TransferView, WalletError> {
        check_pin(pin)?;
        online::check_request_id(request_id)?;
        let client = self.registered_client()?;
        let approval = ApproveClaimRequest {
            pin: pin.to_string(),
            challenge_id: None,
            challenge_response: None,
        };
        let view = self
            .with_second_factor(&client, online::Payment::Approve(request_id, &approval))
            .await
            .map_err(|refused| refused.error)??;
        self.store().request_decided(&view)?;
        self.refresh_after_payment(&client).await;
        Ok(view)
    }

    pub async fn decline_request(&self, request_id: &str) -> Result<TransferView, WalletError> {
        online::check_request_id(request_id)?;
        let client = self.registered_client()?;
        let view = client.decline_claim(request_id).await?;
        self.store().request_decided(&view)?;
        Ok(view)
    }

    async fn refresh_balance(&self, client: &ApiClient) -> Result<(), WalletError> {
        let account = client.me().await?;
        let old = self.balance()?;
        self.save_account(&account)?;
        if account.balance != old {
            self.emit(WalletEvent::BalanceChanged {
                balance: account.balance,
            });
        }
        Ok(())
    }

    // ---------------------------------------------------- bump and sound

    /// Starts paying by bump: push sensor data into the flow, then await
    /// [`BumpPayment::wait_for_outcome`]. Measure the clock offset first
    /// ([`Wallet::estimate_clock_offset`]): the server pairs knocks by time.
    pub fn pay_by_bump(&self, audio_sample_rate_hz: u32) -> Result<BumpPayment, WalletError> {
        self.registered_client()?;
        BumpPayment::new(
            self.clone(),
            BumpRole::Payer,
            None,
            "",
            audio_sample_rate_hz,
        )
    }

    /// Starts asking for `amount` by bump; the payer sees the display name,
    /// the amount and the memo.
    pub fn request_by_bump(
        &self,
        amount: i64,
        memo: &str,
        audio_sample_rate_hz: u32,
    ) -> Result<BumpPayment, WalletError> {
        self.registered_client()?;
        let memo = check_request(amount, memo)?;
        BumpPayment::new(
            self.clone(),
            BumpRole::Payee,
            Some(amount),
            &memo,
            audio_sample_rate_hz,
        )
    }

    /// Asks for `amount` by sound: a fresh single-use token from the server,
    /// as PCM to play at `sample_rate_hz` (`profile` `None`: near-ultrasound
    /// where the rate allows, audible otherwise).
    pub async fn request_by_sound(
        &self,
        amount: i64,
        memo: &str,
        sample_rate_hz: u32,
        profile: Option<crate::acoustic::Profile>,
    ) -> Result<SoundRequest, WalletError> {
        let memo = check_request(amount, memo)?;
        SoundRequest::issue(self.clone(), amount, &memo, sample_rate_hz, profile).await
    }

    /// Starts listening for a payee's token in microphone audio at
    /// `sample_rate_hz`.
    pub fn listen_for_token(&self, sample_rate_hz: u32) -> Result<SoundPayment, WalletError> {
        self.registered_client()?;
        SoundPayment::new(self.clone(), sample_rate_hz)
    }

    // ------------------------------------------------------------- clock

    /// Measures the offset to the server's clock (several `GET /v1/time`,
    /// keeping the fastest round trip) and keeps it for signing.
    pub async fn estimate_clock_offset(&self) -> Result<ClockOffset, WalletError> {
        let client = match self.client() {
            Ok((_, c)) => c,
            Err(_) => ApiClient::new(&self.inner.server_url),
        };
        let mut samples = Vec::with_capacity(network::CLOCK_SAMPLES);
        for _ in 0..network::CLOCK_SAMPLES {
            let sent_ms = now_ms();
            let server = client.time().await?;
            samples.push(network::ClockSample {
                sent_ms,
                server_ms: server.server_time_ms,
                received_ms: now_ms(),
            });
        }
        let offset = network::best_offset(&samples).ok_or_else(|| WalletError::Protocol {
            detail: "the local clock ran backwards during every sample".into(),
        })?;
        self.store()
            .set_meta(META_CLOCK_OFFSET, &offset.offset_ms.to_string())?;
        self.inner
            .clock_offset_ms
            .store(offset.offset_ms, Ordering::Relaxed);
        Ok(offset)
    }

    /// Server time minus local time, from the last estimate.
    pub fn clock_offset_ms(&self) -> Result<Option<i64>, WalletError> {
        Ok(self.store().meta_i64(META_CLOCK_OFFSET)?)
    }

    fn server_now_ms(&self) -> Result<i64, WalletError> {
        Ok(now_ms() + self.clock_offset_ms()?.unwrap_or(0))
    }
}

/// Most transfers one history request asks for (the server's limit).
const HISTORY_PAGE: u32 = 200;

/// A batch marked `sending`, and its request running in the background.
struct InFlight {
    batch: Vec<(OutboxItem, Vec<u8>)>,
    /// Items no earlier request carried: back to `queued` if this one never
    /// left.
    fresh: Vec<i64>,
    /// The answer, and whether the request may have reached the server.
    response: tokio::task::JoinHandle<(Result<SyncResponse, WalletError>, bool)>,
}

impl InFlight {
    /// Waits for the answer (the request is never cancelled halfway by us).
    async fn finish(&mut self) -> (Result<SyncResponse, WalletError>, bool) {
        match (&mut self.response).await {
            Ok(done) => done,
            // The task panicked or was cancelled: it may have been sent.
            Err(e) => (
                Err(WalletError::Offline {
                    detail: format!("the sync was interrupted: {e}"),
                }),
                true,
            ),
        }
    }
}

/// Pairs each sent item with its result; the server answers in order.
fn match_answers(
    batch: &[(OutboxItem, Vec<u8>)],
    results: Vec<SyncItemResult>,
) -> Result<Vec<(i64, ItemAnswer)>, WalletError> {
    if results.len() != batch.len() {
        return Err(WalletError::Protocol {
            detail: format!("{} results for {} items", results.len(), batch.len()),
        });
    }
    batch
        .iter()
        .zip(results)
        .map(|((item, _), result)| {
            if !result.idempotency_key.is_empty() && result.idempotency_key != item.idempotency_key
            {
                return Err(WalletError::Protocol {
                    detail: format!(
                        "a result for key {} came back for item {}",
                        result.idempotency_key, item.id
                    ),
                });
            }
            let answer = match result.outcome {
                SyncOutcome::Accepted { transfer } => ItemAnswer::Accepted(transfer),
                SyncOutcome::Rejected { error } => ItemAnswer::from_error(error),
            };
            Ok((item.id, answer))
        })
        .collect()
}

/// The signed item for a draft: the exact single-request body, signed as
/// `POST <path>` with the idempotency key as nonce (see `wire::sync`).
fn sign_item(
    key: &DeviceKey,
    draft: &Draft,
    idempotency_key: &str,
    pin: &str,
    signed_at_ms: i64,
) -> SyncItem {
    let (kind, body) = match draft.kind {
        DraftKind::Send => (
            SyncItemKind::Send,
            serde_json::to_string(&SendRequest {
                idempotency_key: idempotency_key.to_string(),
                payee: draft.counterparty.clone(),
                amount: draft.amount,
                memo: draft.memo.clone(),
                pin: pin.to_string(),
                // A payment above the user's second-factor threshold needs a
                // fresh challenge, which an offline draft cannot carry: such
                // items come back needs_action.
                challenge_id: None,
                challenge_response: None,
            }),
        ),
        DraftKind::Request => (
            SyncItemKind::Claim,
            serde_json::to_string(&ClaimRequest {
                idempotency_key: idempotency_key.to_string(),
                payer: draft.counterparty.clone(),
                amount: draft.amount,
                memo: draft.memo.clone(),
            }),
        ),
    };
    let body = body.expect("wire types serialise");
    let signature = key
        .sign(
            "POST",
            kind.path(),
            body.as_bytes(),
            signed_at_ms,
            idempotency_key,
        )
        .into_iter()
        .find(|(name, _)| *name == signing::HEADER_SIGNATURE)
        .map(|(_, value)| value)
        .unwrap_or_default();
    SyncItem {
        kind,
        body,
        signed_at_ms,
        signature,
    }
}

fn check_pin(pin: &str) -> Result<(), WalletError> {
    if !(4..=12).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("PIN", "a PIN is 4 to 12 digits"));
    }
    Ok(())
}

/// Checks an amount and a memo (of a draft, or of a request made by bump or
/// sound) by the server's own rules; returns the memo's NFC form.
fn check_request(amount: i64, memo: &str) -> Result<String, WalletError> {
    if amount <= 0 {
        return Err(invalid("amount", format!("must be positive, got {amount}")));
    }
    text::check_memo(memo).map_err(|e| invalid(FIELD_MEMO, e.to_string()))
}

/// Checks a draft's fields; returns the trimmed counterparty and the memo's
/// NFC form.
fn check_draft(
    counterparty: &str,
    amount: i64,
    memo: &str,
) -> Result<(String, String), WalletError> {
    let counterparty = counterparty.trim();
    if counterparty.is_empty()
        || counterparty.chars().count() > MAX_COUNTERPARTY_CHARS
        || !counterparty
            .chars()
            .all(|c| c.is_ascii_digit() || "+-() ".contains(c))
    {
        return Err(invalid(
            "phone number",
            format!("{counterparty:?} is not a phone number (digits, spaces, + - ( ) only)"),
        ));
    }
    let memo = check_request(amount, memo)?;
    Ok((counterparty.to_string(), memo))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::MemorySecretStore;

    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn wallet_is_send_and_sync_and_its_futures_are_send() {
        assert_send_sync::<Wallet>();
        let dir = tempfile::tempdir().unwrap();
        let w = Wallet::open(
            dir.path().to_str().unwrap(),
            "http://127.0.0.1:9",
            Arc::new(MemorySecretStore::new()),
        )
        .unwrap();
        assert_send(&w.sync_now());
        assert_send(&w.register("090"));
        assert_send(&w.approve_request("t", "1234"));
        assert_send(&w.send("090", 1, "", "1234"));
        assert_send(&w.send_now(1));
        assert_send(&w.withdraw(1, "1234"));
        assert_send(&w.set_security_policy(None, "1234"));
        assert_send(&w.register_second_factor("1234"));
        assert_send(&w.cancel_request("t"));
    }

    #[test]
    fn drafts_are_checked_edited_deleted_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        let secrets: Arc<dyn SecretStore> = Arc::new(MemorySecretStore::new());
        let w = Wallet::open(path, "http://127.0.0.1:9", secrets.clone()).unwrap();
        assert!(matches!(
            w.draft_send("not a number", 5, ""),
            Err(WalletError::InvalidInput { .. })
        ));
        assert!(matches!(
            w.draft_send("090-1234-5678", 0, ""),
            Err(WalletError::InvalidInput { .. })
        ));
        assert!(matches!(
            w.draft_request("090-1234-5678", 5, "a\u{7}"),
            Err(WalletError::InvalidInput { .. })
        ));
        let a = w.draft_send(" 090-1234-5678 ", 800, "lunch").unwrap();
        assert_eq!(a.counterparty, "090-1234-5678");
        let b = w.draft_request("090-8765-4321", 300, "").unwrap();
        let a2 = w.edit_draft(a.id, "090-1234-5678", 900, "dinner").unwrap();
        assert_eq!((a2.amount, a2.memo.as_str()), (900, "dinner"));
        assert_eq!(
            w.edit_draft(999, "090", 1, ""),
            Err(WalletError::DraftNotFound { id: 999 })
        );
        w.delete_draft(b.id).unwrap();
        assert_eq!(
            w.delete_draft(b.id),
            Err(WalletError::DraftNotFound { id: b.id })
        );
        drop(w);
        let again = Wallet::open(path, "http://127.0.0.1:9", secrets).unwrap();
        assert_eq!(again.drafts().unwrap(), vec![a2]);
        // Queueing needs a registered wallet.
        assert_eq!(again.queue(a.id, "1234"), Err(WalletError::NotRegistered));
        assert!(matches!(
            again.queue(a.id, "12"),
            Err(WalletError::InvalidInput { .. })
        ));
    }

    #[tokio::test]
    async fn misleading_memos_and_names_are_refused_before_anything_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        // No server listens there: every refusal below is the wallet's own.
        let w = Wallet::open(
            dir.path().to_str().unwrap(),
            "http://127.0.0.1:9",
            Arc::new(MemorySecretStore::new()),
        )
        .unwrap();
        let memo_refused = |r: Result<Draft, WalletError>| match r {
            Err(WalletError::InvalidInput { field, reason }) if field == FIELD_MEMO => reason,
            other => panic!("expected the memo to be refused, got {other:?}"),
        };
        let reason = memo_refused(w.draft_send("090-1234-5678", 800, "\u{202E}hcnul"));
        assert!(
            reason.contains("U+202E RIGHT-TO-LEFT OVERRIDE at character 1"),
            "{reason}"
        );
        memo_refused(w.draft_request("090-1234-5678", 300, "tick\u{200B}ets"));
        let good = w.draft_send("090-1234-5678", 800, "lunch").unwrap();
        memo_refused(w.edit_draft(good.id, "090-1234-5678", 800, "lunch\u{FEFF}"));
        assert_eq!(w.drafts().unwrap(), vec![good.clone()]);
        // A decomposed memo is kept composed, as the server keeps it.
        let composed = w
            .edit_draft(good.id, "090-1234-5678", 800, "cafe\u{301}")
            .unwrap();
        assert_eq!(composed.memo, "café");
        // Pairing requests share the check.
        match w.request_by_sound(500, "bread\u{2066}", 48_000, None).await {
            Err(WalletError::InvalidInput { field, .. }) => assert_eq!(field, FIELD_MEMO),
            Err(other) => panic!("expected the memo to be refused, got {other:?}"),
            Ok(_) => panic!("expected the memo to be refused"),
        }
        // A display name is checked before the server is asked.
        match w.verify("123456", "\u{202E}ecohS", "1234").await {
            Err(WalletError::InvalidInput { field, reason }) => {
                assert_eq!(field, FIELD_DISPLAY_NAME);
                assert!(reason.contains("U+202E"), "{reason}");
            }
            other => panic!("expected the name to be refused, got {other:?}"),
        }
        assert!(matches!(
            w.verify("123456", "Pаypal", "1234").await,
            Err(WalletError::InvalidInput { field, .. }) if field == FIELD_DISPLAY_NAME
        ));
    }

    #[test]
    fn the_outbox_never_holds_the_pin_in_plain_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        let secrets: Arc<dyn SecretStore> = Arc::new(MemorySecretStore::new());
        let w = Wallet::open(path, "http://127.0.0.1:9", secrets.clone()).unwrap();
        // Pretend the wallet was verified: a device key and a phone.
        secrets::device_key(secrets.as_ref(), &SystemRandom::new()).unwrap();
        let w = {
            drop(w);
            Wallet::open(path, "http://127.0.0.1:9", secrets.clone()).unwrap()
        };
        w.store().set_meta(META_PHONE, "+819012345678").unwrap();
        let d = w.draft_send("090-1111-2222", 777, "x").unwrap();
        let item = w.queue(d.id, "97531").unwrap();
        assert_eq!(item.state, OutboxState::Queued);
        assert_eq!(item.idempotency_key.len(), 32);
        drop(w);
        for file in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(file.unwrap().path()).unwrap();
            assert!(
                !bytes.windows(5).any(|win| win == b"97531"),
                "PIN found on disk"
            );
        }
    }
}
