//! `clink`: a reference wallet on the command line. It uses only the
//! `Wallet` API of clink-core, as the apps do.
//!
//! Secrets (device key, outbox key) are kept by `FileSecretStore` in
//! `<home>/secrets` (mode 0600): unlike the kernel keyring of the
//! `os-keyring` feature they survive a reboot together with the wallet's
//! database, and they work in containers and CI, where keyutils often does
//! not. Secrets are never printed.

mod sound;
mod sound_pay;

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::{Parser, Subcommand};
use clink_core::acoustic::Profile;
use clink_core::secrets::SecretStore;
use clink_core::wallet::{
    Draft, DraftKind, FileSecretStore, OutboxItem, OutboxState, SoundPaymentState,
    SoundRequestState, Wallet, WalletError, WalletEvent, WalletListener,
};
use clink_core::wire::{Direction, TransferView};

/// Writes a line to standard output. When the reader has gone away
/// (`clink outbox | head`), the program ends quietly with status 0, as it
/// has nothing left to say; `println!` would panic. Restoring SIGPIPE's
/// default action would also end it quietly, but would let a write to a
/// server connection that closed under a sync kill the process halfway.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write_line(&mut std::io::stdout().lock(), format_args!($($arg)*))
    };
}

/// A line on standard error (notes, progress, errors) for people: if it
/// cannot be written the command goes on as it would have.
macro_rules! note {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

fn write_line(stream: &mut impl Write, line: std::fmt::Arguments<'_>) {
    let written = stream
        .write_fmt(line)
        .and_then(|()| stream.write_all(b"\n"))
        .and_then(|()| stream.flush());
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            // A full disk behind `>`, say: the results are incomplete.
            note!("error: cannot write the output: {e}");
            std::process::exit(1);
        }
    }
}

/// A question on standard error, without a newline.
fn prompt(question: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr
        .write_all(question.as_bytes())
        .and_then(|()| stderr.flush());
}

/// An error as `clink` reports it: `error: <message>` on standard error, or
/// with `--json` this object (one line) on standard error. Either way the
/// exit status is non-zero, and standard output carries only results.
#[derive(Debug, serde::Serialize)]
struct CliError {
    /// `offline`, `invalid_input`, `not_registered`, ..., or the server's
    /// own code (`wrong_pin`, `insufficient_funds`, ...) when it refused.
    code: String,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts_remaining: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    locked_until_ms: Option<i64>,
}

impl CliError {
    fn new(code: &str, message: impl Into<String>) -> CliError {
        CliError {
            code: code.to_string(),
            message: message.into(),
            attempts_remaining: None,
            locked_until_ms: None,
        }
    }
}

/// Errors the CLI finds itself (bad arguments, files, sound devices).
impl From<String> for CliError {
    fn from(message: String) -> CliError {
        CliError::new("failed", message)
    }
}

impl From<&str> for CliError {
    fn from(message: &str) -> CliError {
        CliError::new("failed", message)
    }
}

fn report(error: &CliError, json: bool) {
    if json {
        note!(
            "{}",
            serde_json::to_string(error).expect("an error serialises")
        );
    } else {
        note!("error: {}", error.message);
    }
}

#[derive(Parser)]
#[command(name = "clink", version, about = "A Clink wallet on the command line")]
struct Cli {
    /// Where the wallet keeps its data and secrets.
    #[arg(long, env = "CLINK_HOME", global = true)]
    home: Option<PathBuf>,
    /// The server; remembered by `clink init`.
    #[arg(long, env = "CLINK_SERVER", global = true)]
    server: Option<String>,
    /// Print results as JSON, for scripts. Errors then are one JSON object
    /// {"code": ..., "message": ...} on standard error (standard output
    /// carries only results), with a non-zero exit status.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the wallet and remember the server.
    Init,
    /// Start registration: a code goes to the phone.
    Register { phone: String },
    /// Finish registration with the code.
    Verify {
        code: String,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        pin: PinArg,
    },
    /// Draft a send or a request (works offline).
    #[command(subcommand)]
    Draft(DraftCommand),
    /// List drafts.
    Drafts,
    /// Confirm drafts with the PIN and queue them (works offline).
    Queue {
        /// Draft ids; none means all drafts.
        ids: Vec<i64>,
        #[command(flatten)]
        pin: PinArg,
    },
    /// Show the outbox.
    Outbox,
    /// Send the outbox and fetch news.
    Sync,
    /// Requests for money waiting for you.
    Requests,
    /// Pay a request.
    Approve {
        id: String,
        #[command(flatten)]
        pin: PinArg,
    },
    /// Refuse a request.
    Decline { id: String },
    /// Pay someone now (online); above the security policy's threshold the
    /// second factor is answered by this install's key.
    Send {
        phone: String,
        amount: i64,
        #[arg(long, default_value = "")]
        memo: String,
        #[command(flatten)]
        pin: PinArg,
    },
    /// Send one outbox item now; one that needs action is confirmed again
    /// with the PIN first (e.g. one that needed a second factor).
    Retry {
        id: i64,
        #[command(flatten)]
        pin: PinArg,
    },
    /// Take money out of Clink. Without an answer, withdrawing the same
    /// amount again finishes it, once.
    Withdraw {
        amount: i64,
        #[command(flatten)]
        pin: PinArg,
    },
    /// Show the security policy, or set it (PIN): a second factor for
    /// payments above an amount, or off.
    Policy {
        #[arg(long, value_name = "AMOUNT", conflicts_with = "off")]
        second_factor_above: Option<i64>,
        /// PIN alone for every payment.
        #[arg(long)]
        off: bool,
        #[command(flatten)]
        pin: PinArg,
    },
    /// This install's second-factor key.
    #[command(subcommand)]
    SecondFactor(SecondFactorCommand),
    /// Cancel a request you made that the payer has not answered.
    Cancel { id: String },
    /// Balance as of the last sync.
    Balance,
    /// Past transfers, newest first.
    History {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Listen for sound tokens on the microphone (or in a WAV file) and
    /// print each one in hex. Needs no wallet.
    Listen {
        /// Stop after this many seconds of audio.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Stop at the first token.
        #[arg(long)]
        first: bool,
        #[arg(long, value_enum, default_value_t = ProfileArg::Ultrasonic)]
        profile: ProfileArg,
        /// Input device name or id; the default microphone otherwise.
        #[arg(long)]
        device: Option<String>,
        /// Decode this WAV file instead of listening.
        #[arg(long = "in", value_name = "FILE.wav", conflicts_with = "device")]
        input: Option<PathBuf>,
    },
    /// Ask for money by sound: the server issues a single-use token, the
    /// speaker plays it until a payer's phone hears it, and the payer approves.
    AskBySound {
        amount: i64,
        #[arg(long, default_value = "")]
        memo: String,
        /// Near-ultrasound unless told otherwise.
        #[arg(long, value_enum)]
        profile: Option<ProfileArg>,
        /// Output device name or id; the default speaker otherwise.
        #[arg(long)]
        device: Option<String>,
        /// Write the token's sound to a WAV file instead of playing it.
        #[arg(long, value_name = "FILE.wav", conflicts_with = "device")]
        out: Option<PathBuf>,
        /// Seconds to wait for a payer.
        #[arg(long, default_value_t = 60.0)]
        wait: f64,
    },
    /// Pay a request heard by sound: listen for the payee's token, show who
    /// asks for how much, and approve with the PIN.
    PayBySound {
        /// Seconds to listen for a token.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Input device name or id; the default microphone otherwise.
        #[arg(long)]
        device: Option<String>,
        /// Decode this recording instead of listening.
        #[arg(long = "in", value_name = "FILE.wav", conflicts_with = "device")]
        input: Option<PathBuf>,
        /// Approve without asking (the PIN is still needed).
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        pin: PinArg,
    },
    /// Play a 16-byte token (32 hex digits) as sound on the speaker, or write
    /// it to a WAV file. Needs no wallet.
    PlayToken {
        #[arg(value_name = "HEX")]
        token: String,
        #[arg(long, value_enum, default_value_t = ProfileArg::Ultrasonic)]
        profile: ProfileArg,
        /// Sample rate to ask of the device or to write (48000 by default).
        #[arg(long, value_name = "HZ")]
        rate: Option<u32>,
        /// Output device name or id; the default speaker otherwise.
        #[arg(long)]
        device: Option<String>,
        /// Write a WAV file instead of playing.
        #[arg(long, value_name = "FILE.wav", conflicts_with = "device")]
        out: Option<PathBuf>,
    },
}

/// The acoustic token's band.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ProfileArg {
    /// 17.5–20 kHz, inaudible to most adults.
    Ultrasonic,
    /// 1.5–4 kHz, for speakers and microphones that cut off high frequencies.
    Audible,
}

impl From<ProfileArg> for Profile {
    fn from(arg: ProfileArg) -> Profile {
        match arg {
            ProfileArg::Ultrasonic => Profile::NearUltrasound,
            ProfileArg::Audible => Profile::Audible,
        }
    }
}

#[derive(Subcommand)]
enum DraftCommand {
    Send {
        phone: String,
        amount: i64,
        #[arg(long, default_value = "")]
        memo: String,
    },
    Request {
        phone: String,
        amount: i64,
        #[arg(long, default_value = "")]
        memo: String,
    },
    Edit {
        id: i64,
        phone: String,
        amount: i64,
        #[arg(long, default_value = "")]
        memo: String,
    },
    Delete {
        id: i64,
    },
}

#[derive(Subcommand)]
enum SecondFactorCommand {
    /// Make the key (kept with the wallet's secrets) and register it (PIN).
    Register {
        #[command(flatten)]
        pin: PinArg,
    },
}

#[derive(clap::Args)]
struct PinArg {
    /// The PIN; otherwise CLINK_PIN, otherwise read from standard input.
    #[arg(long, env = "CLINK_PIN", hide_env_values = true)]
    pin: Option<String>,
}

impl PinArg {
    fn get(&self) -> Result<String, String> {
        if let Some(pin) = &self.pin {
            return Ok(pin.clone());
        }
        prompt("PIN: ");
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the PIN: {e}"))?;
        Ok(line.trim().to_string())
    }
}

const SERVER_FILE: &str = "server-url";
const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version go to standard output as clap prints them.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            if json_asked() {
                let message = e.to_string();
                let message = message.trim().trim_start_matches("error: ");
                report(&CliError::new("usage", message), true);
                std::process::exit(2);
            }
            e.exit()
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            report(
                &CliError::new("failed", format!("cannot start: {e}")),
                cli.json,
            );
            std::process::exit(1);
        }
    };
    if let Err(error) = runtime.block_on(run(cli.json, &cli)) {
        report(&error, cli.json);
        std::process::exit(1);
    }
}

/// Whether `--json` is on a command line clap could not parse.
fn json_asked() -> bool {
    std::env::args_os()
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

fn home_dir(cli: &Cli) -> Result<PathBuf, String> {
    if let Some(h) = &cli.home {
        return Ok(h.clone());
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".clink"))
        .ok_or_else(|| "no --home given and $HOME is not set".to_string())
}

fn open(cli: &Cli, home: &std::path::Path) -> Result<Wallet, CliError> {
    let server = match &cli.server {
        Some(s) => s.clone(),
        None => std::fs::read_to_string(home.join(SERVER_FILE))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| DEFAULT_SERVER.to_string()),
    };
    let secrets: Arc<dyn SecretStore> = Arc::new(
        FileSecretStore::new(&home.join("secrets").to_string_lossy()).map_err(|e| e.to_string())?,
    );
    Wallet::open(&home.join("data").to_string_lossy(), &server, secrets).map_err(explain)
}

/// A wallet error as the CLI reports it, with a code scripts can act on.
fn explain(e: WalletError) -> CliError {
    let message = match &e {
        WalletError::Refused {
            attempts_remaining: Some(n),
            ..
        } => format!("{e} ({n} attempt(s) left)"),
        WalletError::SecondFactorNotRegistered => {
            format!(
                "{e} (`clink second-factor register`; a queued item then goes with `clink retry <item>`)"
            )
        }
        _ => e.to_string(),
    };
    let code = match &e {
        // The server's own code: `wrong_pin`, `insufficient_funds`, ...
        WalletError::Refused { code, .. } => serde_json::to_value(code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "refused".into()),
        WalletError::Storage { .. } => "storage".into(),
        WalletError::Secrets { .. } => "secrets".into(),
        WalletError::NotRegistered => "not_registered".into(),
        WalletError::NoPendingRegistration => "no_pending_registration".into(),
        WalletError::DraftNotFound { .. } => "draft_not_found".into(),
        WalletError::OutboxItemNotFound { .. } => "outbox_item_not_found".into(),
        WalletError::InvalidInput { .. } => "invalid_input".into(),
        WalletError::WrongItemState { .. } => "wrong_item_state".into(),
        WalletError::Offline { .. } => "offline".into(),
        WalletError::Protocol { .. } => "protocol".into(),
        WalletError::SecondFactorNotRegistered => "second_factor_not_registered".into(),
        WalletError::WithdrawalPending { .. } => "withdrawal_pending".into(),
    };
    let (attempts_remaining, locked_until_ms) = match e {
        WalletError::Refused {
            attempts_remaining,
            locked_until_ms,
            ..
        } => (attempts_remaining, locked_until_ms),
        _ => (None, None),
    };
    CliError {
        code,
        message,
        attempts_remaining,
        locked_until_ms,
    }
}

fn print_json(value: &impl serde::Serialize) {
    out!(
        "{}",
        serde_json::to_string_pretty(value).expect("serialisable")
    );
}

async fn run(json: bool, cli: &Cli) -> Result<(), CliError> {
    match &cli.command {
        Command::Listen {
            seconds,
            first,
            profile,
            device,
            input,
        } => {
            let options = sound::ListenOptions {
                profile: (*profile).into(),
                device: device.clone(),
                duration: listen_duration(*seconds)?,
                first: *first,
            };
            return Ok(listen(&options, input.as_deref(), json)?);
        }
        Command::PlayToken {
            token,
            profile,
            rate,
            device,
            out,
        } => {
            let token = sound::parse_token(token).map_err(|e| e.to_string())?;
            let played = match out {
                Some(path) => sound::write_token_wav(&token, (*profile).into(), *rate, path),
                None => sound::play_token(
                    &token,
                    &sound::PlayOptions {
                        profile: (*profile).into(),
                        device: device.clone(),
                        sample_rate_hz: *rate,
                    },
                ),
            }
            .map_err(|e| e.to_string())?;
            if json {
                print_json(&played);
            } else {
                out!(
                    "played {} to {} ({} Hz, {:.3} s)",
                    hex::encode(played.token),
                    played.to,
                    played.sample_rate_hz,
                    played.duration_s
                );
            }
            return Ok(());
        }
        _ => {}
    }
    let home = home_dir(cli)?;
    if let Command::Init = cli.command {
        std::fs::create_dir_all(&home)
            .map_err(|e| format!("cannot create {}: {e}", home.display()))?;
        let server = cli
            .server
            .clone()
            .unwrap_or_else(|| DEFAULT_SERVER.to_string());
        std::fs::write(home.join(SERVER_FILE), &server).map_err(|e| e.to_string())?;
        open(cli, &home)?;
        if json {
            print_json(&serde_json::json!({"home": home, "server": server}));
        } else {
            out!("wallet ready in {} (server {server})", home.display());
        }
        return Ok(());
    }
    let wallet = open(cli, &home)?;
    match &cli.command {
        Command::Init | Command::Listen { .. } | Command::PlayToken { .. } => {
            unreachable!("handled above")
        }
        Command::AskBySound {
            amount,
            memo,
            profile,
            device,
            out,
            wait,
        } => {
            let options = sound_pay::AskOptions {
                amount: *amount,
                memo: memo.clone(),
                profile: profile.map(Profile::from),
                device: device.clone(),
                out: out.clone(),
                wait: listen_duration(*wait)?,
            };
            let state =
                sound_pay::ask_by_sound(&wallet, &options, |event| note!("{event}")).await?;
            let (outcome, text) = match state {
                SoundRequestState::Paid => ("paid", format!("paid: {amount} received")),
                SoundRequestState::Declined => ("declined", "the payer declined".into()),
                SoundRequestState::Expired => ("expired", "the token expired unheard".into()),
                SoundRequestState::Playing { .. } | SoundRequestState::RequestSent { .. } => {
                    ("waiting", "no payment yet; gave up waiting".into())
                }
                SoundRequestState::Failed { error } => return Err(explain(error)),
            };
            if json {
                print_json(&serde_json::json!({"outcome": outcome, "amount": amount}));
            } else {
                out!("{text}");
            }
            if outcome != "paid" {
                return Err(CliError::new(outcome, text));
            }
        }
        Command::PayBySound {
            seconds,
            device,
            input,
            yes,
            pin,
        } => {
            let options = sound_pay::PayOptions {
                device: device.clone(),
                input: input.clone(),
                listen: listen_duration(*seconds)?,
            };
            let flow = sound_pay::hear_request(&wallet, &options).await?;
            let (name, amount, memo) = match flow.state() {
                SoundPaymentState::Confirm {
                    payee_display_name,
                    amount,
                    memo,
                    ..
                } => (payee_display_name, amount, memo),
                SoundPaymentState::Expired => {
                    return Err(CliError::new(
                        "expired",
                        "the token has expired; ask the payee for a new one",
                    ));
                }
                SoundPaymentState::Failed { error } => return Err(explain(error)),
                other => {
                    return Err(format!("the payment stopped in state {other:?}").into());
                }
            };
            note!("{}", describe_ask(&name, amount, &memo));
            let approved = *yes || confirm("Pay? [y/N] ")?;
            let state = if approved {
                flow.approve(&pin.get()?).await.map_err(explain)?
            } else {
                flow.decline().await.map_err(explain)?
            };
            let outcome = match state {
                SoundPaymentState::Paid => "paid",
                SoundPaymentState::Declined => "declined",
                SoundPaymentState::Expired => "expired",
                _ => "unfinished",
            };
            if json {
                print_json(&serde_json::json!({
                    "outcome": outcome, "payee_display_name": name, "amount": amount, "memo": memo
                }));
            } else {
                out!("{outcome}: {amount} to {name}");
            }
            if outcome == "expired" {
                return Err(CliError::new(
                    "expired",
                    "the request expired before it was approved",
                ));
            }
        }
        Command::Register { phone } => {
            let started = wallet.register(phone).await.map_err(explain)?;
            if json {
                print_json(&started);
            } else {
                out!(
                    "a code was sent to {}; run `clink verify <code> --name <name>`",
                    started.phone
                );
            }
        }
        Command::Verify { code, name, pin } => {
            let account = wallet
                .verify(code, name, &pin.get()?)
                .await
                .map_err(explain)?;
            if json {
                print_json(&account);
            } else {
                out!("registered {} as {}", account.phone, account.display_name);
            }
        }
        Command::Draft(d) => {
            let draft = match d {
                DraftCommand::Send {
                    phone,
                    amount,
                    memo,
                } => wallet.draft_send(phone, *amount, memo),
                DraftCommand::Request {
                    phone,
                    amount,
                    memo,
                } => wallet.draft_request(phone, *amount, memo),
                DraftCommand::Edit {
                    id,
                    phone,
                    amount,
                    memo,
                } => wallet.edit_draft(*id, phone, *amount, memo),
                DraftCommand::Delete { id } => {
                    wallet.delete_draft(*id).map_err(explain)?;
                    if json {
                        print_json(&serde_json::json!({"deleted": id}));
                    } else {
                        out!("draft {id} deleted");
                    }
                    return Ok(());
                }
            }
            .map_err(explain)?;
            if json {
                print_json(&draft);
            } else {
                out!("draft {}", describe_draft(&draft));
            }
        }
        Command::Drafts => {
            let drafts = wallet.drafts().map_err(explain)?;
            if json {
                print_json(&drafts);
            } else if drafts.is_empty() {
                out!("no drafts");
            } else {
                for d in &drafts {
                    out!("{}", describe_draft(d));
                }
            }
        }
        Command::Queue { ids, pin } => {
            let ids = if ids.is_empty() {
                wallet
                    .drafts()
                    .map_err(explain)?
                    .iter()
                    .map(|d| d.id)
                    .collect()
            } else {
                ids.clone()
            };
            if ids.is_empty() {
                return Err("there are no drafts to queue".into());
            }
            let items = wallet.queue_drafts(ids, &pin.get()?).map_err(explain)?;
            if json {
                print_json(&items);
            } else {
                out!(
                    "{} item(s) queued; run `clink sync` when online",
                    items.len()
                );
            }
        }
        Command::Outbox => {
            let items = wallet.outbox().map_err(explain)?;
            if json {
                print_json(&items);
            } else if items.is_empty() {
                out!("the outbox is empty");
            } else {
                for i in &items {
                    out!("{}", describe_item(i));
                }
            }
        }
        Command::Sync => sync(&wallet, json).await?,
        Command::Requests => {
            let requests = wallet.incoming_requests().map_err(explain)?;
            if json {
                print_json(&requests);
            } else if requests.is_empty() {
                out!("no requests waiting");
            } else {
                for r in &requests {
                    out!(
                        "{}  {} asks {}  {}",
                        r.id,
                        r.counterpart.display_name,
                        r.amount,
                        r.memo
                    );
                }
            }
        }
        Command::Approve { id, pin } => {
            // The PIN confirms a payment: say to whom and how much first.
            let requests = wallet.incoming_requests().map_err(explain)?;
            if let Some(r) = requests.iter().find(|r| r.id == *id) {
                note!(
                    "{}",
                    describe_ask(&r.counterpart.display_name, r.amount, &r.memo)
                );
            }
            let t = wallet
                .approve_request(id, &pin.get()?)
                .await
                .map_err(explain)?;
            if json {
                print_json(&t);
            } else {
                out!(
                    "paid {} to {}; balance {}",
                    t.amount,
                    t.counterpart.display_name,
                    wallet.balance().map_err(explain)?
                );
            }
        }
        Command::Decline { id } => {
            let t = wallet.decline_request(id).await.map_err(explain)?;
            if json {
                print_json(&t);
            } else {
                out!("declined {} from {}", t.amount, t.counterpart.display_name);
            }
        }
        Command::Send {
            phone,
            amount,
            memo,
            pin,
        } => {
            let t = wallet
                .send(phone, *amount, memo, &pin.get()?)
                .await
                .map_err(explain)?;
            print_payment(&wallet, &t, json)?;
        }
        Command::Retry { id, pin } => {
            let item = wallet
                .outbox()
                .map_err(explain)?
                .into_iter()
                .find(|i| i.id == *id)
                .ok_or_else(|| explain(WalletError::OutboxItemNotFound { id: *id }))?;
            if item.state == OutboxState::NeedsAction {
                wallet.requeue(*id, &pin.get()?).map_err(explain)?;
            }
            let t = wallet.send_now(*id).await.map_err(explain)?;
            print_payment(&wallet, &t, json)?;
        }
        Command::Withdraw { amount, pin } => {
            let t = wallet
                .withdraw(*amount, &pin.get()?)
                .await
                .map_err(explain)?;
            if json {
                print_json(&t);
            } else {
                out!(
                    "withdrew {}; balance {}",
                    t.amount,
                    wallet.balance().map_err(explain)?
                );
            }
        }
        Command::Policy {
            second_factor_above,
            off,
            pin,
        } => {
            let account = if *off || second_factor_above.is_some() {
                wallet
                    .set_security_policy(*second_factor_above, &pin.get()?)
                    .await
            } else {
                wallet
                    .account()
                    .and_then(|a| a.ok_or(WalletError::NotRegistered))
            }
            .map_err(explain)?;
            if json {
                print_json(&serde_json::json!({
                    "second_factor_above": account.second_factor_above,
                    "second_factor_registered": account.second_factor_registered,
                }));
            } else {
                let key = if account.second_factor_registered {
                    "registered"
                } else {
                    "not registered"
                };
                match account.second_factor_above {
                    Some(limit) => out!(
                        "second factor above {limit} {}; this install's key: {key}",
                        account.currency_code
                    ),
                    None => out!("PIN alone for every payment; this install's key: {key}"),
                }
            }
        }
        Command::SecondFactor(SecondFactorCommand::Register { pin }) => {
            let account = wallet
                .register_second_factor(&pin.get()?)
                .await
                .map_err(explain)?;
            if json {
                print_json(&serde_json::json!({
                    "second_factor_registered": account.second_factor_registered,
                }));
            } else {
                out!("this install's second-factor key is registered");
            }
        }
        Command::Cancel { id } => {
            let t = wallet.cancel_request(id).await.map_err(explain)?;
            if json {
                print_json(&t);
            } else {
                out!(
                    "cancelled the request for {} from {}",
                    t.amount,
                    t.counterpart.display_name
                );
            }
        }
        Command::Balance => {
            let account = wallet
                .account()
                .map_err(explain)?
                .ok_or_else(|| explain(WalletError::NotRegistered))?;
            if json {
                print_json(&account);
            } else {
                out!(
                    "{} {} (as of the last sync)",
                    account.balance,
                    account.currency_code
                );
            }
        }
        Command::History { limit } => {
            let items = wallet.history(*limit, None).map_err(explain)?;
            if json {
                print_json(&items);
            } else if items.is_empty() {
                out!("no history yet");
            } else {
                for t in &items {
                    out!("{}", describe_transfer(t));
                }
            }
        }
    }
    Ok(())
}

/// A payment the server confirmed, and the balance after it.
fn print_payment(wallet: &Wallet, t: &TransferView, json: bool) -> Result<(), CliError> {
    if json {
        print_json(t);
    } else {
        out!(
            "paid {} to {}; balance {}",
            t.amount,
            t.counterpart.display_name,
            wallet.balance().map_err(explain)?
        );
    }
    Ok(())
}

/// Asks a yes/no question on the terminal; anything but "y" or "yes" is no.
fn confirm(question: &str) -> Result<bool, String> {
    prompt(question);
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    Ok(matches!(
        line.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

fn listen_duration(seconds: f64) -> Result<std::time::Duration, String> {
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 24.0 * 3600.0) {
        return Err(format!(
            "a duration must be a positive number of seconds up to a day, not {seconds}"
        ));
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

/// `clink listen`: tokens go to standard output as they are heard (hex, or
/// one JSON object a line), everything else to standard error.
fn listen(
    options: &sound::ListenOptions,
    input: Option<&std::path::Path>,
    json: bool,
) -> Result<(), String> {
    let print = move |heard: &sound::Heard| {
        if json {
            out!("{}", serde_json::to_string(heard).expect("serialisable"));
        } else {
            out!("{}", hex::encode(heard.token));
        }
    };
    let (heard_any, seconds) = match input {
        Some(path) => {
            let mut heard = sound::decode_wav(path, options.profile).map_err(|e| e.to_string())?;
            if options.first {
                heard.truncate(1);
            }
            heard.iter().for_each(print);
            (!heard.is_empty(), None)
        }
        None => {
            let listened = sound::listen(
                options,
                |opened| {
                    let asked = if opened.sample_rate_hz == opened.requested_rate_hz {
                        String::new()
                    } else {
                        format!(
                            ", the device's rate; {} Hz was asked",
                            opened.requested_rate_hz
                        )
                    };
                    note!(
                        "listening on {} at {} Hz{asked} for {} s",
                        opened.device,
                        opened.sample_rate_hz,
                        options.duration.as_secs_f64()
                    );
                },
                print,
            )
            .map_err(|e| e.to_string())?;
            if listened.dropped_frames > 0 {
                note!(
                    "warning: {} frames were lost because clink fell behind the microphone",
                    listened.dropped_frames
                );
            }
            (!listened.tokens.is_empty(), Some(listened.seconds))
        }
    };
    if !heard_any {
        let what = match seconds {
            Some(s) => format!("no token heard in {s:.1} s"),
            None => "no token in the file".to_string(),
        };
        if options.first {
            return Err(what);
        }
        note!("{what}");
    }
    Ok(())
}

/// Counts answered items for the progress bar.
struct Progress {
    bar: indicatif::ProgressBar,
    done: AtomicU64,
}

impl WalletListener for Progress {
    fn on_event(&self, event: WalletEvent) {
        if let WalletEvent::OutboxItemChanged { state, .. } = event
            && (state.is_final() || state == OutboxState::NeedsAction)
        {
            self.bar
                .set_position(self.done.fetch_add(1, Ordering::Relaxed) + 1);
        }
    }
}

async fn sync(wallet: &Wallet, json: bool) -> Result<(), CliError> {
    let pending = wallet
        .outbox()
        .map_err(explain)?
        .iter()
        .filter(|i| matches!(i.state, OutboxState::Queued | OutboxState::Sending))
        .count() as u64;
    let bar = if json || pending == 0 {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(pending);
        bar.set_style(
            indicatif::ProgressStyle::with_template("syncing {bar:30} {pos}/{len} items")
                .expect("a valid template"),
        );
        bar
    };
    wallet.set_listener(Some(Arc::new(Progress {
        bar: bar.clone(),
        done: AtomicU64::new(0),
    })));
    let result = wallet.sync_now().await;
    wallet.set_listener(None);
    bar.finish_and_clear();
    let report = result.map_err(explain)?;
    if json {
        print_json(&report);
    } else {
        out!(
            "synced: {} accepted, {} rejected, {} need action, {} still sending; {} new request(s); balance {}",
            report.accepted,
            report.rejected,
            report.needs_action,
            report.still_sending,
            report.new_requests,
            report.balance
        );
        for item in wallet.outbox().map_err(explain)? {
            if matches!(item.state, OutboxState::Rejected | OutboxState::NeedsAction) {
                out!("  {}", describe_item(&item));
            }
        }
    }
    Ok(())
}

/// What a payer confirms: who asks, for how much, for what.
fn describe_ask(name: &str, amount: i64, memo: &str) -> String {
    let memo_part = if memo.is_empty() {
        String::new()
    } else {
        format!(" for \"{memo}\"")
    };
    format!("{name} asks you for {amount}{memo_part}.")
}

fn describe_draft(d: &Draft) -> String {
    let what = match d.kind {
        DraftKind::Send => "send",
        DraftKind::Request => "request",
    };
    let memo = if d.memo.is_empty() {
        String::new()
    } else {
        format!("  \"{}\"", d.memo)
    };
    format!(
        "#{}  {what} {} {} {}{memo}",
        d.id,
        d.amount,
        if d.kind == DraftKind::Send {
            "to"
        } else {
            "from"
        },
        d.counterparty
    )
}

fn describe_item(i: &OutboxItem) -> String {
    let what = match i.kind {
        DraftKind::Send => format!("send {} to {}", i.amount, i.counterparty),
        DraftKind::Request => format!("request {} from {}", i.amount, i.counterparty),
    };
    let why = i
        .reason
        .as_ref()
        .map(|r| format!(": {}", r.message))
        .unwrap_or_default();
    format!("#{}  {what}  {}{why}", i.id, i.state.as_str())
}

fn describe_transfer(t: &TransferView) -> String {
    let sign = if t.direction == Direction::Incoming {
        "+"
    } else {
        "-"
    };
    format!(
        "{}  {sign}{}  {} {:?} {:?}  {}",
        t.id, t.amount, t.counterpart.display_name, t.kind, t.state, t.memo
    )
}
