//! Paying a shop, the phone's side.
//!
//! A shop's request reaches the phone one of two ways: a till presents it
//! (the phone scans its QR and takes it, [`Wallet::take_shop_payment`]), or
//! a web shop the user linked sends it to the user's number and it waits in
//! the inbox ([`Wallet::shop_payment`] with the claim's id). Either way the
//! [`ShopPayment`] starts in `Confirm`, holding exactly what the shop stated
//! (merchant, every line, the total) for the app to show before the PIN:
//! `Confirm` → `Paid` / `Declined`, or `Expired` / `Cancelled` when the
//! shop's side ended it first.

use std::sync::Mutex;

use super::pairing::is_expired;
use super::{Wallet, WalletError, invalid, lock};
use crate::wire::*;

#[derive(Clone, Debug, PartialEq)]
pub enum ShopPaymentPhase {
    /// Show `charge` (merchant, lines, total); approve with the PIN or
    /// decline.
    Confirm {
        charge: ChargeView,
    },
    Paid,
    Declined,
    /// The request expired before the user approved.
    Expired,
    /// The shop cancelled it (or it was decided elsewhere).
    Cancelled,
}

/// One shop's request on this phone.
pub struct ShopPayment {
    wallet: Wallet,
    claim_id: String,
    phase: Mutex<ShopPaymentPhase>,
}

impl ShopPayment {
    pub(super) fn new(wallet: Wallet, charge: ChargeView) -> ShopPayment {
        let phase = match charge.state {
            ShopPaymentState::Created | ShopPaymentState::PendingApproval => {
                ShopPaymentPhase::Confirm {
                    charge: charge.clone(),
                }
            }
            ShopPaymentState::Completed => ShopPaymentPhase::Paid,
            ShopPaymentState::Declined => ShopPaymentPhase::Declined,
            ShopPaymentState::Expired => ShopPaymentPhase::Expired,
            ShopPaymentState::Cancelled => ShopPaymentPhase::Cancelled,
        };
        ShopPayment {
            wallet,
            claim_id: charge.claim_id,
            phase: Mutex::new(phase),
        }
    }

    pub fn phase(&self) -> ShopPaymentPhase {
        lock(&self.phase).clone()
    }

    /// The request's id, as in the inbox and history.
    pub fn claim_id(&self) -> String {
        self.claim_id.clone()
    }

    /// The lines the shop stated, for the app to list.
    pub fn lines(&self) -> Vec<ItemLine> {
        match &*lock(&self.phase) {
            ShopPaymentPhase::Confirm { charge } => charge.items.clone(),
            _ => Vec::new(),
        }
    }

    fn set(&self, phase: ShopPaymentPhase) -> ShopPaymentPhase {
        *lock(&self.phase) = phase.clone();
        phase
    }

    fn confirming(&self) -> Result<(), WalletError> {
        match &*lock(&self.phase) {
            ShopPaymentPhase::Confirm { .. } => Ok(()),
            other => Err(invalid(
                "shop payment",
                format!("cannot do that in phase {other:?}"),
            )),
        }
    }

    /// Pays. A wrong PIN (or any refusal the user can correct) leaves the
    /// flow in `Confirm` and returns the error; a request the shop ended
    /// first moves to `Expired` or `Cancelled`.
    pub async fn approve(&self, pin: &str) -> Result<ShopPaymentPhase, WalletError> {
        self.confirming()?;
        match self.wallet.approve_request(&self.claim_id, pin).await {
            Ok(_) => Ok(self.set(ShopPaymentPhase::Paid)),
            Err(e) => self.ended_elsewhere(e),
        }
    }

    pub async fn decline(&self) -> Result<ShopPaymentPhase, WalletError> {
        self.confirming()?;
        match self.wallet.decline_request(&self.claim_id).await {
            Ok(_) => Ok(self.set(ShopPaymentPhase::Declined)),
            Err(e) => self.ended_elsewhere(e),
        }
    }

    fn ended_elsewhere(&self, e: WalletError) -> Result<ShopPaymentPhase, WalletError> {
        if is_expired(&e) {
            return Ok(self.set(ShopPaymentPhase::Expired));
        }
        if matches!(
            e,
            WalletError::Refused {
                code: ErrorCode::ClaimNotPending,
                ..
            }
        ) {
            return Ok(self.set(ShopPaymentPhase::Cancelled));
        }
        Err(e)
    }
}

impl Wallet {
    /// Takes a request a shop's terminal presented, by its id (from the
    /// terminal's QR): the phone becomes its customer and shows it.
    pub async fn take_shop_payment(&self, payment_id: &str) -> Result<ShopPayment, WalletError> {
        check_id("payment id", payment_id, "sp_")?;
        let client = self.registered_client()?;
        let charge = client.take_charge(payment_id).await?;
        Ok(ShopPayment::new(self.clone(), charge))
    }

    /// Takes the request in a till's QR (EMVCo merchant-presented, Clink's
    /// template). Only its id is read from the QR: the merchant, lines and
    /// amount shown come from the server.
    pub async fn take_shop_payment_from_qr(
        &self,
        payload: &str,
    ) -> Result<ShopPayment, WalletError> {
        let (_, payment_id) = crate::emvco::ClinkMerchantQr::ids(payload)
            .map_err(|e| invalid("QR", e.to_string()))?;
        self.take_shop_payment(&payment_id).await
    }

    /// A shop's request waiting in the inbox (its claim id).
    pub async fn shop_payment(&self, claim_id: &str) -> Result<ShopPayment, WalletError> {
        check_id("request id", claim_id, "t_")?;
        let client = self.registered_client()?;
        let charge = client.charge(claim_id).await?;
        Ok(ShopPayment::new(self.clone(), charge))
    }

    /// Allows the merchant to send requests to this number (a web shop).
    pub async fn link_merchant(&self, merchant_id: &str) -> Result<MerchantSummary, WalletError> {
        check_id("merchant id", merchant_id, "m_")?;
        Ok(self.registered_client()?.link_merchant(merchant_id).await?)
    }

    /// Withdraws that consent; returns the merchants still linked.
    pub async fn unlink_merchant(
        &self,
        merchant_id: &str,
    ) -> Result<Vec<MerchantSummary>, WalletError> {
        check_id("merchant id", merchant_id, "m_")?;
        let left = self
            .registered_client()?
            .unlink_merchant(merchant_id)
            .await?;
        Ok(left.merchants)
    }

    pub async fn linked_merchants(&self) -> Result<Vec<MerchantSummary>, WalletError> {
        Ok(self
            .registered_client()?
            .linked_merchants()
            .await?
            .merchants)
    }

    /// Reports the merchant's requests as spam: unlinks it and declines
    /// everything of its still waiting. Returns the merchants still linked.
    pub async fn report_merchant_spam(
        &self,
        merchant_id: &str,
    ) -> Result<Vec<MerchantSummary>, WalletError> {
        check_id("merchant id", merchant_id, "m_")?;
        let left = self
            .registered_client()?
            .report_merchant_spam(merchant_id)
            .await?;
        Ok(left.merchants)
    }
}

/// Ids go into request paths: refuse anything but the server's own shape
/// before it reaches the network.
fn check_id(what: &str, id: &str, prefix: &str) -> Result<(), WalletError> {
    let body = id.strip_prefix(prefix).unwrap_or("");
    if body.is_empty() || body.len() > 64 || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid(what, format!("{id:?} is not a {prefix}… id")));
    }
    Ok(())
}
