"""The wallet's online operations through the generated Python bindings,
against the real clink-server that scripts/test-bindings starts: withdraw,
the security policy and the second-factor key, cancelling one's own
request, and the avatar, each with its typed exception."""

import asyncio

import pytest

from clink_ffi import (
    Avatar,
    ErrorCode,
    OutboxState,
    TransferKind,
    TransferState,
    VoidReason,
    WalletError,
    WalletEvent,
)
from test_wallet import OFFLINE_URL, Phone, env


async def fund(phone, amount):
    """Puts `amount` on `phone`'s account: the one place these tests fund."""
    await phone.fund(amount)


async def registered(tmp_path, name, pin):
    phone = Phone(tmp_path, name, pin)
    await phone.register_and_verify()
    return phone


def test_withdraw_is_done_once_and_an_unanswered_one_is_finished_by_its_retry(tmp_path):
    async def scenario():
        alice = await registered(tmp_path, "Alice", "2468")
        await fund(alice, 5_000)

        done = await alice.wallet.withdraw(700, alice.pin)
        assert (done.kind, done.state, done.amount) == (
            TransferKind.WITHDRAWAL,
            TransferState.POSTED,
            700,
        )
        assert alice.wallet.balance() == 4_300
        assert WalletEvent.BALANCE_CHANGED(balance=4_300) in alice.log.events
        assert alice.wallet.pending_withdrawal() is None

        with pytest.raises(WalletError.WrongPin) as wrong:
            await alice.wallet.withdraw(700, "0000")
        assert wrong.value.attempts_remaining == 4
        with pytest.raises(WalletError.InvalidAmount):
            await alice.wallet.withdraw(0, alice.pin)
        with pytest.raises(WalletError.InsufficientFunds):
            await alice.wallet.withdraw(50_000, alice.pin)

        # Offline: the withdrawal waits for its answer, and blocks another.
        alice.wallet = None
        offline = alice.open(OFFLINE_URL)
        with pytest.raises(WalletError.Offline):
            await offline.withdraw(500, alice.pin)
        pending = offline.pending_withdrawal()
        assert pending.amount == 500
        with pytest.raises(WalletError.WithdrawalPending) as blocked:
            await offline.withdraw(600, alice.pin)
        assert blocked.value.amount == 500
        del offline

        alice.wallet = alice.open(env("CLINK_TEST_SERVER_URL"))
        await alice.wallet.withdraw(500, alice.pin)
        assert alice.wallet.pending_withdrawal() is None
        assert alice.wallet.balance() == 3_800

    asyncio.run(scenario())


def test_the_second_factor_is_answered_by_the_registered_key_above_the_policy(tmp_path):
    async def scenario():
        alice = await registered(tmp_path, "Alice", "2468")
        bob = await registered(tmp_path, "Bob", "1357")
        await fund(alice, 10_000)

        account = await alice.wallet.set_security_policy(1_000, alice.pin)
        assert (account.second_factor_above, account.second_factor_registered) == (1_000, False)
        assert alice.wallet.account().second_factor_above == 1_000
        with pytest.raises(WalletError.InvalidAmount):
            await alice.wallet.set_security_policy(-1, alice.pin)

        # Above the threshold without a key: typed, and the item is kept.
        with pytest.raises(WalletError.SecondFactorNotRegistered):
            await alice.wallet.send(bob.number, 1_500, "bike", alice.pin)
        [item] = alice.wallet.outbox()
        assert item.state == OutboxState.NEEDS_ACTION
        assert item.reason.code == ErrorCode.SECOND_FACTOR_REQUIRED

        account = await alice.wallet.register_second_factor(alice.pin)
        assert account.second_factor_registered
        assert len(alice.store.secrets["ocra-key"]) == 32
        alice.wallet.requeue(item.id, alice.pin)
        paid = await alice.wallet.send_now(item.id)
        assert (paid.state, paid.amount) == (TransferState.POSTED, 1_500)
        await alice.wallet.send(bob.number, 2_000, "", alice.pin)
        assert alice.wallet.balance() == 6_500

        # An approval above the threshold.
        draft = bob.wallet.draft_request(alice.number, 1_200, "")
        bob.wallet.queue(draft.id, bob.pin)
        await bob.wallet.sync_now()
        await alice.wallet.sync_now()
        [request] = alice.wallet.incoming_requests()
        await alice.wallet.approve_request(request.id, alice.pin)
        assert alice.wallet.balance() == 5_300

        # A key the server does not know answers wrongly, and that counts.
        alice.store.secrets["ocra-key"] = bytes(32)
        with pytest.raises(WalletError.WrongChallengeResponse) as wrong:
            await alice.wallet.send(bob.number, 3_000, "", alice.pin)
        assert wrong.value.attempts_remaining == 4
        assert alice.wallet.balance() == 5_300

        account = await alice.wallet.set_security_policy(None, alice.pin)
        assert account.second_factor_above is None

    asyncio.run(scenario())


def test_a_request_cancelled_by_its_requester_cannot_be_paid(tmp_path):
    async def scenario():
        alice = await registered(tmp_path, "Alice", "2468")
        bob = await registered(tmp_path, "Bob", "1357")
        await fund(bob, 1_000)

        draft = alice.wallet.draft_request(bob.number, 300, "cake")
        alice.wallet.queue(draft.id, alice.pin)
        await alice.wallet.sync_now()
        [item] = alice.wallet.outbox()
        await bob.wallet.sync_now()
        assert len(bob.wallet.incoming_requests()) == 1

        with pytest.raises(WalletError.NotFound):
            await bob.wallet.cancel_request(item.transfer_id)
        with pytest.raises(WalletError.InvalidInput):
            await alice.wallet.cancel_request("../x")
        cancelled = await alice.wallet.cancel_request(item.transfer_id)
        assert (cancelled.state, cancelled.void_reason) == (
            TransferState.VOIDED,
            VoidReason.CANCELLED,
        )
        with pytest.raises(WalletError.RequestNotPending):
            await bob.wallet.approve_request(item.transfer_id, bob.pin)
        await bob.wallet.sync_now()
        assert bob.wallet.incoming_requests() == []
        assert bob.wallet.balance() == 1_000

    asyncio.run(scenario())


def test_an_avatar_is_set_replaced_and_cleared_and_a_bad_one_is_invalid_avatar(tmp_path):
    async def scenario():
        bob = await registered(tmp_path, "Bob", "1357")
        assert await bob.wallet.avatar() == Avatar(emoji=None, picture=None)

        jpeg = b"\xff\xd8\xff\xe0" + bytes(300)
        chef = "\U0001f9d1\u200d\U0001f373"  # one emoji, joined: a cook
        assert await bob.wallet.set_avatar(chef, jpeg) == Avatar(emoji=chef, picture=jpeg)
        assert await bob.wallet.avatar() == Avatar(emoji=chef, picture=jpeg)
        # A PUT replaces the whole avatar: the emoji alone now.
        assert await bob.wallet.set_avatar("🐱", None) == Avatar(emoji="🐱", picture=None)

        for emoji, picture, field in [
            ("🐱🐶", None, "avatar emoji"),
            ("Bob", None, "avatar emoji"),
            (None, b"GIF89a", "avatar picture"),
            (None, b"\x89PNG\r\n\x1a\n" + bytes(40_000), "avatar picture"),
        ]:
            with pytest.raises(WalletError.InvalidAvatar) as refused:
                await bob.wallet.set_avatar(emoji, picture)
            assert refused.value.field == field
        with pytest.raises(WalletError.InvalidInput):
            await bob.wallet.set_avatar(None, None)
        assert await bob.wallet.avatar() == Avatar(emoji="🐱", picture=None)

        await bob.wallet.clear_avatar()
        await bob.wallet.clear_avatar()
        assert await bob.wallet.avatar() == Avatar(emoji=None, picture=None)

    asyncio.run(scenario())
