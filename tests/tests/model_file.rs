//! The `.tlm` model file: exact layout, bit-exact round trips, every error path with a
//! specifically corrupted buffer, exhaustive truncation and bit-flip sweeps, and property tests
//! (arbitrary bytes and arbitrary mutations of valid files never panic).

use proptest::prelude::*;
use tinylstm::format::*;
use tinylstm::{Head, Mask, Spec, SpecError};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const ZLIB_CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// An independent bitwise CRC-32 (reflected polynomial 0xEDB88320), to pin the algorithm.
fn bitwise_crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// CRC over everything but the last 4 bytes.
fn body_crc(bytes: &[u8]) -> u32 {
    ZLIB_CRC.checksum(&bytes[..bytes.len() - 4])
}

fn stored_crc(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap())
}

/// Recomputes the trailing CRC after an edit, so later checks can be reached.
fn fix_crc(bytes: &mut [u8]) {
    let c = body_crc(bytes);
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&c.to_le_bytes());
}

/// Appends a CRC to a body.
fn with_crc(mut body: Vec<u8>) -> Vec<u8> {
    let c = ZLIB_CRC.checksum(&body);
    body.extend_from_slice(&c.to_le_bytes());
    body
}

fn put_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn section_bytes(tag: u32, data: &[u8]) -> Vec<u8> {
    let mut v = tag.to_le_bytes().to_vec();
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    v
}

/// Special values that must survive bit-exactly.
const SPECIAL_BITS: [u32; 12] = [
    0x7FC0_0000, // canonical quiet NaN
    0x7FC0_1234, // quiet NaN with payload
    0xFFC0_BEEF, // negative quiet NaN with payload
    0x7F80_0001, // signalling NaN
    0xFFBF_FFFF, // negative signalling NaN, full payload
    0x8000_0000, // -0.0
    0x0000_0000, // +0.0
    0x7F80_0000, // +inf
    0xFF80_0000, // -inf
    0x0000_0001, // smallest subnormal
    0x807F_FFFF, // largest negative subnormal
    0x7F7F_FFFF, // f32::MAX
];

/// Deterministic parameters that include every special value.
fn params_for(spec: &Spec, seed: u32) -> Vec<f32> {
    (0..spec.param_count())
        .map(|i| {
            let i = i as u32;
            if (i as usize) < SPECIAL_BITS.len() {
                f32::from_bits(SPECIAL_BITS[i as usize])
            } else {
                let x = i.wrapping_mul(2_654_435_761).wrapping_add(seed.wrapping_mul(97));
                (x % 20_001) as f32 / 10_000.0 - 1.0
            }
        })
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn write(spec: &Spec, params: &[f32], sections: &[Section<'_>]) -> Vec<u8> {
    let n = encoded_len(spec, sections).unwrap();
    let mut buf = vec![0u8; n];
    assert_eq!(write_into(spec, params, sections, &mut buf), Ok(n));
    buf
}

/// Where each section starts in a written file: `(start, tag, len)`, PARAMS last.
fn layout(spec: &Spec, sections: &[Section<'_>]) -> Vec<(usize, u32, usize)> {
    let mut at = HEADER_LEN;
    let mut out = Vec::new();
    for s in sections {
        out.push((at, s.tag, s.bytes.len()));
        at += SECTION_HEADER_LEN + s.bytes.len();
    }
    out.push((at, TAG_PARAMS, 4 * spec.param_count()));
    out
}

fn all_specs() -> Vec<Spec> {
    let mut v = Vec::new();
    for head in [Head::Sigmoid, Head::Softmax, Head::Linear] {
        let k = if head == Head::Softmax { 3 } else { 1 };
        v.push(Spec::tokens(20, 4).lstm(6).dense(k, head));
        v.push(Spec::tokens(9, 3).lstm(5).lstm(4).lstm(3).dense(k, head));
        v.push(Spec::channels(3).lstm(4).dense(k, head));
        v.push(Spec::channels(2).lstm(3).lstm(5).lstm(2).dense(k + 1, head));
    }
    v.push(Spec::channels(1).lstm(1).dense(1, Head::Sigmoid));
    v.push(Spec::tokens(5, 2).lstm(2).lstm(2).lstm(2).lstm(2).dense(2, Head::Softmax));
    v.push(Spec::channels(3).masking(0.0).lstm(4).lstm(2).dense(3, Head::Softmax));
    v.push(Spec::channels(1).masking(-999.25).lstm(2).dense(1, Head::Linear));
    v.push(Spec::tokens(20, 4).mask_zero().lstm(6).lstm(5).dense(1, Head::Sigmoid));
    v
}

const TOKENIZER: &[u8] = br#"{"num_words":100,"oov_token":"<OOV>","words":["the","a"]}"#;
const NORMALIZATION: &[u8] = &[0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64];
const METADATA: &[u8] = "trained 2024-01-01, accuracy 0.91, 中文".as_bytes();
const UNKNOWN_TAG: u32 = 0x0000_BEEF;

fn section_sets() -> Vec<Vec<Section<'static>>> {
    let tok = Section { tag: TAG_TOKENIZER, bytes: TOKENIZER };
    let norm = Section { tag: TAG_NORMALIZATION, bytes: NORMALIZATION };
    let meta = Section { tag: TAG_METADATA, bytes: METADATA };
    let unknown = Section { tag: UNKNOWN_TAG, bytes: b"future" };
    let empty_meta = Section { tag: TAG_METADATA, bytes: b"" };
    vec![
        vec![],
        vec![tok],
        vec![norm],
        vec![meta],
        vec![empty_meta],
        vec![tok, norm, meta],
        vec![meta, unknown, tok, norm],
        vec![unknown],
    ]
}

/// The standard file used by the corruption tests: channels, softmax, three side sections.
fn standard() -> (Spec, Vec<f32>, Vec<Section<'static>>, Vec<u8>) {
    let spec = Spec::channels(3).lstm(4).dense(2, Head::Softmax);
    let params = params_for(&spec, 7);
    let sections = vec![
        Section { tag: TAG_TOKENIZER, bytes: TOKENIZER },
        Section { tag: UNKNOWN_TAG, bytes: b"xyz" },
        Section { tag: TAG_METADATA, bytes: METADATA },
    ];
    let bytes = write(&spec, &params, &sections);
    (spec, params, sections, bytes)
}

// ---------------------------------------------------------------------------------------------
// Layout and round trips
// ---------------------------------------------------------------------------------------------

#[test]
fn crc_is_zlib_crc32() {
    assert_eq!(bitwise_crc32(b"123456789"), 0xCBF4_3926);
    let (.., bytes) = standard();
    assert_eq!(stored_crc(&bytes), bitwise_crc32(&bytes[..bytes.len() - 4]));
}

#[test]
fn layout_is_exactly_as_documented() {
    let spec = Spec::channels(3).lstm(4).dense(2, Head::Softmax);
    let params = params_for(&spec, 1);
    let bytes = write(&spec, &params, &[Section { tag: TAG_METADATA, bytes: b"hi" }]);

    #[rustfmt::skip]
    let header: [u8; HEADER_LEN] = [
        b'T', b'I', b'N', b'Y', b'L', b'S', b'T', b'M', // magic
        1, 0,                                           // version 1
        0, 0,                                           // flags
        1,                                              // input kind: channels
        1,                                              // head: softmax
        1,                                              // layer count
        0,                                              // reserved
        0, 0, 0, 0,                                     // vocab
        3, 0, 0, 0,                                     // width (channels)
        4, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0, // units[4]
        2, 0, 0, 0,                                     // outputs
    ];
    assert_eq!(&bytes[..HEADER_LEN], &header);
    assert_eq!(&bytes[44..54], &[3, 0, 0, 0, 2, 0, 0, 0, b'h', b'i']);
    let n = spec.param_count();
    assert_eq!(&bytes[54..58], b"PARA");
    assert_eq!(&bytes[58..62], &((4 * n) as u32).to_le_bytes());
    for (i, p) in params.iter().enumerate() {
        assert_eq!(&bytes[62 + 4 * i..66 + 4 * i], &p.to_le_bytes());
    }
    assert_eq!(bytes.len(), 62 + 4 * n + 4);
    assert_eq!(stored_crc(&bytes), body_crc(&bytes));
    assert_eq!(ModelFile::parse(&bytes).unwrap().crc(), stored_crc(&bytes));

    // Token input: kind 0, vocab and embedding, several layers, sigmoid head.
    let spec = Spec::tokens(1000, 16).lstm(32).lstm(8).dense(1, Head::Sigmoid);
    let bytes = write(&spec, &params_for(&spec, 0), &[]);
    #[rustfmt::skip]
    let spec_block: [u8; 32] = [
        0, 0, 2, 0,
        0xE8, 0x03, 0, 0,
        16, 0, 0, 0,
        32, 0, 0, 0,  8, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,
        1, 0, 0, 0,
    ];
    assert_eq!(&bytes[12..44], &spec_block);
    assert_eq!(bytes.len(), HEADER_LEN + SECTION_HEADER_LEN + 4 * spec.param_count() + CRC_LEN);

    // Linear head byte.
    let spec = Spec::channels(2).lstm(2).dense(1, Head::Linear);
    let bytes = write(&spec, &params_for(&spec, 0), &[]);
    assert_eq!(bytes[13], 2);
}

/// Version 2 carries the mask in byte 15, a mask value in the vocabulary field; a model without
/// a mask is still written as version 1, byte for byte as before.
#[test]
fn masked_layout_is_exactly_as_documented() {
    let spec = Spec::channels(3).masking(-1.5).lstm(4).dense(2, Head::Softmax);
    let bytes = write(&spec, &params_for(&spec, 1), &[]);
    #[rustfmt::skip]
    let header: [u8; HEADER_LEN] = [
        b'T', b'I', b'N', b'Y', b'L', b'S', b'T', b'M', // magic
        2, 0,                                           // version 2
        0, 0,                                           // flags
        1,                                              // input kind: channels
        1,                                              // head: softmax
        1,                                              // layer count
        1,                                              // mask: mask value
        0x00, 0x00, 0xC0, 0xBF,                         // mask value -1.5 (f32 LE)
        3, 0, 0, 0,                                     // width (channels)
        4, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0, // units[4]
        2, 0, 0, 0,                                     // outputs
    ];
    assert_eq!(&bytes[..HEADER_LEN], &header);
    let file = ModelFile::parse(&bytes).unwrap();
    assert_eq!((file.version(), file.spec().mask), (2, Mask::Value(-1.5)));

    let spec = Spec::tokens(1000, 16).mask_zero().lstm(32).dense(1, Head::Sigmoid);
    let bytes = write(&spec, &params_for(&spec, 0), &[]);
    assert_eq!(&bytes[8..10], &[2, 0]);
    assert_eq!(bytes[15], 2);
    assert_eq!(&bytes[16..20], &[0xE8, 0x03, 0, 0]); // the vocabulary, as in version 1
    assert_eq!(ModelFile::parse(&bytes).unwrap().spec(), spec);
}

/// A version-1 file written before masking existed (the committed firmware model, and one
/// built here byte by byte) still loads, as a model without a mask.
#[test]
fn version_1_files_still_load() {
    let fw =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware/models/default.tlm");
    let bytes = std::fs::read(&fw).expect("firmware/models/default.tlm");
    assert_eq!(&bytes[8..10], &[1, 0], "the committed model predates version 2");
    let file = ModelFile::parse(&bytes).unwrap();
    assert_eq!((file.version(), file.spec().mask), (1, Mask::Off));

    let spec = Spec::channels(2).lstm(1).dense(1, Head::Linear);
    #[rustfmt::skip]
    let mut v1: Vec<u8> = vec![
        b'T', b'I', b'N', b'Y', b'L', b'S', b'T', b'M', 1, 0, 0, 0, 1, 2, 1, 0,
        0, 0, 0, 0,  2, 0, 0, 0,  1, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,  1, 0, 0, 0,
    ];
    let n = spec.param_count();
    v1.extend_from_slice(b"PARA");
    v1.extend_from_slice(&(4 * n as u32).to_le_bytes());
    for i in 0..n {
        v1.extend_from_slice(&(i as f32).to_le_bytes());
    }
    v1.extend_from_slice(&[0; 4]);
    fix_crc(&mut v1);
    let file = ModelFile::parse(&v1).unwrap();
    assert_eq!((file.version(), file.spec()), (1, spec));
    assert_eq!(write(&spec, &(0..n).map(|i| i as f32).collect::<Vec<_>>(), &[]), v1);
}

/// Version-2 mask bytes that mean nothing, or a mask the input cannot have, are refused.
#[test]
fn invalid_mask_bytes() {
    use FormatError::{InvalidField, InvalidSpec};
    let channels = Spec::channels(3).masking(0.0).lstm(4).dense(2, Head::Softmax);
    let tokens = Spec::tokens(20, 4).mask_zero().lstm(3).dense(1, Head::Sigmoid);
    type Edit = Box<dyn Fn(&mut [u8])>;
    let cases: Vec<(Spec, &str, Edit, FormatError)> = vec![
        (channels, "mask 3", Box::new(|b| b[15] = 3), InvalidField { field: "mask", value: 3 }),
        (
            channels,
            "version 2 without a mask",
            Box::new(|b| b[15] = 0),
            InvalidField { field: "mask", value: 0 },
        ),
        (channels, "mask_zero on channels", Box::new(|b| b[15] = 2), InvalidSpec(SpecError::Mask)),
        (
            channels,
            "NaN mask value",
            Box::new(|b| put_u32(b, 16, f32::NAN.to_bits())),
            InvalidSpec(SpecError::Mask),
        ),
        (
            channels,
            "infinite mask value",
            Box::new(|b| put_u32(b, 16, f32::INFINITY.to_bits())),
            InvalidSpec(SpecError::Mask),
        ),
        (tokens, "mask value on tokens", Box::new(|b| b[15] = 1), InvalidSpec(SpecError::Mask)),
        (
            channels,
            "mask byte in version 1",
            Box::new(|b| b[8] = 1),
            InvalidField { field: "reserved", value: 1 },
        ),
    ];
    for (spec, what, edit, want) in cases {
        let mut b = write(&spec, &params_for(&spec, 0), &[]);
        edit(&mut b);
        fix_crc(&mut b);
        assert_eq!(ModelFile::parse(&b).unwrap_err(), want, "{what}");
        assert_eq!(peek_spec(&b).unwrap_err(), want, "{what}");
    }
}

#[test]
fn round_trip_every_spec_and_section_set() {
    for (si, spec) in all_specs().into_iter().enumerate() {
        let params = params_for(&spec, si as u32);
        for sections in section_sets() {
            let bytes = write(&spec, &params, &sections);
            let file = ModelFile::parse(&bytes).unwrap_or_else(|e| panic!("{spec:?}: {e}"));

            assert_eq!(file.spec(), spec);
            assert_eq!(file.version(), if spec.mask.is_on() { 2 } else { 1 }, "{spec:?}");
            assert_eq!(file.as_bytes(), &bytes[..]);
            assert_eq!(file.param_count(), spec.param_count());
            assert_eq!(file.check_spec(&spec), Ok(()));
            assert_eq!(peek_spec(&bytes), Ok(spec));
            assert_eq!(peek_check_spec(&bytes, &spec), Ok(()));

            // Bit-exact parameters, both ways of reading them.
            assert_eq!(bits(&file.params().collect::<Vec<_>>()), bits(&params));
            let mut loaded = vec![0.0f32; spec.param_count()];
            file.read_params(&mut loaded).unwrap();
            assert_eq!(bits(&loaded), bits(&params));

            // Sections: known accessors, generic lookup, file order with PARAMS last.
            let find = |tag| sections.iter().find(|s| s.tag == tag).map(|s| s.bytes);
            assert_eq!(file.tokenizer(), find(TAG_TOKENIZER));
            assert_eq!(file.normalization(), find(TAG_NORMALIZATION));
            assert_eq!(file.metadata(), find(TAG_METADATA));
            assert_eq!(file.section(UNKNOWN_TAG), find(UNKNOWN_TAG));
            let read: Vec<Section<'_>> = file.sections().collect();
            assert_eq!(&read[..sections.len()], &sections[..]);
            assert_eq!(read.len(), sections.len() + 1);
            assert_eq!(read.last().unwrap().tag, TAG_PARAMS);
            assert_eq!(file.section(TAG_PARAMS).unwrap().len(), 4 * spec.param_count());

            // The streaming writers produce the same bytes.
            let mut buf = vec![0u8; bytes.len()];
            let mut sink = SliceSink::new(&mut buf);
            assert_eq!(write_to(&spec, &params, &sections, &mut sink), Ok(bytes.len()));
            assert_eq!(sink.position(), bytes.len());
            assert_eq!(buf, bytes);
            let mut io = IoSink::new(Vec::new());
            assert_eq!(write_to(&spec, &params, &sections, &mut io), Ok(bytes.len()));
            assert_eq!(io.into_inner(), bytes);
        }
    }
}

#[test]
fn special_floats_round_trip_bit_exactly() {
    let spec = Spec::channels(1).lstm(1).dense(1, Head::Linear);
    assert_eq!(spec.param_count(), 14);
    let mut params: Vec<f32> = SPECIAL_BITS.iter().map(|&b| f32::from_bits(b)).collect();
    params.push(f32::MIN_POSITIVE);
    params.push(-1.5);
    let bytes = write(&spec, &params, &[]);
    let file = ModelFile::parse(&bytes).unwrap();
    let back: Vec<f32> = file.params().collect();
    assert_eq!(bits(&back), bits(&params));
    assert!(back[1].is_nan() && back[1].to_bits() == 0x7FC0_1234);
    assert!(back[5] == 0.0 && back[5].is_sign_negative());
}

#[test]
fn write_into_larger_buffer_leaves_the_rest_untouched() {
    let (spec, params, sections, bytes) = standard();
    let mut buf = vec![0xAAu8; bytes.len() + 17];
    assert_eq!(write_into(&spec, &params, &sections, &mut buf), Ok(bytes.len()));
    assert_eq!(&buf[..bytes.len()], &bytes[..]);
    assert!(buf[bytes.len()..].iter().all(|&b| b == 0xAA));
}

#[test]
fn unknown_sections_are_skipped_on_read() {
    let spec = Spec::tokens(10, 2).lstm(3).dense(1, Head::Sigmoid);
    let params = params_for(&spec, 3);
    let sections = [
        Section { tag: 0, bytes: b"" },
        Section { tag: 0x7777, bytes: &[1, 2, 3, 4, 5] },
        Section { tag: 0x7777, bytes: &[6] }, // unknown tags may repeat
        Section { tag: TAG_TOKENIZER, bytes: b"tok" },
        Section { tag: u32::MAX, bytes: &[0xFF; 40] },
    ];
    let bytes = write(&spec, &params, &sections);
    let file = ModelFile::parse(&bytes).unwrap();
    assert_eq!(file.tokenizer(), Some(&b"tok"[..]));
    assert_eq!(file.metadata(), None);
    assert_eq!(file.section(0x7777), Some(&[1u8, 2, 3, 4, 5][..]));
    assert_eq!(file.section(0), Some(&b""[..]));
    assert_eq!(file.section(0x1234_5678), None);
    assert_eq!(file.sections().count(), 6);
    assert_eq!(bits(&file.params().collect::<Vec<_>>()), bits(&params));
}

// ---------------------------------------------------------------------------------------------
// Error paths, each with a specific corruption
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_magic() {
    let (.., mut bytes) = standard();
    bytes[0] = b't';
    assert_eq!(ModelFile::parse(&bytes).unwrap_err(), FormatError::BadMagic);
    assert_eq!(peek_spec(&bytes), Err(FormatError::BadMagic));
    // Short foreign files are recognised as foreign, not as truncated.
    assert_eq!(ModelFile::parse(b"PK\x03\x04").unwrap_err(), FormatError::BadMagic);
    assert_eq!(ModelFile::parse(b"{}").unwrap_err(), FormatError::BadMagic);
    assert_eq!(ModelFile::parse(&[0u8; 100]).unwrap_err(), FormatError::BadMagic);
}

#[test]
fn unknown_version() {
    let (.., bytes) = standard();
    for v in [0u16, VERSION + 1, 0x0100, u16::MAX] {
        let mut b = bytes.clone();
        b[8..10].copy_from_slice(&v.to_le_bytes());
        assert_eq!(ModelFile::parse(&b).unwrap_err(), FormatError::UnsupportedVersion { found: v });
        fix_crc(&mut b);
        assert_eq!(ModelFile::parse(&b).unwrap_err(), FormatError::UnsupportedVersion { found: v });
        assert_eq!(peek_spec(&b), Err(FormatError::UnsupportedVersion { found: v }));
    }
    // Checked before the length: a short file of another version says so.
    assert_eq!(
        ModelFile::parse(b"TINYLSTM\x04\x00").unwrap_err(),
        FormatError::UnsupportedVersion { found: 4 }
    );
}

#[test]
fn nonzero_flags() {
    let (.., bytes) = standard();
    let mut b = bytes.clone();
    b[10] = 1;
    // Without a matching CRC the damage is reported as such…
    assert!(matches!(ModelFile::parse(&b), Err(FormatError::CrcMismatch { .. })));
    // …with one, the flags are rejected.
    fix_crc(&mut b);
    assert_eq!(ModelFile::parse(&b).unwrap_err(), FormatError::UnsupportedFlags { flags: 1 });
    b[10] = 0;
    b[11] = 0x80;
    fix_crc(&mut b);
    assert_eq!(ModelFile::parse(&b).unwrap_err(), FormatError::UnsupportedFlags { flags: 0x8000 });
    assert_eq!(peek_spec(&b), Err(FormatError::UnsupportedFlags { flags: 0x8000 }));
}

#[test]
fn crc_mismatch() {
    let (.., bytes) = standard();
    let n = bytes.len();
    // A corrupted stored CRC.
    let mut b = bytes.clone();
    b[n - 1] ^= 0xFF;
    assert_eq!(
        ModelFile::parse(&b).unwrap_err(),
        FormatError::CrcMismatch { stored: stored_crc(&b), computed: stored_crc(&bytes) }
    );
    // A corrupted parameter.
    let mut b = bytes.clone();
    b[n - 10] ^= 0x01;
    assert_eq!(
        ModelFile::parse(&b).unwrap_err(),
        FormatError::CrcMismatch { stored: stored_crc(&bytes), computed: body_crc(&b) }
    );
    // Bytes appended after the CRC: the last 4 bytes are no longer the CRC.
    let mut b = bytes.clone();
    b.extend_from_slice(&[0, 0, 0]);
    assert!(matches!(ModelFile::parse(&b), Err(FormatError::CrcMismatch { .. })));
    let mut b = bytes.clone();
    b.extend_from_slice(&bytes);
    assert!(matches!(ModelFile::parse(&b), Err(FormatError::CrcMismatch { .. })));
}

/// Edits the spec block of the standard file, fixes the CRC, and parses.
#[allow(clippy::result_large_err)]
fn parse_with_header_edit(edit: impl FnOnce(&mut [u8])) -> Result<Spec, FormatError> {
    let (.., mut bytes) = standard();
    edit(&mut bytes);
    fix_crc(&mut bytes);
    let peeked = peek_spec(&bytes);
    let parsed = ModelFile::parse(&bytes).map(|f| f.spec());
    if let Err(e) = parsed {
        if !matches!(e, FormatError::ParamsLength { .. } | FormatError::ModelTooLarge) {
            assert_eq!(peeked, Err(e), "peek_spec and parse disagree");
        }
    }
    parsed
}

#[test]
fn invalid_spec_bytes() {
    use FormatError::{InvalidField, InvalidSpec};
    type Edit = Box<dyn Fn(&mut [u8])>;
    let cases: Vec<(&str, Edit, FormatError)> = vec![
        ("0 layers", Box::new(|b| b[14] = 0), InvalidSpec(SpecError::Layers)),
        ("5 layers", Box::new(|b| b[14] = 5), InvalidSpec(SpecError::Layers)),
        ("255 layers", Box::new(|b| b[14] = 255), InvalidSpec(SpecError::Layers)),
        ("bad input kind", Box::new(|b| b[12] = 2), InvalidField { field: "input kind", value: 2 }),
        ("bad head", Box::new(|b| b[13] = 3), InvalidField { field: "head", value: 3 }),
        ("bad head 255", Box::new(|b| b[13] = 255), InvalidField { field: "head", value: 255 }),
        ("reserved", Box::new(|b| b[15] = 1), InvalidField { field: "reserved", value: 1 }),
        (
            "vocab for channels",
            Box::new(|b| put_u32(b, 16, 5)),
            InvalidField { field: "vocab", value: 5 },
        ),
        ("units u32::MAX", Box::new(|b| put_u32(b, 24, u32::MAX)), InvalidSpec(SpecError::Units)),
        ("units 0", Box::new(|b| put_u32(b, 24, 0)), InvalidSpec(SpecError::Units)),
        ("units 4097", Box::new(|b| put_u32(b, 24, 4097)), InvalidSpec(SpecError::Units)),
        ("unused units slot", Box::new(|b| put_u32(b, 28, 8)), InvalidSpec(SpecError::Units)),
        ("width 0", Box::new(|b| put_u32(b, 20, 0)), InvalidSpec(SpecError::Width)),
        ("width u32::MAX", Box::new(|b| put_u32(b, 20, u32::MAX)), InvalidSpec(SpecError::Width)),
        ("outputs 0", Box::new(|b| put_u32(b, 40, 0)), InvalidSpec(SpecError::Outputs)),
        ("softmax 1 output", Box::new(|b| put_u32(b, 40, 1)), InvalidSpec(SpecError::Outputs)),
        (
            "outputs u32::MAX",
            Box::new(|b| put_u32(b, 40, u32::MAX)),
            InvalidSpec(SpecError::Outputs),
        ),
        // Token input: switch the kind to tokens and give a bad vocabulary.
        (
            "vocab 0",
            Box::new(|b| {
                b[12] = 0;
                put_u32(b, 16, 0)
            }),
            InvalidSpec(SpecError::Vocab),
        ),
        (
            "vocab u32::MAX",
            Box::new(|b| {
                b[12] = 0;
                put_u32(b, 16, u32::MAX)
            }),
            InvalidSpec(SpecError::Vocab),
        ),
    ];
    for (name, edit, expected) in cases {
        assert_eq!(parse_with_header_edit(edit), Err(expected), "{name}");
    }
}

#[test]
fn absurd_sizes_are_rejected_without_overflow() {
    // Every dimension at its maximum: the parameters would need 64 GiB. The spec check counts
    // them in 64-bit arithmetic and rejects the spec before any size is computed in `usize`.
    let spec = Spec::tokens(tinylstm::spec::MAX_VOCAB, tinylstm::spec::MAX_DIM)
        .lstm(4096)
        .lstm(4096)
        .lstm(4096)
        .lstm(4096)
        .dense(4096, Head::Softmax);
    assert_eq!(spec.validate(), Err(SpecError::TooLarge));
    let result = parse_with_header_edit(|b| {
        b[12] = 0;
        b[13] = 1;
        b[14] = 4;
        put_u32(b, 16, tinylstm::spec::MAX_VOCAB as u32);
        put_u32(b, 20, 4096);
        for l in 0..4 {
            put_u32(b, 24 + 4 * l, 4096);
        }
        put_u32(b, 40, 4096);
    });
    assert_eq!(result, Err(FormatError::InvalidSpec(SpecError::TooLarge)));
    assert_eq!(encoded_len(&spec, &[]), Err(FormatError::InvalidSpec(SpecError::TooLarge)));
    assert_eq!(
        write_into(&spec, &[], &[], &mut []),
        Err(FormatError::InvalidSpec(SpecError::TooLarge))
    );
}

#[test]
fn params_length_mismatch() {
    let (spec, _, sections, bytes) = standard();
    let params_at = layout(&spec, &sections).last().unwrap().0;
    let expected = 4 * spec.param_count();

    // The spec says more units than the parameters were written for.
    let mut b = bytes.clone();
    put_u32(&mut b, 24, 5);
    fix_crc(&mut b);
    let bigger = Spec::channels(3).lstm(5).dense(2, Head::Softmax);
    assert_eq!(
        ModelFile::parse(&b).unwrap_err(),
        FormatError::ParamsLength { expected: 4 * bigger.param_count(), found: expected }
    );

    // The PARAMS length field is one parameter short (the body is then followed by 4 stray bytes).
    let mut b = bytes.clone();
    put_u32(&mut b, params_at + 4, (expected - 4) as u32);
    fix_crc(&mut b);
    assert_eq!(
        ModelFile::parse(&b).unwrap_err(),
        FormatError::ParamsLength { expected, found: expected - 4 }
    );

    // The PARAMS section really is one parameter short.
    let mut b = bytes[..bytes.len() - 8].to_vec();
    put_u32(&mut b, params_at + 4, (expected - 4) as u32);
    let b = with_crc(b);
    assert_eq!(
        ModelFile::parse(&b).unwrap_err(),
        FormatError::ParamsLength { expected, found: expected - 4 }
    );

    // The PARAMS length field is huge.
    let mut b = bytes.clone();
    put_u32(&mut b, params_at + 4, u32::MAX);
    fix_crc(&mut b);
    assert_eq!(
        ModelFile::parse(&b).unwrap_err(),
        FormatError::ParamsLength { expected, found: u32::MAX as usize }
    );
}

#[test]
fn missing_params() {
    let (spec, _, _, bytes) = standard();
    let header = &bytes[..HEADER_LEN];
    // Header only.
    let b = with_crc(header.to_vec());
    assert_eq!(ModelFile::parse(&b).unwrap_err(), FormatError::ParamsMissing);
    // Side sections but no PARAMS.
    let mut body = header.to_vec();
    body.extend(section_bytes(TAG_TOKENIZER, TOKENIZER));
    body.extend(section_bytes(UNKNOWN_TAG, &[0; 4 * 30]));
    let b = with_crc(body);
    assert_eq!(ModelFile::parse(&b).unwrap_err(), FormatError::ParamsMissing);
    // The spec can still be peeked.
    assert_eq!(peek_spec(&b), Ok(spec));
}

#[test]
fn params_not_last_and_trailing_bytes() {
    let (spec, _, _, bytes) = standard();
    let body = &bytes[..bytes.len() - 4];

    // A whole section after PARAMS.
    let mut b = body.to_vec();
    b.extend(section_bytes(TAG_METADATA, b"late"));
    assert_eq!(
        ModelFile::parse(&with_crc(b)).unwrap_err(),
        FormatError::ParamsNotLast { tag: TAG_METADATA }
    );
    let mut b = body.to_vec();
    b.extend(section_bytes(UNKNOWN_TAG, b""));
    assert_eq!(
        ModelFile::parse(&with_crc(b)).unwrap_err(),
        FormatError::ParamsNotLast { tag: UNKNOWN_TAG }
    );
    // A second PARAMS section.
    let params_section = &body[body.len() - 8 - 4 * spec.param_count()..];
    let mut b = body.to_vec();
    b.extend_from_slice(params_section);
    assert_eq!(
        ModelFile::parse(&with_crc(b)).unwrap_err(),
        FormatError::ParamsNotLast { tag: TAG_PARAMS }
    );

    // Stray bytes that form no section.
    for count in [1usize, 3, 4, 7, 8, 20] {
        let mut b = body.to_vec();
        b.extend(std::iter::repeat_n(0xFFu8, count));
        assert_eq!(
            ModelFile::parse(&with_crc(b)).unwrap_err(),
            FormatError::TrailingBytes { count },
            "{count} stray bytes"
        );
    }
}

#[test]
fn duplicate_section() {
    let (spec, params, _, bytes) = standard();
    // Writer side.
    for tag in [TAG_TOKENIZER, TAG_NORMALIZATION, TAG_METADATA] {
        let dup = [
            Section { tag, bytes: b"a" },
            Section { tag: 99, bytes: b"" },
            Section { tag, bytes: b"b" },
        ];
        assert_eq!(encoded_len(&spec, &dup), Err(FormatError::DuplicateSection { tag }));
        let mut buf = vec![0u8; 4096];
        assert_eq!(
            write_into(&spec, &params, &dup, &mut buf),
            Err(FormatError::DuplicateSection { tag })
        );
    }
    // Reader side: splice a second metadata section in before PARAMS.
    let (_, _, sections, _) = standard();
    let params_at = layout(&spec, &sections).last().unwrap().0;
    let mut b = bytes[..params_at].to_vec();
    b.extend(section_bytes(TAG_METADATA, b"again"));
    b.extend_from_slice(&bytes[params_at..]);
    fix_crc(&mut b);
    assert_eq!(
        ModelFile::parse(&b).unwrap_err(),
        FormatError::DuplicateSection { tag: TAG_METADATA }
    );
}

#[test]
fn crafted_section_overruns_are_truncation() {
    // Section lengths that run past the CRC in a file whose CRC is correct.
    let (spec, _, sections, bytes) = standard();
    let lay = layout(&spec, &sections);
    let first = lay[0].0;
    let mut b = bytes.clone();
    put_u32(&mut b, first + 4, u32::MAX);
    fix_crc(&mut b);
    match ModelFile::parse(&b).unwrap_err() {
        FormatError::Truncated { what: "tokenizer section body", needed, available } => {
            assert_eq!(needed, u32::MAX as usize);
            assert_eq!(available, bytes.len() - 4 - first - 8);
        }
        e => panic!("unexpected {e:?}"),
    }
    // A header cut short before the CRC: 3 bytes where a section header should be.
    let mut body = bytes[..HEADER_LEN].to_vec();
    body.extend_from_slice(&[1, 0, 0]);
    assert_eq!(
        ModelFile::parse(&with_crc(body)).unwrap_err(),
        FormatError::Truncated { what: "section header", needed: 8, available: 3 }
    );
}

#[test]
fn spec_mismatch() {
    let (spec, _, _, bytes) = standard();
    let file = ModelFile::parse(&bytes).unwrap();
    for other in [
        Spec::channels(3).lstm(5).dense(2, Head::Softmax),
        Spec::channels(3).lstm(4).dense(2, Head::Sigmoid),
        Spec::channels(4).lstm(4).dense(2, Head::Softmax),
        Spec::channels(3).lstm(4).lstm(4).dense(2, Head::Softmax),
        Spec::tokens(3, 3).lstm(4).dense(2, Head::Softmax),
    ] {
        let err = FormatError::SpecMismatch { expected: other, found: spec };
        assert_eq!(file.check_spec(&other), Err(err));
        assert_eq!(peek_check_spec(&bytes, &other), Err(err));
    }
    assert_eq!(file.check_spec(&spec), Ok(()));
}

#[test]
fn read_params_wrong_length() {
    let (spec, _, _, bytes) = standard();
    let file = ModelFile::parse(&bytes).unwrap();
    let n = spec.param_count();
    for len in [0, n - 1, n + 1] {
        let mut out = vec![9.0f32; len];
        assert_eq!(
            file.read_params(&mut out),
            Err(FormatError::ParamCount { expected: n, found: len })
        );
        assert!(out.iter().all(|&x| x == 9.0), "untouched on error");
    }
}

#[test]
fn writer_errors() {
    let (spec, params, sections, bytes) = standard();
    let n = bytes.len();

    // Buffer too small: nothing is written.
    for len in [0, 1, HEADER_LEN, n - 1] {
        let mut buf = vec![0xAAu8; len];
        assert_eq!(
            write_into(&spec, &params, &sections, &mut buf),
            Err(FormatError::BufferTooSmall { needed: n, available: len })
        );
        assert!(buf.iter().all(|&b| b == 0xAA));
    }

    // Wrong parameter count.
    let mut buf = vec![0u8; 2 * n];
    assert_eq!(
        write_into(&spec, &params[1..], &sections, &mut buf),
        Err(FormatError::ParamCount { expected: params.len(), found: params.len() - 1 })
    );
    let mut sink = IoSink::new(Vec::new());
    assert_eq!(
        write_to(&spec, &[], &sections, &mut sink),
        Err(FormatError::ParamCount { expected: params.len(), found: 0 })
    );
    assert!(sink.get_ref().is_empty(), "nothing written before validation");

    // The PARAMS tag is reserved.
    let bad = [Section { tag: TAG_PARAMS, bytes: b"" }];
    assert_eq!(encoded_len(&spec, &bad), Err(FormatError::ReservedTag { tag: TAG_PARAMS }));
    assert_eq!(
        write_into(&spec, &params, &bad, &mut buf),
        Err(FormatError::ReservedTag { tag: TAG_PARAMS })
    );

    // Invalid spec.
    let invalid = Spec::channels(3).dense(2, Head::Softmax);
    assert_eq!(encoded_len(&invalid, &[]), Err(FormatError::InvalidSpec(SpecError::Layers)));
    let invalid = Spec::channels(3).lstm(4).dense(1, Head::Softmax);
    assert_eq!(
        write_into(&invalid, &params, &[], &mut buf),
        Err(FormatError::InvalidSpec(SpecError::Outputs))
    );
}

/// A sink that accepts `room` bytes and then fails.
struct FailingSink {
    room: usize,
}

impl ByteSink for FailingSink {
    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        self.room = self.room.checked_sub(bytes.len()).ok_or(SinkError)?;
        Ok(())
    }
}

struct FailingWriter;

impl std::io::Write for FailingWriter {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("disk full"))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn sink_failures() {
    let (spec, params, sections, bytes) = standard();
    for room in [0, 10, HEADER_LEN, bytes.len() - 5, bytes.len() - 1] {
        assert_eq!(
            write_to(&spec, &params, &sections, &mut FailingSink { room }),
            Err(FormatError::Sink),
            "room {room}"
        );
    }
    assert_eq!(
        write_to(&spec, &params, &sections, &mut FailingSink { room: bytes.len() }),
        Ok(bytes.len())
    );
    let mut io = IoSink::new(FailingWriter);
    assert_eq!(write_to(&spec, &params, &sections, &mut io), Err(FormatError::Sink));
    assert_eq!(io.take_error().unwrap().to_string(), "disk full");
    // Through a trait object too.
    let mut buf = vec![0u8; bytes.len()];
    let mut slice = SliceSink::new(&mut buf);
    let dynamic: &mut dyn ByteSink = &mut slice;
    assert_eq!(write_to(&spec, &params, &sections, dynamic), Ok(bytes.len()));
    assert_eq!(slice.written(), &bytes[..]);
}

// ---------------------------------------------------------------------------------------------
// Exhaustive truncation and bit-flip sweeps
// ---------------------------------------------------------------------------------------------

/// The documented error for the standard file cut to `cut` bytes.
fn expected_truncation(bytes: &[u8], lay: &[(usize, u32, usize)], cut: usize) -> FormatError {
    let prefix = &bytes[..cut];
    if cut < HEADER_LEN + CRC_LEN {
        return FormatError::Truncated { what: "header and CRC", needed: 48, available: cut };
    }
    let crc_mismatch =
        FormatError::CrcMismatch { stored: stored_crc(prefix), computed: body_crc(prefix) };
    for &(start, tag, len) in lay {
        if cut == start + CRC_LEN {
            return crc_mismatch;
        }
        if cut < start + SECTION_HEADER_LEN {
            return FormatError::Truncated {
                what: "section header",
                needed: 8,
                available: cut - start,
            };
        }
        let body_end = start + SECTION_HEADER_LEN + len;
        if cut < body_end {
            let what = match tag {
                TAG_TOKENIZER => "tokenizer section body",
                TAG_METADATA => "metadata section body",
                TAG_PARAMS => "PARAMS section body",
                _ => "section body",
            };
            return FormatError::Truncated { what, needed: len, available: cut - start - 8 };
        }
        if tag == TAG_PARAMS {
            return FormatError::Truncated { what: "CRC", needed: 4, available: cut - body_end };
        }
    }
    unreachable!("cut {cut} is not a truncation")
}

#[test]
fn truncation_at_every_length() {
    let mut counts = [0usize; 2];
    for (spec, params, sections) in [
        {
            let (s, p, secs, _) = standard();
            (s, p, secs)
        },
        {
            let s = Spec::tokens(6, 2).lstm(2).lstm(3).dense(1, Head::Sigmoid);
            (s, params_for(&s, 5), vec![])
        },
    ] {
        let bytes = write(&spec, &params, &sections);
        let lay = layout(&spec, &sections);
        for cut in 0..bytes.len() {
            let err = ModelFile::parse(&bytes[..cut]).expect_err("a truncated file must not parse");
            assert_eq!(err, expected_truncation(&bytes, &lay, cut), "cut at {cut}");
            match err {
                FormatError::Truncated { .. } => counts[0] += 1,
                FormatError::CrcMismatch { .. } => counts[1] += 1,
                e => panic!("cut at {cut}: {e:?}"),
            }
        }
    }
    // Only cuts exactly 4 bytes past a section boundary look like a whole file.
    assert_eq!(counts[1], 4 + 1);
    assert!(counts[0] > 1000);
}

#[test]
fn flipped_bit_at_every_position() {
    let (spec, _, sections, bytes) = standard();
    let lay = layout(&spec, &sections);
    let in_section_header =
        |i: usize| lay.iter().any(|&(start, ..)| (start..start + SECTION_HEADER_LEN).contains(&i));
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            let err = ModelFile::parse(&b).expect_err("a flipped bit must not parse");
            if i < 8 {
                assert_eq!(err, FormatError::BadMagic, "byte {i} bit {bit}");
            } else if i < 10 {
                let found = u16::from_le_bytes([b[8], b[9]]);
                if (MIN_VERSION..=VERSION).contains(&found) {
                    // Another version this build reads (1 → 3): the CRC catches the flip.
                    assert!(matches!(err, FormatError::CrcMismatch { .. }), "byte {i} bit {bit}");
                } else {
                    assert_eq!(
                        err,
                        FormatError::UnsupportedVersion { found },
                        "byte {i} bit {bit}"
                    );
                }
            } else if in_section_header(i) {
                assert!(
                    matches!(err, FormatError::CrcMismatch { .. } | FormatError::Truncated { .. }),
                    "byte {i} bit {bit}: {err:?}"
                );
            } else {
                assert_eq!(
                    err,
                    FormatError::CrcMismatch { stored: stored_crc(&b), computed: body_crc(&b) },
                    "byte {i} bit {bit}"
                );
            }
        }
    }
}

#[test]
fn error_messages_are_clear() {
    let msg = |e: FormatError| e.to_string();
    assert_eq!(
        msg(ModelFile::parse(b"TINYLSTM\x01\x00").unwrap_err()),
        "truncated model file: needs 48 bytes for the header and CRC, got 10"
    );
    assert_eq!(
        msg(FormatError::CrcMismatch { stored: 0xDEAD_BEEF, computed: 0x1234_5678 }),
        "corrupted model file: stored CRC-32 is 0xdeadbeef but the contents give 0x12345678"
    );
    assert_eq!(
        msg(FormatError::UnsupportedVersion { found: 7 }),
        "unsupported model file format version 7 (this build reads versions 1 to 3)"
    );
    assert!(msg(FormatError::ParamsLength { expected: 552, found: 548 }).contains("548 bytes"));
    assert!(msg(FormatError::BufferTooSmall { needed: 700, available: 699 }).contains("700"));
    assert!(msg(FormatError::DuplicateSection { tag: TAG_TOKENIZER }).contains("tokenizer"));
    assert!(msg(FormatError::InvalidField { field: "head", value: 9 }).contains("head"));
    let spec_err = FormatError::InvalidSpec(SpecError::Units);
    assert!(msg(spec_err).contains("units"));
    let source = std::error::Error::source(&spec_err).unwrap();
    assert_eq!(source.to_string(), SpecError::Units.to_string());
    let s = Spec::channels(3).lstm(4).dense(2, Head::Softmax);
    let t = Spec::channels(3).lstm(5).dense(2, Head::Softmax);
    let m = msg(FormatError::SpecMismatch { expected: s, found: t });
    assert!(m.contains("units: [5") && m.contains("units: [4"), "{m}");
    for e in [
        FormatError::BadMagic,
        FormatError::UnsupportedFlags { flags: 2 },
        FormatError::ModelTooLarge,
        FormatError::ParamsMissing,
        FormatError::ParamsNotLast { tag: 3 },
        FormatError::TrailingBytes { count: 3 },
        FormatError::ReservedTag { tag: TAG_PARAMS },
        FormatError::SectionTooLarge { tag: 1, len: 1 << 33 },
        FormatError::ParamCount { expected: 3, found: 4 },
        FormatError::Sink,
    ] {
        assert!(msg(e).len() > 20, "{e:?}");
    }
    let _: &dyn std::error::Error = &FormatError::Sink;
    let _: &dyn std::error::Error = &SinkError;
}

#[test]
fn peek_spec_is_usable_in_const() {
    #[rustfmt::skip]
    const FILE_START: [u8; 48] = [
        b'T', b'I', b'N', b'Y', b'L', b'S', b'T', b'M', 1, 0, 0, 0,
        0, 0, 2, 0, 0xE8, 0x03, 0, 0, 16, 0, 0, 0,
        32, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        1, 0, 0, 0,
        0, 0, 0, 0,
    ];
    const SPEC: Spec = Spec::tokens(1000, 16).lstm(32).lstm(8).dense(1, Head::Sigmoid);
    const _: () = assert!(peek_check_spec(&FILE_START, &SPEC).is_ok());
    const OTHER: Spec = Spec::tokens(1000, 16).lstm(32).lstm(8).dense(1, Head::Linear);
    const _: () = assert!(peek_check_spec(&FILE_START, &OTHER).is_err());
    const PEEKED: Result<Spec, FormatError> = peek_spec(&FILE_START);
    assert_eq!(PEEKED, Ok(SPEC));
    // A model file of this spec starts with exactly these 44 bytes.
    let bytes = write(&SPEC, &params_for(&SPEC, 0), &[]);
    assert_eq!(&bytes[..HEADER_LEN], &FILE_START[..HEADER_LEN]);
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

/// Checks the invariants of whatever `parse` accepted; the point is that it never panics.
fn parse_and_check(bytes: &[u8]) {
    let _ = peek_spec(bytes);
    if let Ok(file) = ModelFile::parse(bytes) {
        let spec = file.spec();
        assert!(spec.is_valid());
        assert_eq!(peek_spec(bytes), Ok(spec));
        assert_eq!(file.param_count(), spec.param_count());
        assert_eq!(file.params().count(), spec.param_count());
        let mut out = vec![0.0; spec.param_count()];
        assert_eq!(file.read_params(&mut out), Ok(()));
        let last = file.sections().last().unwrap();
        assert_eq!(last.tag, TAG_PARAMS);
        assert_eq!(file.crc(), stored_crc(bytes));
    }
}

fn arb_spec() -> impl Strategy<Value = Spec> {
    (
        prop::bool::ANY,
        1usize..30,
        1usize..6,
        prop::collection::vec(1usize..7, 1..=4),
        0u8..3,
        1usize..5,
    )
        .prop_map(|(tokens, vocab, width, units, head, outputs)| {
            let mut spec = if tokens { Spec::tokens(vocab, width) } else { Spec::channels(width) };
            for u in units {
                spec = spec.lstm(u);
            }
            match head {
                0 => spec.dense(outputs, Head::Sigmoid),
                1 => spec.dense(outputs + 1, Head::Softmax),
                _ => spec.dense(outputs, Head::Linear),
            }
        })
}

fn arb_sections() -> impl Strategy<Value = Vec<(u32, Vec<u8>)>> {
    prop::collection::vec(
        (
            prop_oneof![
                Just(TAG_TOKENIZER),
                Just(TAG_NORMALIZATION),
                Just(TAG_METADATA),
                4u32..1000
            ],
            prop::collection::vec(any::<u8>(), 0..40),
        ),
        0..4,
    )
    .prop_map(|mut v| {
        // Keep the first of each known tag (duplicates of known tags are an error); the int8
        // Embedding tag is the writer's own.
        let mut seen = Vec::new();
        v.retain(|(t, _)| *t != TAG_EMBEDDING_I8);
        v.retain(|(t, _)| {
            *t > 3
                || (!seen.contains(t) && {
                    seen.push(*t);
                    true
                })
        });
        v
    })
}

/// A valid file from arbitrary parts.
fn arb_file() -> impl Strategy<Value = Vec<u8>> {
    (arb_spec(), arb_sections(), any::<u64>()).prop_map(|(spec, secs, seed)| {
        let params: Vec<f32> = (0..spec.param_count())
            .map(|i| f32::from_bits((seed as u32) ^ (i as u32).wrapping_mul(0x9E37_79B9)))
            .collect();
        let sections: Vec<Section<'_>> =
            secs.iter().map(|(t, b)| Section { tag: *t, bytes: b }).collect();
        write(&spec, &params, &sections)
    })
}

#[derive(Clone, Debug)]
enum Mutation {
    Xor(prop::sample::Index, u8),
    Set(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    Insert(prop::sample::Index, Vec<u8>),
    Remove(prop::sample::Index, usize),
    SetU32(prop::sample::Index, u32),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(i, x)| Mutation::Xor(i, x)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, x)| Mutation::Set(i, x)),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        (any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 1..12))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<prop::sample::Index>(), 1usize..12).prop_map(|(i, n)| Mutation::Remove(i, n)),
        (
            any::<prop::sample::Index>(),
            prop_oneof![Just(0u32), Just(u32::MAX), Just(0x8000_0000), any::<u32>(), 0u32..64]
        )
            .prop_map(|(i, v)| Mutation::SetU32(i, v)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match m {
        Mutation::Xor(i, x) => {
            let i = i.index(bytes.len());
            bytes[i] ^= x;
        }
        Mutation::Set(i, x) => {
            let i = i.index(bytes.len());
            bytes[i] = *x;
        }
        Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len())),
        Mutation::Insert(i, v) => {
            let i = i.index(bytes.len() + 1);
            bytes.splice(i..i, v.iter().copied());
        }
        Mutation::Remove(i, n) => {
            let i = i.index(bytes.len());
            let end = (i + n).min(bytes.len());
            bytes.drain(i..end);
        }
        Mutation::SetU32(i, v) => {
            let i = i.index(bytes.len());
            let end = (i + 4).min(bytes.len());
            bytes[i..end].copy_from_slice(&v.to_le_bytes()[..end - i]);
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        parse_and_check(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_prefix_never_panic(
        tail in prop::collection::vec(any::<u8>(), 0..400),
        fix in any::<bool>(),
    ) {
        // Magic and version right, the rest arbitrary; with the CRC fixed the deep checks run.
        let mut bytes = b"TINYLSTM\x01\x00".to_vec();
        bytes.extend(tail);
        if fix && bytes.len() >= 4 {
            fix_crc(&mut bytes);
        }
        parse_and_check(&bytes);
    }

    #[test]
    fn mutated_valid_files_never_panic(
        file in arb_file(),
        mutations in prop::collection::vec(arb_mutation(), 1..5),
        fix in any::<bool>(),
    ) {
        let mut bytes = file.clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        if fix && bytes.len() >= 4 {
            fix_crc(&mut bytes);
        }
        parse_and_check(&bytes);
        // Without the CRC fixed, any real change is detected.
        if !fix && bytes != file {
            prop_assert!(ModelFile::parse(&bytes).is_err());
        }
    }

    #[test]
    fn round_trip_is_bit_exact(
        spec in arb_spec(),
        secs in arb_sections(),
        words in prop::collection::vec(any::<u32>(), 1..64),
    ) {
        let params: Vec<f32> =
            (0..spec.param_count()).map(|i| f32::from_bits(words[i % words.len()].rotate_left(i as u32))).collect();
        let sections: Vec<Section<'_>> = secs.iter().map(|(t, b)| Section { tag: *t, bytes: b }).collect();
        let bytes = write(&spec, &params, &sections);
        let file = ModelFile::parse(&bytes).unwrap();
        prop_assert_eq!(file.spec(), spec);
        prop_assert_eq!(bits(&file.params().collect::<Vec<_>>()), bits(&params));
        let read: Vec<Section<'_>> = file.sections().collect();
        prop_assert_eq!(&read[..sections.len()], &sections[..]);
    }
}

// ---------------------------------------------------------------------------------------------
// int8 Embedding storage (version 3)
// ---------------------------------------------------------------------------------------------

const Q_SPEC: Spec = Spec::tokens(6, 5).lstm(3).dense(1, Head::Sigmoid);

/// A token model whose Embedding rows exercise the rounding: row 0 all zeros, row 1 with ties.
fn q_params() -> Vec<f32> {
    let mut p: Vec<f32> =
        (0..Q_SPEC.param_count()).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.013).collect();
    p[..5].fill(0.0);
    p[5..10].copy_from_slice(&[1.27, -0.635, 0.005, 0.015, -1.0]);
    p
}

fn write_int8(spec: &Spec, params: &[f32], sections: &[Section<'_>]) -> Vec<u8> {
    let mut buf = vec![0u8; encoded_len_with(spec, sections, EmbeddingStorage::Int8).unwrap()];
    let n = write_into_with(spec, params, sections, EmbeddingStorage::Int8, &mut buf).unwrap();
    assert_eq!(n, buf.len());
    buf
}

/// Scalar reference of the stored int8 row: scale = max|x|/127 (f32), q = round-half-even of
/// x/scale (f64 of the f32 quotient, `round_ties_even`), clamped.
fn reference_row(row: &[f32]) -> (f32, Vec<i8>) {
    let scale = row.iter().fold(0.0f32, |m, x| m.max(x.abs())) / 127.0;
    let q = row
        .iter()
        .map(|&x| {
            if scale == 0.0 {
                0
            } else {
                ((x / scale) as f64).round_ties_even().clamp(-127.0, 127.0) as i8
            }
        })
        .collect();
    (scale, q)
}

#[test]
fn int8_embedding_layout_and_round_trip() {
    let params = q_params();
    let meta = [Section { tag: TAG_METADATA, bytes: b"m" }];
    let bytes = write_int8(&Q_SPEC, &params, &meta);
    let (v, e) = (6usize, 5usize);
    let rest = Q_SPEC.param_count() - v * e;
    // header 44, metadata 8+1, int8 section 8 + 4·V + V·E, PARAMS 8 + 4·rest, CRC 4.
    assert_eq!(bytes.len(), 44 + 9 + 8 + 4 * v + v * e + 8 + 4 * rest + 4);
    assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 3, "version 3");
    let at = 44 + 9;
    assert_eq!(&bytes[at..at + 4], &TAG_EMBEDDING_I8.to_le_bytes());
    assert_eq!(&bytes[at + 4..at + 8], &((4 * v + v * e) as u32).to_le_bytes());
    let file = ModelFile::parse(&bytes).unwrap();
    assert_eq!(file.version(), 3);
    assert_eq!(file.spec(), Q_SPEC);
    assert_eq!(file.param_count(), Q_SPEC.param_count());
    assert_eq!(file.section(TAG_PARAMS).unwrap().len(), 4 * rest);
    let table = file.embedding_int8().unwrap();
    let mut want = Vec::new();
    for (id, row) in params[..v * e].chunks(e).enumerate() {
        let (scale, q) = reference_row(row);
        assert_eq!(table.scale(id).to_bits(), scale.to_bits(), "row {id}");
        assert_eq!(table.row(id).collect::<Vec<_>>(), q, "row {id}");
        want.extend(q.iter().map(|&q| (q as f64 * scale as f64) as f32));
    }
    assert_eq!(table.scale(0), 0.0); // the all-zero row
    assert_eq!(table.row(1).next(), Some(127)); // the largest magnitude maps to ±127
    want.extend_from_slice(&params[v * e..]);
    let mut read = vec![0.0f32; Q_SPEC.param_count()];
    file.read_params(&mut read).unwrap();
    assert_eq!(
        read.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        want.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    assert!(file.params().map(f32::to_bits).eq(want.iter().map(|x| x.to_bits())));
    // Writing the read-back parameters as int8 again gives the same file (idempotent).
    assert_eq!(write_int8(&Q_SPEC, &read, &meta), bytes);
    // The f32 writer still writes version 1 with the full table.
    let flat = write(&Q_SPEC, &params, &[]);
    assert_eq!(ModelFile::parse(&flat).unwrap().version(), 1);
    assert!(ModelFile::parse(&flat).unwrap().embedding_int8().is_none());
    // A masked token model: version 3 with mask byte 2.
    let masked = Spec::tokens(6, 5).mask_zero().lstm(3).dense(1, Head::Sigmoid);
    let m = write_int8(&masked, &params, &[]);
    assert_eq!((m[8], m[15]), (3, 2));
    assert_eq!(ModelFile::parse(&m).unwrap().spec(), masked);
}

#[test]
fn int8_embedding_writer_errors() {
    let chan = Spec::channels(2).lstm(3).dense(1, Head::Sigmoid);
    let p = vec![0.1f32; chan.param_count()];
    let mut buf = vec![0u8; 4096];
    assert_eq!(
        write_into_with(&chan, &p, &[], EmbeddingStorage::Int8, &mut buf).unwrap_err(),
        FormatError::NoEmbedding
    );
    let mut params = q_params();
    params[7] = f32::NAN;
    assert_eq!(
        write_into_with(&Q_SPEC, &params, &[], EmbeddingStorage::Int8, &mut buf).unwrap_err(),
        FormatError::NonFinite { index: 7 }
    );
    // A row whose scale (max/127) times 128 overflows: the reader would refuse it.
    let mut params = q_params();
    params[5] = f32::MAX;
    assert_eq!(
        write_into_with(&Q_SPEC, &params, &[], EmbeddingStorage::Int8, &mut buf).unwrap_err(),
        FormatError::EmbeddingScale { row: 1 }
    );
    let sec = [Section { tag: TAG_EMBEDDING_I8, bytes: &[0u8; 4] }];
    assert_eq!(
        write_into_with(&Q_SPEC, &q_params(), &sec, EmbeddingStorage::F32, &mut buf).unwrap_err(),
        FormatError::ReservedTag { tag: TAG_EMBEDDING_I8 }
    );
}

#[test]
fn int8_embedding_corrupt_sections_are_refused() {
    let bytes = write_int8(&Q_SPEC, &q_params(), &[]);
    let (v, e) = (6usize, 5usize);
    let at = 44; // the int8 section header
                 // A bad row scale (NaN, negative, infinite) with a correct CRC.
    for bad in [f32::NAN, -1.0, f32::INFINITY] {
        let mut b = bytes.clone();
        b[at + 8 + 12..at + 8 + 16].copy_from_slice(&bad.to_le_bytes());
        fix_crc(&mut b);
        assert_eq!(ModelFile::parse(&b).unwrap_err(), FormatError::EmbeddingScale { row: 3 });
    }
    // Version 3 without the section: its tag renamed to an unknown one.
    let mut b = bytes.clone();
    put_u32(&mut b, at, 77);
    fix_crc(&mut b);
    assert_eq!(ModelFile::parse(&b).unwrap_err(), FormatError::EmbeddingMissing);
    // The section in a version-2 file (PARAMS then has the wrong length for v2 too, but the
    // section comes first).
    let mut b = bytes.clone();
    b[8] = 2;
    b[15] = 2; // a mask, so the v2 header is valid
    fix_crc(&mut b);
    assert_eq!(ModelFile::parse(&b).unwrap_err(), FormatError::EmbeddingUnexpected { version: 2 });
    // Wrong length: one value fewer, the file rebuilt around it.
    let sec = &bytes[at + 8..at + 8 + 4 * v + v * e - 1];
    let mut body = bytes[..44].to_vec();
    body.extend(section_bytes(TAG_EMBEDDING_I8, sec));
    body.extend_from_slice(&bytes[at + 8 + 4 * v + v * e..bytes.len() - 4]);
    assert_eq!(
        ModelFile::parse(&with_crc(body)).unwrap_err(),
        FormatError::EmbeddingLength { expected: 4 * v + v * e, found: 4 * v + v * e - 1 }
    );
    // Twice.
    let mut body = bytes[..44].to_vec();
    body.extend_from_slice(&bytes[at..at + 8 + 4 * v + v * e]);
    body.extend_from_slice(&bytes[at..bytes.len() - 4]);
    assert_eq!(
        ModelFile::parse(&with_crc(body)).unwrap_err(),
        FormatError::DuplicateSection { tag: TAG_EMBEDDING_I8 }
    );
    // A channel model claiming version 3.
    let chan = Spec::channels(2).lstm(3).dense(1, Head::Sigmoid);
    let mut b = write(&chan, &vec![0.5f32; chan.param_count()], &[]);
    b[8] = 3;
    fix_crc(&mut b);
    assert_eq!(ModelFile::parse(&b).unwrap_err(), FormatError::EmbeddingMissing);
    // Every truncation and every flipped bit is an error, never a panic.
    for cut in 0..bytes.len() {
        assert!(ModelFile::parse(&bytes[..cut]).is_err(), "cut {cut}");
    }
    for i in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[i / 8] ^= 1 << (i % 8);
        assert!(ModelFile::parse(&b).is_err(), "bit {i}");
    }
    // Messages name the problem.
    assert!(FormatError::EmbeddingScale { row: 3 }.to_string().contains("row 3"));
    assert!(FormatError::UnsupportedVersion { found: 3 }.to_string().contains("version 3"));
}

/// The fuzz seed of a version-3 file (written by hand, byte by byte, outside the writer) parses
/// to the values its bytes spell: scales 0.01, 0, 0.5 and rows [127, −127], [0, 0], [3, −3].
#[test]
fn int8_fuzz_seed_reads_as_written() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/fuzz-regressions/tlm/seed-int8-embedding-v3"
    );
    let bytes = std::fs::read(path).unwrap();
    let file = ModelFile::parse(&bytes).unwrap();
    assert_eq!(file.spec(), Spec::tokens(3, 2).lstm(1).dense(1, Head::Sigmoid));
    let t = file.embedding_int8().unwrap();
    assert_eq!((t.scale(0), t.scale(1), t.scale(2)), (0.01, 0.0, 0.5));
    let got: Vec<f32> = file.params().take(6).collect();
    assert_eq!(got, [127.0 * 0.01, -127.0 * 0.01, 0.0, 0.0, 1.5, -1.5]);
}
