//! Finding every keyword occurrence (ASCII case-insensitive, overlapping)
//! with an Aho-Corasick DFA. A DFA walk is one dependent table load per
//! byte, so it is bound by load latency, not by work: the input is cut
//! into several pieces walked in one interleaved loop, which keeps that
//! many independent loads in flight and runs about twice as fast on
//! long inputs.

use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind, StartKind};

use crate::ScanError;

/// Streams walked together.
const LANES: usize = 4;
/// Inputs shorter than this are walked in one piece.
const SPLIT_ABOVE: usize = 4096;

/// A keyword occurrence: the keyword's index and where it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Index of the keyword in the list given to [`Keywords::new`].
    pub keyword: usize,
    /// Offset of its first byte.
    pub start: usize,
    /// Offset just past its last byte.
    pub end: usize,
}

/// The compiled keyword set.
pub struct Keywords {
    dfa: DFA,
    /// Longest keyword, in bytes: a piece starts this much early so a
    /// keyword across a cut is still seen.
    longest: usize,
}

impl Keywords {
    /// Compiles `words` (matched in any ASCII case).
    pub fn new(words: &[String]) -> Result<Self, ScanError> {
        let dfa = DFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .start_kind(StartKind::Unanchored)
            // Keywords start with most letters: a prefilter would stop at
            // nearly every byte and only add calls.
            .prefilter(false)
            .build(words)
            .map_err(|e| ScanError::Regex(format!("keywords: {e}")))?;
        let longest = words.iter().map(String::len).max().unwrap_or(0);
        Ok(Self { dfa, longest })
    }

    /// Every occurrence in `data`, ordered by end (then keyword).
    pub fn find_all(&self, data: &[u8]) -> Vec<Hit> {
        let mut hits = Vec::new();
        let Ok(start) = self.dfa.start_state(Anchored::No) else {
            return hits;
        };
        if data.len() < SPLIT_ABOVE {
            let mut sid = start;
            for (at, byte) in data.iter().enumerate() {
                sid = self.dfa.next_state(Anchored::No, sid, *byte);
                if self.dfa.is_special(sid) {
                    self.record(sid, at, 0, &mut hits);
                }
            }
            return hits;
        }
        // LANES equal pieces; lane k walks from `from[k]` (its piece's
        // start, less the overlap) and keeps hits ending in its piece.
        let piece = data.len() / LANES;
        let mut from = [0usize; LANES];
        let mut keep = [0usize; LANES];
        for k in 0..LANES {
            keep[k] = k * piece;
            from[k] = keep[k].saturating_sub(self.longest);
        }
        let mut lane_hits: [Vec<Hit>; LANES] = Default::default();
        let mut sid = [start; LANES];
        // Every lane walks `steps` bytes together; the last lane then
        // finishes its longer piece alone.
        let steps = (0..LANES)
            .map(|k| lane_end(k, piece, data.len()) - from[k])
            .min()
            .unwrap_or(0);
        for i in 0..steps {
            for k in 0..LANES {
                let at = from[k] + i;
                sid[k] = self.dfa.next_state(Anchored::No, sid[k], data[at]);
                if self.dfa.is_special(sid[k]) {
                    self.record(sid[k], at, keep[k], &mut lane_hits[k]);
                }
            }
        }
        for k in 0..LANES {
            let rest = from[k] + steps;
            for (at, byte) in data[rest..lane_end(k, piece, data.len())]
                .iter()
                .enumerate()
                .map(|(i, b)| (rest + i, b))
            {
                sid[k] = self.dfa.next_state(Anchored::No, sid[k], *byte);
                if self.dfa.is_special(sid[k]) {
                    self.record(sid[k], at, keep[k], &mut lane_hits[k]);
                }
            }
        }
        for lane in &mut lane_hits {
            hits.append(lane);
        }
        hits
    }

    /// Records the keywords ending at `at` (the state reached by reading
    /// it) unless they end before `keep`.
    fn record(
        &self,
        sid: aho_corasick::automaton::StateID,
        at: usize,
        keep: usize,
        out: &mut Vec<Hit>,
    ) {
        if !self.dfa.is_match(sid) || at < keep {
            return;
        }
        for i in 0..self.dfa.match_len(sid) {
            let pid = self.dfa.match_pattern(sid, i);
            let len = self.dfa.pattern_len(pid);
            out.push(Hit {
                keyword: pid.as_usize(),
                start: at + 1 - len,
                end: at + 1,
            });
        }
    }
}

/// Where lane `k`'s piece ends: the next piece's start, or the input's end.
fn lane_end(k: usize, piece: usize, len: usize) -> usize {
    if k + 1 == LANES { len } else { (k + 1) * piece }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|w| (*w).to_owned()).collect()
    }

    /// The straightforward answer, for comparison.
    fn naive(words: &[String], data: &[u8]) -> Vec<Hit> {
        let lower = data.to_ascii_lowercase();
        let mut out = Vec::new();
        for end in 1..=data.len() {
            for (i, w) in words.iter().enumerate() {
                let w = w.to_ascii_lowercase();
                if end >= w.len() && lower[end - w.len()..end] == *w.as_bytes() {
                    out.push(Hit {
                        keyword: i,
                        start: end - w.len(),
                        end,
                    });
                }
            }
        }
        out
    }

    #[test]
    fn every_occurrence_is_found_across_the_cuts() {
        let list = words(&["token", "ken", "secret_key", "key", "ghp_"]);
        let k = Keywords::new(&list).expect("keywords");
        // Long enough to be split; keywords placed on and around the cuts.
        let mut data = Vec::new();
        let mut n = 0u32;
        while data.len() < 20_000 {
            n = n.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            match n >> 28 {
                0 => data.extend_from_slice(b"TOKEN"),
                1 => data.extend_from_slice(b"secret_KEY"),
                2 => data.extend_from_slice(b"ghp_"),
                _ => data.push(b"abcdefgh xyz\n"[(n >> 20) as usize % 13]),
            }
        }
        let mut got = k.find_all(&data);
        let mut want = naive(&list, &data);
        let key = |h: &Hit| (h.end, h.keyword);
        got.sort_by_key(key);
        want.sort_by_key(key);
        assert_eq!(got, want);
        // Short inputs take the single-lane path.
        assert_eq!(k.find_all(b"a Token"), naive(&list, b"a Token"));
    }

    #[test]
    fn hits_come_ordered_by_end() {
        let list = words(&["abc", "bc"]);
        let k = Keywords::new(&list).expect("keywords");
        let data = b"abc ".repeat(5000);
        let hits = k.find_all(&data);
        assert!(hits.windows(2).all(|w| w[0].end <= w[1].end));
        assert_eq!(hits.len(), 10_000);
    }
}
