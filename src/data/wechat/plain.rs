//! The fast path of the raw parse: a line of plain unsigned integers
//! (what every line of a well-formed action log is) parsed in one pass
//! over its bytes. Anything else (signs, spaces, "12.0", a missing or
//! overlong field, the wrong number of fields) makes it give up, and the
//! line goes through the general parse, which accepts or reports it by
//! file, line and column exactly as if there were no fast path.

/// The field is not wanted.
pub const SKIP: u8 = u8::MAX;

/// Parses the wanted fields of `line`: field i goes to `out[slot[i]]`
/// (`SKIP`: not parsed) and must be 1 to `max_len[slot[i]]` digits (at
/// most 18, so no overflow). False, with `out` partly written, when the
/// line has other than `slot.len()` fields or a wanted field is anything
/// but such digits.
pub fn parse_digits(line: &[u8], slot: &[u8], max_len: &[usize], out: &mut [i64]) -> bool {
    let n = line.len();
    let mut i = 0;
    for (field, &s) in slot.iter().enumerate() {
        if s == SKIP {
            while i < n && line[i] != b',' {
                i += 1;
            }
        } else {
            let start = i;
            let mut v: i64 = 0;
            while i < n && line[i].is_ascii_digit() {
                v = v * 10 + (line[i] - b'0') as i64;
                i += 1;
            }
            let len = i - start;
            if len == 0 || len > max_len[s as usize].min(18) {
                return false;
            }
            out[s as usize] = v;
        }
        let last = field + 1 == slot.len();
        match (i == n, last) {
            (true, true) => return true,
            (false, false) if line[i] == b',' => i += 1,
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_digits_parse_and_anything_else_gives_up() {
        // Fields: a (slot 1), skipped, b (slot 0, one digit at most).
        let slot = [1, SKIP, 0];
        let max = [1, 18];
        let mut out = [0i64; 2];
        assert!(parse_digits(b"1234,x y,1", &slot, &max, &mut out));
        assert_eq!(out, [1, 1234]);
        assert!(parse_digits(b"007,,0", &slot, &max, &mut out));
        assert_eq!(out, [0, 7]);
        for bad in [&b"12,x,10"[..], b"-1,x,1", b" 1,x,1", b"1.0,x,1", b"1,x", b"1,x,1,", b"1,x,1,2", b",x,1", b"1,x,", b"1234567890123456789,x,1"] {
            assert!(!parse_digits(bad, &slot, &max, &mut out), "{}", String::from_utf8_lossy(bad));
        }
    }
}
