//! Debian version comparison, as dpkg does it (`lib/dpkg/version.c`): `[epoch:]upstream[-revision]`,
//! the epoch compared as a number, upstream and revision with `verrevcmp` (runs of non-digits
//! compared character by character where `~` sorts before everything, even the end, and letters
//! before other characters; runs of digits compared as numbers). Also the relations of `Depends`.

use std::cmp::Ordering;

/// Compares two Debian version strings.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| verrevcmp(ua, ub))
        .then_with(|| verrevcmp(ra, rb))
}

/// `(epoch, upstream, revision)`; a missing epoch is 0, a missing revision is empty.
fn split(v: &str) -> (u64, &str, &str) {
    let v = v.trim();
    let (epoch, rest) = match v.split_once(':') {
        Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
            (e.parse().unwrap_or(u64::MAX), rest)
        }
        _ => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((u, r)) => (epoch, u, r),
        None => (epoch, rest, ""),
    }
}

fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(b'~') => -1,
        Some(c) => c as i32 + 256,
    }
}

fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let digit = |s: &[u8], k: usize| s.get(k).is_some_and(|c| c.is_ascii_digit());
    while i < a.len() || j < b.len() {
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(a, i) && digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

/// A version relation in a dependency: `<<`, `<=`, `=`, `>=`, `>>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Less,
    LessEq,
    Eq,
    GreaterEq,
    Greater,
}

impl Relation {
    /// Parses an operator; the obsolete `<` and `>` mean `<=` and `>=`, as in dpkg.
    pub fn parse(op: &str) -> Option<Relation> {
        Some(match op {
            "<<" => Relation::Less,
            "<=" | "<" => Relation::LessEq,
            "=" => Relation::Eq,
            ">=" | ">" => Relation::GreaterEq,
            ">>" => Relation::Greater,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Relation::Less => "<<",
            Relation::LessEq => "<=",
            Relation::Eq => "=",
            Relation::GreaterEq => ">=",
            Relation::Greater => ">>",
        }
    }

    /// Whether `version` stands in this relation to `wanted` (`version OP wanted`).
    pub fn holds(self, version: &str, wanted: &str) -> bool {
        let o = compare(version, wanted);
        match self {
            Relation::Less => o == Ordering::Less,
            Relation::LessEq => o != Ordering::Greater,
            Relation::Eq => o == Ordering::Equal,
            Relation::GreaterEq => o != Ordering::Less,
            Relation::Greater => o == Ordering::Greater,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn known_pairs_compare_as_dpkg_does() {
        // Each pair checked with `dpkg --compare-versions` (dpkg 1.21, bookworm).
        let cases = [
            ("1.0", "1.0", Equal),
            ("1.0", "1.0-0", Equal),
            ("0:1.0", "1.0", Equal),
            ("1.0", "1.1", Less),
            ("1.0-1", "1.0-2", Less),
            ("1:1.0", "2.0", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0~rc1", "1.0~rc2", Less),
            ("1.0~~", "1.0~", Less),
            ("1.0~", "1.0", Less),
            ("1.0", "1.0+b1", Less),
            ("1.0a", "1.0", Greater),
            ("1.0a", "1.0+", Less),
            ("1.0.1", "1.0a", Greater),
            ("2.36-9+deb12u10", "2.36-9+deb12u9", Greater),
            ("2.36-9+deb12u4", "2.36", Greater),
            ("3.0.15-1~deb12u1", "3.0.15-1", Less),
            ("3.0.16-1~deb12u1", "3.0.15-1", Greater),
            ("12.2.0-14", "12.2.0-14+deb12u1", Less),
            ("1.2.3", "1.02.3", Equal),
            ("10", "9", Greater),
            ("1.0-1ubuntu1", "1.0-1", Greater),
            ("0.9", "0.10", Less),
            ("20230311", "20230311+deb12u1", Less),
            ("7.88.1-10+deb12u12", "7.88.1-10+deb12u5", Greater),
            ("1:2.0", "1:10.0", Less),
            ("2:0.1", "1:9.9", Greater),
            ("a", "b", Less),
            ("1.0-a", "1.0-1", Greater),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn relations_hold_as_in_depends() {
        assert!(Relation::GreaterEq.holds("2.36-9", "2.34"));
        assert!(!Relation::GreaterEq.holds("2.33-1", "2.34"));
        assert!(Relation::Less.holds("1.0~rc1", "1.0"));
        assert!(!Relation::Less.holds("1.0", "1.0"));
        assert!(Relation::LessEq.holds("1.0", "1.0"));
        assert!(Relation::Eq.holds("1:1.0-0", "1:1.0"));
        assert!(Relation::Greater.holds("1.0+b1", "1.0"));
        assert_eq!(Relation::parse(">"), Some(Relation::GreaterEq));
        assert_eq!(Relation::parse("<<"), Some(Relation::Less));
        assert_eq!(Relation::parse("=="), None);
    }
}
