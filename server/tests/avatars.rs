//! Avatars through the HTTP API, on SQLite and PostgreSQL: set, replace and
//! clear one's own (signed, like every account endpoint), and the refusals
//! of what is not one emoji or not a small PNG or JPEG picture.

mod common;

use clink_core::wire::avatar::{MAX_PICTURE_BYTES, encode_picture};
use clink_core::wire::*;
use common::*;

fn emoji(e: &str) -> SetAvatarRequest {
    SetAvatarRequest {
        emoji: Some(e.into()),
        picture: None,
    }
}

fn picture(bytes: &[u8]) -> SetAvatarRequest {
    SetAvatarRequest {
        emoji: None,
        picture: Some(encode_picture(bytes)),
    }
}

async fn refused(user: &User, request: &SetAvatarRequest) -> ApiError {
    code_of(user.client.set_avatar(request).await)
}

async fn set_replace_and_clear_an_avatar(backend: Backend) {
    let Some(s) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let bob = s.user("Bob's Bakery", "5678").await;
    let alice = s.user("Alice", "1234").await;
    assert_eq!(bob.client.avatar().await.unwrap(), Avatar::default());

    let set = bob.client.set_avatar(&emoji("🍞")).await.unwrap();
    assert_eq!(set.emoji.as_deref(), Some("🍞"));
    assert_eq!(set.picture, None);
    assert_eq!(bob.client.avatar().await.unwrap(), set);
    // One's own: Alice still has none.
    assert!(alice.client.avatar().await.unwrap().is_empty());

    // Both at once, then the emoji alone: a PUT replaces the whole avatar.
    let png = png(MAX_PICTURE_BYTES);
    let both = SetAvatarRequest {
        emoji: Some("🥐".into()),
        picture: Some(encode_picture(&png)),
    };
    let set = bob.client.set_avatar(&both).await.unwrap();
    assert_eq!(set.emoji.as_deref(), Some("🥐"));
    assert_eq!(set.picture_bytes().unwrap().as_deref(), Some(&png[..]));
    assert_eq!(bob.client.avatar().await.unwrap(), set);
    let jpeg = [b"\xFF\xD8\xFF\xE0".as_slice(), &[0u8; 200]].concat();
    let set = bob.client.set_avatar(&picture(&jpeg)).await.unwrap();
    assert_eq!(set.emoji, None);
    assert_eq!(set.picture_bytes().unwrap(), Some(jpeg));
    // A joined emoji is one grapheme: accepted, stored as sent.
    let technologist = "👩\u{200D}💻";
    let set = bob.client.set_avatar(&emoji(technologist)).await.unwrap();
    assert_eq!(set.emoji.as_deref(), Some(technologist));
    assert_eq!(bob.client.avatar().await.unwrap(), set);

    // Cleared, and clearing again is the same answer.
    assert!(bob.client.clear_avatar().await.unwrap().is_empty());
    assert!(bob.client.clear_avatar().await.unwrap().is_empty());
    assert!(bob.client.avatar().await.unwrap().is_empty());
    let rows: i64 = sqlx::Row::get(
        &sqlx::query("SELECT COUNT(*) FROM avatars")
            .fetch_one(s.pool())
            .await
            .unwrap(),
        0,
    );
    assert_eq!(rows, 0);

    // Unsigned: refused like every account endpoint.
    let unsigned = reqwest::Client::new()
        .put(format!("{}{}", s.url(), paths::AVATAR))
        .json(&emoji("🍞"))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
}

async fn what_is_not_one_emoji_or_a_small_picture_is_refused(backend: Backend) {
    let Some(s) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let bob = s.user("Bob", "5678").await;
    bob.client.set_avatar(&emoji("🐱")).await.unwrap();

    for (bad, says) in [
        ("🐱🐶", "one emoji; this is 2 characters"),
        ("ab", "one emoji; this is 2 characters"),
        ("B", "U+0042 is not an emoji character"),
        ("1", "keycap"),
        ("❤", "U+FE0F"),
        ("", "empty"),
    ] {
        let e = refused(&bob, &emoji(bad)).await;
        assert_eq!(e.code, ErrorCode::InvalidAvatarEmoji, "{bad:?}: {e:?}");
        assert!(e.message.contains(says), "{bad:?}: {}", e.message);
    }
    let e = refused(&bob, &picture(&png(MAX_PICTURE_BYTES + 1))).await;
    assert_eq!(e.code, ErrorCode::AvatarPictureTooLarge);
    assert!(e.message.contains("32768"), "{}", e.message);
    let gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00";
    let e = refused(&bob, &picture(gif)).await;
    assert_eq!(e.code, ErrorCode::InvalidAvatarPicture);
    assert!(e.message.contains("PNG or JPEG"), "{}", e.message);
    let e = refused(
        &bob,
        &SetAvatarRequest {
            emoji: None,
            picture: Some("not base64!".into()),
        },
    )
    .await;
    assert_eq!(e.code, ErrorCode::InvalidAvatarPicture);
    // A good emoji does not carry a bad picture through.
    let e = refused(
        &bob,
        &SetAvatarRequest {
            emoji: Some("🐶".into()),
            picture: Some(encode_picture(gif)),
        },
    )
    .await;
    assert_eq!(e.code, ErrorCode::InvalidAvatarPicture);
    let e = refused(&bob, &SetAvatarRequest::default()).await;
    assert_eq!(e.code, ErrorCode::InvalidRequest);
    assert!(e.message.contains("DELETE"), "{}", e.message);

    // The HTTP status travels with each code.
    for (body, status, code) in [
        (
            r#"{"emoji":"🐱🐶"}"#.to_string(),
            400,
            "invalid_avatar_emoji",
        ),
        (
            format!(
                r#"{{"picture":"{}"}}"#,
                encode_picture(&png(MAX_PICTURE_BYTES + 100))
            ),
            413,
            "avatar_picture_too_large",
        ),
        (
            r#"{"picture":"R0lGODlh"}"#.to_string(),
            400,
            "invalid_avatar_picture",
        ),
        (
            r#"{"emoji":"🐱","colour":"red"}"#.to_string(),
            400,
            "malformed_json",
        ),
        (
            format!(r#"{{"picture":"{}"}}"#, "A".repeat(100_000)),
            413,
            "payload_too_large",
        ),
    ] {
        let (got, json) =
            signed_raw(&s.url(), &bob.key, "PUT", paths::AVATAR, body.as_bytes()).await;
        assert_eq!((got, json["code"].as_str()), (status, Some(code)), "{json}");
    }
    // Nothing refused changed the avatar.
    let kept = bob.client.avatar().await.unwrap();
    assert_eq!((kept.emoji.as_deref(), kept.picture), (Some("🐱"), None));
    assert!(matches!(
        bob.client.set_avatar(&emoji("🐶")).await,
        Ok(Avatar { emoji: Some(_), .. })
    ));
}

on_both_backends!(
    set_replace_and_clear_an_avatar,
    what_is_not_one_emoji_or_a_small_picture_is_refused,
);
