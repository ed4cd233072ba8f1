//! The account's avatar (see `clink_core::wallet::Wallet::set_avatar`): an
//! emoji, a small PNG or JPEG picture, or both, which a payer sees beside
//! the display name before the PIN (`BumpPaymentState.Confirm`,
//! `SoundPaymentState.Confirm` carry the payee's).

use clink_core::wallet as core;

use crate::wallet::Wallet;
use crate::wallet_error::WalletError;

/// An avatar: one emoji, a PNG or JPEG picture (at most 32 KiB), or both;
/// both null when none is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, uniffi::Record)]
pub struct Avatar {
    pub emoji: Option<String>,
    /// The picture's bytes, as `BitmapFactory.decodeByteArray` or
    /// `UIImage(data:)` takes them.
    pub picture: Option<Vec<u8>>,
}

impl From<core::Avatar> for Avatar {
    fn from(avatar: core::Avatar) -> Self {
        Avatar {
            emoji: avatar.emoji,
            picture: avatar.picture,
        }
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Wallet {
    /// Replaces this account's avatar with `emoji`, `picture` or both (at
    /// least one; `clear_avatar` removes it); returns it as the server
    /// stored it. A refused one throws `InvalidAvatar`.
    pub async fn set_avatar(
        &self,
        emoji: Option<String>,
        picture: Option<Vec<u8>>,
    ) -> Result<Avatar, WalletError> {
        Ok(self
            .core
            .set_avatar(emoji.as_deref(), picture.as_deref())
            .await?
            .into())
    }

    /// Removes this account's avatar (fine when there is none).
    pub async fn clear_avatar(&self) -> Result<(), WalletError> {
        Ok(self.core.clear_avatar().await?)
    }

    /// This account's avatar as the server holds it.
    pub async fn avatar(&self) -> Result<Avatar, WalletError> {
        Ok(self.core.avatar().await?.into())
    }
}

#[cfg(test)]
mod tests {
    use clink_core::wallet::WalletError as CoreError;
    use clink_core::wire::ErrorCode;

    use super::*;

    #[test]
    fn an_avatar_refused_by_the_wallet_or_the_server_is_one_exception() {
        let local = WalletError::from(CoreError::InvalidInput {
            field: core::FIELD_AVATAR_EMOJI.into(),
            reason: "an avatar emoji is one emoji; this is 2 characters".into(),
        });
        assert!(
            matches!(&local, WalletError::InvalidAvatar { field, .. } if field == "avatar emoji"),
            "{local:?}"
        );
        for (code, field) in [
            (ErrorCode::InvalidAvatarEmoji, "avatar emoji"),
            (ErrorCode::InvalidAvatarPicture, "avatar picture"),
            (ErrorCode::AvatarPictureTooLarge, "avatar picture"),
        ] {
            let remote = WalletError::from(CoreError::Refused {
                code,
                message: "refused".into(),
                attempts_remaining: None,
                locked_until_ms: None,
            });
            assert!(
                matches!(&remote, WalletError::InvalidAvatar { field: f, reason, .. }
                    if f == field && reason == "refused"),
                "{code:?}: {remote:?}"
            );
        }
    }
}
