//! The account's avatar: an emoji, a small PNG or JPEG picture, or both,
//! which a payer sees beside this account's display name before the PIN
//! when paying it by bump or by sound (`BumpPaymentState::Confirm`,
//! `SoundPaymentState::Confirm`). The rules are `wire::avatar`'s, checked
//! here before anything is sent and again by the server. These calls need
//! the server at once; nothing is kept in the local store.

use super::*;
use crate::wire::avatar::{self, AvatarError};

/// `WalletError::InvalidInput` fields of a refused avatar.
pub const FIELD_AVATAR_EMOJI: &str = "avatar emoji";
pub const FIELD_AVATAR_PICTURE: &str = "avatar picture";

/// An avatar as the wallet hands it out: the picture as bytes.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Avatar {
    /// One emoji, as the server stores it.
    pub emoji: Option<String>,
    /// PNG or JPEG bytes, at most `wire::avatar::MAX_PICTURE_BYTES`.
    pub picture: Option<Vec<u8>>,
}

/// The picture as its size: a state's `Debug` ends up in error messages.
impl std::fmt::Debug for Avatar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Avatar")
            .field("emoji", &self.emoji)
            .field(
                "picture",
                &self.picture.as_ref().map(|p| format!("{} bytes", p.len())),
            )
            .finish()
    }
}

impl Avatar {
    pub fn is_empty(&self) -> bool {
        self.emoji.is_none() && self.picture.is_none()
    }

    /// The avatar in a server's answer; a picture that breaks the rules is
    /// the server's mistake.
    pub(crate) fn from_wire(avatar: crate::wire::Avatar) -> Result<Avatar, WalletError> {
        let picture = avatar.picture_bytes().map_err(|e| WalletError::Protocol {
            detail: format!("the avatar in the server's answer: {e}"),
        })?;
        Ok(Avatar {
            emoji: avatar.emoji,
            picture,
        })
    }
}

fn refused(e: AvatarError) -> WalletError {
    let field = if e.is_about_emoji() {
        FIELD_AVATAR_EMOJI
    } else {
        FIELD_AVATAR_PICTURE
    };
    invalid(field, e.to_string())
}

impl Wallet {
    /// Replaces this account's avatar with `emoji`, `picture` (PNG or JPEG
    /// bytes) or both; at least one (`clear_avatar` removes it). Returns the
    /// avatar as the server stored it.
    pub async fn set_avatar(
        &self,
        emoji: Option<&str>,
        picture: Option<&[u8]>,
    ) -> Result<Avatar, WalletError> {
        if emoji.is_none() && picture.is_none() {
            return Err(invalid(
                "avatar",
                "set an emoji, a picture or both; clear_avatar removes the avatar",
            ));
        }
        let emoji = emoji
            .map(avatar::check_emoji)
            .transpose()
            .map_err(refused)?;
        if let Some(bytes) = picture {
            avatar::check_picture(bytes).map_err(refused)?;
        }
        let client = self.registered_client()?;
        let stored = client
            .set_avatar(&SetAvatarRequest {
                emoji,
                picture: picture.map(avatar::encode_picture),
            })
            .await?;
        Avatar::from_wire(stored)
    }

    /// Removes this account's avatar (fine when there is none).
    pub async fn clear_avatar(&self) -> Result<(), WalletError> {
        self.registered_client()?.clear_avatar().await?;
        Ok(())
    }

    /// This account's avatar as the server holds it (empty when none is set).
    pub async fn avatar(&self) -> Result<Avatar, WalletError> {
        Avatar::from_wire(self.registered_client()?.avatar().await?)
    }
}
