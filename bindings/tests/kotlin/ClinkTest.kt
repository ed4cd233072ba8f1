// The generated Kotlin bindings against the real library, on the JVM.
// Run by scripts/test-bindings; prints "N passed, M failed" and exits
// non-zero if any test failed. The bump and sound scenarios are in
// PairingTest.kt; withdraw, policy, second factor and cancel in
// WalletOpsTest.kt.
package app.clink.test

import app.clink.core.*
import app.clink.core.protocol.*
import app.clink.core.wallet.*
import kotlinx.coroutines.runBlocking
import java.io.File
import java.nio.file.Files
import java.security.MessageDigest
import java.util.concurrent.CopyOnWriteArrayList
import kotlin.random.Random
import kotlin.system.exitProcess

private val tests = mutableListOf<Pair<String, () -> Unit>>()

internal fun test(name: String, body: () -> Unit) {
    tests += name to body
}

internal fun check(condition: Boolean, message: () -> String) {
    if (!condition) throw AssertionError(message())
}

internal fun <T> checkEqual(expected: T, actual: T, what: String) {
    check(expected == actual) { "$what: expected <$expected>, got <$actual>" }
}

internal inline fun <reified E : Throwable> checkThrows(body: () -> Unit): E {
    try {
        body()
    } catch (e: Throwable) {
        if (e is E) return e
        throw AssertionError("expected ${E::class.simpleName}, got $e")
    }
    throw AssertionError("expected ${E::class.simpleName}, nothing was thrown")
}

/** A keychain stand-in: secrets in a map, counting writes. */
internal class MapSecretStore : SecretStore {
    val secrets = mutableMapOf<String, ByteArray>()
    var puts = 0

    override fun get(name: String): ByteArray? = secrets[name]

    override fun put(name: String, secret: ByteArray) {
        puts += 1
        secrets[name] = secret.copyOf()
    }

    override fun delete(name: String): Boolean = secrets.remove(name) != null
}

/** A keychain that is locked, as the Android Keystore is before first unlock. */
private class LockedSecretStore : SecretStore {
    override fun get(name: String): ByteArray? =
        throw SecretException.Unavailable("device is locked")

    override fun put(name: String, secret: ByteArray) =
        throw SecretException.Unavailable("device is locked")

    override fun delete(name: String): Boolean =
        throw SecretException.Unavailable("device is locked")
}

/** A store with a bug: throws something that is not a SecretException. */
private class BrokenSecretStore : SecretStore {
    override fun get(name: String): ByteArray? = throw IllegalStateException("keystore crashed")

    override fun put(name: String, secret: ByteArray) = throw IllegalStateException("keystore crashed")

    override fun delete(name: String): Boolean = throw IllegalStateException("keystore crashed")
}

/** The real server scripts/test-bindings started, and the file its codes go to. */
internal val serverUrl: String by lazy { env("CLINK_TEST_SERVER_URL") }
internal val otpFile: File by lazy { File(env("CLINK_TEST_OTP_FILE")) }

/** A port nothing listens on: the wallet is offline there. */
private const val OFFLINE_URL = "http://127.0.0.1:9"

internal fun env(name: String): String =
    System.getenv(name) ?: throw AssertionError("$name is not set: run scripts/test-bindings")

/** A fresh Japanese mobile number, so runs against one server never collide. */
internal fun freshPhone(): String =
    "090-%d%03d-%04d".format(Random.nextInt(1, 10), Random.nextInt(1000), Random.nextInt(10_000))

/** The last registration code the server wrote for `e164`. */
internal fun codeFor(e164: String): String =
    otpFile.readLines().lastOrNull { it.startsWith("$e164 ") }?.substringAfter(' ')
        ?: throw AssertionError("no code for $e164 in $otpFile")

/** Records every event the wallet reports, from whichever thread reports it. */
internal class EventLog : WalletListener {
    val events = CopyOnWriteArrayList<WalletEvent>()

    override fun onEvent(event: WalletEvent) {
        events += event
    }
}

/** A wallet in a fresh directory with its own keychain, registered and verified on the real server. */
internal class Phone(val name: String, val pin: String) {
    val dir: String = Files.createTempDirectory("clink-wallet-").toString()
    val store = MapSecretStore()
    val log = EventLog()
    val number = freshPhone()
    var wallet: Wallet = open(serverUrl)

    fun open(url: String): Wallet = Wallet.open(dir, url, store).also { it.setListener(log) }

    suspend fun registerAndVerify(): AccountSummary {
        val started = wallet.register(number)
        return wallet.verify(codeFor(started.phone), name, pin)
    }

    /** Cash in at the operator's desk, then sync to see it. */
    suspend fun fund(amount: Long) {
        cashIn(number, amount)
        wallet.syncNow()
    }
}

private const val ALL_KEYS = "0123456789*#ABCD"

/** Feeds `samples` to `push` in chunks of `chunk` samples and collects what comes out. */
private fun <S, R> streamInChunks(samples: List<S>, chunk: Int, push: (List<S>) -> List<R>): List<R> =
    samples.chunked(chunk).flatMap(push)

private fun dtmfRoundTrip(sampleRateHz: Int) {
    val config = dtmfSynthConfigDefault().copy(sampleRateHz = sampleRateHz.toUInt())
    val pcm = synthesizeDtmfF32(ALL_KEYS, config)
    DtmfDetector(sampleRateHz.toUInt()).use { detector ->
        // 20 ms chunks, as an audio callback would deliver them.
        val events = streamInChunks(pcm, sampleRateHz / 50) { detector.pushF32(it) } + detector.finish()
        checkEqual(ALL_KEYS, events.joinToString("") { it.key }, "keys at $sampleRateHz Hz")
        check(events.zipWithNext().all { (a, b) -> a.endSample <= b.startSample }) {
            "events overlap or are out of order: $events"
        }
    }
}

fun main() {
    test("dial string: a send is written with its check digit and parsed back") {
        val send = DialCommand.Send(originator = "0000000000", payee = "1111", amountMinor = 800uL)
        val written = encodeDialString(send)
        checkEqual("*1*0000000000*1111*800*8#", written, "written send")
        checkEqual(ParsedDial(send, DialForm.CHECKED), parseDialString(written), "parsed send")
    }

    test("dial string: a typed quick send with dashes is a seed") {
        val parsed = parseDialString("111-090-1111-1111*800")
        checkEqual(DialForm.SEED, parsed.form, "form")
        checkEqual(DialCommand.QuickSend(payee = "09011111111", amountMinor = 800uL), parsed.command, "command")
    }

    test("dial string: a mistyped amount raises CheckDigitWrong at the check digit") {
        val e = checkThrows<DialException.CheckDigitWrong> { parseDialString("*3*09011111111*600*5#") }
        checkEqual(19uL, e.position, "position")
        check(e.description.contains("mistyped")) { "description: ${e.description}" }
    }

    test("dial string: a space raises UnexpectedChar with its character index") {
        val e = checkThrows<DialException.UnexpectedChar> { parseDialString("00 0000*1111*800") }
        checkEqual(2uL, e.position, "position")
        checkEqual(" ", e.found, "found")
    }

    test("dial string: encoding a payee with a letter raises UnexpectedChar in that field") {
        val e = checkThrows<DialException.UnexpectedChar> {
            encodeDialString(DialCommand.QuickSend(payee = "12a", amountMinor = 1uL))
        }
        checkEqual(2uL, e.position, "position")
    }

    test("dial string: encoding a zero amount raises AmountZero") {
        checkThrows<DialException.AmountZero> {
            encodeDialString(DialCommand.Request(requester = "11", payer = "22", amountMinor = 0uL))
        }
    }

    test("dtmf: all 16 keys round-trip through f32 synthesis and the detector at 8 kHz") {
        dtmfRoundTrip(8_000)
    }

    test("dtmf: all 16 keys round-trip through f32 synthesis and the detector at 48 kHz") {
        dtmfRoundTrip(48_000)
    }

    test("dtmf: all 16 keys round-trip through i16 synthesis and push_i16 at 8 kHz") {
        val pcm = synthesizeDtmfI16(ALL_KEYS, dtmfSynthConfigDefault())
        checkEqual(synthesizeDtmfF32(ALL_KEYS, dtmfSynthConfigDefault()).size, pcm.size, "i16 length")
        DtmfDetector(8_000u).use { detector ->
            val events = streamInChunks(pcm, 256) { detector.pushI16(it) } + detector.finish()
            checkEqual(ALL_KEYS, events.joinToString("") { it.key }, "keys")
        }
    }

    test("dtmf: an unknown key raises UnknownKey at its position") {
        val e = checkThrows<DtmfException.UnknownKey> { synthesizeDtmfF32("12x4", dtmfSynthConfigDefault()) }
        checkEqual(2uL, e.position, "position")
        checkEqual("x", e.found, "found")
    }

    test("dtmf: a detector at 4 kHz raises SampleRateOutOfRange") {
        val e = checkThrows<DtmfException.SampleRateOutOfRange> { DtmfDetector(4_000u) }
        checkEqual(4_000u, e.hz, "hz")
    }

    test("acoustic: a token round-trips through the modem and the decoder at 48 kHz near-ultrasound") {
        val token = "clink-token-0001".toByteArray()
        val rate = 48_000u
        val signal = TokenModem(AcousticProfile.NEAR_ULTRASOUND, rate).use { it.modulate(token) }
        val silence = List(1_000) { 0f }
        TokenDecoder(AcousticProfile.NEAR_ULTRASOUND, rate).use { decoder ->
            val tokens = streamInChunks(silence + signal + silence, 960) { decoder.push(it) }
            checkEqual(1, tokens.size, "tokens decoded")
            check(tokens[0].contentEquals(token)) { "decoded ${tokens[0].decodeToString()}" }
        }
    }

    test("acoustic: a 15-byte token raises TokenLength") {
        TokenModem(AcousticProfile.AUDIBLE, 16_000u).use { modem ->
            val e = checkThrows<AcousticException.TokenLength> { modem.modulate(ByteArray(15)) }
            checkEqual(16uL to 15uL, e.expected to e.found, "expected/found")
        }
    }

    test("acoustic: near-ultrasound at 16 kHz raises SampleRateTooLow") {
        val e = checkThrows<AcousticException.SampleRateTooLow> {
            TokenDecoder(AcousticProfile.NEAR_ULTRASOUND, 16_000u)
        }
        checkEqual(acousticMinSampleRateHz(AcousticProfile.NEAR_ULTRASOUND), e.minHz, "min Hz")
    }

    test("ocra: RFC 6287 one-way vectors for OCRA-1:HOTP-SHA1-6:QN08") {
        val key = "12345678901234567890".toByteArray()
        val expected = listOf(
            "237653", "243178", "653583", "740991", "608993",
            "388898", "816933", "224598", "750600", "294470",
        )
        for ((i, response) in expected.withIndex()) {
            val challenge = i.toString().repeat(8)
            checkEqual(response, ocraRespond("OCRA-1:HOTP-SHA1-6:QN08", key, challenge, OcraDataInput()), "Q=$challenge")
        }
    }

    test("ocra: RFC 6287 vector for OCRA-1:HOTP-SHA256-8:QN08-PSHA1 with a PIN hashed in Kotlin") {
        val key = "12345678901234567890123456789012".toByteArray()
        val pinHash = MessageDigest.getInstance("SHA-1").digest("1234".toByteArray())
        val input = OcraDataInput(pinHash = pinHash)
        checkEqual("83238735", ocraRespond("OCRA-1:HOTP-SHA256-8:QN08-PSHA1", key, "00000000", input), "response")
    }

    test("ocra: a suite that needs a PIN raises MissingInput without one") {
        val e = checkThrows<OcraException.MissingInput> {
            ocraRespond("OCRA-1:HOTP-SHA256-8:QN08-PSHA1", ByteArray(32), "00000000", OcraDataInput())
        }
        checkEqual(OcraInput.PIN_HASH, e.input, "input")
    }

    test("secret store: the install key is created once in the Kotlin store and answers with Clink's suite") {
        val store = MapSecretStore()
        val first = OcraResponder.loadOrCreate(store).use { it.respond("12345678") }
        val key = store.secrets["ocra-key"] ?: throw AssertionError("no ocra-key stored: ${store.secrets.keys}")
        checkEqual(32, key.size, "key length")
        checkEqual(ocraRespond(clinkOcraSuite(), key, "12345678", OcraDataInput()), first, "response")
        val again = OcraResponder.loadOrCreate(store).use { it.respond("12345678") }
        checkEqual(first, again, "response after reloading the key")
        checkEqual(1, store.puts, "writes to the store")
    }

    test("secret store: a locked Kotlin store surfaces as SecretException.Unavailable with its reason") {
        val e = checkThrows<SecretException.Unavailable> { OcraResponder.loadOrCreate(LockedSecretStore()) }
        checkEqual("device is locked", e.reason, "reason")
    }

    test("secret store: an unexpected Kotlin exception surfaces as SecretException.Unavailable") {
        val e = checkThrows<SecretException.Unavailable> { OcraResponder.loadOrCreate(BrokenSecretStore()) }
        check(e.reason.contains("keystore crashed")) { "reason: ${e.reason}" }
    }

    test("secret store: a stored key of the wrong length raises SecretException.Malformed") {
        val store = MapSecretStore().apply { secrets["ocra-key"] = ByteArray(5) }
        val e = checkThrows<SecretException.Malformed> { OcraResponder.loadOrCreate(store) }
        checkEqual("ocra-key", e.name, "name")
    }

    test("phone: a Japanese mobile number typed locally becomes E.164") {
        val number = parsePhoneNumber("090-1111-1111", "JP")
        checkEqual(PhoneNumber(e164 = "+819011111111", digits = "819011111111"), number, "number")
        checkThrows<PhoneException.UnknownRegion> { parsePhoneNumber("090-1111-1111", "XX") }
    }

    test("wallet: register, cash in, draft and queue offline, sync, approve a request; events and balances on both sides") {
        runBlocking {
            val alice = Phone("Alice", "2468")
            val bob = Phone("Bob", "1357")
            checkEqual(null, alice.wallet.account(), "account before verification")
            val aliceAccount = alice.registerAndVerify()
            checkEqual("Alice", aliceAccount.displayName, "display name")
            checkEqual(0L, aliceAccount.balance, "opening balance")
            bob.registerAndVerify()

            alice.fund(5_000)
            checkEqual(5_000L, alice.wallet.balance(), "Alice after the cash-in")
            check(WalletEvent.BalanceChanged(5_000) in alice.log.events) { "events: ${alice.log.events}" }

            // Offline: the same wallet opened against a server that is not there.
            alice.wallet.close()
            val stranger = freshPhone() // valid, but nobody registered it
            val queued = alice.open(OFFLINE_URL).use { offline ->
                val send = offline.draftSend(bob.number, 800, "lunch")
                val request = offline.draftRequest(bob.number, 300, "tickets")
                val lost = offline.draftSend(stranger, 100, "")
                checkEqual(3, offline.drafts().size, "drafts")
                val items = offline.queueDrafts(listOf(send.id, request.id, lost.id), alice.pin)
                checkEqual(List(3) { OutboxState.QUEUED }, items.map { it.state }, "states after queueing")
                checkEqual(0, offline.drafts().size, "drafts after queueing")
                checkThrows<WalletException.Offline> { runBlocking { offline.syncNow() } }
                items
            }
            val (sendItem, requestItem, lostItem) = queued

            alice.wallet = alice.open(serverUrl)
            alice.log.events.clear()
            val report = alice.wallet.syncNow()
            checkEqual(2u to 1u, report.accepted to report.rejected, "accepted/rejected")
            checkEqual(4_200L, report.balance, "balance in the report")
            checkEqual(4_200L, alice.wallet.balance(), "Alice after syncing")
            val outbox = alice.wallet.outbox().associateBy { it.id }
            checkEqual(OutboxState.ACCEPTED, outbox.getValue(sendItem.id).state, "send")
            checkEqual(OutboxState.ACCEPTED, outbox.getValue(requestItem.id).state, "request")
            checkEqual(OutboxState.REJECTED, outbox.getValue(lostItem.id).state, "send to a stranger")
            checkEqual(ErrorCode.UNKNOWN_PAYEE, outbox.getValue(lostItem.id).reason?.code, "rejection reason")
            val seen = alice.log.events
            for (item in queued) {
                check(WalletEvent.OutboxItemChanged(item.id, OutboxState.SENDING) in seen) { "no SENDING for ${item.id}: $seen" }
            }
            check(WalletEvent.OutboxItemChanged(sendItem.id, OutboxState.ACCEPTED) in seen) { "events: $seen" }
            check(WalletEvent.OutboxItemChanged(lostItem.id, OutboxState.REJECTED) in seen) { "events: $seen" }
            check(WalletEvent.BalanceChanged(4_200) in seen) { "events: $seen" }

            val bobReport = bob.wallet.syncNow()
            checkEqual(1u, bobReport.newRequests, "Bob's new requests")
            checkEqual(800L, bob.wallet.balance(), "Bob after the send")
            check(WalletEvent.BalanceChanged(800) in bob.log.events) { "events: ${bob.log.events}" }
            val received = bob.log.events.filterIsInstance<WalletEvent.RequestReceived>().map { it.request }
            val request = bob.wallet.incomingRequests().single()
            checkEqual(listOf(request), received, "RequestReceived events")
            checkEqual(300L to "tickets", request.amount to request.memo, "request")
            checkEqual("Alice", request.counterpart.displayName, "requester")
            checkEqual(TransferState.PENDING, request.state, "request state")

            val wrong = checkThrows<WalletException.WrongPin> { runBlocking { bob.wallet.approveRequest(request.id, "0000") } }
            checkEqual(4u, wrong.attemptsRemaining, "attempts remaining after one wrong PIN")
            checkEqual(800L, bob.wallet.balance(), "Bob after a wrong PIN")

            val paid = bob.wallet.approveRequest(request.id, bob.pin)
            checkEqual(TransferState.POSTED, paid.state, "approved request")
            checkEqual(Direction.OUTGOING, paid.direction, "direction for Bob")
            checkEqual(500L, bob.wallet.balance(), "Bob after approving")
            checkEqual(0, bob.wallet.incomingRequests().size, "Bob's open requests")

            alice.wallet.syncNow()
            checkEqual(4_500L, alice.wallet.balance(), "Alice after Bob approved")
            val history = alice.wallet.history(10u, null)
            check(history.any { it.kind == TransferKind.CLAIM && it.state == TransferState.POSTED && it.amount == 300L }) {
                "history: $history"
            }
            alice.wallet.close()
            bob.wallet.close()
        }
    }

    test("wallet: an invalid phone number is a typed exception, from the wallet and from the server") {
        runBlocking {
            Phone("Carol", "9753").wallet.use { wallet ->
                val local = checkThrows<WalletException.InvalidPhoneNumber> { wallet.draftSend("not a phone", 100, "") }
                check(local.description.contains("not a phone number")) { local.description }
                checkThrows<WalletException.InvalidPhoneNumber> { runBlocking { wallet.register("12") } }
                checkThrows<WalletException.InvalidAmount> { wallet.draftSend("090-1234-5678", -5, "") }
                checkThrows<WalletException.NotRegistered> { runBlocking { wallet.syncNow() } }
            }
        }
    }

    test("wallet: a misleading memo or display name is a typed exception that names the character") {
        runBlocking {
            Phone("Fay", "2580").wallet.use { wallet ->
                val memo = checkThrows<WalletException.InvalidMemo> { wallet.draftSend("090-1234-5678", 800, "\u202Ehcnul") }
                check(memo.reason.contains("U+202E RIGHT-TO-LEFT OVERRIDE at character 1")) { memo.reason }
                checkThrows<WalletException.InvalidMemo> { wallet.draftRequest("090-1234-5678", 300, "tick\u200Bets") }
                val name = checkThrows<WalletException.InvalidDisplayName> {
                    runBlocking { wallet.verify("123456", "P\u0430ypal", "1234") }
                }
                check(name.reason.contains("Cyrillic")) { name.reason }
                checkEqual("caf\u00E9", wallet.draftSend("090-1234-5678", 800, "cafe\u0301").memo, "memo stored composed")
            }
        }
    }

    test("wallet: wrong PINs count down, then payments are locked") {
        runBlocking {
            val dave = Phone("Dave", "8642")
            val erin = Phone("Erin", "7531")
            dave.registerAndVerify()
            erin.registerAndVerify()
            erin.wallet.draftRequest(dave.number, 50, "").also { erin.wallet.queue(it.id, erin.pin) }
            erin.wallet.syncNow()
            dave.wallet.syncNow()
            val request = dave.wallet.incomingRequests().single()
            val remaining = (1..4).map {
                checkThrows<WalletException.WrongPin> { runBlocking { dave.wallet.approveRequest(request.id, "0000") } }
                    .attemptsRemaining
            }
            checkEqual(listOf(4u, 3u, 2u, 1u), remaining, "attempts remaining")
            val locked = checkThrows<WalletException.Locked> {
                runBlocking { dave.wallet.approveRequest(request.id, "0000") }
            }
            check((locked.lockedUntilMs ?: 0) > System.currentTimeMillis()) { "locked until ${locked.lockedUntilMs}" }
            dave.wallet.close()
            erin.wallet.close()
        }
    }

    registerPairingTests()
    registerWalletOpsTests()

    var failed = 0
    for ((name, body) in tests) {
        try {
            body()
            println("ok   $name")
        } catch (e: Throwable) {
            failed += 1
            println("FAIL $name: $e")
        }
    }
    println("${tests.size - failed} passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}
