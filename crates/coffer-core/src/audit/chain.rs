//! The hash chain that makes an audit log tamper-evident.
//!
//! Every line ends its JSON object with `"seq":N,"prev":"<hex>"`: a running
//! number per device and the SHA-256 of the previous line's bytes (without
//! its newline). Editing, removing or reordering a line breaks a link that a
//! later line (or the head kept behind the barrier) records. The writer and
//! `coffer audit verify` share this module so they cannot drift apart.

use sha2::{Digest, Sha256};

/// `prev` of the very first line of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The last link of a chain: what the next line must point back to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChainHead {
    /// Sequence number of the last line written (0: nothing yet).
    pub seq: u64,
    /// SHA-256 (hex) of the last line written, or [`GENESIS`].
    pub hash: String,
}

impl Default for ChainHead {
    fn default() -> Self {
        Self {
            seq: 0,
            hash: GENESIS.into(),
        }
    }
}

impl ChainHead {
    /// The head after `line` (newline included or not) was written.
    pub fn next(&self, line: &[u8]) -> ChainHead {
        ChainHead {
            seq: self.seq + 1,
            hash: line_hash(line),
        }
    }
}

/// What a transit key signs for a device's head: the device, where its
/// current file begins (v2), the sequence number and the hash, so a
/// signature cannot be moved to another device or position, nor a cut
/// start hidden. Heads saved without a start are checked as v1.
pub fn head_message(device: &str, first_seq: Option<u64>, head: &ChainHead) -> String {
    match first_seq {
        Some(first) => format!(
            "coffer-audit-head:v2:{device}:{first}:{}:{}",
            head.seq, head.hash
        ),
        None => format!("coffer-audit-head:v1:{device}:{}:{}", head.seq, head.hash),
    }
}

/// SHA-256 (hex) of one line's bytes, newline excluded.
pub fn line_hash(line: &[u8]) -> String {
    let mut out = [0u8; 64];
    super::salt::hex_into(&Sha256::digest(strip_newline(line)), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn strip_newline(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

/// Appends the chain fields to a serialized JSON object (`{...}`), after an
/// optional prefix, and returns the full line with its newline.
pub fn link(prefix: &str, object: &[u8], head: &ChainHead) -> Option<Vec<u8>> {
    let mut line = Vec::with_capacity(prefix.len() + object.len() + 96);
    line.extend_from_slice(prefix.as_bytes());
    line.extend_from_slice(object);
    append_link(&mut line, head).then_some(line)
}

/// Turns `...{...}` into `...{...,"seq":N,"prev":"<hex>"}\n` in place, the
/// next link after `head`. False when the line does not end with an object.
pub fn append_link(line: &mut Vec<u8>, head: &ChainHead) -> bool {
    if line.pop() != Some(b'}') {
        return false;
    }
    if line.last() != Some(&b'{') {
        line.push(b',');
    }
    line.extend_from_slice(b"\"seq\":");
    line.extend_from_slice((head.seq + 1).to_string().as_bytes());
    line.extend_from_slice(b",\"prev\":\"");
    line.extend_from_slice(head.hash.as_bytes());
    line.extend_from_slice(b"\"}\n");
    true
}

/// The chain fields of a line, read from its end without parsing the rest
/// (they are always the last two keys).
pub fn chain_fields(line: &[u8]) -> Option<(u64, &str)> {
    let line = strip_newline(line);
    let tail = line.strip_suffix(b"\"}")?;
    let prev_at = memrfind(tail, b",\"prev\":\"")?;
    let prev = std::str::from_utf8(&tail[prev_at + 9..]).ok()?;
    if prev.len() != 64 || !prev.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let before = &tail[..prev_at];
    let seq_at = memrfind(before, b"\"seq\":")?;
    let seq = std::str::from_utf8(&before[seq_at + 6..])
        .ok()?
        .parse()
        .ok()?;
    Some((seq, prev))
}

fn memrfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

/// The first thing wrong with a log, by line number (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Break {
    /// A line carries no readable chain fields.
    Unreadable { line: u64 },
    /// The line's bytes are not what the next line (or the head) recorded.
    Altered { line: u64, seq: u64 },
    /// Sequence numbers jump: lines between were deleted.
    Removed {
        line: u64,
        after_seq: u64,
        next_seq: u64,
    },
    /// A line appears before one that should precede it.
    Reordered { line: u64, seq: u64, expected: u64 },
    /// The last line has no newline: the file was cut short there.
    Truncated { line: u64 },
    /// The log ends before the server's head: lines at its end are gone.
    MissingTail { last_seq: u64, head_seq: u64 },
    /// The log begins after the line the head says its file begins with:
    /// lines at its start are gone.
    MissingStart { first_seq: u64, file_first_seq: u64 },
}

impl Break {
    /// The last sequence number that is still trustworthy before this break.
    pub fn intact_until(&self, last: Option<&ChainHead>) -> u64 {
        let last = last.map_or(0, |l| l.seq);
        match self {
            Break::Altered { seq, .. } => seq.saturating_sub(1),
            Break::Removed { after_seq, .. } => *after_seq,
            Break::Reordered { expected, .. } => expected.saturating_sub(1),
            Break::MissingTail { last_seq, .. } => *last_seq,
            Break::MissingStart { .. } => 0,
            Break::Unreadable { .. } | Break::Truncated { .. } => last,
        }
    }
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Break::Unreadable { line } => write!(
                f,
                "line {line}: no chain fields (\"seq\", \"prev\"): the line was altered or is not a coffer audit line"
            ),
            Break::Altered { line, seq } => write!(
                f,
                "line {line} (seq {seq}) was altered: its hash does not match the one recorded after it"
            ),
            Break::Removed {
                line,
                after_seq,
                next_seq,
            } => write!(
                f,
                "line {line}: {} line(s) removed between seq {after_seq} and seq {next_seq}",
                next_seq - after_seq - 1
            ),
            Break::Reordered {
                line,
                seq,
                expected,
            } => write!(
                f,
                "line {line} (seq {seq}) is out of order: seq {expected} was expected here"
            ),
            Break::Truncated { line } => write!(
                f,
                "line {line} is incomplete: the file was truncated in the middle of it"
            ),
            Break::MissingTail { last_seq, head_seq } => write!(
                f,
                "the log ends at seq {last_seq} but the server's chain head is seq {head_seq}: {} line(s) at the end are missing",
                head_seq - last_seq
            ),
            Break::MissingStart {
                first_seq,
                file_first_seq,
            } => write!(
                f,
                "the log begins at seq {first_seq} but the server's chain head says its file begins at seq {file_first_seq}: {} line(s) at the start are missing",
                first_seq - file_first_seq
            ),
        }
    }
}

/// Checks lines one at a time, keeping only the last link (and one line of
/// look-ahead to tell a removal from a swap).
#[derive(Debug, Default)]
pub struct Verifier {
    lines: u64,
    first: Option<ChainHead>,
    last: Option<ChainHead>,
    /// A sequence gap seen at this line; decided by the next line.
    gap: Option<(u64, u64, u64)>,
    /// The server's head: the line with its seq must hash to it.
    pin: Option<ChainHead>,
    /// Where the head says the current file begins: the log must not begin later.
    pin_first: Option<u64>,
    broken: Option<Break>,
}

/// What a finished verification found.
#[derive(Debug, Clone)]
pub struct Report {
    /// Lines read.
    pub lines: u64,
    /// `prev` and seq of the first line (a chain that continues an older file
    /// starts above 1).
    pub first: Option<ChainHead>,
    /// The last link checked.
    pub last: Option<ChainHead>,
    /// The first problem, if any.
    pub broken: Option<Break>,
}

impl Verifier {
    /// A verifier for a log read from its start.
    pub fn new() -> Self {
        Self::default()
    }

    /// A verifier that also checks the log against the server's chain head
    /// (fetched before reading, so the log holds at least that many lines).
    pub fn with_head(head: ChainHead) -> Self {
        Self {
            pin: Some(head),
            ..Self::default()
        }
    }

    /// Also requires the log to begin no later than `first_seq` (the head's
    /// record of where the device's current file begins); older files may
    /// come first.
    pub fn expect_start(mut self, first_seq: Option<u64>) -> Self {
        self.pin_first = first_seq;
        self
    }

    /// Whether a problem has been found (later lines need not be read).
    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    /// Checks the next line (with or without its newline).
    pub fn push(&mut self, line: &[u8]) {
        if self.broken.is_some() {
            return;
        }
        self.lines += 1;
        let n = self.lines;
        let Some((seq, prev)) = chain_fields(line) else {
            self.broken = Some(Break::Unreadable { line: n });
            return;
        };
        let hash = line_hash(line);
        if let Some(pin) = &self.pin
            && pin.seq == seq
            && pin.hash != hash
        {
            self.broken = Some(Break::Altered { line: n, seq });
            return;
        }
        if let Some((gap_line, after, next)) = self.gap.take() {
            self.broken = Some(if seq < next {
                Break::Reordered {
                    line: gap_line,
                    seq: next,
                    expected: after + 1,
                }
            } else {
                Break::Removed {
                    line: gap_line,
                    after_seq: after,
                    next_seq: next,
                }
            });
            return;
        }
        match &self.last {
            None => {
                if let Some(file_first_seq) = self.pin_first
                    && seq > file_first_seq
                {
                    self.broken = Some(Break::MissingStart {
                        first_seq: seq,
                        file_first_seq,
                    });
                    return;
                }
                self.first = Some(ChainHead {
                    seq,
                    hash: prev.to_owned(),
                });
            }
            Some(last) => {
                if seq > last.seq + 1 {
                    // Decided by the next line; `last` stays before the gap.
                    self.gap = Some((n, last.seq, seq));
                    return;
                } else if seq <= last.seq {
                    self.broken = Some(Break::Reordered {
                        line: n,
                        seq,
                        expected: last.seq + 1,
                    });
                    return;
                } else if prev != last.hash {
                    self.broken = Some(Break::Altered {
                        line: n - 1,
                        seq: last.seq,
                    });
                    return;
                }
            }
        }
        self.last = Some(ChainHead { seq, hash });
    }

    /// Marks the last pushed line as cut short (no newline at the end of file).
    pub fn truncated(&mut self) {
        if self.broken.is_none() {
            self.broken = Some(Break::Truncated {
                line: self.lines + 1,
            });
        }
    }

    /// Ends the check.
    pub fn finish(mut self) -> Report {
        if self.broken.is_none()
            && let Some((line, after, next)) = self.gap.take()
        {
            self.broken = Some(Break::Removed {
                line,
                after_seq: after,
                next_seq: next,
            });
        }
        if self.broken.is_none()
            && let Some(head) = &self.pin
        {
            let last_seq = self.last.as_ref().map_or(0, |l| l.seq);
            if last_seq < head.seq {
                self.broken = Some(Break::MissingTail {
                    last_seq,
                    head_seq: head.seq,
                });
            }
        }
        Report {
            lines: self.lines,
            first: self.first,
            last: self.last,
            broken: self.broken,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<Vec<u8>> {
        let mut head = ChainHead::default();
        (0..n)
            .map(|i| {
                let obj = format!("{{\"type\":\"request\",\"i\":{i}}}");
                let line = link("", obj.as_bytes(), &head).unwrap_or_default();
                head = head.next(&line);
                line
            })
            .collect()
    }

    fn verify(lines: &[Vec<u8>]) -> Option<Break> {
        let mut v = Verifier::new();
        for l in lines {
            v.push(l);
        }
        v.finish().broken
    }

    #[test]
    fn untouched_chain_passes_and_fields_round_trip() {
        let lines = chain(5);
        assert_eq!(verify(&lines), None);
        let (seq, prev) = chain_fields(&lines[0]).unwrap_or((0, ""));
        assert_eq!((seq, prev), (1, GENESIS));
        assert!(lines[4].ends_with(b"\"}\n"));
        let parsed: serde_json::Value = serde_json::from_slice(&lines[2]).unwrap_or_default();
        assert_eq!(parsed["seq"], 3);
    }

    #[test]
    fn each_kind_of_tampering_is_named() {
        let mut edited = chain(5);
        edited[1][3] ^= 1;
        assert_eq!(verify(&edited), Some(Break::Altered { line: 2, seq: 2 }));

        let mut removed = chain(5);
        removed.remove(2);
        assert_eq!(
            verify(&removed),
            Some(Break::Removed {
                line: 3,
                after_seq: 2,
                next_seq: 4
            })
        );

        let mut swapped = chain(5);
        swapped.swap(1, 2);
        assert_eq!(
            verify(&swapped),
            Some(Break::Reordered {
                line: 2,
                seq: 3,
                expected: 2
            })
        );

        let lines = chain(5);
        let head = ChainHead {
            seq: 5,
            hash: line_hash(&lines[4]),
        };
        let mut v = Verifier::with_head(head.clone());
        for l in &lines[..3] {
            v.push(l);
        }
        assert_eq!(
            v.finish().broken,
            Some(Break::MissingTail {
                last_seq: 3,
                head_seq: 5
            })
        );

        // Lines cut from the start: the head knows where the file began.
        let mut v = Verifier::with_head(head.clone()).expect_start(Some(1));
        for l in &lines[2..] {
            v.push(l);
        }
        assert_eq!(
            v.finish().broken,
            Some(Break::MissingStart {
                first_seq: 3,
                file_first_seq: 1
            })
        );
        let mut v = Verifier::with_head(head.clone()).expect_start(Some(3));
        for l in &lines {
            v.push(l);
        }
        assert_eq!(
            v.finish().broken,
            None,
            "older lines before the file may come first"
        );

        // The last line edited: nothing after it records its hash, the head does.
        let mut edited = lines.clone();
        edited[4][3] ^= 1;
        let mut v = Verifier::with_head(head);
        for l in &edited {
            v.push(l);
        }
        assert_eq!(v.finish().broken, Some(Break::Altered { line: 5, seq: 5 }));
    }
}
