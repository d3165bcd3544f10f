//! The runtime model slot (`tinylstm_device::runtime`) on the host: a good file runs with the
//! same bits as the core's forward on its decoded parameters; every bad file is refused with
//! its reason, and every size read from a file is checked against the heap before a block is
//! allocated.

#![allow(clippy::result_large_err)] // Refusal carries the core's FormatError, as the core returns it.

use tinylstm::format::{
    encoded_len, write_into, FormatError, Section, TAG_METADATA, TAG_NORMALIZATION,
};
use tinylstm::model::{self, Sequences};
use tinylstm::{Head, Spec};
use tinylstm_device::data::Shape;
use tinylstm_device::model::{predict, Weights};
use tinylstm_device::runtime::{install, parts, plan, Layout, Refusal, PREFIX_LEN};

const SPEC: Spec = Spec::channels(2).lstm(5).dense(3, Head::Softmax);
const STEPS: usize = 6;

/// A model file of `spec` with `steps` in its metadata, a NORMALIZATION section for value
/// input and `pre` bytes of an unknown section first (to move the parameters' alignment).
fn model_file(spec: &Spec, steps: usize, pre: usize) -> (Vec<u8>, Vec<f32>) {
    let mut params = vec![0.0f32; spec.param_count()];
    tinylstm::init::init_params(spec, 3, &mut params).unwrap();
    let meta = format!("{{\"format\":\"tinylstm-meta/1\",\"steps\":{steps}}}");
    let mut norm = 2u32.to_le_bytes().to_vec();
    for v in [0.5f32, -1.0, 2.0, 0.25] {
        norm.extend_from_slice(&v.to_le_bytes());
    }
    let filler = vec![7u8; pre];
    let mut sections = vec![Section { tag: 99, bytes: &filler }];
    if matches!(spec.input, tinylstm::InputKind::Channels(_)) {
        sections.push(Section { tag: TAG_NORMALIZATION, bytes: &norm });
    }
    sections.push(Section { tag: TAG_METADATA, bytes: meta.as_bytes() });
    let mut buf = vec![0u8; encoded_len(spec, &sections).unwrap()];
    write_into(spec, &params, &sections, &mut buf).unwrap();
    (buf, params)
}

fn device() -> Shape {
    // The device's own model differs (units, head); its input is 2 channels x STEPS.
    Shape::of(&Spec::channels(2).lstm(16).dense(1, Head::Sigmoid), STEPS)
}

/// Plans, allocates (a `Vec` here, the heap on a device), copies the file in and installs.
fn load(file: &[u8], heap: usize) -> Result<(Vec<u32>, tinylstm_device::runtime::Slot), Refusal> {
    let p = plan(&file[..PREFIX_LEN.min(file.len())], file.len(), heap)?;
    let mut block = vec![0u32; p.layout.words()];
    bytemuck::cast_slice_mut::<u32, u8>(&mut block)[..file.len()].copy_from_slice(file);
    let slot = install(&mut block, &p, &device(), None)?;
    Ok((block, slot))
}

#[test]
fn a_good_model_runs_as_the_core_does_at_every_alignment() {
    for pre in 0..4 {
        let (file, params) = model_file(&SPEC, STEPS, pre);
        let (mut block, slot) = load(&file, 1 << 20).unwrap();
        assert_eq!((slot.spec, slot.steps, slot.standardizes), (SPEC, STEPS, true));
        let p = parts(&mut block, &slot);
        assert_eq!(p.params, &params[..], "parameters read in place (pre {pre})");
        // Raw input, standardised by the model's statistics, through the device's predict...
        let raw: Vec<f32> = (0..STEPS * 2).map(|i| (i as f32 * 0.37).sin()).collect();
        let x: Vec<u32> = raw.iter().map(|v| v.to_bits()).collect();
        let mut std_x = x.clone();
        tinylstm_device::norm::standardize(&p.model.norm, bytemuck::cast_slice_mut(&mut std_x));
        let mut out = [0.0f32; 3];
        predict(&p.model, Weights::flat(p.params), &std_x, p.forward, p.hidden, &mut out).unwrap();
        // ...equals the core's forward on the decoded parameters and the input standardised
        // by hand with the statistics written into the file.
        let by_hand: Vec<f32> =
            raw.chunks(2).flat_map(|s| [(s[0] - 0.5) / 2.0, (s[1] - -1.0) / 0.25]).collect();
        let mut work = vec![0.0; SPEC.forward_work_len(1, 1).unwrap()];
        let mut want = [0.0f32; 3];
        model::forward_logits(&SPEC, &params, Sequences::Values(&by_hand), 1, &mut work, &mut want)
            .unwrap();
        model::activate(SPEC.head, 3, &mut want);
        assert_eq!(out.map(f32::to_bits), want.map(f32::to_bits), "pre {pre}");
    }
}

#[test]
fn the_block_is_sized_by_the_core_size_functions() {
    let (file, _) = model_file(&SPEC, STEPS, 0);
    let p = plan(&file[..PREFIX_LEN], file.len(), 1 << 20).unwrap();
    let words = file.len().div_ceil(4)
        + 1
        + SPEC.forward_work_len(1, 1).unwrap()
        + SPEC.top_units()
        + SPEC.outputs
        + 2 * 2;
    assert_eq!(p.layout.words(), words);
    assert_eq!(p.layout.bytes(), 4 * words);
}

#[test]
fn a_model_larger_than_the_heap_is_refused_before_reading_more_than_its_header() {
    let (file, _) = model_file(&SPEC, STEPS, 0);
    let needed = Layout::of(&SPEC, file.len()).unwrap().bytes();
    // Only the prefix is given: nothing else of the file is needed to refuse it.
    assert_eq!(
        plan(&file[..PREFIX_LEN], file.len(), needed - 1),
        Err(Refusal::TooBig { needed, heap: needed - 1 })
    );
    assert!(plan(&file[..PREFIX_LEN], file.len(), needed).is_ok());
    // A header claiming the largest model the core reads, with a huge file length, never
    // overflows.
    let huge = Spec::channels(4096).lstm(4096).dense(1, Head::Sigmoid);
    let mut big = vec![0u8; PREFIX_LEN];
    big[..44].copy_from_slice(
        &model_file(&Spec::channels(1).lstm(1).dense(1, Head::Sigmoid), 1, 0).0[..44],
    );
    big[20..24].copy_from_slice(&4096u32.to_le_bytes());
    big[24..28].copy_from_slice(&4096u32.to_le_bytes());
    assert_eq!(tinylstm::format::peek_spec(&big), Ok(huge));
    let r = plan(&big, usize::MAX - 2, 1 << 20);
    assert!(matches!(r, Err(Refusal::TooBig { heap: 1048576, .. })), "{r:?}");
    assert_eq!(r.unwrap_err().reason(), "too-big");
}

#[test]
fn corrupt_files_are_refused_with_the_core_error() {
    let (file, _) = model_file(&SPEC, STEPS, 1);
    let mut bad = file.clone();
    bad[0] = b'X';
    assert_eq!(load(&bad, 1 << 20).unwrap_err(), Refusal::Format(FormatError::BadMagic));
    let mut bad = file.clone();
    let at = bad.len() - 40;
    bad[at] ^= 0x10;
    let e = load(&bad, 1 << 20).unwrap_err();
    assert!(matches!(e, Refusal::Format(FormatError::CrcMismatch { .. })), "{e:?}");
    assert!(e.to_string().contains("CRC-32"), "{e}");
    // Cut short anywhere: refused, never a panic.
    for n in 0..file.len() {
        let e = load(&file[..n], 1 << 20).unwrap_err();
        assert_eq!(e.reason(), "format", "cut at {n}: {e:?}");
    }
}

#[test]
fn another_input_shape_or_no_steps_is_refused() {
    for (spec, steps) in [
        (Spec::channels(3).lstm(5).dense(3, Head::Softmax), STEPS),
        (SPEC, STEPS + 1),
        (Spec::tokens(10, 2).lstm(5).dense(3, Head::Softmax), STEPS),
    ] {
        let (file, _) = model_file(&spec, steps, 0);
        let e = load(&file, 1 << 20).unwrap_err();
        assert_eq!(e.reason(), "shape", "{spec:?} T={steps}: {e:?}");
        assert!(e.to_string().starts_with("the device's input is 6 steps of 2 words"), "{e}");
    }
    // No steps in the metadata.
    let params = vec![0.0f32; SPEC.param_count()];
    let mut buf = vec![0u8; encoded_len(&SPEC, &[]).unwrap()];
    write_into(&SPEC, &params, &[], &mut buf).unwrap();
    assert_eq!(load(&buf, 1 << 20).unwrap_err(), Refusal::NoSteps);
}

#[test]
fn an_unusable_normalization_is_refused() {
    let params = vec![0.0f32; SPEC.param_count()];
    let meta = br#"{"steps":6}"#;
    let mut norm = 2u32.to_le_bytes().to_vec();
    for v in [0.5f32, -1.0, 0.0, 0.25] {
        norm.extend_from_slice(&v.to_le_bytes());
    }
    let sections = [
        Section { tag: TAG_NORMALIZATION, bytes: &norm },
        Section { tag: TAG_METADATA, bytes: meta },
    ];
    let mut buf = vec![0u8; encoded_len(&SPEC, &sections).unwrap()];
    write_into(&SPEC, &params, &sections, &mut buf).unwrap();
    assert_eq!(
        load(&buf, 1 << 20).unwrap_err(),
        Refusal::Norm(tinylstm_device::norm::NormError::Value(0))
    );
}

#[test]
fn a_file_that_changed_after_its_header_is_refused() {
    let (file, _) = model_file(&SPEC, STEPS, 0);
    let (other, _) = model_file(&Spec::channels(2).lstm(4).dense(3, Head::Softmax), STEPS, 0);
    // Planned from one header, then another (smaller) file arrives in the block.
    let p = plan(&file[..PREFIX_LEN], file.len(), 1 << 20).unwrap();
    let mut block = vec![0u32; p.layout.words()];
    let mut p2 = p;
    p2.layout.file_len = other.len();
    bytemuck::cast_slice_mut::<u32, u8>(&mut block)[..other.len()].copy_from_slice(&other);
    assert_eq!(install(&mut block, &p2, &device(), None).unwrap_err(), Refusal::Changed);
    // A block shorter than the layout.
    let mut short = vec![0u32; p.layout.words() - 1];
    assert_eq!(
        install(&mut short, &p, &device(), None).unwrap_err(),
        Refusal::Alloc { needed: p.layout.bytes() }
    );
}

#[test]
fn a_token_model_with_another_tokenizer_is_refused() {
    let spec = Spec::tokens(10, 2).lstm(3).dense(1, Head::Sigmoid);
    let params = vec![0.0f32; spec.param_count()];
    let file = |tok: &[u8]| {
        let sections = [
            Section { tag: tinylstm::format::TAG_TOKENIZER, bytes: tok },
            Section { tag: TAG_METADATA, bytes: br#"{"steps":4}"# },
        ];
        let mut buf = vec![0u8; encoded_len(&spec, &sections).unwrap()];
        write_into(&spec, &params, &sections, &mut buf).unwrap();
        buf
    };
    let device = Shape::of(&spec, 4);
    let try_install = |f: &[u8], own: &[u8]| {
        let p = plan(&f[..PREFIX_LEN], f.len(), 1 << 20).unwrap();
        let mut block = vec![0u32; p.layout.words()];
        bytemuck::cast_slice_mut::<u32, u8>(&mut block)[..f.len()].copy_from_slice(f);
        install(&mut block, &p, &device, Some(own)).map(|s| s.steps)
    };
    assert_eq!(try_install(&file(b"vocabulary one"), b"vocabulary one"), Ok(4));
    assert_eq!(try_install(&file(b"vocabulary two"), b"vocabulary one"), Err(Refusal::Tokenizer));
}
