"""Pay by sound and pay by bump through the generated Python bindings,
against the real clink-server that scripts/test-bindings starts, and the
pure parts (knock detector, fingerprint, PCM as bytes) on their own.

Every signal is generated here with a fixed seed: the token's PCM through a
noisy channel, pushed in odd-sized chunks; for a bump, each phone's
accelerometer trace (gravity, hand motion, one sharp knock at the same
instant on both) and the room's sound as each microphone hears it."""

import asyncio
import math
import random
import struct
import time

import pytest

from clink_ffi import (
    Avatar,
    AccelSample,
    AcousticProfile,
    BumpPaymentState,
    BumpError,
    BumpRole,
    DtmfDetector,
    FingerprintExtractor,
    KnockDetector,
    PcmEncoding,
    PcmError,
    SoundPaymentState,
    SoundRequestState,
    TokenDecoder,
    TokenModem,
    WalletError,
    dtmf_synth_config_default,
    fingerprint_audio_after_knock_ms,
    fingerprint_same_room_threshold,
    fingerprint_similarity,
    pcm_to_bytes,
    synthesize_dtmf_f32,
)
from test_wallet import Phone

SOUND_RATE_HZ = 48_000
# Bumps: a voice-grade microphone rate and a common accelerometer rate.
BUMP_AUDIO_HZ = 16_000
ACCEL_HZ = 200
KNOCK_AT_MS = 3_000.0
TRACE_MS = 4_200.0
# Sensor data goes in 20 ms at a time, as an audio callback delivers it.
STEP_MS = 20.0
# A contact of two phones: a half sine of 5 ms and 30 m/s².
KNOCK_WIDTH_MS = 5.0
KNOCK_PEAK_MPS2 = 30.0
GRAVITY_MPS2 = 9.81


def f32_bytes(samples):
    return struct.pack(f"<{len(samples)}f", *samples)


def odd_chunks(samples):
    """Consecutive slices of 997, 1, 4093, 333, ... samples."""
    at, sizes = 0, [997, 1, 4093, 333]
    while at < len(samples):
        size = sizes[0]
        sizes = sizes[1:] + sizes[:1]
        yield samples[at : at + size]
        at += size


def heard(pcm, seed, snr_db=20.0):
    """The token's PCM as a payer's microphone hears it: a third of a second
    of silence before, the token at half scale, a quarter second after,
    white noise at `snr_db` below the token."""
    rng = random.Random(seed)
    level = math.sqrt(sum(s * s for s in pcm) / len(pcm)) * 0.5
    noise = level / 10 ** (snr_db / 20)
    signal = [0.0] * (SOUND_RATE_HZ // 3) + [s * 0.5 for s in pcm] + [0.0] * (SOUND_RATE_HZ // 4)
    return [s + noise * rng.gauss(0.0, 1.0) for s in signal]


def accel_trace(seed, knock_sign):
    """One held phone's accelerometer from 0 to TRACE_MS (ms on its own
    axis): tilted gravity, slow hand motion and tremor on each axis, sensor
    noise and timing jitter, and the knock on the x axis at KNOCK_AT_MS.
    Returns (t_ms, x, y, z) tuples."""
    rng = random.Random(seed)
    pitch, roll = rng.uniform(0.5, 1.0), rng.uniform(-0.3, 0.3)
    gravity = (
        GRAVITY_MPS2 * math.cos(pitch) * math.sin(roll),
        GRAVITY_MPS2 * math.sin(pitch),
        GRAVITY_MPS2 * math.cos(pitch) * math.cos(roll),
    )
    # (amplitude m/s², frequency Hz, phase) of the hand's sway and tremor.
    motion = [
        [(rng.uniform(0.1, 0.4), rng.uniform(0.5, 2.0), rng.uniform(0, math.tau)),
         (rng.uniform(0.02, 0.06), rng.uniform(8.0, 12.0), rng.uniform(0, math.tau))]
        for _ in range(3)
    ]
    period_ms = 1000.0 / ACCEL_HZ
    trace = []
    for k in range(int(TRACE_MS / period_ms)):
        t = k * period_ms + rng.uniform(-0.1, 0.1) * period_ms
        a = [
            gravity[axis]
            + sum(amp * math.sin(math.tau * hz * t / 1000.0 + phase) for amp, hz, phase in motion[axis])
            + rng.gauss(0.0, 0.03)
            for axis in range(3)
        ]
        into_knock = t - (KNOCK_AT_MS - KNOCK_WIDTH_MS / 2)
        if 0.0 <= into_knock <= KNOCK_WIDTH_MS:
            a[0] += knock_sign * KNOCK_PEAK_MPS2 * math.sin(math.pi * into_knock / KNOCK_WIDTH_MS)
        trace.append((t, *a))
    return trace


def room_sound(seed, phones):
    """TRACE_MS of one room's sound at BUMP_AUDIO_HZ as each of `phones`
    microphones hears it: shared noise under a speech-like envelope plus
    three tones that come and go, and each microphone's own noise 26 dB
    below."""
    rng = random.Random(seed)
    rate = BUMP_AUDIO_HZ
    tones_hz = [rng.uniform(300.0, 4_000.0) for _ in range(3)]
    tones_on_hz = rng.uniform(1.5, 3.0)
    # Syllables and phrases: each room's talk has its own rhythm.
    (syllable_hz, syllable_phase), (phrase_hz, phrase_phase) = [
        (rng.uniform(lo, hi), rng.uniform(0, math.tau)) for lo, hi in ((3.0, 6.0), (0.5, 1.2))
    ]
    room = []
    for n in range(int(TRACE_MS / 1000 * rate)):
        t = n / rate
        envelope = 0.6 + 0.4 * math.sin(math.tau * syllable_hz * t + syllable_phase) * math.sin(
            math.tau * phrase_hz * t + phrase_phase
        )
        tones = sum(0.05 * math.sin(math.tau * hz * t) for hz in tones_hz)
        gate = 1.0 if (t * tones_on_hz) % 1 < 0.6 else 0.2
        room.append(0.1 * envelope * rng.gauss(0.0, 1.0) + tones * gate)
    level = math.sqrt(sum(s * s for s in room) / len(room))
    return [[s + 0.05 * level * rng.gauss(0.0, 1.0) for s in room] for _ in range(phones)]


def bump_scene(seed):
    """Payer's and payee's (accelerometer trace, audio), knocked together."""
    audio = room_sound(seed, 2)
    return [(accel_trace(seed * 10 + 1, 1.0), audio[0]), (accel_trace(seed * 10 + 2, -1.0), audio[1])]


def feed(flow, trace, audio, base_ms):
    """Pushes a phone's sensor data as if its time axis began at `base_ms`
    on the phone's clock, 20 ms of audio (as bytes) and of accelerometer
    samples at a time."""
    per_step = int(STEP_MS / 1000 * BUMP_AUDIO_HZ)
    chunks = [f32_bytes(audio[i : i + per_step]) for i in range(0, len(audio), per_step)]
    next_accel = 0
    for step, chunk in enumerate(chunks):
        start_ms = step * STEP_MS
        flow.push_audio_bytes(chunk, PcmEncoding.F32_LE, base_ms + start_ms)
        batch = []
        while next_accel < len(trace) and trace[next_accel][0] < start_ms + STEP_MS:
            t, x, y, z = trace[next_accel]
            batch.append(AccelSample(timestamp_ms=base_ms + t, x=x, y=y, z=z))
            next_accel += 1
        flow.push_accel(batch)


async def registered(tmp_path, name, pin="2468"):
    phone = Phone(tmp_path, name, pin)
    await phone.register_and_verify()
    await phone.wallet.estimate_clock_offset()
    return phone


# ---------------------------------------------------------------- the flows


def test_a_token_played_and_heard_with_20db_noise_pays_once_and_a_replay_is_token_used(tmp_path):
    async def scenario():
        bob = await registered(tmp_path, "Bob's Bakery", "1357")
        alice = await registered(tmp_path, "Alice")
        carol = await registered(tmp_path, "Carol")
        await alice.fund(2_000)
        await bob.wallet.set_avatar("🍞", None)

        request = await bob.wallet.request_by_sound(500, "bread", SOUND_RATE_HZ, None)
        assert request.profile() == AcousticProfile.NEAR_ULTRASOUND
        assert request.state().is_playing()
        pcm = request.pcm()
        assert f32_bytes(pcm) == request.pcm_bytes(PcmEncoding.F32_LE)

        payer = alice.wallet.listen_for_token(SOUND_RATE_HZ)
        with pytest.raises(WalletError.InvalidInput):
            payer.push_audio_bytes(b"\x00\x00\x00", PcmEncoding.F32_LE)
        for chunk in odd_chunks(heard(pcm, seed=1)):
            if payer.push_audio_bytes(f32_bytes(chunk), PcmEncoding.F32_LE) != SoundPaymentState.LISTENING():
                break
        assert payer.state() == SoundPaymentState.REDEEMING()

        asked = await payer.wait_for_confirm()
        assert asked.is_confirm(), asked
        assert (asked.payee_display_name, asked.amount, asked.memo) == ("Bob's Bakery", 500, "bread")
        assert asked.payee_avatar == Avatar(emoji="🍞", picture=None)
        with pytest.raises(WalletError.WrongPin):
            await payer.approve("0000")
        assert payer.state().is_confirm()
        assert await payer.approve(alice.pin) == SoundPaymentState.PAID()
        assert await request.wait_for_payment(5_000) == SoundRequestState.PAID()
        assert alice.wallet.balance() == 1_500
        assert (await bob.wallet.sync_now()).balance == 500

        # Carol's phone hears the same token played again (through the list path).
        replay = carol.wallet.listen_for_token(SOUND_RATE_HZ)
        for chunk in odd_chunks(heard(pcm, seed=2)):
            if replay.push_audio(chunk) != SoundPaymentState.LISTENING():
                break
        refused = await replay.wait_for_confirm()
        assert refused.is_failed(), refused
        assert isinstance(refused.error, WalletError.TokenUsed), refused.error
        with pytest.raises(WalletError.InvalidInput):
            await replay.approve(carol.pin)
        assert (await carol.wallet.sync_now()).balance == 0
        assert (await bob.wallet.sync_now()).balance == 500

    asyncio.run(scenario())


def test_a_bump_from_generated_sensor_data_asks_the_payer_and_pays_once(tmp_path):
    async def scenario():
        alice = await registered(tmp_path, "Alice")
        bob = await registered(tmp_path, "Bob's Cafe", "1357")
        await alice.fund(5_000)
        # The payer confirms the person: Bob's emoji and picture come with his name.
        picture = b"\x89PNG\r\n\x1a\n" + bytes(i % 13 for i in range(600))
        await bob.wallet.set_avatar("☕", picture)
        (payer_accel, payer_audio), (payee_accel, payee_audio) = bump_scene(seed=11)

        payer = alice.wallet.pay_by_bump(BUMP_AUDIO_HZ)
        payee = bob.wallet.request_by_bump(800, "coffee", BUMP_AUDIO_HZ)
        assert (payer.role(), payee.role()) == (BumpRole.PAYER, BumpRole.PAYEE)
        assert payer.state() == BumpPaymentState.LISTENING()
        # The knock happened 100 ms ago on both phones' clocks.
        base_ms = time.time() * 1000 - KNOCK_AT_MS - 100
        feed(payer, payer_accel, payer_audio, base_ms)
        feed(payee, payee_accel, payee_audio, base_ms)
        assert payer.state() == BumpPaymentState.REPORTING()
        assert payee.state() == BumpPaymentState.REPORTING()

        asked, sent = await asyncio.gather(payer.wait_for_outcome(), payee.wait_for_outcome())
        assert asked.is_confirm(), asked
        assert (asked.payee_display_name, asked.amount, asked.memo) == ("Bob's Cafe", 800, "coffee")
        assert asked.payee_avatar == Avatar(emoji="☕", picture=picture)
        assert sent == BumpPaymentState.REQUEST_SENT(amount=800, memo="coffee")
        with pytest.raises(WalletError.InvalidInput):
            await payee.approve(bob.pin)
        assert await payer.approve(alice.pin) == BumpPaymentState.PAID()
        assert await payee.wait_for_payment(5_000) == BumpPaymentState.PAID()
        with pytest.raises(WalletError.InvalidInput):
            await payer.approve(alice.pin)
        assert alice.wallet.balance() == 4_200
        assert (await bob.wallet.sync_now()).balance == 800
        paid = alice.wallet.history(10, None)[0]
        assert (paid.counterpart.display_name, paid.counterpart.phone) == ("Bob's Cafe", None)

    asyncio.run(scenario())


def test_flows_refuse_an_unregistered_wallet_and_a_bad_rate_and_end_when_cancelled(tmp_path):
    phone = Phone(tmp_path, "Dave", "8642")
    with pytest.raises(WalletError.NotRegistered):
        phone.wallet.pay_by_bump(BUMP_AUDIO_HZ)
    with pytest.raises(WalletError.NotRegistered):
        phone.wallet.listen_for_token(SOUND_RATE_HZ)

    async def scenario():
        await phone.register_and_verify()
        with pytest.raises(WalletError.InvalidInput):
            phone.wallet.request_by_bump(800, "", 8_000)
        with pytest.raises(WalletError.InvalidAmount):
            await phone.wallet.request_by_sound(0, "", SOUND_RATE_HZ, None)
        # Cancelled before a knock or a token: the waits end at once.
        bump = phone.wallet.pay_by_bump(BUMP_AUDIO_HZ)
        with pytest.raises(WalletError.InvalidInput):
            bump.push_audio_bytes(b"\x00", PcmEncoding.I16_LE, 0.0)
        waiting = asyncio.ensure_future(bump.wait_for_outcome())
        await asyncio.sleep(0.05)
        assert bump.cancel() == BumpPaymentState.CANCELLED()
        assert await asyncio.wait_for(waiting, 5) == BumpPaymentState.CANCELLED()
        sound = phone.wallet.listen_for_token(SOUND_RATE_HZ)
        assert sound.cancel() == SoundPaymentState.CANCELLED()
        assert await sound.wait_for_confirm() == SoundPaymentState.CANCELLED()
        with pytest.raises(WalletError.InvalidInput):
            await sound.decline()

    asyncio.run(scenario())


# ------------------------------------------------------------ the pure parts


def test_the_knock_detector_finds_the_one_knock_of_a_held_phone():
    trace = accel_trace(seed=21, knock_sign=1.0)
    detector = KnockDetector(0)
    knocks = []
    for i in range(0, len(trace), 7):
        knocks += detector.push([AccelSample(timestamp_ms=t, x=x, y=y, z=z) for t, x, y, z in trace[i : i + 7]])
    assert len(knocks) == 1, knocks
    knock = knocks[0]
    assert abs(knock.device_instant_ms - KNOCK_AT_MS) < 3.0, knock
    assert knock.instant_ms == round(knock.device_instant_ms)
    assert knock.impulse.peak_mps2 > 20.0 and knock.impulse.direction_x > 0.9, knock.impulse
    # Time going backwards is refused, and nothing of that push is used.
    with pytest.raises(BumpError.TimestampNotIncreasing):
        detector.push([AccelSample(timestamp_ms=1.0, x=0.0, y=0.0, z=GRAVITY_MPS2)])


def test_two_microphones_in_one_room_fingerprint_alike():
    first, second = room_sound(seed=22, phones=2)
    extractor = FingerprintExtractor(BUMP_AUDIO_HZ)
    clip = int((1_600 + fingerprint_audio_after_knock_ms()) / 1000 * BUMP_AUDIO_HZ)
    a = extractor.fingerprint(first[:clip])
    b = extractor.fingerprint(second[:clip])
    assert len(a) < 512
    assert fingerprint_similarity(a, b) > fingerprint_same_room_threshold()
    other = extractor.fingerprint(room_sound(seed=23, phones=1)[0][:clip])
    assert fingerprint_similarity(a, other) < fingerprint_same_room_threshold()


def test_pcm_bytes_reach_the_detectors_as_the_float_lists_do():
    config = dtmf_synth_config_default()
    config.sample_rate_hz = 48_000
    pcm = synthesize_dtmf_f32("159#", config)
    by_list = DtmfDetector(48_000)
    by_bytes = DtmfDetector(48_000)
    listed = by_list.push_f32(pcm) + by_list.finish()
    as_i16 = by_bytes.push_bytes(pcm_to_bytes(pcm, PcmEncoding.I16_LE), PcmEncoding.I16_LE) + by_bytes.finish()
    assert "".join(e.key for e in listed) == "159#"
    assert as_i16 == listed
    with pytest.raises(PcmError.PartialSample):
        by_bytes.push_bytes(b"\x01\x02\x03", PcmEncoding.I16_LE)

    token = bytes(range(16))
    signal = heard(TokenModem(AcousticProfile.NEAR_ULTRASOUND, SOUND_RATE_HZ).modulate(token), seed=24)
    decoder = TokenDecoder(AcousticProfile.NEAR_ULTRASOUND, SOUND_RATE_HZ)
    tokens = []
    for chunk in odd_chunks(signal):
        tokens += decoder.push_bytes(pcm_to_bytes(chunk, PcmEncoding.I16_LE), PcmEncoding.I16_LE)
    assert tokens == [token]
