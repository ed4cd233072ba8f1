//! Signs one API request for use with curl, so the HTTP API can be tried by
//! hand:
//!
//!     clink-sign keygen alice.key              # prints the public key
//!     curl localhost:8080/v1/me $(clink-sign alice.key GET /v1/me)
//!     curl localhost:8080/v1/transfers/withdraw $(clink-sign alice.key POST /v1/transfers/withdraw '{"idempotency_key":"w1","amount":1000,"pin":"1234"}')
//!
//! Prints curl arguments: the method, the four signature headers and the body
//! if given (write the JSON without spaces: the shell splits the output on them).

use clap::{Parser, Subcommand};
use clink_protocol::wire::signing::{self, DeviceKey};
use ring::rand::SystemRandom;

#[derive(Parser)]
#[command(name = "clink-sign", about = "Sign a Clink API request for curl")]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// File holding the device key (PKCS#8), made by `keygen`.
    key_file: Option<std::path::PathBuf>,
    /// HTTP method.
    method: Option<String>,
    /// Path with query string, e.g. /v1/history?limit=10
    path: Option<String>,
    /// JSON body.
    body: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Makes a new device key file and prints its public key.
    Keygen { key_file: std::path::PathBuf },
}

fn main() {
    let args = Args::parse();
    let rng = SystemRandom::new();
    if let Some(Command::Keygen { key_file }) = args.command {
        let (key, pkcs8) = DeviceKey::generate(&rng).expect("key generation");
        if let Err(e) = std::fs::write(&key_file, pkcs8) {
            eprintln!("clink-sign: cannot write {}: {e}", key_file.display());
            std::process::exit(1);
        }
        println!("{}", key.public_key_b64());
        return;
    }
    let (Some(key_file), Some(method), Some(path)) = (args.key_file, args.method, args.path) else {
        eprintln!("usage: clink-sign KEY_FILE METHOD PATH [BODY]  |  clink-sign keygen KEY_FILE");
        std::process::exit(2);
    };
    let key = match std::fs::read(&key_file).map(|b| DeviceKey::from_pkcs8(&b)) {
        Ok(Ok(key)) => key,
        Ok(Err(e)) => {
            eprintln!("clink-sign: {}: {e}", key_file.display());
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("clink-sign: cannot read {}: {e}", key_file.display());
            std::process::exit(1);
        }
    };
    let body = args.body.unwrap_or_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let nonce = signing::new_nonce(&rng);
    let mut out = vec![format!("-X{}", method.to_ascii_uppercase())];
    for (name, value) in key.sign(&method, &path, body.as_bytes(), now, &nonce) {
        out.push(format!("-H{name}:{value}"));
    }
    if !body.is_empty() {
        out.push("-Hcontent-type:application/json".into());
        out.push("--data-raw".into());
        out.push(body);
    }
    println!("{}", out.join(" "));
}
