//! The weight slots on a simulated NOR flash: a power cut after every byte erased or programmed
//! during a commit leaves exactly the old or the new weights, bit for bit; corrupted headers and weights, another model's slots, sequence wrap-around,
//! a flash too small and a failing flash.

use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
use proptest::prelude::*;
use tinylstm::{Head, Spec};
use tinylstm_device::slots::{spec_hash, Active, SlotError, SlotStore, HEADER_LEN};

const SECTOR: usize = 1024;
const WORD: usize = 4;
const SLOT: u32 = 4 * SECTOR as u32;
const FLASH: usize = 2 * SLOT as usize;
/// 700 weights: 2 800 bytes + the 32-byte header span three sectors of a four-sector slot.
const N: usize = 700;
const HASH: u32 = 0x5EC0_0001;

/// NOR flash in RAM: erase sets a sector to 0xFF, a write can only clear bits (1 → 0) and each
/// word is written at most once between erases (the `NorFlash` contract; a second write is a
/// bug in the store and panics). `budget` models a power cut: after that many bytes erased or
/// programmed, the operation under way stops part-way (its first bytes done, the rest as they
/// were) and everything after fails.
#[derive(Clone, Debug)]
struct Nor {
    mem: Vec<u8>,
    written: Vec<bool>,
    erases: Vec<u32>,
    budget: Option<usize>,
    /// Bits that no longer program (a worn cell): written bytes keep these bits at 1.
    stuck: Option<(usize, u8)>,
}

impl Nor {
    fn new() -> Self {
        Nor {
            mem: vec![0xFF; FLASH],
            written: vec![false; FLASH / WORD],
            erases: vec![0; FLASH / SECTOR],
            budget: None,
            stuck: None,
        }
    }

    /// Takes up to `n` bytes of budget; how many may be done.
    fn spend(&mut self, n: usize) -> usize {
        match &mut self.budget {
            None => n,
            Some(b) => {
                let k = n.min(*b);
                *b -= k;
                k
            }
        }
    }

    /// The same cells after a reset: power back, no cut pending.
    fn reboot(&self) -> Nor {
        Nor { budget: None, ..self.clone() }
    }
}

impl ErrorType for Nor {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for Nor {
    const READ_SIZE: usize = 1;
    fn read(&mut self, at: u32, out: &mut [u8]) -> Result<(), Self::Error> {
        let at = at as usize;
        let src = self.mem.get(at..at + out.len()).ok_or(NorFlashErrorKind::OutOfBounds)?;
        out.copy_from_slice(src);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.mem.len()
    }
}

impl NorFlash for Nor {
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = SECTOR;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let (from, to) = (from as usize, to as usize);
        if from % SECTOR != 0 || to % SECTOR != 0 {
            return Err(NorFlashErrorKind::NotAligned);
        }
        if from > to || to > self.mem.len() {
            return Err(NorFlashErrorKind::OutOfBounds);
        }
        let done = self.spend(to - from);
        self.mem[from..from + done].fill(0xFF);
        for s in from / SECTOR..to / SECTOR {
            self.erases[s] += 1;
        }
        if done < to - from {
            return Err(NorFlashErrorKind::Other);
        }
        self.written[from / WORD..to / WORD].fill(false);
        Ok(())
    }
    fn write(&mut self, at: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let at = at as usize;
        if !at.is_multiple_of(WORD) || !bytes.len().is_multiple_of(WORD) {
            return Err(NorFlashErrorKind::NotAligned);
        }
        if at + bytes.len() > self.mem.len() {
            return Err(NorFlashErrorKind::OutOfBounds);
        }
        for w in at / WORD..(at + bytes.len()) / WORD {
            assert!(!self.written[w], "word at {:#x} written twice without an erase", w * WORD);
            self.written[w] = true;
        }
        let done = self.spend(bytes.len());
        for (i, &b) in bytes[..done].iter().enumerate() {
            let keep = match self.stuck {
                Some((addr, bits)) if addr == at + i => bits,
                _ => 0,
            };
            self.mem[at + i] &= b | keep;
        }
        if done < bytes.len() {
            return Err(NorFlashErrorKind::Other);
        }
        Ok(())
    }
}

/// Distinct weights per version (a scalar formula, no NaN: bit-exact comparison is the test).
fn weights(version: u32) -> Vec<f32> {
    (0..N).map(|i| (i as f32 * 0.37 + version as f32 * 11.0).sin() * (version + 1) as f32).collect()
}

fn bits(w: &[f32]) -> Vec<u32> {
    w.iter().map(|v| v.to_bits()).collect()
}

fn open(nor: Nor) -> SlotStore<Nor> {
    SlotStore::open(nor, 0, SLOT, HASH, N).unwrap()
}

/// What the next boot runs with: `Some(weights)` from a slot, `None` for the flashed ones.
fn boot(nor: &Nor) -> (Option<Active>, Option<Vec<u32>>) {
    let mut s = open(nor.reboot());
    let mut out = vec![0.0f32; N];
    let a = s.read_active(&mut out).unwrap();
    (a, a.map(|_| bits(&out)))
}

/// A flash after `history` clean commits of versions 1..=history.
fn with_history(history: u32) -> Nor {
    let mut s = open(Nor::new());
    for v in 1..=history {
        s.commit(&weights(v)).unwrap();
    }
    s.release()
}

/// Bytes erased + programmed by a commit of `N` weights.
const COMMIT_UNITS: usize = 3 * SECTOR + 4 * N + HEADER_LEN;

/// Cuts the commit of version `history + 1` after `cut` bytes; checks the next boot runs with
/// exactly the old weights or the new ones, the new ones when the commit reported success, and
/// that the device can commit again afterwards.
fn cut_and_check(history: u32, cut: usize) -> Result<(), TestCaseError> {
    let mut nor = with_history(history);
    nor.budget = Some(cut);
    let mut s = open(nor);
    let new = history + 1;
    let result = s.commit(&weights(new));
    let nor = s.release();
    let (active, got) = boot(&nor);
    let old = (history > 0).then(|| bits(&weights(history)));
    let new_bits = bits(&weights(new));
    match &result {
        Ok(a) => {
            prop_assert_eq!(got.as_ref(), Some(&new_bits), "commit reported success (cut {})", cut);
            prop_assert_eq!(active, Some(*a));
        }
        Err(e) => {
            prop_assert_eq!(*e, SlotError::Flash(NorFlashErrorKind::Other));
            prop_assert!(
                got == old || got.as_ref() == Some(&new_bits),
                "cut after {} bytes: the boot weights are neither the old nor the new ones",
                cut
            );
        }
    }
    // The device keeps working: the next commit succeeds and is what the boot after it reads.
    let mut s = open(nor.reboot());
    s.commit(&weights(new + 1)).unwrap();
    let (_, after) = boot(&s.release());
    prop_assert_eq!(after, Some(bits(&weights(new + 1))));
    Ok(())
}

#[test]
fn power_cut_at_every_byte_of_a_commit() {
    // Every N from 0 (nothing done) to COMMIT_UNITS + 1 (the commit completes), for each
    // starting state. History 2: both slots valid, the commit erases the older one; history 1:
    // the other slot is blank; history 0: the first commit (the old weights are the flashed
    // ones). The QEMU harness repeats a sample of these cuts on the firmware's flash file.
    for history in [0, 1, 2] {
        for cut in 0..=COMMIT_UNITS + 1 {
            cut_and_check(history, cut).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn any_cut_leaves_old_or_new(history in 0u32..4, cut in 0usize..COMMIT_UNITS + 8) {
        cut_and_check(history, cut)?;
    }
}

#[test]
fn slots_alternate_and_a_commit_erases_only_what_it_must() {
    let mut s = open(Nor::new());
    let mut slots = Vec::new();
    for v in 1..=5 {
        slots.push(s.commit(&weights(v)).unwrap());
    }
    let seq: Vec<(usize, u32)> = slots.iter().map(|a| (a.slot, a.seq)).collect();
    assert_eq!(seq, [(0, 1), (1, 2), (0, 3), (1, 4), (0, 5)]);
    let nor = s.release();
    // Each commit erases the three sectors its 2 832 bytes cover, never the slot's fourth one.
    assert_eq!(nor.erases, [3, 3, 3, 0, 2, 2, 2, 0]);
    assert_eq!(boot(&nor).1, Some(bits(&weights(5))));
}

#[test]
fn fresh_flash_runs_on_the_flashed_weights() {
    let (a, w) = boot(&Nor::new());
    assert_eq!((a, w), (None, None));
}

/// Flips one bit at `addr` (a corruption the store did not write).
fn flip(nor: &mut Nor, addr: usize) {
    nor.mem[addr] ^= 0x10;
}

#[test]
fn a_corrupted_header_or_weights_falls_back_to_the_older_slot() {
    let nor = with_history(2); // slot A: version 1, slot B: version 2 (active)
    assert_eq!(boot(&nor).0.map(|a| (a.slot, a.seq)), Some((1, 2)));
    for addr in [0usize, 5, 9, 13, 17, 21, 29, 32, 32 + 4 * N - 1] {
        let mut bad = nor.clone();
        flip(&mut bad, SLOT as usize + addr);
        let (a, w) = boot(&bad);
        assert_eq!(a.map(|a| (a.slot, a.seq)), Some((0, 1)), "byte {addr} of slot B flipped");
        assert_eq!(w, Some(bits(&weights(1))));
        // The next commit replaces the corrupted slot, not the good one.
        let mut s = open(bad.reboot());
        assert_eq!(s.commit(&weights(3)).unwrap().slot, 1);
    }
    // Both corrupted: the flashed weights.
    let mut bad = nor.clone();
    flip(&mut bad, 40);
    flip(&mut bad, SLOT as usize + 40);
    assert_eq!(boot(&bad), (None, None));
}

#[test]
fn another_models_slots_are_ignored() {
    let nor = with_history(2);
    let mut s = SlotStore::open(nor.reboot(), 0, SLOT, HASH ^ 1, N).unwrap();
    assert_eq!(s.active(), None);
    let mut out = vec![1.0f32; N];
    assert_eq!(s.read_active(&mut out).unwrap(), None);
    assert!(out.iter().all(|&v| v == 1.0), "no slot: the buffer is left alone");
    // Same hash, another parameter count: ignored too.
    let s = SlotStore::open(nor.reboot(), 0, SLOT, HASH, N - 1).unwrap();
    assert_eq!(s.active(), None);
}

#[test]
fn spec_hash_tells_architectures_apart() {
    let a = Spec::channels(3).lstm(64).dense(4, Head::Softmax);
    let b = [
        Spec::channels(3).lstm(64).dense(4, Head::Sigmoid),
        Spec::channels(3).lstm(32).dense(4, Head::Softmax),
        Spec::channels(4).lstm(64).dense(4, Head::Softmax),
        Spec::channels(3).lstm(64).lstm(8).dense(4, Head::Softmax),
        Spec::channels(3).lstm(64).dense(5, Head::Softmax),
        Spec::tokens(3, 64).lstm(64).dense(4, Head::Softmax),
    ];
    assert_eq!(spec_hash(&a), spec_hash(&Spec::channels(3).lstm(64).dense(4, Head::Softmax)));
    for s in b {
        assert_ne!(spec_hash(&a), spec_hash(&s), "{s:?}");
    }
}

#[test]
fn sequence_numbers_wrap_around() {
    // Rewrite slot A's header with sequence u32::MAX (and a valid header CRC).
    let mut nor = with_history(1);
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    let mut h = nor.mem[..HEADER_LEN].to_vec();
    h[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    let c = crc.checksum(&h[..28]);
    h[28..32].copy_from_slice(&c.to_le_bytes());
    nor.mem[..HEADER_LEN].copy_from_slice(&h);
    assert_eq!(boot(&nor).0.map(|a| a.seq), Some(u32::MAX));
    let mut s = open(nor.reboot());
    let a = s.commit(&weights(2)).unwrap();
    assert_eq!((a.slot, a.seq), (1, 0));
    // Sequence 0 is newer than u32::MAX.
    let (a, w) = boot(&s.release());
    assert_eq!(a.map(|a| (a.slot, a.seq)), Some((1, 0)));
    assert_eq!(w, Some(bits(&weights(2))));
}

#[test]
fn weights_larger_than_a_slot_are_refused_with_the_sizes() {
    let e = SlotStore::open(Nor::new(), 0, SLOT, HASH, 1100).unwrap_err();
    assert_eq!(e, SlotError::TooLarge { needed: 32 + 4400, available: 4096 });
    assert_eq!(
        e.to_string(),
        "weight slots: the weights need 4432 bytes per slot and a slot has 4096"
    );
    // Geometry: misaligned slot length, two slots past the end of the flash.
    assert_eq!(SlotStore::open(Nor::new(), 0, 1000, HASH, 10).unwrap_err(), SlotError::Layout);
    assert_eq!(SlotStore::open(Nor::new(), 1024, SLOT, HASH, 10).unwrap_err(), SlotError::Layout);
}

#[test]
fn a_failing_flash_keeps_the_last_good_weights() {
    // A bit that no longer programs inside the new slot's weights: read-back catches it.
    let mut nor = with_history(1);
    nor.stuck = Some((SLOT as usize + 32 + 100, 0x01));
    let mut s = open(nor);
    let before = s.active();
    // Find a version whose byte there has bit 0 clear, so the stuck bit matters.
    let v = (2..50).find(|&v| weights(v)[25].to_le_bytes()[0] & 1 == 0).unwrap();
    assert_eq!(s.commit(&weights(v)), Err(SlotError::Verify));
    assert_eq!(s.active(), before, "the active slot stays after a failed commit");
    let (_, w) = boot(&s.release());
    assert_eq!(w, Some(bits(&weights(1))));
    // A flash that fails every operation: the error, and the old weights at the next boot.
    let mut nor = with_history(2);
    nor.budget = Some(0);
    let mut s = open(nor);
    assert_eq!(s.commit(&weights(3)), Err(SlotError::Flash(NorFlashErrorKind::Other)));
    assert_eq!(boot(&s.release()).1, Some(bits(&weights(2))));
    // Wrong length: refused before touching the flash.
    let mut s = open(with_history(1));
    assert_eq!(s.commit(&weights(2)[..N - 1]), Err(SlotError::WrongLength));
}
