//! The Damm check digit.
//!
//! One decimal check digit that catches every single-digit error and every
//! transposition of two adjacent digits, with no exceptions (unlike Luhn,
//! which misses `09` ↔ `90`). It works by folding the digits through a
//! weakly totally anti-symmetric quasigroup of order 10; a sequence followed
//! by its check digit folds to 0.
//!
//! Hand-written rather than taken from a crate: it is one 10×10 table and a
//! loop, and the crates that offer it are small single-author ones.

/// The quasigroup from Damm's 2004 thesis (row = interim digit, column = next digit).
const TABLE: [[u8; 10]; 10] = [
    [0, 3, 1, 7, 5, 9, 8, 6, 4, 2],
    [7, 0, 9, 2, 1, 5, 4, 8, 6, 3],
    [4, 2, 0, 6, 8, 7, 1, 3, 5, 9],
    [1, 7, 5, 0, 9, 8, 3, 4, 2, 6],
    [6, 1, 2, 3, 0, 4, 5, 9, 7, 8],
    [3, 6, 7, 4, 2, 0, 9, 5, 8, 1],
    [5, 8, 6, 9, 7, 2, 0, 1, 3, 4],
    [8, 9, 4, 5, 3, 6, 2, 0, 1, 7],
    [9, 4, 3, 8, 6, 1, 7, 2, 0, 5],
    [2, 5, 8, 1, 4, 3, 6, 7, 9, 0],
];

/// Folds digit values (each 0–9) into the interim digit. Values above 9 are
/// reduced modulo 10 so the function cannot index out of the table.
pub fn fold(digits: impl IntoIterator<Item = u8>) -> u8 {
    digits.into_iter().fold(0, |interim, digit| {
        TABLE[usize::from(interim)][usize::from(digit % 10)]
    })
}

/// The check digit to append to `digits`.
///
/// The table's diagonal is all zeros, so the check digit equals the interim
/// digit of the sequence.
pub fn check_digit(digits: impl IntoIterator<Item = u8>) -> u8 {
    fold(digits)
}

/// Whether `digits` ends in its correct check digit.
pub fn is_valid(digits: impl IntoIterator<Item = u8>) -> bool {
    fold(digits) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits_of(s: &str) -> Vec<u8> {
        s.bytes().map(|b| b - b'0').collect()
    }

    #[test]
    fn matches_the_published_example_572_check_4() {
        assert_eq!(check_digit(digits_of("572")), 4);
        assert!(is_valid(digits_of("5724")));
        assert!(!is_valid(digits_of("5723")));
    }

    #[test]
    fn table_is_a_quasigroup_with_zero_diagonal() {
        for (i, row) in TABLE.iter().enumerate() {
            assert_eq!(row[i], 0);
            let mut seen_in_row = [false; 10];
            let mut seen_in_column = [false; 10];
            for j in 0..10 {
                seen_in_row[usize::from(row[j])] = true;
                seen_in_column[usize::from(TABLE[j][i])] = true;
            }
            assert!(seen_in_row.iter().all(|&s| s), "row {i} repeats a digit");
            assert!(
                seen_in_column.iter().all(|&s| s),
                "column {i} repeats a digit"
            );
        }
    }

    #[test]
    fn every_single_error_and_adjacent_swap_in_all_four_digit_numbers_is_caught() {
        for n in 0..10_000u32 {
            let mut with_check = digits_of(&format!("{n:04}"));
            with_check.push(check_digit(with_check.clone()));
            assert!(is_valid(with_check.clone()));
            for i in 0..with_check.len() {
                for wrong in 0..10 {
                    if wrong == with_check[i] {
                        continue;
                    }
                    let mut typo = with_check.clone();
                    typo[i] = wrong;
                    assert!(!is_valid(typo.clone()), "{typo:?} passes");
                }
                if i + 1 < with_check.len() && with_check[i] != with_check[i + 1] {
                    let mut swapped = with_check.clone();
                    swapped.swap(i, i + 1);
                    assert!(!is_valid(swapped.clone()), "{swapped:?} passes");
                }
            }
        }
    }
}
