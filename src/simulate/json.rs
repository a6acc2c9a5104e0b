//! A minimal JSON text writer: generation writes lines directly, in the exact
//! key order a real client would send, without building `serde_json` values.

use std::fmt::Write as _;

/// True when some byte of the 8-byte word `x` is a control character, `"` or `\\`.
fn needs_escape(x: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH != 0;
    // Bytes below 0x20 (bytes ≥ 0x80 are masked out by `!x`).
    let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH != 0;
    control || has_zero(x ^ (ONES * u64::from(b'"'))) || has_zero(x ^ (ONES * u64::from(b'\\')))
}

/// Appends `s` as a JSON string literal.
pub(crate) fn string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Skip clean 8-byte words quickly.
        if let Some(word) = bytes.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            if !needs_escape(u64::from_le_bytes(w)) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(esc);
        }
        i += 1;
        start = i;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Builds one JSON object, inserting commas between members.
#[derive(Debug)]
pub(crate) struct Obj<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Obj<'a> {
    pub(crate) fn new(out: &'a mut String) -> Self {
        out.push('{');
        Self { out, first: true }
    }

    /// Starts member `name` and returns the buffer for its value.
    pub(crate) fn key(&mut self, name: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        string(self.out, name);
        self.out.push(':');
        self.out
    }

    pub(crate) fn str(&mut self, name: &str, value: &str) -> &mut Self {
        let out = self.key(name);
        string(out, value);
        self
    }

    pub(crate) fn raw(&mut self, name: &str, value: &str) -> &mut Self {
        self.key(name).push_str(value);
        self
    }

    pub(crate) fn num(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Self {
        let out = self.key(name);
        let _ = write!(out, "{value}");
        self
    }

    /// Appends raw text to the value being written.
    pub(crate) fn push(&mut self, c: char) {
        self.out.push(c);
    }

    pub(crate) fn end(self) {
        self.out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn any_text_round_trips(text in "\\PC*|[\\x00-\\x7f]*") {
            let mut s = String::new();
            string(&mut s, &text);
            let back: String = serde_json::from_str(&s).expect("valid json string");
            proptest::prop_assert_eq!(back, text);
        }
    }

    #[test]
    fn escapes_round_trip_through_serde() {
        let nasty = "quote \" back \\ nl \n tab \t bell \u{7} é 漢字 </script>";
        let mut s = String::new();
        let mut o = Obj::new(&mut s);
        o.str("a", nasty).num("n", 1.5).raw("r", "[1,2]");
        o.end();
        let v: serde_json::Value = serde_json::from_str(&s).expect("valid json");
        assert_eq!(v["a"], nasty);
        assert_eq!(v["n"], 1.5);
        assert_eq!(v["r"][1], 2);
        assert_eq!(s.find("\"a\""), Some(1));
    }
}
