// FFI call overhead from Kotlin on the JVM (scripts/bench-bindings): a
// trivial call, a call with a string argument, one second of PCM handed to
// the DTMF detector and the token decoder (as a list of floats and as
// bytes), and the wallet's local reads. Prints the median time per call.
package app.clink.bench

import app.clink.core.*
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.file.Files

/** Median nanoseconds per call of `body`, over `rounds` timed rounds of `callsPerRound` calls. */
private fun medianNs(rounds: Int, callsPerRound: Int, body: () -> Unit): Double {
    repeat(callsPerRound * 10) { body() } // let the JIT compile the call path
    val perCall = DoubleArray(rounds) {
        val start = System.nanoTime()
        repeat(callsPerRound) { body() }
        (System.nanoTime() - start).toDouble() / callsPerRound
    }
    perCall.sort()
    return perCall[rounds / 2]
}

private fun report(what: String, ns: Double) {
    val shown = if (ns < 1_000_000) "%.2f µs".format(ns / 1_000) else "%.3f ms".format(ns / 1_000_000)
    println("kotlin  %-52s median %s".format(what, shown))
}

/** One second of DTMF keys at `rateHz`. */
private fun oneSecondOfKeys(rateHz: Int): List<Float> {
    val config = dtmfSynthConfigDefault().copy(sampleRateHz = rateHz.toUInt())
    return synthesizeDtmfF32("0123456789", config).take(rateHz)
}

/** The app's keychain: a map. */
private class MapSecretStore : SecretStore {
    val secrets = java.util.concurrent.ConcurrentHashMap<String, ByteArray>()

    override fun get(name: String): ByteArray? = secrets[name]

    override fun put(name: String, secret: ByteArray) {
        secrets[name] = secret.copyOf()
    }

    override fun delete(name: String): Boolean = secrets.remove(name) != null
}

/** A short dial string for the string-argument call. */
private const val DIAL = "111-090-1111-1111*800"

fun main() {
    report("trivial call: acousticTokenLen()", medianNs(51, 20_000) { acousticTokenLen() })
    // A string in (a buffer Rust allocates, filled from Kotlin) and a record out.
    report("string argument: parseDialString(\"$DIAL\")", medianNs(51, 20_000) { parseDialString(DIAL) })
    for (rateHz in listOf(8_000, 48_000)) {
        val pcm = oneSecondOfKeys(rateHz)
        check(pcm.size == rateHz)
        DtmfDetector(rateHz.toUInt()).use { detector ->
            report("DtmfDetector.pushF32, 1 s at ${rateHz / 1000} kHz", medianNs(31, 5) { detector.pushF32(pcm) })
        }
        val pcmI16 = pcm.map { (it * 32767f).toInt().toShort() }
        DtmfDetector(rateHz.toUInt()).use { detector ->
            report("DtmfDetector.pushI16, 1 s at ${rateHz / 1000} kHz", medianNs(31, 5) { detector.pushI16(pcmI16) })
        }
    }
    // One second at 48 kHz as the app's own buffer (AudioRecord fills a
    // ByteBuffer): bytes in, no list.
    val pcm = oneSecondOfKeys(48_000)
    val asF32 = ByteBuffer.allocate(pcm.size * 4).order(ByteOrder.LITTLE_ENDIAN)
        .also { b -> pcm.forEach { b.putFloat(it) } }.array()
    val asI16 = ByteBuffer.allocate(pcm.size * 2).order(ByteOrder.LITTLE_ENDIAN)
        .also { b -> pcm.forEach { b.putShort((it * 32767f).toInt().toShort()) } }.array()
    val encoded = listOf(PcmEncoding.F32_LE to asF32, PcmEncoding.I16_LE to asI16)
    for ((encoding, bytes) in encoded) {
        DtmfDetector(48_000u).use { detector ->
            report("DtmfDetector.pushBytes($encoding), 1 s at 48 kHz", medianNs(31, 5) { detector.pushBytes(bytes, encoding) })
        }
    }
    TokenDecoder(AcousticProfile.NEAR_ULTRASOUND, 48_000u).use { decoder ->
        report("TokenDecoder.push, 1 s at 48 kHz", medianNs(31, 5) { decoder.push(pcm) })
        for ((encoding, bytes) in encoded) {
            report("TokenDecoder.pushBytes($encoding), 1 s at 48 kHz", medianNs(31, 5) { decoder.pushBytes(bytes, encoding) })
        }
    }
    // The wallet's local reads (SQLite store, no server).
    val dir = Files.createTempDirectory("clink-bench-wallet-").toString()
    Wallet.open(dir, "http://127.0.0.1:9", MapSecretStore()).use { wallet ->
        report("Wallet.balance() (local store)", medianNs(51, 2_000) { wallet.balance() })
        repeat(20) { wallet.draftSend("090-1234-5678", 100L + it, "lunch") }
        report("Wallet.drafts(), 20 drafts (local store)", medianNs(51, 500) { wallet.drafts() })
    }
    File(dir).deleteRecursively()
}
