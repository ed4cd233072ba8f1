// Pay by sound and pay by bump through the generated Kotlin, against the
// real server scripts/test-bindings starts, and the pure parts (knock
// detector, fingerprint, PCM as bytes) on their own. Every signal is
// generated here with a fixed seed: the token's PCM through a noisy channel
// in odd-sized chunks; for a bump, each phone's accelerometer trace
// (gravity, hand motion, one sharp knock at the same instant on both) and
// the room's sound as each microphone hears it.
package app.clink.test

import app.clink.core.*
import app.clink.core.protocol.*
import app.clink.core.wallet.*
import kotlinx.coroutines.async
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.runBlocking
import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.math.PI
import kotlin.math.abs
import kotlin.math.cos
import kotlin.math.pow
import kotlin.math.roundToLong
import kotlin.math.sin
import kotlin.math.sqrt

private const val SOUND_RATE_HZ = 48_000

// Bumps: a voice-grade microphone rate and a common accelerometer rate.
private const val BUMP_AUDIO_HZ = 16_000
private const val ACCEL_HZ = 200
private const val KNOCK_AT_MS = 3_000.0
private const val TRACE_MS = 4_200.0

// Sensor data goes in 20 ms at a time, as an audio callback delivers it.
private const val STEP_MS = 20.0

// A contact of two phones: a half sine of 5 ms and 30 m/s².
private const val KNOCK_WIDTH_MS = 5.0
private const val KNOCK_PEAK_MPS2 = 30.0
private const val GRAVITY_MPS2 = 9.81
private const val TAU = 2 * PI

/** Samples as Android's AudioRecord fills a 16-bit buffer: little-endian shorts. */
private fun i16Bytes(samples: List<Float>): ByteArray {
    val buffer = ByteBuffer.allocate(samples.size * 2).order(ByteOrder.LITTLE_ENDIAN)
    for (s in samples) buffer.putShort((s.coerceIn(-1f, 1f) * 32767f).let { Math.round(it) }.toShort())
    return buffer.array()
}

private fun f32Bytes(samples: List<Float>): ByteArray {
    val buffer = ByteBuffer.allocate(samples.size * 4).order(ByteOrder.LITTLE_ENDIAN)
    for (s in samples) buffer.putFloat(s)
    return buffer.array()
}

/** Consecutive slices of 997, 1, 4093, 333, ... samples. */
private fun oddChunks(samples: List<Float>): List<List<Float>> {
    val sizes = listOf(997, 1, 4093, 333)
    val chunks = mutableListOf<List<Float>>()
    var at = 0
    while (at < samples.size) {
        val end = minOf(samples.size, at + sizes[chunks.size % sizes.size])
        chunks += samples.subList(at, end)
        at = end
    }
    return chunks
}

/**
 * The token's PCM as a payer's microphone hears it: a third of a second of
 * silence before, the token at half scale, a quarter second after, white
 * noise `snrDb` below the token.
 */
private fun heard(pcm: List<Float>, seed: Long, snrDb: Double = 20.0): List<Float> {
    val rng = java.util.Random(seed)
    val level = sqrt(pcm.sumOf { it.toDouble() * it } / pcm.size) * 0.5
    val noise = level / 10.0.pow(snrDb / 20)
    val signal = List(SOUND_RATE_HZ / 3) { 0f } + pcm.map { it * 0.5f } + List(SOUND_RATE_HZ / 4) { 0f }
    return signal.map { (it + noise * rng.nextGaussian()).toFloat() }
}

private class Reading(val tMs: Double, val x: Float, val y: Float, val z: Float) {
    fun at(baseMs: Double) = AccelSample(timestampMs = baseMs + tMs, x = x, y = y, z = z)
}

/**
 * One held phone's accelerometer from 0 to TRACE_MS: tilted gravity, slow
 * hand motion and tremor on each axis, sensor noise and timing jitter, and
 * the knock on the x axis at KNOCK_AT_MS.
 */
private fun accelTrace(seed: Long, knockSign: Double): List<Reading> {
    val rng = java.util.Random(seed)
    fun uniform(lo: Double, hi: Double) = lo + (hi - lo) * rng.nextDouble()
    val pitch = uniform(0.5, 1.0)
    val roll = uniform(-0.3, 0.3)
    val gravity = doubleArrayOf(
        GRAVITY_MPS2 * cos(pitch) * sin(roll),
        GRAVITY_MPS2 * sin(pitch),
        GRAVITY_MPS2 * cos(pitch) * cos(roll),
    )
    // (amplitude m/s², frequency Hz, phase) of the hand's sway and tremor.
    val motion = List(3) {
        listOf(
            Triple(uniform(0.1, 0.4), uniform(0.5, 2.0), uniform(0.0, TAU)),
            Triple(uniform(0.02, 0.06), uniform(8.0, 12.0), uniform(0.0, TAU)),
        )
    }
    val periodMs = 1000.0 / ACCEL_HZ
    return List((TRACE_MS / periodMs).toInt()) { k ->
        val t = k * periodMs + uniform(-0.1, 0.1) * periodMs
        val a = DoubleArray(3) { axis ->
            gravity[axis] + motion[axis].sumOf { (amp, hz, phase) -> amp * sin(TAU * hz * t / 1000 + phase) } +
                0.03 * rng.nextGaussian()
        }
        val intoKnock = t - (KNOCK_AT_MS - KNOCK_WIDTH_MS / 2)
        if (intoKnock in 0.0..KNOCK_WIDTH_MS) a[0] += knockSign * KNOCK_PEAK_MPS2 * sin(PI * intoKnock / KNOCK_WIDTH_MS)
        Reading(t, a[0].toFloat(), a[1].toFloat(), a[2].toFloat())
    }
}

/**
 * TRACE_MS of one room's sound at BUMP_AUDIO_HZ as each of `phones`
 * microphones hears it: shared noise under a speech-like envelope plus
 * three tones that come and go, and each microphone's own noise 26 dB below.
 */
private fun roomSound(seed: Long, phones: Int): List<List<Float>> {
    val rng = java.util.Random(seed)
    fun uniform(lo: Double, hi: Double) = lo + (hi - lo) * rng.nextDouble()
    val tonesHz = List(3) { uniform(300.0, 4_000.0) }
    val tonesOnHz = uniform(1.5, 3.0)
    // Syllables and phrases: each room's talk has its own rhythm.
    val syllableHz = uniform(3.0, 6.0)
    val syllablePhase = uniform(0.0, TAU)
    val phraseHz = uniform(0.5, 1.2)
    val phrasePhase = uniform(0.0, TAU)
    val room = DoubleArray((TRACE_MS / 1000 * BUMP_AUDIO_HZ).toInt()) { n ->
        val t = n.toDouble() / BUMP_AUDIO_HZ
        val envelope = 0.6 + 0.4 * sin(TAU * syllableHz * t + syllablePhase) * sin(TAU * phraseHz * t + phrasePhase)
        val tones = tonesHz.sumOf { 0.05 * sin(TAU * it * t) }
        val gate = if ((t * tonesOnHz) % 1 < 0.6) 1.0 else 0.2
        0.1 * envelope * rng.nextGaussian() + tones * gate
    }
    val level = sqrt(room.sumOf { it * it } / room.size)
    return List(phones) { room.map { (it + 0.05 * level * rng.nextGaussian()).toFloat() } }
}

/**
 * Pushes a phone's sensor data as if its time axis began at `baseMs` on the
 * phone's clock: 20 ms of audio (16-bit bytes) and of accelerometer samples
 * at a time. The audio bytes are made before the clock starts.
 */
private class Feed(val trace: List<Reading>, audio: List<Float>) {
    private val perStep = (STEP_MS / 1000 * BUMP_AUDIO_HZ).toInt()
    private val chunks = audio.chunked(perStep).map { i16Bytes(it) }

    fun into(flow: BumpPayment, baseMs: Double) {
        var nextAccel = 0
        for ((step, chunk) in chunks.withIndex()) {
            val startMs = step * STEP_MS
            flow.pushAudioBytes(chunk, PcmEncoding.I16_LE, baseMs + startMs)
            val batch = mutableListOf<AccelSample>()
            while (nextAccel < trace.size && trace[nextAccel].tMs < startMs + STEP_MS) {
                batch += trace[nextAccel].at(baseMs)
                nextAccel += 1
            }
            flow.pushAccel(batch)
        }
    }
}

private suspend fun registered(name: String, pin: String = "2468"): Phone =
    Phone(name, pin).also {
        it.registerAndVerify()
        it.wallet.estimateClockOffset()
    }

internal fun registerPairingTests() {
    test("sound: a token heard with 20 dB of noise pays once; the same token heard again is TokenUsed") {
        runBlocking {
            val bob = registered("Bob's Bakery", "1357")
            val alice = registered("Alice")
            val carol = registered("Carol")
            alice.fund(2_000)
            bob.wallet.setAvatar("🍞", null)

            val request = bob.wallet.requestBySound(500, "bread", SOUND_RATE_HZ.toUInt(), null)
            checkEqual(AcousticProfile.NEAR_ULTRASOUND, request.profile(), "profile")
            check(request.state() is SoundRequestState.Playing) { "state: ${request.state()}" }
            val pcm = request.pcm()
            check(f32Bytes(pcm).contentEquals(request.pcmBytes(PcmEncoding.F32_LE))) { "pcmBytes differs from pcm" }

            val payer = alice.wallet.listenForToken(SOUND_RATE_HZ.toUInt())
            for (chunk in oddChunks(heard(pcm, seed = 1))) {
                if (payer.pushAudio(chunk) != SoundPaymentState.Listening) break
            }
            checkEqual(SoundPaymentState.Redeeming, payer.state(), "after hearing the token")
            val asked = payer.waitForConfirm()
            check(asked is SoundPaymentState.Confirm) { "asked: $asked" }
            asked as SoundPaymentState.Confirm
            checkEqual(Triple("Bob's Bakery", 500L, "bread"), Triple(asked.payeeDisplayName, asked.amount, asked.memo), "confirm")
            checkEqual(Avatar("🍞", null), asked.payeeAvatar, "the payee's avatar")
            checkThrows<WalletException.WrongPin> { runBlocking { payer.approve("0000") } }
            check(payer.state() is SoundPaymentState.Confirm) { "after a wrong PIN: ${payer.state()}" }
            checkEqual(SoundPaymentState.Paid, payer.approve(alice.pin), "approved")
            checkEqual(SoundRequestState.Paid, request.waitForPayment(5_000uL), "the payee's side")
            checkEqual(1_500L, alice.wallet.balance(), "Alice")
            checkEqual(500L, bob.wallet.syncNow().balance, "Bob")

            // Carol's phone hears the same token played again, as 16-bit bytes.
            val replay = carol.wallet.listenForToken(SOUND_RATE_HZ.toUInt())
            checkThrows<WalletException.InvalidInput> { replay.pushAudioBytes(ByteArray(3), PcmEncoding.I16_LE) }
            for (chunk in oddChunks(heard(pcm, seed = 2))) {
                if (replay.pushAudioBytes(i16Bytes(chunk), PcmEncoding.I16_LE) != SoundPaymentState.Listening) break
            }
            val refused = replay.waitForConfirm()
            check(refused is SoundPaymentState.Failed && refused.error is WalletException.TokenUsed) { "replay: $refused" }
            checkThrows<WalletException.InvalidInput> { runBlocking { replay.approve(carol.pin) } }
            checkEqual(0L, carol.wallet.syncNow().balance, "Carol")
            checkEqual(500L, bob.wallet.syncNow().balance, "Bob after the replay")
            for (phone in listOf(alice, bob, carol)) phone.wallet.close()
        }
    }

    test("bump: generated accelerometer traces and room sound ask the payer, who pays once") {
        runBlocking {
            val alice = registered("Alice")
            val bob = registered("Bob's Cafe", "1357")
            alice.fund(5_000)
            // The payer confirms the person: Bob's emoji and picture come with his name.
            val picture = byteArrayOf(0x89.toByte(), 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A) + ByteArray(600) { (it % 13).toByte() }
            bob.wallet.setAvatar("☕", picture)
            val sound = roomSound(seed = 11, phones = 2)
            val payerFeed = Feed(accelTrace(seed = 111, knockSign = 1.0), sound[0])
            val payeeFeed = Feed(accelTrace(seed = 112, knockSign = -1.0), sound[1])

            val payer = alice.wallet.payByBump(BUMP_AUDIO_HZ.toUInt())
            val payee = bob.wallet.requestByBump(800, "coffee", BUMP_AUDIO_HZ.toUInt())
            checkEqual(BumpRole.PAYER to BumpRole.PAYEE, payer.role() to payee.role(), "roles")
            checkEqual(BumpPaymentState.Listening, payer.state(), "before the knock")
            // The knock happened 100 ms ago on both phones' clocks.
            val baseMs = System.currentTimeMillis() - KNOCK_AT_MS - 100
            payerFeed.into(payer, baseMs)
            payeeFeed.into(payee, baseMs)
            checkEqual(BumpPaymentState.Reporting to BumpPaymentState.Reporting, payer.state() to payee.state(), "after feeding")

            val (asked, sent) = coroutineScope {
                val asked = async { payer.waitForOutcome() }
                val sent = async { payee.waitForOutcome() }
                asked.await() to sent.await()
            }
            check(asked is BumpPaymentState.Confirm) { "asked: $asked" }
            asked as BumpPaymentState.Confirm
            checkEqual(Triple("Bob's Cafe", 800L, "coffee"), Triple(asked.payeeDisplayName, asked.amount, asked.memo), "confirm")
            checkEqual("☕", asked.payeeAvatar.emoji, "the payee's emoji")
            check(asked.payeeAvatar.picture?.contentEquals(picture) == true) { "the payee's picture: ${asked.payeeAvatar.picture?.size} bytes" }
            checkEqual(BumpPaymentState.RequestSent(800, "coffee"), sent, "the payee's outcome")
            checkThrows<WalletException.InvalidInput> { runBlocking { payee.approve(bob.pin) } }
            checkEqual(BumpPaymentState.Paid, payer.approve(alice.pin), "approved")
            checkEqual(BumpPaymentState.Paid, payee.waitForPayment(5_000uL), "the payee's side")
            checkThrows<WalletException.InvalidInput> { runBlocking { payer.approve(alice.pin) } }
            checkEqual(4_200L, alice.wallet.balance(), "Alice")
            checkEqual(800L, bob.wallet.syncNow().balance, "Bob")
            val paid = alice.wallet.history(10u, null).first()
            checkEqual(Counterpart("Bob's Cafe", null), paid.counterpart, "Alice's history names Bob's Cafe, no number")
            alice.wallet.close()
            bob.wallet.close()
        }
    }

    test("bump: the knock detector finds the one knock of a held phone") {
        val trace = accelTrace(seed = 21, knockSign = 1.0)
        KnockDetector(0).use { detector ->
            val knocks = trace.chunked(7).flatMap { batch -> detector.push(batch.map { it.at(0.0) }) }
            checkEqual(1, knocks.size, "knocks")
            val knock = knocks.single()
            check(abs(knock.deviceInstantMs - KNOCK_AT_MS) < 3.0) { "knock at ${knock.deviceInstantMs}" }
            checkEqual(knock.deviceInstantMs.roundToLong(), knock.instantMs, "server-time instant with offset 0")
            check(knock.impulse.peakMps2 > 20f && knock.impulse.directionX > 0.9f) { "impulse: ${knock.impulse}" }
            checkThrows<BumpException.TimestampNotIncreasing> {
                detector.push(listOf(AccelSample(1.0, 0f, 0f, GRAVITY_MPS2.toFloat())))
            }
        }
    }

    test("bump: two microphones in one room fingerprint alike, another room does not") {
        val (first, second) = roomSound(seed = 22, phones = 2)
        val other = roomSound(seed = 23, phones = 1).single()
        val clip = ((1_600 + fingerprintAudioAfterKnockMs().toInt()) * BUMP_AUDIO_HZ) / 1000
        FingerprintExtractor(BUMP_AUDIO_HZ.toUInt()).use { extractor ->
            val a = extractor.fingerprint(first.take(clip))
            val b = extractor.fingerprint(second.take(clip))
            val c = extractor.fingerprint(other.take(clip))
            check(a.size < 512) { "${a.size} bytes" }
            check(fingerprintSimilarity(a, b) > fingerprintSameRoomThreshold()) { "same room: ${fingerprintSimilarity(a, b)}" }
            check(fingerprintSimilarity(a, c) < fingerprintSameRoomThreshold()) { "other room: ${fingerprintSimilarity(a, c)}" }
        }
        checkThrows<BumpException.UnsupportedSampleRate> { FingerprintExtractor(8_000u) }
    }

    test("pcm bytes: the DTMF detector and the token decoder hear bytes as they hear float lists") {
        val config = dtmfSynthConfigDefault().copy(sampleRateHz = 48_000u)
        val pcm = synthesizeDtmfF32("159#", config)
        val listed = DtmfDetector(48_000u).use { it.pushF32(pcm) + it.finish() }
        checkEqual("159#", listed.joinToString("") { it.key }, "keys from the list")
        DtmfDetector(48_000u).use { detector ->
            checkEqual(listed, detector.pushBytes(f32Bytes(pcm), PcmEncoding.F32_LE) + detector.finish(), "from f32 bytes")
            checkEqual(listed, detector.pushBytes(i16Bytes(pcm), PcmEncoding.I16_LE) + detector.finish(), "from i16 bytes")
            val partial = checkThrows<PcmException.PartialSample> { detector.pushBytes(ByteArray(5), PcmEncoding.F32_LE) }
            checkEqual(5uL to 4uL, partial.len to partial.bytesPerSample, "partial sample")
        }
        val token = ByteArray(16) { it.toByte() }
        val signal = TokenModem(AcousticProfile.NEAR_ULTRASOUND, SOUND_RATE_HZ.toUInt()).use { heard(it.modulate(token), seed = 24) }
        TokenDecoder(AcousticProfile.NEAR_ULTRASOUND, SOUND_RATE_HZ.toUInt()).use { decoder ->
            val tokens = oddChunks(signal).flatMap { decoder.pushBytes(i16Bytes(it), PcmEncoding.I16_LE) }
            checkEqual(listOf(token.toList()), tokens.map { it.toList() }, "tokens from i16 bytes")
        }
    }
}
