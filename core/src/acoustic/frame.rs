//! The frame: token bytes plus a CRC-32C, coded and spread over the OFDM
//! time/frequency grid.

use super::{TOKEN_LEN, Token, fec};

/// Castagnoli CRC: better error detection than the zip CRC-32 at this length.
const FRAME_CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
const CRC_LEN: usize = 4;
/// Information bits in a frame: token then CRC, most significant bit first.
pub const FRAME_BITS: usize = (TOKEN_LEN + CRC_LEN) * 8;

/// Token plus CRC, as bits, ready for the encoder.
pub fn frame_bits(token: &Token) -> Vec<u8> {
    let crc = FRAME_CRC.checksum(token).to_be_bytes();
    token
        .iter()
        .chain(crc.iter())
        .flat_map(|&byte| (0..8).rev().map(move |i| byte >> i & 1))
        .collect()
}

/// The token if the decoded bits carry a matching CRC.
pub fn token_from_bits(bits: &[u8]) -> Option<Token> {
    if bits.len() != FRAME_BITS {
        return None;
    }
    let mut bytes = [0u8; TOKEN_LEN + CRC_LEN];
    for (byte, chunk) in bytes.iter_mut().zip(bits.chunks_exact(8)) {
        *byte = chunk.iter().fold(0, |acc, &b| acc << 1 | (b & 1));
    }
    let (token_bytes, crc_bytes) = bytes.split_at(TOKEN_LEN);
    let token: Token = token_bytes.try_into().ok()?;
    let crc = u32::from_be_bytes(crc_bytes.try_into().ok()?);
    (FRAME_CRC.checksum(&token) == crc).then_some(token)
}

/// Maps coded bit `index` to a grid slot (`symbol * subcarriers + carrier`).
/// Consecutive coded bits land on different symbols and subcarriers, so a
/// notch in frequency or a burst in time hits bits far apart in the code.
/// Slots beyond the coded length repeat coded bits from the start.
pub struct Interleaver {
    slot_of_bit: Vec<usize>,
    coded_len: usize,
}

impl Interleaver {
    pub fn new(slots: usize, subcarriers: usize) -> Self {
        // Step one symbol and one subcarrier further per coded bit; bump the
        // stride until it is coprime with the grid so every slot is used once.
        let mut stride = subcarriers + 1;
        while gcd(stride, slots) != 1 {
            stride += 1;
        }
        Interleaver {
            slot_of_bit: (0..slots).map(|i| i * stride % slots).collect(),
            coded_len: fec::coded_len(FRAME_BITS),
        }
    }

    /// Places coded bits on the grid (one bit per slot).
    pub fn spread(&self, coded: &[u8]) -> Vec<u8> {
        let mut grid = vec![0u8; self.slot_of_bit.len()];
        for (index, &slot) in self.slot_of_bit.iter().enumerate() {
            grid[slot] = coded[index % self.coded_len];
        }
        grid
    }

    /// Gathers soft values from the grid back into coded order, adding up
    /// the repeated copies.
    pub fn gather(&self, grid: &[f32]) -> Vec<f32> {
        let mut soft = vec![0f32; self.coded_len];
        for (index, &slot) in self.slot_of_bit.iter().enumerate() {
            soft[index % self.coded_len] += grid[slot];
        }
        soft
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip_and_a_flipped_bit_fails_the_crc() {
        let token: Token = *b"0123456789abcdef";
        let mut bits = frame_bits(&token);
        assert_eq!(bits.len(), FRAME_BITS);
        assert_eq!(token_from_bits(&bits), Some(token));
        for i in [0, 77, FRAME_BITS - 1] {
            bits[i] ^= 1;
            assert_eq!(token_from_bits(&bits), None, "bit {i} flipped");
            bits[i] ^= 1;
        }
    }

    #[test]
    fn interleaver_uses_every_slot_and_gathers_what_it_spread() {
        let coded_len = fec::coded_len(FRAME_BITS);
        let slots = 504;
        let interleaver = Interleaver::new(slots, 24);
        let mut seen = vec![false; slots];
        for &slot in &interleaver.slot_of_bit {
            assert!(!seen[slot]);
            seen[slot] = true;
        }
        let coded: Vec<u8> = (0..coded_len).map(|i| (i * 7 % 3 == 0) as u8).collect();
        let grid = interleaver.spread(&coded);
        let soft: Vec<f32> = grid
            .iter()
            .map(|&b| if b == 0 { 1.0 } else { -1.0 })
            .collect();
        let gathered = interleaver.gather(&soft);
        for (i, (&s, &b)) in gathered.iter().zip(&coded).enumerate() {
            assert_eq!(s < 0.0, b == 1, "coded bit {i}");
        }
    }
}
