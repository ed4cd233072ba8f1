"""The generated Python bindings against the real library (scripts/test-bindings)."""

import hashlib

import pytest

from clink_ffi import (
    AcousticError,
    AcousticProfile,
    DialCommand,
    DialError,
    DialForm,
    DtmfDetector,
    DtmfError,
    OcraDataInput,
    OcraError,
    OcraInput,
    OcraResponder,
    ParsedDial,
    PhoneError,
    PhoneNumber,
    SecretError,
    SecretStore,
    TokenDecoder,
    TokenModem,
    acoustic_min_sample_rate_hz,
    clink_ocra_suite,
    dtmf_synth_config_default,
    encode_dial_string,
    ocra_respond,
    parse_dial_string,
    parse_phone_number,
    synthesize_dtmf_f32,
    synthesize_dtmf_i16,
)

ALL_KEYS = "0123456789*#ABCD"


def stream_in_chunks(samples, chunk, push):
    """Feeds `samples` to `push` `chunk` at a time; returns everything it gave back."""
    out = []
    for start in range(0, len(samples), chunk):
        out.extend(push(samples[start : start + chunk]))
    return out


class MapSecretStore(SecretStore):
    """A keychain stand-in: secrets in a dict, counting writes."""

    def __init__(self):
        self.secrets = {}
        self.puts = 0

    def get(self, name):
        return self.secrets.get(name)

    def put(self, name, secret):
        self.puts += 1
        self.secrets[name] = bytes(secret)

    def delete(self, name):
        return self.secrets.pop(name, None) is not None


class LockedSecretStore(SecretStore):
    """A keychain that is locked."""

    def get(self, name):
        raise SecretError.Unavailable("device is locked")

    def put(self, name, secret):
        raise SecretError.Unavailable("device is locked")

    def delete(self, name):
        raise SecretError.Unavailable("device is locked")


class BrokenSecretStore(SecretStore):
    """A store with a bug: raises something that is not a SecretError."""

    def get(self, name):
        raise RuntimeError("keystore crashed")

    def put(self, name, secret):
        raise RuntimeError("keystore crashed")

    def delete(self, name):
        raise RuntimeError("keystore crashed")


def test_send_is_written_with_its_check_digit_and_parsed_back():
    send = DialCommand.SEND(originator="0000000000", payee="1111", amount_minor=800)
    written = encode_dial_string(send)
    assert written == "*1*0000000000*1111*800*8#"
    assert parse_dial_string(written) == ParsedDial(command=send, form=DialForm.CHECKED)


def test_typed_quick_send_with_dashes_is_a_seed():
    parsed = parse_dial_string("111-090-1111-1111*800")
    assert parsed.form == DialForm.SEED
    assert parsed.command == DialCommand.QUICK_SEND(payee="09011111111", amount_minor=800)


def test_mistyped_amount_raises_check_digit_wrong_at_the_check_digit():
    with pytest.raises(DialError.CheckDigitWrong) as raised:
        parse_dial_string("*3*09011111111*600*5#")
    assert raised.value.position == 19
    assert "mistyped" in raised.value.description


def test_space_raises_unexpected_char_with_its_character_index():
    with pytest.raises(DialError.UnexpectedChar) as raised:
        parse_dial_string("00 0000*1111*800")
    assert (raised.value.position, raised.value.found) == (2, " ")


def test_encoding_a_payee_with_a_letter_raises_unexpected_char_in_that_field():
    with pytest.raises(DialError.UnexpectedChar) as raised:
        encode_dial_string(DialCommand.QUICK_SEND(payee="12a", amount_minor=1))
    assert raised.value.position == 2


def test_encoding_a_zero_amount_raises_amount_zero():
    with pytest.raises(DialError.AmountZero):
        encode_dial_string(DialCommand.REQUEST(requester="11", payer="22", amount_minor=0))


@pytest.mark.parametrize("sample_rate_hz", [8_000, 48_000])
def test_all_16_keys_round_trip_through_f32_synthesis_and_the_detector(sample_rate_hz):
    config = dtmf_synth_config_default()
    config.sample_rate_hz = sample_rate_hz
    pcm = synthesize_dtmf_f32(ALL_KEYS, config)
    detector = DtmfDetector(sample_rate_hz)
    # 20 ms chunks, as an audio callback would deliver them.
    events = stream_in_chunks(pcm, sample_rate_hz // 50, detector.push_f32) + detector.finish()
    assert "".join(event.key for event in events) == ALL_KEYS
    assert all(a.end_sample <= b.start_sample for a, b in zip(events, events[1:]))


def test_all_16_keys_round_trip_through_i16_synthesis_and_push_i16_at_8khz():
    config = dtmf_synth_config_default()
    pcm = synthesize_dtmf_i16(ALL_KEYS, config)
    assert len(pcm) == len(synthesize_dtmf_f32(ALL_KEYS, config))
    detector = DtmfDetector(8_000)
    events = stream_in_chunks(pcm, 256, detector.push_i16) + detector.finish()
    assert "".join(event.key for event in events) == ALL_KEYS


def test_unknown_key_raises_unknown_key_at_its_position():
    with pytest.raises(DtmfError.UnknownKey) as raised:
        synthesize_dtmf_f32("12x4", dtmf_synth_config_default())
    assert (raised.value.position, raised.value.found) == (2, "x")


def test_detector_at_4khz_raises_sample_rate_out_of_range():
    with pytest.raises(DtmfError.SampleRateOutOfRange) as raised:
        DtmfDetector(4_000)
    assert raised.value.hz == 4_000


def test_token_round_trips_through_the_modem_and_the_decoder_at_48khz_near_ultrasound():
    token = b"clink-token-0001"
    signal = TokenModem(AcousticProfile.NEAR_ULTRASOUND, 48_000).modulate(token)
    silence = [0.0] * 1_000
    decoder = TokenDecoder(AcousticProfile.NEAR_ULTRASOUND, 48_000)
    tokens = stream_in_chunks(silence + signal + silence, 960, decoder.push)
    assert tokens == [token]


def test_15_byte_token_raises_token_length():
    modem = TokenModem(AcousticProfile.AUDIBLE, 16_000)
    with pytest.raises(AcousticError.TokenLength) as raised:
        modem.modulate(bytes(15))
    assert (raised.value.expected, raised.value.found) == (16, 15)


def test_near_ultrasound_at_16khz_raises_sample_rate_too_low():
    with pytest.raises(AcousticError.SampleRateTooLow) as raised:
        TokenDecoder(AcousticProfile.NEAR_ULTRASOUND, 16_000)
    assert raised.value.min_hz == acoustic_min_sample_rate_hz(AcousticProfile.NEAR_ULTRASOUND)


RFC6287_SHA1_6_QN08 = [
    "237653", "243178", "653583", "740991", "608993",
    "388898", "816933", "224598", "750600", "294470",
]


@pytest.mark.parametrize("i,expected", list(enumerate(RFC6287_SHA1_6_QN08)))
def test_rfc6287_one_way_vectors_for_sha1_6_qn08(i, expected):
    challenge = str(i) * 8
    key = b"12345678901234567890"
    assert ocra_respond("OCRA-1:HOTP-SHA1-6:QN08", key, challenge, OcraDataInput()) == expected


def test_rfc6287_vector_for_sha256_8_qn08_psha1_with_a_pin_hashed_in_python():
    key = b"12345678901234567890123456789012"
    pin_hash = hashlib.sha1(b"1234").digest()
    response = ocra_respond(
        "OCRA-1:HOTP-SHA256-8:QN08-PSHA1", key, "00000000", OcraDataInput(pin_hash=pin_hash)
    )
    assert response == "83238735"


def test_suite_that_needs_a_pin_raises_missing_input_without_one():
    with pytest.raises(OcraError.MissingInput) as raised:
        ocra_respond("OCRA-1:HOTP-SHA256-8:QN08-PSHA1", bytes(32), "00000000", OcraDataInput())
    assert raised.value.input == OcraInput.PIN_HASH


def test_install_key_is_created_once_in_the_python_store_and_answers_with_clinks_suite():
    store = MapSecretStore()
    first = OcraResponder.load_or_create(store).respond("12345678")
    key = store.secrets["ocra-key"]
    assert len(key) == 32
    assert first == ocra_respond(clink_ocra_suite(), key, "12345678", OcraDataInput())
    assert OcraResponder.load_or_create(store).respond("12345678") == first
    assert store.puts == 1


def test_locked_python_store_surfaces_as_unavailable_with_its_reason():
    with pytest.raises(SecretError.Unavailable) as raised:
        OcraResponder.load_or_create(LockedSecretStore())
    assert raised.value.reason == "device is locked"


def test_unexpected_python_exception_surfaces_as_unavailable():
    with pytest.raises(SecretError.Unavailable) as raised:
        OcraResponder.load_or_create(BrokenSecretStore())
    assert "keystore crashed" in raised.value.reason


def test_stored_key_of_the_wrong_length_raises_malformed():
    store = MapSecretStore()
    store.secrets["ocra-key"] = bytes(5)
    with pytest.raises(SecretError.Malformed) as raised:
        OcraResponder.load_or_create(store)
    assert raised.value.name == "ocra-key"


def test_japanese_mobile_number_typed_locally_becomes_e164():
    number = parse_phone_number("090-1111-1111", "JP")
    assert number == PhoneNumber(e164="+819011111111", digits="819011111111")
    with pytest.raises(PhoneError.UnknownRegion):
        parse_phone_number("090-1111-1111", "XX")
