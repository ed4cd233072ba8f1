// The wallet's online operations through the generated Kotlin, against the
// real server scripts/test-bindings starts: withdraw, the security policy
// and the second-factor key, cancelling one's own request, and the avatar,
// each with its typed exception.
package app.clink.test

import app.clink.core.*
import app.clink.core.protocol.*
import app.clink.core.wallet.*
import kotlinx.coroutines.runBlocking

/** Puts `amount` on `phone`'s account: the one place these tests fund. */
private suspend fun fund(phone: Phone, amount: Long) {
    phone.fund(amount)
}

private suspend fun registered(name: String, pin: String): Phone =
    Phone(name, pin).also { it.registerAndVerify() }

internal fun registerWalletOpsTests() {
    test("wallet: withdraw is done once; an unanswered one is finished by its retry and blocks another") {
        runBlocking {
            val alice = registered("Alice", "2468")
            fund(alice, 5_000)

            val done = alice.wallet.withdraw(700, alice.pin)
            checkEqual(TransferKind.WITHDRAWAL to 700L, done.kind to done.amount, "withdrawal")
            checkEqual(4_300L, alice.wallet.balance(), "balance after the withdrawal")
            check(WalletEvent.BalanceChanged(4_300) in alice.log.events) { "events: ${alice.log.events}" }
            checkEqual(null, alice.wallet.pendingWithdrawal(), "pending after an answer")
            val wrong = checkThrows<WalletException.WrongPin> { runBlocking { alice.wallet.withdraw(700, "0000") } }
            checkEqual(4u, wrong.attemptsRemaining, "attempts remaining")
            checkThrows<WalletException.InvalidAmount> { runBlocking { alice.wallet.withdraw(0, alice.pin) } }

            // Offline: it waits for its answer, and blocks another amount.
            alice.wallet.close()
            alice.open("http://127.0.0.1:9").use { offline ->
                checkThrows<WalletException.Offline> { runBlocking { offline.withdraw(500, alice.pin) } }
                checkEqual(500L, offline.pendingWithdrawal()?.amount, "pending amount")
                val blocked = checkThrows<WalletException.WithdrawalPending> {
                    runBlocking { offline.withdraw(600, alice.pin) }
                }
                checkEqual(500L, blocked.amount, "the amount waiting")
            }
            alice.wallet = alice.open(serverUrl)
            alice.wallet.withdraw(500, alice.pin)
            checkEqual(null, alice.wallet.pendingWithdrawal(), "pending after the retry")
            checkEqual(3_800L, alice.wallet.balance(), "balance after the retry")
            alice.wallet.close()
        }
    }

    test("wallet: above the policy the second factor is answered by the registered key; without one, a typed exception") {
        runBlocking {
            val alice = registered("Alice", "2468")
            val bob = registered("Bob", "1357")
            fund(alice, 10_000)

            val policy = alice.wallet.setSecurityPolicy(1_000, alice.pin)
            checkEqual(1_000L to false, policy.secondFactorAbove to policy.secondFactorRegistered, "policy")
            checkThrows<WalletException.SecondFactorNotRegistered> {
                runBlocking { alice.wallet.send(bob.number, 1_500, "bike", alice.pin) }
            }
            val item = alice.wallet.outbox().single()
            checkEqual(OutboxState.NEEDS_ACTION, item.state, "item without the second factor")
            checkEqual(ErrorCode.SECOND_FACTOR_REQUIRED, item.reason?.code, "reason")

            val account = alice.wallet.registerSecondFactor(alice.pin)
            check(account.secondFactorRegistered) { "not registered: $account" }
            checkEqual(32, alice.store.secrets.getValue("ocra-key").size, "key bytes in the keychain")
            alice.wallet.requeue(item.id, alice.pin)
            val paid = alice.wallet.sendNow(item.id)
            checkEqual(TransferState.POSTED to 1_500L, paid.state to paid.amount, "retried send")
            alice.wallet.send(bob.number, 2_000, "", alice.pin)
            checkEqual(6_500L, alice.wallet.balance(), "balance after two sends")

            bob.wallet.draftRequest(alice.number, 1_200, "").also { bob.wallet.queue(it.id, bob.pin) }
            bob.wallet.syncNow()
            alice.wallet.syncNow()
            alice.wallet.approveRequest(alice.wallet.incomingRequests().single().id, alice.pin)
            checkEqual(5_300L, alice.wallet.balance(), "balance after the approval")

            // A key the server does not know answers wrongly, and that counts.
            alice.store.secrets["ocra-key"] = ByteArray(32)
            val wrong = checkThrows<WalletException.WrongChallengeResponse> {
                runBlocking { alice.wallet.send(bob.number, 3_000, "", alice.pin) }
            }
            checkEqual(4u, wrong.attemptsRemaining, "attempts remaining")

            checkEqual(null, alice.wallet.setSecurityPolicy(null, alice.pin).secondFactorAbove, "policy off")
            alice.wallet.close()
            bob.wallet.close()
        }
    }

    test("wallet: a request cancelled by its requester cannot be paid and leaves the payer's inbox") {
        runBlocking {
            val alice = registered("Alice", "2468")
            val bob = registered("Bob", "1357")
            fund(bob, 1_000)
            alice.wallet.draftRequest(bob.number, 300, "cake").also { alice.wallet.queue(it.id, alice.pin) }
            alice.wallet.syncNow()
            val id = alice.wallet.outbox().single().transferId!!
            bob.wallet.syncNow()
            checkEqual(1, bob.wallet.incomingRequests().size, "Bob's requests")

            checkThrows<WalletException.NotFound> { runBlocking { bob.wallet.cancelRequest(id) } }
            val cancelled = alice.wallet.cancelRequest(id)
            checkEqual(TransferState.VOIDED to VoidReason.CANCELLED, cancelled.state to cancelled.voidReason, "cancelled")
            checkThrows<WalletException.RequestNotPending> { runBlocking { bob.wallet.approveRequest(id, bob.pin) } }
            bob.wallet.syncNow()
            checkEqual(0, bob.wallet.incomingRequests().size, "Bob's requests after sync")
            checkEqual(1_000L, bob.wallet.balance(), "Bob's balance")
            alice.wallet.close()
            bob.wallet.close()
        }
    }

    test("wallet: an avatar is set, replaced and cleared; a bad one throws InvalidAvatar") {
        runBlocking {
            val bob = registered("Bob", "1357")
            checkEqual(Avatar(null, null), bob.wallet.avatar(), "no avatar yet")
            val jpeg = byteArrayOf(0xFF.toByte(), 0xD8.toByte(), 0xFF.toByte(), 0xE0.toByte()) + ByteArray(300) { 1 }
            val set = bob.wallet.setAvatar("🧑\u200D🍳", jpeg)
            checkEqual("🧑\u200D🍳", set.emoji, "a joined emoji is one")
            check(set.picture?.contentEquals(jpeg) == true) { "picture: ${set.picture?.size} bytes" }
            val fetched = bob.wallet.avatar()
            check(fetched.emoji == set.emoji && fetched.picture?.contentEquals(jpeg) == true) { "fetched: $fetched" }
            checkEqual(Avatar("🐱", null), bob.wallet.setAvatar("🐱", null), "replaced by the emoji alone")

            val twoEmoji = checkThrows<WalletException.InvalidAvatar> { runBlocking { bob.wallet.setAvatar("🐱🐶", null) } }
            checkEqual("avatar emoji", twoEmoji.field, "field")
            checkThrows<WalletException.InvalidAvatar> { runBlocking { bob.wallet.setAvatar("Bob", null) } }
            val gif = checkThrows<WalletException.InvalidAvatar> {
                runBlocking { bob.wallet.setAvatar(null, "GIF89a".toByteArray()) }
            }
            checkEqual("avatar picture", gif.field, "field")
            checkThrows<WalletException.InvalidAvatar> {
                runBlocking { bob.wallet.setAvatar(null, byteArrayOf(0x89.toByte(), 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A) + ByteArray(40_000)) }
            }
            checkEqual(Avatar("🐱", null), bob.wallet.avatar(), "unchanged by the refusals")

            bob.wallet.clearAvatar()
            checkEqual(Avatar(null, null), bob.wallet.avatar(), "cleared")
            bob.wallet.close()
        }
    }
}
