//! The development OTP sender (`--dev-otp-file`): a real server started from
//! its command line appends each registration code to the file, and that
//! code opens the account.

use std::sync::Arc;

use clap::Parser;
use clink_core::http_client::ApiClient;
use clink_core::wire::VerifyRequest;
use clink_core::wire::signing::DeviceKey;
use clink_server::Config;
use ring::rand::SystemRandom;

/// A registered device's client, for `phone`.
async fn register(url: &str, phone: &str) -> (ApiClient, String) {
    let (key, _) = DeviceKey::generate(&SystemRandom::new()).unwrap();
    let client = ApiClient::new(url).with_key(Arc::new(key));
    let started = client.register(phone).await.expect("register");
    (client, started.phone.as_e164().to_string())
}

#[tokio::test]
async fn dev_otp_file_gets_one_line_per_code_and_the_code_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let otp_file = dir.path().join("otp.txt");
    let database = format!("sqlite:{}", dir.path().join("clink.db").display());
    let config = Config::parse_from([
        "clink-server",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &database,
        "--dev-otp-file",
        otp_file.to_str().unwrap(),
    ]);
    let otp = clink_server::otp::sender_for(&config);
    let server = clink_server::start(config, otp)
        .await
        .expect("server starts");

    let (alice, alice_e164) = register(&server.url(), "090-5555-0001").await;
    let (_bob, bob_e164) = register(&server.url(), "090-5555-0002").await;

    let text = std::fs::read_to_string(&otp_file).expect("the OTP file exists");
    let lines: Vec<(&str, &str)> = text
        .lines()
        .map(|line| line.split_once(' ').expect("<e164> <code>"))
        .collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    assert_eq!(lines[0].0, alice_e164);
    assert_eq!(lines[1].0, bob_e164);
    for (_, code) in &lines {
        assert!(
            code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
            "{code:?}"
        );
    }

    let account = alice
        .verify(&VerifyRequest {
            phone: "090-5555-0001".into(),
            code: lines[0].1.to_string(),
            display_name: "Alice".into(),
            pin: "1234".into(),
        })
        .await
        .expect("the code from the file verifies");
    assert_eq!(account.phone.as_e164(), alice_e164);
    server.shutdown().await;
}
