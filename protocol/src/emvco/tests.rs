use super::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

// Published payloads, each with its own correct CRC.

/// The example payload printed in EMVCo's "EMV QR Code Specification for
/// Payment Systems (EMV QRCPS), Merchant-Presented Mode" (v1.0, July 2017;
/// v1.1, November 2020), the one open-source EMVCo libraries test against as
/// the official sample (dongri/emvco-qrcode, Exemvi, mvallim/emv-qrcode).
/// Objects out of id order, two merchant account templates, a tip prompt,
/// a Chinese language template (lengths in characters) and an unreserved
/// template.
const EMVCO_SAMPLE: &str = "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412340603***0708A60086670902ME91320016A0112233449988770708123456786304A13A";

/// Brazil's Pix "BR Code": the example in Banco Central do Brasil's "Manual
/// de Padrões para Iniciação do Pix" (a static QR for a random key).
const PIX_SAMPLE: &str = "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D";

/// Singapore's SGQR sample (FOOD XYZ PTE LTD): card networks' primitive
/// accounts, twelve merchant account templates and the SGQR identity
/// template `51`. As published in the tests of users of the npm package
/// `@rationally-app/payment-qr-parser`.
const SGQR_SAMPLE: &str = "00020101021102164761360000000*1704155123456789123451110123456789012153123456789012341531250003440001034450003445311000126330015SG.COM.DASH.WWW0110000005550127670014A00000076200010120COM.LQDPALLIANCE.WWW021512345678901234503020028660011SG.COM.OCBC0147OCBCP2P629A358D-ECE7-4554-AD56-EBD12D84CA7E4F7329500006SG.EZI013603600006-76bb-4a5a-aa1a-fbcb64d6ecf530850013SG.COM.EZLINK01201234567890123456-1230204SGQR0324A123456,B123456,C12345670404A23X31260008COM.GRAB0110A93FO3230Q32390007COM.DBS011012345678900210123456789033900011SG.COM.NETS01230201401832831128823590002150001118703240000308885872010901199084E5DC3D834430017COM.QQ.WEIXIN.PAY011012345678900204123435660010SG.COM.UOB014845D233507F5E8C306E3871A4E9FACA601A80C114B5645E5D36840009SG.PAYNOW010120216+621234567890123030100408209912310525123456789012345678901234537270009SG.AIRPAY0110A11BC0000X51860007SG.SGQR0112180307510317020701.0003030608100604020205031380609Counter010708201804075204581453037025802SG5916FOOD XYZ PTE LTD6009SINGAPORE6106081006626001081234567R0607876543050330015SG.COM.DASH.WWW0110000005550263045E8D";

/// Thailand's PromptPay for the phone number 080-123-4567, from the tests
/// of dtinth/promptpay-qr (index.test.js). Its CRC is right, but PromptPay
/// leaves out the category code, merchant name and city that EMVCo makes
/// mandatory.
const PROMPTPAY_SAMPLE: &str =
    "00020101021129370016A000000677010111011300668012345675802TH530376463046197";

fn fields<const N: usize>(pairs: [(u8, &str); N]) -> Fields {
    pairs
        .into_iter()
        .map(|(id, v)| (id, v.to_owned()))
        .collect()
}

fn tlv(id: u8, value: &str) -> String {
    format!("{id:02}{:02}{value}", value.chars().count())
}

/// `body` with a correct CRC appended.
fn sealed(body: &str) -> String {
    let body = format!("{body}6304");
    let crc = crc_hex(&body);
    body + &crc
}

/// The smallest valid payload's objects other than `00`, `63` and those in
/// `without`, and those in `with` added, sealed.
fn minimal(with: &[(u8, &str)], without: &[u8]) -> String {
    let mut objects = vec![
        (26, tlv(0, "app.example")),
        (52, "5814".to_owned()),
        (53, "392".to_owned()),
        (58, "JP".to_owned()),
        (59, "SHOP".to_owned()),
        (60, "TOKYO".to_owned()),
    ];
    objects.retain(|(id, _)| !without.contains(id));
    objects.extend(with.iter().map(|&(id, value)| (id, value.to_owned())));
    let body: String = objects.iter().map(|(id, value)| tlv(*id, value)).collect();
    sealed(&format!("000201{body}"))
}

fn minimal_qr() -> MerchantQr {
    MerchantQr {
        merchant_account_templates: BTreeMap::from([(26, fields([(GUI, "app.example")]))]),
        merchant_category_code: "5814".into(),
        currency: "392".into(),
        country: "JP".into(),
        merchant_name: "SHOP".into(),
        merchant_city: "TOKYO".into(),
        ..MerchantQr::default()
    }
}

fn top(id: u8) -> ObjectId {
    ObjectId::top(id)
}

#[test]
fn crc_is_ccitt_false() {
    // The catalogue's check value for "123456789".
    assert_eq!(crc_hex("123456789"), "29B1");
}

#[test]
fn reads_the_emvco_specification_example() {
    let expected = MerchantQr {
        initiation: Some(Initiation::Dynamic),
        merchant_accounts: BTreeMap::new(),
        merchant_account_templates: BTreeMap::from([
            (29, fields([(GUI, "D15600000000"), (5, "A93FO3230Q")])),
            (31, fields([(GUI, "D15600000001"), (3, "12345678")])),
        ]),
        merchant_category_code: "4111".into(),
        currency: "156".into(),
        amount: Some("23.72".into()),
        tip: Some(Tip::Prompt),
        country: "CN".into(),
        merchant_name: "BEST TRANSPORT".into(),
        merchant_city: "BEIJING".into(),
        postal_code: None,
        additional_data: fields([
            (additional::STORE_LABEL, "1234"),
            (additional::CUSTOMER_LABEL, "***"),
            (additional::TERMINAL_LABEL, "A6008667"),
            (9, "ME"),
        ]),
        language: fields([
            (language::PREFERENCE, "ZH"),
            (language::MERCHANT_NAME, "最佳运输"),
            (language::MERCHANT_CITY, "北京"),
        ]),
        reserved: BTreeMap::new(),
        unreserved_templates: BTreeMap::from([(
            91,
            fields([(GUI, "A011223344998877"), (7, "12345678")]),
        )]),
    };
    assert_eq!(parse(EMVCO_SAMPLE), Ok(expected.clone()));
    // Written back in id order: another string, the same content.
    let written = expected.to_payload().unwrap();
    assert_ne!(written, EMVCO_SAMPLE);
    assert_eq!(parse(&written), Ok(expected));
}

#[test]
fn reads_the_pix_example_and_writes_it_back_byte_for_byte() {
    let qr = parse(PIX_SAMPLE).unwrap();
    assert_eq!(
        qr,
        MerchantQr {
            merchant_account_templates: BTreeMap::from([(
                26,
                fields([
                    (GUI, "br.gov.bcb.pix"),
                    (1, "123e4567-e12b-12d1-a456-426655440000")
                ])
            )]),
            merchant_category_code: "0000".into(),
            currency: "986".into(),
            country: "BR".into(),
            merchant_name: "Fulano de Tal".into(),
            merchant_city: "BRASILIA".into(),
            additional_data: fields([(additional::REFERENCE_LABEL, "***")]),
            ..MerchantQr::default()
        }
    );
    // Its objects are in id order, so the builder writes the same bytes.
    assert_eq!(qr.to_payload().unwrap(), PIX_SAMPLE);
}

#[test]
fn reads_the_sgqr_sample_and_writes_it_back_byte_for_byte() {
    let qr = parse(SGQR_SAMPLE).unwrap();
    assert_eq!(qr.initiation, Some(Initiation::Static));
    assert_eq!(
        qr.merchant_accounts,
        fields([
            (2, "4761360000000*17"),
            (4, "512345678912345"),
            (11, "1234567890"),
            (12, "312345678901234"),
            (15, "2500034400010344500034453110001"),
        ])
    );
    let templates: Vec<u8> = qr.merchant_account_templates.keys().copied().collect();
    assert_eq!(templates, [(26..=37).collect(), vec![51]].concat());
    assert_eq!(
        qr.merchant_account_templates[&36],
        fields([
            (GUI, "SG.PAYNOW"),
            (1, "2"),
            (2, "+621234567890123"),
            (3, "0"),
            (4, "20991231"),
            (5, "1234567890123456789012345"),
        ])
    );
    assert_eq!(qr.merchant_account_templates[&51][&GUI], "SG.SGQR");
    assert_eq!(
        (qr.merchant_category_code.as_str(), qr.currency.as_str()),
        ("5814", "702")
    );
    assert_eq!(qr.amount, None);
    assert_eq!(
        (
            qr.country.as_str(),
            qr.merchant_name.as_str(),
            qr.merchant_city.as_str()
        ),
        ("SG", "FOOD XYZ PTE LTD", "SINGAPORE")
    );
    assert_eq!(qr.postal_code.as_deref(), Some("081006"));
    assert_eq!(
        qr.additional_data,
        fields([
            (additional::BILL_NUMBER, "1234567R"),
            (additional::CUSTOMER_LABEL, "8765430"),
            (50, "0015SG.COM.DASH.WWW01100000055502"),
        ])
    );
    assert_eq!(qr.to_payload().unwrap(), SGQR_SAMPLE);
}

#[test]
fn a_promptpay_qr_passes_its_crc_but_lacks_what_emvco_makes_mandatory() {
    assert_eq!(
        parse(PROMPTPAY_SAMPLE),
        Err(EmvError::Missing { id: top(52) })
    );
}

#[test]
fn a_corrupted_sample_fails_its_crc() {
    let wrong_crc = EMVCO_SAMPLE.replace("6304A13A", "6304A13B");
    assert_eq!(
        parse(&wrong_crc),
        Err(EmvError::CrcMismatch {
            expected: "A13A".into(),
            found: "A13B".into()
        })
    );
    // One changed digit of the amount: the CRC no longer matches.
    let wrong_amount = EMVCO_SAMPLE.replace("540523.72", "540523.73");
    assert!(matches!(
        parse(&wrong_amount),
        Err(EmvError::CrcMismatch { found, .. }) if found == "A13A"
    ));
    // Lowercase hex is read.
    assert!(parse(&EMVCO_SAMPLE.replace("6304A13A", "6304a13a")).is_ok());
}

#[test]
fn the_minimal_payload_is_valid() {
    assert_eq!(parse(&minimal(&[], &[])), Ok(minimal_qr()));
    assert_eq!(minimal_qr().to_payload().unwrap(), minimal(&[], &[]));
}

#[test]
fn structural_errors_say_where() {
    use EmvError::*;
    let cases = [
        ("", Missing { id: top(63) }),
        ("0A0201", NonNumericId { position: 0 }),
        ("000201+1", NonNumericId { position: 6 }),
        ("0002010", Truncated { position: 6 }),
        (
            "000201010x12",
            NonNumericLength {
                id: top(1),
                position: 8,
            },
        ),
        (
            "000201010012",
            BadLength {
                id: top(1),
                position: 8,
            },
        ),
        ("00020101031", Truncated { position: 6 }),
        ("0002", Truncated { position: 0 }),
        ("0", Truncated { position: 0 }),
        (
            "000201000201",
            Duplicate {
                id: top(0),
                position: 6,
            },
        ),
        // Characters, not bytes: 北 is one character (three bytes).
        (
            "0002015901北00x1",
            NonNumericLength {
                id: top(0),
                position: 13,
            },
        ),
    ];
    for (payload, error) in cases {
        assert_eq!(parse(payload), Err(error), "{payload:?}");
    }
    // Templates are read once the CRC holds; their errors say where in the
    // whole payload.
    assert_eq!(
        parse(&sealed("00020162040199")),
        Err(Truncated { position: 10 })
    );
    assert_eq!(
        parse(&sealed("00020162100101x0101y")),
        Err(Duplicate {
            id: ObjectId::within(62, 1),
            position: 15,
        })
    );
}

#[test]
fn crc_errors() {
    use EmvError::*;
    let valid = minimal(&[], &[]);
    assert_eq!(parse(&format!("{valid}610512345")), Err(CrcNotLast));
    let body = &valid[..valid.len() - 8];
    assert_eq!(
        parse(&format!("{body}6301F")),
        Err(Invalid {
            id: top(63),
            value: "F".into(),
            rule: "4 hex digits"
        })
    );
    let not_hex = format!("{}+A13", &valid[..valid.len() - 4]);
    assert!(matches!(parse(&not_hex), Err(Invalid { id, .. }) if id == top(63)));
    assert_eq!(parse(body), Err(Missing { id: top(63) }));
}

#[test]
fn payload_format_indicator_errors() {
    use EmvError::*;
    let valid = minimal(&[], &[]);
    let body = &valid[6..valid.len() - 8];
    assert_eq!(
        parse(&sealed(&format!("000202{body}"))),
        Err(WrongPayloadFormat { found: "02".into() })
    );
    assert_eq!(
        parse(&sealed(&format!("{body}000201"))),
        Err(PayloadFormatNotFirst)
    );
    assert_eq!(parse(&sealed(body)), Err(Missing { id: top(0) }));
}

#[test]
fn field_errors() {
    use EmvError::*;
    let cases: Vec<(String, EmvError)> = vec![
        (minimal(&[], &[59]), Missing { id: top(59) }),
        (minimal(&[], &[52]), Missing { id: top(52) }),
        (minimal(&[], &[26]), NoMerchantAccount),
        (
            minimal(&[(27, &tlv(1, "x"))], &[]),
            Missing {
                id: ObjectId::within(27, GUI),
            },
        ),
        (
            minimal(&[(1, "13")], &[]),
            Invalid {
                id: top(1),
                value: "13".into(),
                rule: "11 static or 12 dynamic",
            },
        ),
        (
            minimal(&[(54, "1.000.0")], &[]),
            BadAmount {
                id: top(54),
                value: "1.000.0".into(),
            },
        ),
        (
            minimal(&[(54, ".5")], &[]),
            BadAmount {
                id: top(54),
                value: ".5".into(),
            },
        ),
        (
            minimal(&[(54, "12345678901234")], &[]),
            TooLong {
                id: top(54),
                max: 13,
                length: 14,
            },
        ),
        (
            minimal(&[(59, "THE VERY LONG SHOP NAME 26")], &[59]),
            TooLong {
                id: top(59),
                max: 25,
                length: 26,
            },
        ),
        (
            minimal(&[(53, "JPY")], &[53]),
            Invalid {
                id: top(53),
                value: "JPY".into(),
                rule: "ISO 4217 numeric, 3 digits",
            },
        ),
        (
            minimal(&[(58, "jp")], &[58]),
            Invalid {
                id: top(58),
                value: "jp".into(),
                rule: "ISO 3166-1 alpha-2, two capital letters",
            },
        ),
        (minimal(&[(55, "02")], &[]), Missing { id: top(56) }),
        (
            minimal(&[(56, "1.00")], &[]),
            Invalid {
                id: top(56),
                value: "1.00".into(),
                rule: "only with 55 = 02",
            },
        ),
        (
            minimal(&[(55, "01"), (57, "3")], &[]),
            Invalid {
                id: top(57),
                value: "3".into(),
                rule: "only with 55 = 03",
            },
        ),
        (
            minimal(&[(55, "04")], &[]),
            Invalid {
                id: top(55),
                value: "04".into(),
                rule: "01 prompt, 02 fixed fee or 03 percentage fee",
            },
        ),
        (
            minimal(&[(64, &tlv(0, "ZH"))], &[]),
            Missing {
                id: ObjectId::within(64, 1),
            },
        ),
        (
            minimal(&[(62, &tlv(1, &"9".repeat(26)))], &[]),
            TooLong {
                id: ObjectId::within(62, 1),
                max: 25,
                length: 26,
            },
        ),
    ];
    for (payload, error) in cases {
        assert_eq!(parse(&payload), Err(error), "{payload:?}");
    }
}

#[test]
fn fees_and_rfu_objects_are_read() {
    let qr = parse(&minimal(&[(55, "03"), (57, "3.5"), (70, "kept")], &[])).unwrap();
    assert_eq!(qr.tip, Some(Tip::PercentageFee("3.5".into())));
    assert_eq!(qr.reserved, fields([(70, "kept")]));
    let qr = parse(&minimal(&[(55, "02"), (56, "100")], &[])).unwrap();
    assert_eq!(qr.tip, Some(Tip::FixedFee("100".into())));
}

#[test]
fn the_builder_refuses_what_cannot_be_written() {
    let mut qr = minimal_qr();
    qr.postal_code = Some(String::new());
    assert_eq!(qr.to_payload(), Err(EmvError::Empty { id: top(61) }));

    let mut qr = minimal_qr();
    qr.merchant_accounts.insert(26, "not a template id".into());
    assert_eq!(
        qr.to_payload(),
        Err(EmvError::IdOutOfRange {
            id: top(26),
            allowed: "02 to 25"
        })
    );

    // Each value fits, the template as a whole does not.
    let mut qr = minimal_qr();
    let long = "x".repeat(60);
    qr.unreserved_templates
        .insert(80, fields([(GUI, "app.example"), (1, &long), (2, &long)]));
    assert_eq!(
        qr.to_payload(),
        Err(EmvError::TooLong {
            id: top(80),
            max: 99,
            length: 15 + 64 + 64
        })
    );
}

fn jpy() -> QrCurrency {
    QrCurrency {
        numeric: 392,
        exponent: 0,
    }
}

fn clink_qr() -> ClinkMerchantQr {
    ClinkMerchantQr {
        merchant_id: format!("m_{}", "0123456789abcdef".repeat(2)),
        request_id: format!("sp_{}", "fedcba9876543210".repeat(2)),
        amount: 1_250,
        currency: QrCurrency {
            numeric: 978,
            exponent: 2,
        },
        merchant_name: "Café Zürich".into(),
        merchant_city: "BERLIN".into(),
        country: "DE".into(),
        merchant_category_code: "5814".into(),
        order_id: "2024-000042".into(),
    }
}

#[test]
fn clink_qr_carries_its_fields_in_the_expected_objects() {
    let qr = clink_qr();
    let payload = qr.to_payload().unwrap();
    let read = parse(&payload).unwrap();
    assert_eq!(read.initiation, Some(Initiation::Dynamic));
    assert_eq!(
        read.merchant_account_templates,
        BTreeMap::from([(
            CLINK_TEMPLATE,
            fields([
                (GUI, CLINK_GUI),
                (1, qr.merchant_id.as_str()),
                (2, qr.request_id.as_str())
            ])
        )])
    );
    assert_eq!(read.amount.as_deref(), Some("12.50"));
    assert_eq!(read.currency, "978");
    assert_eq!(
        read.additional_data,
        fields([(additional::BILL_NUMBER, "2024-000042")])
    );
    assert_eq!(ClinkMerchantQr::from_payload(&payload, qr.currency), Ok(qr));
}

#[test]
fn clink_qr_is_found_by_its_gui_whatever_its_id() {
    let clink = tlv(0, "APP.CLINK") + &tlv(1, "m_1") + &tlv(2, "sp_2");
    let payload = minimal(
        &[
            (1, "12"),
            (45, clink.as_str()),
            (54, "800"),
            (62, tlv(1, "order-7").as_str()),
        ],
        &[],
    );
    let qr = ClinkMerchantQr::from_payload(&payload, jpy()).unwrap();
    assert_eq!(
        (qr.merchant_id.as_str(), qr.request_id.as_str(), qr.amount),
        ("m_1", "sp_2", 800)
    );
    assert_eq!(qr.order_id, "order-7");
}

/// A Clink QR as the objects beyond [`minimal`]'s, with `changes` replacing
/// or adding objects and those in `removed` left out.
fn clink_payload(changes: &[(u8, &str)], removed: &[u8]) -> String {
    let template = tlv(0, CLINK_GUI) + &tlv(1, "m_1") + &tlv(2, "sp_2");
    let order = tlv(1, "order-7");
    let mut objects = vec![
        (1, "12"),
        (26, template.as_str()),
        (54, "800"),
        (62, &order),
    ];
    objects.retain(|(id, _)| !removed.contains(id) && !changes.iter().any(|(c, _)| c == id));
    objects.extend_from_slice(changes);
    minimal(&objects, &[26])
}

#[test]
fn clink_qr_errors() {
    use ClinkQrError::*;
    let read = |payload: &str| ClinkMerchantQr::from_payload(payload, jpy());
    assert!(read(&clink_payload(&[], &[])).is_ok());
    for sample in [PIX_SAMPLE, SGQR_SAMPLE, EMVCO_SAMPLE] {
        assert_eq!(read(sample), Err(NotClink));
    }
    assert_eq!(
        read(&PIX_SAMPLE.replace("63041D3D", "63041D3E")),
        Err(Emv(EmvError::CrcMismatch {
            expected: "1D3D".into(),
            found: "1D3E".into()
        }))
    );
    assert_eq!(read(&clink_payload(&[], &[1])), Err(NotDynamic));
    assert_eq!(read(&clink_payload(&[(1, "11")], &[])), Err(NotDynamic));
    assert_eq!(
        read(&clink_payload(&[], &[54])),
        Err(MissingField("amount"))
    );
    assert_eq!(
        read(&clink_payload(&[], &[62])),
        Err(MissingField("order id (bill number, 62.01)"))
    );
    let no_request = tlv(0, CLINK_GUI) + &tlv(1, "m_1");
    assert_eq!(
        read(&clink_payload(&[(26, &no_request)], &[])),
        Err(MissingField("payment request id"))
    );
    let bad_merchant = tlv(0, CLINK_GUI) + &tlv(1, "merchant") + &tlv(2, "sp_2");
    assert_eq!(
        read(&clink_payload(&[(26, &bad_merchant)], &[])),
        Err(BadId {
            what: "merchant id",
            prefix: "m_",
            value: "merchant".into()
        })
    );
    let euro = QrCurrency {
        numeric: 978,
        exponent: 2,
    };
    assert_eq!(
        ClinkMerchantQr::from_payload(&clink_payload(&[], &[]), euro),
        Err(CurrencyMismatch {
            expected: 978,
            found: "392".into()
        })
    );
    for amount in ["8.5", "0", "0.00"] {
        assert_eq!(
            read(&clink_payload(&[(54, amount)], &[])),
            Err(BadAmount {
                value: amount.into(),
                exponent: 0
            }),
            "{amount}"
        );
    }
    // Zeros after the currency's decimals are only another spelling.
    let qr = read(&clink_payload(&[(54, "800.00")], &[])).unwrap();
    assert_eq!(qr.amount, 800);
}

#[test]
fn clink_qr_builder_errors() {
    let mut qr = clink_qr();
    qr.request_id = "sp_".into();
    assert!(matches!(
        qr.to_payload(),
        Err(ClinkQrError::BadId {
            what: "payment request id",
            ..
        })
    ));
    let mut qr = clink_qr();
    qr.request_id = format!("sp_{}", "a".repeat(33));
    assert!(matches!(qr.to_payload(), Err(ClinkQrError::BadId { .. })));
    let mut qr = clink_qr();
    qr.amount = 0;
    assert!(matches!(
        qr.to_payload(),
        Err(ClinkQrError::BadAmount { .. })
    ));
    // 10^12 cents is 14 characters, "10000000000.00": one too many.
    let mut qr = clink_qr();
    qr.amount = 1_000_000_000_000;
    assert_eq!(
        qr.to_payload(),
        Err(ClinkQrError::Emv(EmvError::TooLong {
            id: top(54),
            max: 13,
            length: 14
        }))
    );
    let mut qr = clink_qr();
    qr.order_id = "x".repeat(26);
    assert!(matches!(
        qr.to_payload(),
        Err(ClinkQrError::Emv(EmvError::TooLong { .. }))
    ));
}

#[test]
fn amounts_convert_between_minor_units_and_decimal_text() {
    for (minor, exponent, text) in [
        (800, 0, "800"),
        (1234, 2, "12.34"),
        (5, 2, "0.05"),
        (0, 3, "0.000"),
        (1_000, 3, "1.000"),
    ] {
        assert_eq!(amount_text(minor, exponent), text);
        assert_eq!(amount_minor(text, exponent), Some(minor));
    }
    assert_eq!(amount_minor("12.3", 2), Some(1230));
    assert_eq!(amount_minor("12.", 2), Some(1200));
    assert_eq!(amount_minor("12.345", 2), None);
    assert_eq!(amount_minor("+1", 0), None);
    assert_eq!(amount_minor("99999999999999999999", 0), None);
    assert_eq!(amount_minor("1", 30), None);
}

// Property tests.

fn seeded(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x0c11_4b00),
        failure_persistence: None,
        ..Config::default()
    }
}

/// 1 to `max` characters, some of them beyond ASCII.
fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[ -~éü北京]{{1,{max}}}")).unwrap()
}

/// A template with a GUI that stays within 99 characters.
fn gui_template() -> impl Strategy<Value = Fields> {
    (
        text(20),
        prop::collection::btree_map(1u8..=99, text(15), 0..=3),
    )
        .prop_map(|(gui, mut fields)| {
            fields.insert(GUI, gui);
            fields
        })
}

fn amount() -> impl Strategy<Value = String> {
    "[0-9]{1,8}(\\.[0-9]{0,4})?"
}

fn tip() -> impl Strategy<Value = Option<Tip>> {
    prop_oneof![
        Just(None),
        Just(Some(Tip::Prompt)),
        amount().prop_map(|fee| Some(Tip::FixedFee(fee))),
        "[0-9]{1,2}\\.[0-9]{1,2}".prop_map(|p| Some(Tip::PercentageFee(p))),
    ]
}

fn language_template() -> impl Strategy<Value = Fields> {
    prop_oneof![
        Just(Fields::new()),
        ("[a-zA-Z]{2}", text(25), prop::option::of(text(15))).prop_map(
            |(preference, name, city)| {
                let mut fields = fields([
                    (language::PREFERENCE, preference.as_str()),
                    (language::MERCHANT_NAME, name.as_str()),
                ]);
                if let Some(city) = city {
                    fields.insert(language::MERCHANT_CITY, city);
                }
                fields
            }
        ),
    ]
}

prop_compose! {
    fn accounts()(
        initiation in prop::option::of(prop_oneof![Just(Initiation::Static), Just(Initiation::Dynamic)]),
        merchant_accounts in prop::collection::btree_map(2u8..=25, text(40), 0..=2),
        merchant_account_templates in prop::collection::btree_map(26u8..=51, gui_template(), 1..=3),
        reserved in prop::collection::btree_map(65u8..=79, text(40), 0..=2),
        unreserved_templates in prop::collection::btree_map(80u8..=99, gui_template(), 0..=2),
    ) -> MerchantQr {
        MerchantQr { initiation, merchant_accounts, merchant_account_templates, reserved, unreserved_templates, ..MerchantQr::default() }
    }
}

prop_compose! {
    fn merchant_qr()(
        base in accounts(),
        merchant_category_code in "[0-9]{4}",
        currency in "[0-9]{3}",
        amount in prop::option::of(amount()),
        tip in tip(),
        country in "[A-Z]{2}",
        merchant_name in text(25),
        merchant_city in text(15),
        postal_code in prop::option::of(text(10)),
        additional_data in prop::collection::btree_map(0u8..=99, text(15), 0..=4),
        language in language_template(),
    ) -> MerchantQr {
        MerchantQr {
            merchant_category_code, currency, amount, tip, country, merchant_name,
            merchant_city, postal_code, additional_data, language, ..base
        }
    }
}

prop_compose! {
    fn clink_merchant_qr()(
        merchant_id in "m_[a-z0-9]{1,32}",
        request_id in "sp_[a-zA-Z0-9]{1,32}",
        amount in 1..100_000_000_000i64,
        numeric in 0..=999u16,
        exponent in 0..=3u8,
        merchant_name in text(25),
        merchant_city in text(15),
        country in "[A-Z]{2}",
        merchant_category_code in "[0-9]{4}",
        order_id in text(25),
    ) -> ClinkMerchantQr {
        ClinkMerchantQr {
            merchant_id, request_id, amount, currency: QrCurrency { numeric, exponent },
            merchant_name, merchant_city, country, merchant_category_code, order_id,
        }
    }
}

/// A published payload with a few characters replaced, removed or added.
fn mutated_sample() -> impl Strategy<Value = String> {
    let samples = [EMVCO_SAMPLE, PIX_SAMPLE, SGQR_SAMPLE, PROMPTPAY_SAMPLE];
    let edit = (any::<prop::sample::Index>(), 0..3u8, "[0-9A-Z. 北]");
    (0..samples.len(), prop::collection::vec(edit, 1..4)).prop_map(move |(sample, edits)| {
        let mut chars: Vec<char> = samples[sample].chars().collect();
        for (at, kind, c) in edits {
            let at = at.index(chars.len() + 1);
            let c = c.chars().next().unwrap_or('0');
            match kind {
                0 if at < chars.len() => chars[at] = c,
                1 if at < chars.len() => drop(chars.remove(at)),
                _ => chars.insert(at, c),
            }
        }
        chars.into_iter().collect()
    })
}

/// `payload` with its last 8 characters replaced by a correct CRC, so that
/// the parser gets past the CRC to the rules behind it.
fn resealed(payload: &str) -> String {
    let end = payload.char_indices().rev().nth(7).map_or(0, |(i, _)| i);
    sealed(&payload[..end])
}

proptest! {
    #![proptest_config(seeded(1000))]

    #[test]
    fn build_then_parse_gives_back_the_struct(qr in merchant_qr()) {
        let payload = qr.to_payload().unwrap();
        prop_assert_eq!(parse(&payload), Ok(qr));
    }

    #[test]
    fn clink_qr_round_trips(qr in clink_merchant_qr()) {
        let payload = qr.to_payload().unwrap();
        prop_assert_eq!(ClinkMerchantQr::from_payload(&payload, qr.currency), Ok(qr));
    }

    #[test]
    fn any_string_is_read_or_refused_without_panic(text in any::<String>()) {
        let _ = parse(&text);
        let _ = ClinkMerchantQr::from_payload(&text, jpy());
        let _ = parse(&resealed(&text));
    }

    #[test]
    fn digit_soup_is_read_or_refused_without_panic(text in "[0-9]{0,120}") {
        let _ = parse(&text);
        let _ = parse(&sealed(&format!("000201{text}")));
    }

    #[test]
    fn damaged_samples_are_read_or_refused_without_panic(payload in mutated_sample()) {
        let _ = parse(&payload);
        let _ = parse(&resealed(&payload));
        let _ = ClinkMerchantQr::from_payload(&resealed(&payload), jpy());
    }
}
