"""The Wallet through the generated Python bindings, against the real
clink-server that scripts/test-bindings starts (its URL and OTP file come in
CLINK_TEST_SERVER_URL and CLINK_TEST_OTP_FILE). Async methods run with
asyncio.run."""

import asyncio
import os
import random
import threading
import time

import pytest
from cash_desk import cash_in

from clink_ffi import (
    Direction,
    ErrorCode,
    OutboxState,
    SecretStore,
    TransferKind,
    TransferState,
    Wallet,
    WalletError,
    WalletEvent,
    WalletListener,
)

# A port nothing listens on: the wallet is offline there.
OFFLINE_URL = "http://127.0.0.1:9"


def env(name):
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run scripts/test-bindings")
    return value


def fresh_phone():
    """A fresh Japanese mobile number, so runs against one server never collide."""
    return f"090-{random.randint(1, 9)}{random.randint(0, 999):03}-{random.randint(0, 9999):04}"


def code_for(e164):
    """The last registration code the server wrote for `e164`."""
    with open(env("CLINK_TEST_OTP_FILE")) as otp_file:
        codes = [line.split()[1] for line in otp_file if line.startswith(e164 + " ")]
    assert codes, f"no code for {e164}"
    return codes[-1]


class DictSecretStore(SecretStore):
    """A keychain stand-in, safe to call from any thread."""

    def __init__(self):
        self.secrets = {}
        self.lock = threading.Lock()

    def get(self, name):
        with self.lock:
            return self.secrets.get(name)

    def put(self, name, secret):
        with self.lock:
            self.secrets[name] = bytes(secret)

    def delete(self, name):
        with self.lock:
            return self.secrets.pop(name, None) is not None


class EventLog(WalletListener):
    """Records every event the wallet reports."""

    def __init__(self):
        self.events = []

    def on_event(self, event):
        self.events.append(event)


class Phone:
    """A wallet in a fresh directory with its own keychain."""

    def __init__(self, tmp_path, name, pin):
        self.dir = str(tmp_path / name)
        self.name, self.pin = name, pin
        self.store = DictSecretStore()
        self.log = EventLog()
        self.number = fresh_phone()
        self.wallet = self.open(env("CLINK_TEST_SERVER_URL"))

    def open(self, url):
        wallet = Wallet.open(self.dir, url, self.store)
        wallet.set_listener(self.log)
        return wallet

    async def register_and_verify(self):
        started = await self.wallet.register(self.number)
        return await self.wallet.verify(code_for(started.phone), self.name, self.pin)

    async def fund(self, amount):
        """Cash in at the operator's desk, then sync to see it."""
        cash_in(self.number, amount)
        await self.wallet.sync_now()


def test_the_wallet_offers_no_way_to_credit_oneself():
    # Money enters a balance only from another user or the operator's cash-in.
    for name in ("top_up", "deposit", "cash_in"):
        assert not hasattr(Wallet, name), name


def test_register_cash_in_queue_offline_sync_and_approve_with_events_and_balances(tmp_path):
    async def scenario():
        alice = Phone(tmp_path, "Alice", "2468")
        bob = Phone(tmp_path, "Bob", "1357")
        assert alice.wallet.account() is None
        account = await alice.register_and_verify()
        assert (account.display_name, account.balance) == ("Alice", 0)
        await bob.register_and_verify()

        await alice.fund(5_000)
        assert alice.wallet.balance() == 5_000
        assert WalletEvent.BALANCE_CHANGED(balance=5_000) in alice.log.events

        # Offline: the same wallet opened against a server that is not there.
        alice.wallet = None
        stranger = fresh_phone()  # valid, but nobody registered it
        offline = alice.open(OFFLINE_URL)
        send = offline.draft_send(bob.number, 800, "lunch")
        request = offline.draft_request(bob.number, 300, "tickets")
        lost = offline.draft_send(stranger, 100, "")
        assert len(offline.drafts()) == 3
        items = offline.queue_drafts([send.id, request.id, lost.id], alice.pin)
        assert [item.state for item in items] == [OutboxState.QUEUED] * 3
        assert offline.drafts() == []
        with pytest.raises(WalletError.Offline):
            await offline.sync_now()
        del offline

        alice.wallet = alice.open(env("CLINK_TEST_SERVER_URL"))
        alice.log.events.clear()
        report = await alice.wallet.sync_now()
        assert (report.accepted, report.rejected, report.balance) == (2, 1, 4_200)
        assert alice.wallet.balance() == 4_200
        outbox = {item.id: item for item in alice.wallet.outbox()}
        assert outbox[items[0].id].state == OutboxState.ACCEPTED
        assert outbox[items[1].id].state == OutboxState.ACCEPTED
        assert outbox[items[2].id].state == OutboxState.REJECTED
        assert outbox[items[2].id].reason.code == ErrorCode.UNKNOWN_PAYEE
        seen = alice.log.events
        for item in items:
            assert WalletEvent.OUTBOX_ITEM_CHANGED(item_id=item.id, state=OutboxState.SENDING) in seen
        assert WalletEvent.OUTBOX_ITEM_CHANGED(item_id=items[0].id, state=OutboxState.ACCEPTED) in seen
        assert WalletEvent.OUTBOX_ITEM_CHANGED(item_id=items[2].id, state=OutboxState.REJECTED) in seen
        assert WalletEvent.BALANCE_CHANGED(balance=4_200) in seen

        bob_report = await bob.wallet.sync_now()
        assert bob_report.new_requests == 1
        assert bob.wallet.balance() == 800
        assert WalletEvent.BALANCE_CHANGED(balance=800) in bob.log.events
        [waiting] = bob.wallet.incoming_requests()
        received = [e.request for e in bob.log.events if e.is_REQUEST_RECEIVED()]
        assert received == [waiting]
        assert (waiting.amount, waiting.memo, waiting.state) == (300, "tickets", TransferState.PENDING)
        assert waiting.counterpart.display_name == "Alice"

        with pytest.raises(WalletError.WrongPin) as wrong:
            await bob.wallet.approve_request(waiting.id, "0000")
        assert wrong.value.attempts_remaining == 4
        assert bob.wallet.balance() == 800

        paid = await bob.wallet.approve_request(waiting.id, bob.pin)
        assert (paid.state, paid.direction) == (TransferState.POSTED, Direction.OUTGOING)
        assert bob.wallet.balance() == 500
        assert bob.wallet.incoming_requests() == []

        await alice.wallet.sync_now()
        assert alice.wallet.balance() == 4_500
        history = alice.wallet.history(10, None)
        assert any(
            t.kind == TransferKind.CLAIM and t.state == TransferState.POSTED and t.amount == 300
            for t in history
        ), history

    asyncio.run(scenario())


def test_invalid_phone_number_is_a_typed_error_from_the_wallet_and_from_the_server(tmp_path):
    wallet = Phone(tmp_path, "Carol", "9753").wallet
    with pytest.raises(WalletError.InvalidPhoneNumber) as local:
        wallet.draft_send("not a phone", 100, "")
    assert "not a phone number" in local.value.description
    with pytest.raises(WalletError.InvalidPhoneNumber):
        asyncio.run(wallet.register("12"))
    with pytest.raises(WalletError.InvalidAmount):
        wallet.draft_send("090-1234-5678", -5, "")
    with pytest.raises(WalletError.NotRegistered):
        asyncio.run(wallet.sync_now())


def test_a_misleading_memo_or_display_name_is_a_typed_error_naming_the_character(tmp_path):
    wallet = Phone(tmp_path, "Fay", "2580").wallet
    with pytest.raises(WalletError.InvalidMemo) as memo:
        wallet.draft_send("090-1234-5678", 800, "\u202ehcnul")
    assert "U+202E RIGHT-TO-LEFT OVERRIDE at character 1" in memo.value.reason
    with pytest.raises(WalletError.InvalidMemo):
        wallet.draft_request("090-1234-5678", 300, "tick\u200bets")
    with pytest.raises(WalletError.InvalidDisplayName) as name:
        asyncio.run(wallet.verify("123456", "P\u0430ypal", "1234"))
    assert "Cyrillic" in name.value.reason
    assert wallet.draft_send("090-1234-5678", 800, "cafe\u0301").memo == "caf\u00e9"


def test_wrong_pins_count_down_then_payments_are_locked(tmp_path):
    async def scenario():
        dave = Phone(tmp_path, "Dave", "8642")
        erin = Phone(tmp_path, "Erin", "7531")
        await dave.register_and_verify()
        await erin.register_and_verify()
        draft = erin.wallet.draft_request(dave.number, 50, "")
        erin.wallet.queue(draft.id, erin.pin)
        await erin.wallet.sync_now()
        await dave.wallet.sync_now()
        [waiting] = dave.wallet.incoming_requests()
        remaining = []
        for _ in range(4):
            with pytest.raises(WalletError.WrongPin) as wrong:
                await dave.wallet.approve_request(waiting.id, "0000")
            remaining.append(wrong.value.attempts_remaining)
        assert remaining == [4, 3, 2, 1]
        with pytest.raises(WalletError.Locked) as locked:
            await dave.wallet.approve_request(waiting.id, "0000")
        assert locked.value.locked_until_ms > time.time() * 1000

    asyncio.run(scenario())


def test_calls_from_many_threads_at_once_all_land(tmp_path):
    """Every call is callable from any thread: drafts written from 8 threads
    at once are all there, each once."""
    wallet = Phone(tmp_path, "Frank", "1111").wallet
    errors = []

    def draft(thread):
        try:
            for i in range(25):
                wallet.draft_send("090-1234-5678", thread * 100 + i + 1, f"t{thread}")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=draft, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    amounts = sorted(d.amount for d in wallet.drafts())
    assert amounts == sorted(t * 100 + i + 1 for t in range(8) for i in range(25))
