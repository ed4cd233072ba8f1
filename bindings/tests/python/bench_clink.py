"""FFI call overhead from Python (scripts/bench-bindings): a trivial call, a
call with a string argument, one second of PCM handed to the DTMF detector
and the token decoder (as a list of floats and as bytes), and the wallet's
local reads. Prints the median
time per call."""

import statistics
import struct
import tempfile
import time

from clink_ffi import (
    AcousticProfile,
    DtmfDetector,
    PcmEncoding,
    SecretStore,
    TokenDecoder,
    Wallet,
    acoustic_token_len,
    parse_dial_string,
    dtmf_synth_config_default,
    synthesize_dtmf_f32,
)

# A short dial string for the string-argument call.
DIAL = "111-090-1111-1111*800"


def median_ns(rounds, calls_per_round, body):
    """Median nanoseconds per call of `body` over `rounds` timed rounds."""
    for _ in range(calls_per_round):
        body()
    per_call = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(calls_per_round):
            body()
        per_call.append((time.perf_counter_ns() - start) / calls_per_round)
    return statistics.median(per_call)


def report(what, ns):
    shown = f"{ns / 1_000:.2f} µs" if ns < 1_000_000 else f"{ns / 1_000_000:.3f} ms"
    print(f"python  {what:<52} median {shown}")


def one_second_of_keys(rate_hz):
    config = dtmf_synth_config_default()
    config.sample_rate_hz = rate_hz
    return synthesize_dtmf_f32("0123456789", config)[:rate_hz]


class DictSecretStore(SecretStore):
    """The app's keychain: a dict."""

    def __init__(self):
        self.secrets = {}

    def get(self, name):
        return self.secrets.get(name)

    def put(self, name, secret):
        self.secrets[name] = bytes(secret)

    def delete(self, name):
        return self.secrets.pop(name, None) is not None


def main():
    report("trivial call: acoustic_token_len()", median_ns(21, 20_000, acoustic_token_len))
    # A string in (a buffer Rust allocates, filled from Python) and a record out.
    report(
        f'string argument: parse_dial_string("{DIAL}")',
        median_ns(21, 20_000, lambda: parse_dial_string(DIAL)),
    )
    for rate_hz in (8_000, 48_000):
        pcm = one_second_of_keys(rate_hz)
        assert len(pcm) == rate_hz
        detector = DtmfDetector(rate_hz)
        report(
            f"DtmfDetector.push_f32, 1 s at {rate_hz // 1000} kHz",
            median_ns(15, 3, lambda: detector.push_f32(pcm)),
        )
        pcm_i16 = [int(x * 32767) for x in pcm]
        detector = DtmfDetector(rate_hz)
        report(
            f"DtmfDetector.push_i16, 1 s at {rate_hz // 1000} kHz",
            median_ns(15, 3, lambda: detector.push_i16(pcm_i16)),
        )
    # One second at 48 kHz as the app's own buffer: bytes in, no list.
    pcm = one_second_of_keys(48_000)
    as_f32 = struct.pack(f"<{len(pcm)}f", *pcm)
    as_i16 = struct.pack(f"<{len(pcm)}h", *(int(x * 32767) for x in pcm))
    for encoding, data in ((PcmEncoding.F32_LE, as_f32), (PcmEncoding.I16_LE, as_i16)):
        detector = DtmfDetector(48_000)
        report(
            f"DtmfDetector.push_bytes({encoding.name}), 1 s at 48 kHz",
            median_ns(15, 3, lambda: detector.push_bytes(data, encoding)),
        )
    decoder = TokenDecoder(AcousticProfile.NEAR_ULTRASOUND, 48_000)
    report("TokenDecoder.push, 1 s at 48 kHz", median_ns(15, 3, lambda: decoder.push(pcm)))
    for encoding, data in ((PcmEncoding.F32_LE, as_f32), (PcmEncoding.I16_LE, as_i16)):
        report(
            f"TokenDecoder.push_bytes({encoding.name}), 1 s at 48 kHz",
            median_ns(15, 3, lambda: decoder.push_bytes(data, encoding)),
        )
    # The wallet's local reads (SQLite store, no server).
    with tempfile.TemporaryDirectory() as data_dir:
        wallet = Wallet.open(data_dir, "http://127.0.0.1:9", DictSecretStore())
        report("Wallet.balance() (local store)", median_ns(21, 2_000, wallet.balance))
        for i in range(20):
            wallet.draft_send("090-1234-5678", 100 + i, "lunch")
        report("Wallet.drafts(), 20 drafts (local store)", median_ns(21, 500, wallet.drafts))
        del wallet


if __name__ == "__main__":
    main()
