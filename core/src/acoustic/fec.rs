//! Forward error correction: a rate-1/3, constraint-length-7 convolutional
//! code (generators 133, 171, 165 octal, as in LTE) terminated with zero tail
//! bits, decoded by a soft-decision Viterbi decoder.
//!
//! Hand-written because the channel gives soft values (a confidence per bit)
//! and soft decoding is worth about 2–3 dB here; the Rust Reed–Solomon crates
//! decode erasures or hard errors only, and the LDPC crates offer fixed block
//! sizes that do not fit a 160-bit frame. A 64-state Viterbi decoder is a
//! few dozen lines.

const CONSTRAINT_LEN: usize = 7;
const STATES: usize = 1 << (CONSTRAINT_LEN - 1);
const TAIL_BITS: usize = CONSTRAINT_LEN - 1;
const GENERATORS: [u32; 3] = [0o133, 0o171, 0o165];
/// Coded bits per input bit.
pub const RATE_INV: usize = GENERATORS.len();

/// Coded length for `bits` input bits, tail included.
pub const fn coded_len(bits: usize) -> usize {
    (bits + TAIL_BITS) * RATE_INV
}

/// Outputs of the encoder when `input` enters a register holding `state`
/// (the previous six input bits, newest in the lowest bit).
fn branch_outputs(state: usize, input: u8) -> [u8; RATE_INV] {
    let register = ((state as u32) << 1) | u32::from(input);
    GENERATORS.map(|g| ((register & g).count_ones() & 1) as u8)
}

fn next_state(state: usize, input: u8) -> usize {
    ((state << 1) | usize::from(input)) & (STATES - 1)
}

/// Encodes `bits` (0 or 1 each) and appends the zero tail.
pub fn encode(bits: &[u8]) -> Vec<u8> {
    let mut state = 0;
    let mut coded = Vec::with_capacity(coded_len(bits.len()));
    for &bit in bits.iter().chain([0u8; TAIL_BITS].iter()) {
        coded.extend_from_slice(&branch_outputs(state, bit));
        state = next_state(state, bit);
    }
    coded
}

/// Decodes soft values (positive means 0, negative means 1, magnitude is
/// confidence) back to `bits` input bits. Returns `None` if `soft` does not
/// hold exactly `coded_len(bits)` values.
pub fn decode(soft: &[f32], bits: usize) -> Option<Vec<u8>> {
    Some(Trellis::run(soft, bits)?.best())
}

/// The most likely input bits followed by up to `alternatives` runners-up:
/// for each, the best path that leaves the most likely one and rejoins it
/// at one of the closest decisions (smallest metric margin) on its way.
/// The second most likely path overall is always among them, and the
/// others are the likeliest single error events, which is what a frame
/// that decodes to within a bit or two of right needs.
pub fn decode_list(soft: &[f32], bits: usize, alternatives: usize) -> Option<Vec<Vec<u8>>> {
    let trellis = Trellis::run(soft, bits)?;
    let best_states = trellis.best_states();
    let mut merges: Vec<(f32, usize)> = best_states
        .iter()
        .enumerate()
        .map(|(step, &state)| (trellis.margins[step][state], step))
        .filter(|(margin, _)| margin.is_finite())
        .collect();
    merges.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut list = vec![trellis.best()];
    for &(_, step) in merges.iter().take(alternatives) {
        let path = trellis.path_rejoining_at(&best_states, step);
        if !list.contains(&path) {
            list.push(path);
        }
    }
    Some(list)
}

/// A finished Viterbi pass: the winning predecessor of every state at every
/// step and by how much it won.
struct Trellis {
    bits: usize,
    /// decisions[step] bit s = which predecessor won for state s.
    decisions: Vec<u64>,
    /// margins[step][s] = winner's metric − loser's (infinite when the loser
    /// was unreachable).
    margins: Vec<[f32; STATES]>,
}

impl Trellis {
    fn run(soft: &[f32], bits: usize) -> Option<Trellis> {
        if soft.len() != coded_len(bits) {
            return None;
        }
        let steps = bits + TAIL_BITS;
        // Branch metric for each 3-bit output pattern, recomputed per step.
        let mut pattern_metric = [0f32; 1 << RATE_INV];
        let mut metric = [f32::NEG_INFINITY; STATES];
        metric[0] = 0.0;
        let mut decisions = vec![0u64; steps];
        let mut margins = vec![[0f32; STATES]; steps];
        let outputs: Vec<[usize; 2]> = (0..STATES)
            .map(|s| [0u8, 1].map(|b| pattern_index(branch_outputs(s, b))))
            .collect();
        for (step, chunk) in soft.chunks_exact(RATE_INV).enumerate() {
            for (pattern, m) in pattern_metric.iter_mut().enumerate() {
                *m = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, &s)| if pattern >> i & 1 == 0 { s } else { -s })
                    .sum();
            }
            let mut next = [f32::NEG_INFINITY; STATES];
            let mut decided = 0u64;
            for (state, next_metric) in next.iter_mut().enumerate() {
                // The two predecessors of `state` differ in their oldest bit.
                let input = (state & 1) as u8;
                let older = state >> 1;
                let pred_a = older;
                let pred_b = older | (STATES >> 1);
                let via_a = metric[pred_a] + pattern_metric[outputs[pred_a][usize::from(input)]];
                let via_b = metric[pred_b] + pattern_metric[outputs[pred_b][usize::from(input)]];
                if via_b > via_a {
                    *next_metric = via_b;
                    decided |= 1 << state;
                } else {
                    *next_metric = via_a;
                }
                margins[step][state] = if via_a.is_finite() && via_b.is_finite() {
                    (via_a - via_b).abs()
                } else {
                    f32::INFINITY
                };
            }
            metric = next;
            decisions[step] = decided;
        }
        Some(Trellis {
            bits,
            decisions,
            margins,
        })
    }

    /// State after each step on the most likely path; the tail drives the
    /// encoder back to state 0.
    fn best_states(&self) -> Vec<usize> {
        let steps = self.decisions.len();
        let mut states = vec![0usize; steps];
        let mut state = 0usize;
        for step in (0..steps).rev() {
            states[step] = state;
            state = self.predecessor(step, state, false);
        }
        states
    }

    fn best(&self) -> Vec<u8> {
        self.bits_of(&self.best_states())
    }

    /// The most likely path up to `step`'s other predecessor, then the best
    /// path from `step` on.
    fn path_rejoining_at(&self, best_states: &[usize], step: usize) -> Vec<u8> {
        let mut states = best_states.to_vec();
        let mut state = self.predecessor(step, states[step], true);
        for earlier in (0..step).rev() {
            states[earlier] = state;
            state = self.predecessor(earlier, state, false);
        }
        self.bits_of(&states)
    }

    /// The state before `step` on the way to `state`: the winner, or the
    /// loser when `other`.
    fn predecessor(&self, step: usize, state: usize, other: bool) -> usize {
        let took_b = (self.decisions[step] >> state & 1 == 1) != other;
        (state >> 1) | if took_b { STATES >> 1 } else { 0 }
    }

    /// Input bits along a path given by its states (each state's newest bit
    /// is the input that entered it).
    fn bits_of(&self, states: &[usize]) -> Vec<u8> {
        states[..self.bits].iter().map(|&s| (s & 1) as u8).collect()
    }
}

fn pattern_index(bits: [u8; RATE_INV]) -> usize {
    bits.iter()
        .enumerate()
        .map(|(i, &b)| usize::from(b) << i)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn to_soft(coded: &[u8]) -> Vec<f32> {
        coded
            .iter()
            .map(|&b| if b == 0 { 1.0 } else { -1.0 })
            .collect()
    }

    #[test]
    fn round_trips_without_noise() {
        let mut rng = StdRng::seed_from_u64(1);
        let bits: Vec<u8> = (0..160).map(|_| rng.gen_range(0..2)).collect();
        let coded = encode(&bits);
        assert_eq!(coded.len(), coded_len(160));
        assert_eq!(decode(&to_soft(&coded), 160).unwrap(), bits);
    }

    #[test]
    fn corrects_seven_scattered_hard_errors() {
        // Free distance of this code is 15: 7 errors spread out are corrected.
        let mut rng = StdRng::seed_from_u64(2);
        let bits: Vec<u8> = (0..160).map(|_| rng.gen_range(0..2)).collect();
        let mut soft = to_soft(&encode(&bits));
        for i in 0..7 {
            soft[i * 70 + 5] *= -1.0;
        }
        assert_eq!(decode(&soft, 160).unwrap(), bits);
    }

    #[test]
    fn decodes_at_2db_ebn0_with_soft_values() {
        // Eb/N0 = 2 dB at rate 1/3: Es/N0 = 2 - 4.77 dB. Soft decoding gets
        // almost every frame through; hard decisions would lose many.
        let mut rng = StdRng::seed_from_u64(3);
        let es_n0 = 10f32.powf((2.0 - 4.77) / 10.0);
        let sigma = (1.0 / (2.0 * es_n0)).sqrt();
        let mut ok = 0;
        for _ in 0..100 {
            let bits: Vec<u8> = (0..160).map(|_| rng.gen_range(0..2)).collect();
            let soft: Vec<f32> = to_soft(&encode(&bits))
                .into_iter()
                .map(|s| s + sigma * gaussian(&mut rng))
                .collect();
            ok += usize::from(decode(&soft, 160).unwrap() == bits);
        }
        assert!(ok >= 90, "{ok}/100 frames decoded");
    }

    #[test]
    fn rejects_soft_input_of_the_wrong_length() {
        assert_eq!(decode(&[1.0; 10], 160), None);
        assert_eq!(decode_list(&[1.0; 10], 160, 4), None);
    }

    #[test]
    fn list_starts_with_the_viterbi_path_and_holds_the_runner_up() {
        // Push the soft values towards the codeword of `bits` with one input
        // bit flipped until the Viterbi decoder just prefers it: the right
        // bits must then be the runner-up.
        let mut rng = StdRng::seed_from_u64(4);
        let bits: Vec<u8> = (0..160).map(|_| rng.gen_range(0..2)).collect();
        let mut wrong = bits.clone();
        wrong[80] ^= 1;
        let (right_coded, wrong_coded) = (encode(&bits), encode(&wrong));
        let soft: Vec<f32> = right_coded
            .iter()
            .zip(&wrong_coded)
            .map(|(&r, &w)| {
                if r == w {
                    to_soft(&[r])[0]
                } else {
                    0.55 * to_soft(&[w])[0]
                }
            })
            .collect();
        assert_eq!(decode(&soft, 160).unwrap(), wrong);
        let list = decode_list(&soft, 160, 8).unwrap();
        assert_eq!(list[0], wrong);
        assert_eq!(list[1], bits, "the runner-up has the smallest margin");
        assert!(list.len() <= 9);
        let unique: std::collections::HashSet<_> = list.iter().collect();
        assert_eq!(unique.len(), list.len(), "no path listed twice");
        assert!(list.iter().all(|path| path.len() == 160));
    }

    fn gaussian(rng: &mut StdRng) -> f32 {
        let u1: f32 = rng.gen_range(f32::EPSILON..1.0);
        let u2: f32 = rng.r#gen();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }
}
