//! Leaf values and the bytes SOPS encrypts and hashes for each type.

/// A leaf value of a SOPS tree (plaintext: its `Debug` shows only the type
/// and size).
#[derive(Clone, PartialEq)]
pub enum Scalar {
    /// `type:str`.
    Str(String),
    /// `type:str` holding bytes that are not UTF-8 (the binary store).
    RawStr(Vec<u8>),
    /// `type:int`.
    Int(i64),
    /// `type:float`.
    Float(f64),
    /// `type:bool`.
    Bool(bool),
    /// `type:time`: an RFC 3339 timestamp (YAML timestamps).
    Time(String),
    /// `type:comment`: the text after `#`.
    Comment(String),
    /// `type:bytes` (read only; SOPS never writes it).
    Bytes(Vec<u8>),
}

impl std::fmt::Debug for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Scalar({}, {} bytes)",
            self.type_name(),
            self.to_bytes().len()
        )
    }
}

/// Plaintext is wiped when a value is dropped.
impl Drop for Scalar {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        match self {
            Scalar::Str(s) | Scalar::Time(s) | Scalar::Comment(s) => s.zeroize(),
            Scalar::RawStr(b) | Scalar::Bytes(b) => b.zeroize(),
            Scalar::Int(i) => i.zeroize(),
            Scalar::Float(f) => f.zeroize(),
            Scalar::Bool(b) => b.zeroize(),
        }
    }
}

impl Scalar {
    /// The text of a string or comment, moved out (the value keeps nothing).
    pub fn take_text(mut self) -> Option<String> {
        match &mut self {
            Scalar::Str(s) | Scalar::Comment(s) => Some(std::mem::take(s)),
            _ => None,
        }
    }

    /// The `type:` tag.
    pub fn type_name(&self) -> &'static str {
        match self {
            Scalar::Str(_) | Scalar::RawStr(_) => "str",
            Scalar::Int(_) => "int",
            Scalar::Float(_) => "float",
            Scalar::Bool(_) => "bool",
            Scalar::Time(_) => "time",
            Scalar::Comment(_) => "comment",
            Scalar::Bytes(_) => "bytes",
        }
    }

    /// [`Scalar::to_bytes`] without copying text and bytes (large values
    /// are hashed and encrypted where they lie).
    pub fn bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        use std::borrow::Cow;
        match self {
            Scalar::Str(s) | Scalar::Time(s) | Scalar::Comment(s) => Cow::Borrowed(s.as_bytes()),
            Scalar::Bytes(b) | Scalar::RawStr(b) => Cow::Borrowed(b),
            other => Cow::Owned(other.to_bytes()),
        }
    }

    /// The plaintext SOPS encrypts and feeds to the MAC: Go's formatting
    /// (`True`/`False`, floats without exponent, `+Inf`).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Scalar::Str(s) | Scalar::Time(s) | Scalar::Comment(s) => s.as_bytes().to_vec(),
            Scalar::Int(i) => i.to_string().into_bytes(),
            Scalar::Float(f) => format_float(*f).into_bytes(),
            Scalar::Bool(true) => b"True".to_vec(),
            Scalar::Bool(false) => b"False".to_vec(),
            Scalar::Bytes(b) | Scalar::RawStr(b) => b.clone(),
        }
    }

    /// Parses decrypted bytes as the declared type; `None` if they do not fit.
    pub fn from_bytes(kind: &str, bytes: Vec<u8>) -> Option<Self> {
        let text = || String::from_utf8(bytes.clone()).ok();
        Some(match kind {
            "str" => Scalar::Str(match String::from_utf8(bytes) {
                Ok(s) => s,
                // The binary store encrypts arbitrary bytes as `str`.
                Err(e) => return Some(Scalar::RawStr(e.into_bytes())),
            }),
            "int" => Scalar::Int(text()?.parse().ok()?),
            "float" => Scalar::Float(parse_float(&text()?)?),
            "bool" => Scalar::Bool(parse_go_bool(&text()?)?),
            "time" => Scalar::Time(text()?),
            "comment" => Scalar::Comment(text()?),
            "bytes" => Scalar::Bytes(bytes),
            _ => return None,
        })
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`: the shortest digits that
/// round-trip, never an exponent; `+Inf`, `-Inf`, `NaN`.
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        // Rust's Display is shortest round-trip and never uses an exponent.
        format!("{f}")
    }
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_gos() {
        assert_eq!(Scalar::Bool(true).to_bytes(), b"True");
        assert_eq!(Scalar::Float(1e21).to_bytes(), b"1000000000000000000000");
        assert_eq!(Scalar::Float(1.5).to_bytes(), b"1.5");
        assert_eq!(Scalar::Float(8080.0).to_bytes(), b"8080");
        assert_eq!(Scalar::Float(f64::INFINITY).to_bytes(), b"+Inf");
        assert_eq!(Scalar::Int(-42).to_bytes(), b"-42");
        assert_eq!(
            Scalar::from_bytes("bool", b"true".to_vec()),
            Some(Scalar::Bool(true))
        );
        assert_eq!(
            Scalar::from_bytes("float", b"+Inf".to_vec()),
            Some(Scalar::Float(f64::INFINITY))
        );
        assert_eq!(Scalar::from_bytes("int", b"x".to_vec()), None);
        assert_eq!(Scalar::from_bytes("nope", b"x".to_vec()), None);
    }
}
